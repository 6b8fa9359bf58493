/* Device Serial Number extended capability (PCIe 2.1, section 7.16). */
#ifndef LIB_VFIO_USER_PCI_CAPS_DSN_H
#define LIB_VFIO_USER_PCI_CAPS_DSN_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

struct dsncap {
    struct pcie_ext_cap_hdr hdr;
    uint32_t sn_lo;
    uint32_t sn_hi;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct dsncap) == PCI_EXT_CAP_DSN_SIZEOF, "dsncap size");

#ifdef __cplusplus
}
#endif

#endif /* LIB_VFIO_USER_PCI_CAPS_DSN_H */
