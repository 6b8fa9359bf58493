/* MSI-X capability (PCI 3.0, section 6.8.2). */
#ifndef LIB_VFIO_USER_PCI_CAPS_MSIX_H
#define LIB_VFIO_USER_PCI_CAPS_MSIX_H

#include <stdint.h>

#include <linux/pci_regs.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Message control: table size - 1, function mask, enable. */
struct mxc {
    uint16_t ts:11;
    uint16_t reserved:3;
    uint16_t fm:1;
    uint16_t mxe:1;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct mxc) == 2, "mxc is 2 bytes");

/* Table BAR indicator and offset. */
struct mtab {
    uint32_t tbir:3;
    uint32_t to:29;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct mtab) == 4, "mtab is 4 bytes");

/* Pending-bit-array BAR indicator and offset. */
struct mpba {
    uint32_t pbir:3;
    uint32_t pbao:29;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct mpba) == 4, "mpba is 4 bytes");

struct msixcap {
    struct cap_hdr hdr;
    struct mxc mxc;
    struct mtab mtab;
    struct mpba mpba;
} __attribute__((packed)) __attribute__((aligned(4)));
VFU_STATIC_ASSERT(sizeof(struct msixcap) == PCI_CAP_MSIX_SIZEOF, "msixcap size");

#ifdef __cplusplus
}
#endif

#endif /* LIB_VFIO_USER_PCI_CAPS_MSIX_H */
