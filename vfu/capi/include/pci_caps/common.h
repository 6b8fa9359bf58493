/*
 * PCI capability headers shared by the capability structs below
 * (libvfio-user-compatible layouts; the sizes are checked at compile time).
 */
#ifndef LIB_VFIO_USER_PCI_CAPS_COMMON_H
#define LIB_VFIO_USER_PCI_CAPS_COMMON_H

#include <linux/pci_regs.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define VFU_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
extern "C" {
#else
#define VFU_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* The two bytes every standard capability starts with. */
struct cap_hdr {
    uint8_t id;
    uint8_t next;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct cap_hdr) == 2, "cap_hdr is 2 bytes");

/* Vendor-specific capability: its third byte is its length. */
struct vsc {
    struct cap_hdr hdr;
    uint8_t size;
    uint8_t data[];
} __attribute__((packed));

/* The 32-bit header of a PCI Express extended capability. */
struct pcie_ext_cap_hdr {
    uint32_t id:16;
    uint32_t version:4;
    uint32_t next:12;
} __attribute__((packed));

/* Vendor-specific extended capability header. */
struct pcie_ext_cap_vsc_hdr {
    struct pcie_ext_cap_hdr hdr;
    uint32_t id:16;
    uint32_t rev:4;
    uint32_t len:12;
    uint8_t data[];
} __attribute__((packed));

#ifdef __cplusplus
}
#endif

#endif /* LIB_VFIO_USER_PCI_CAPS_COMMON_H */
