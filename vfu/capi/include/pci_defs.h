/*
 * The type-0 PCI configuration header as libvfio-user users address it
 * (vfu_pci_get_config_space() returns a pointer to this layout).
 */
#ifndef LIBVFIO_USER_PCI_DEFS_H
#define LIBVFIO_USER_PCI_DEFS_H

#include <linux/pci_regs.h>
#include <stdbool.h>
#include <stdint.h>

#include "pci_caps/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* BAR "locatable" field values: the memory type bits shifted down by one. */
#define PCI_BASE_ADDRESS_MEM_TYPE_LOCATABLE_32 (PCI_BASE_ADDRESS_MEM_TYPE_32 >> 1)
#define PCI_BASE_ADDRESS_MEM_TYPE_LOCATABLE_1M (PCI_BASE_ADDRESS_MEM_TYPE_1M >> 1)
#define PCI_BASE_ADDRESS_MEM_TYPE_LOCATABLE_64 (PCI_BASE_ADDRESS_MEM_TYPE_64 >> 1)

/* Subsystem vendor and subsystem IDs. */
typedef union {
    uint32_t raw;
    struct {
        uint16_t vid;
        uint16_t sid;
    } __attribute__((packed));
} __attribute__((packed)) vfu_pci_hdr_ss_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_ss_t) == 4, "ss is 4 bytes");

typedef union {
    uint8_t raw;
} __attribute__((packed)) vfu_pci_hdr_bist_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_bist_t) == 1, "bist is 1 byte");

/* A base address register, memory or IO view. */
typedef union {
    uint32_t raw;
    union {
        struct {
            unsigned int region_type:1;
            unsigned int locatable:2;
            unsigned int prefetchable:1;
            unsigned int base_address:28;
        } __attribute__((packed)) mem;
        struct {
            unsigned int region_type:1;
            unsigned int reserved:1;
            unsigned int base_address:30;
        } __attribute__((packed)) io;
    } __attribute__((packed));
} __attribute__((packed)) vfu_bar_t;
VFU_STATIC_ASSERT(sizeof(vfu_bar_t) == 4, "bar is 4 bytes");

typedef union {
    uint8_t raw;
} __attribute__((packed)) vfu_pci_hdr_htype_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_htype_t) == 1, "htype is 1 byte");

/* Class code: programming interface, sub-class, base class. */
typedef union {
    uint8_t raw[3];
    struct {
        uint8_t pi;
        uint8_t scc;
        uint8_t bcc;
    } __attribute__((packed));
} __attribute__((packed)) vfu_pci_hdr_cc_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_cc_t) == 3, "cc is 3 bytes");

/* Status register. */
typedef union {
    uint16_t raw;
    struct {
        unsigned int res1:3;
        unsigned int is:1;
        unsigned int cl:1;
        unsigned int c66:1;
        unsigned int res2:1;
        unsigned int fbc:1;
        unsigned int dpd:1;
        unsigned int devt:2;
        unsigned int sta:1;
        unsigned int rta:1;
        unsigned int rma:1;
        unsigned int sse:1;
        unsigned int dpe:1;
    } __attribute__((packed));
} __attribute__((packed)) vfu_pci_hdr_sts_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_sts_t) == 2, "sts is 2 bytes");

/* Command register. */
typedef union {
    uint16_t raw;
    struct {
        uint8_t iose:1;
        uint8_t mse:1;
        uint8_t bme:1;
        uint8_t sce:1;
        uint8_t mwie:1;
        uint8_t vga:1;
        uint8_t pee:1;
        uint8_t zero:1;
        uint8_t see:1;
        uint8_t fbe:1;
        uint8_t id:1;
        uint8_t res1:5;
    } __attribute__((packed));
} __attribute__((packed)) vfu_pci_hdr_cmd_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_cmd_t) == 2, "cmd is 2 bytes");

/* Vendor and device IDs. */
typedef union {
    uint32_t raw;
    struct {
        uint16_t vid;
        uint16_t did;
    } __attribute__((packed));
} __attribute__((packed)) vfu_pci_hdr_id_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_id_t) == 4, "id is 4 bytes");

/* Interrupt line and pin. */
typedef union {
    uint16_t raw;
    struct {
        uint8_t iline;
        uint8_t ipin;
    } __attribute__((packed));
} __attribute__((packed)) vfu_pci_hdr_intr_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_intr_t) == 2, "intr is 2 bytes");

#define PCI_BARS_NR 6

/* The 64-byte standard header. */
typedef union {
    uint8_t raw[PCI_STD_HEADER_SIZEOF];
    struct {
        vfu_pci_hdr_id_t id;
        vfu_pci_hdr_cmd_t cmd;
        vfu_pci_hdr_sts_t sts;
        uint8_t rid;
        vfu_pci_hdr_cc_t cc;
        uint8_t cls;
        uint8_t mlt;
        vfu_pci_hdr_htype_t htype;
        vfu_pci_hdr_bist_t bist;
        vfu_bar_t bars[PCI_BARS_NR];
        uint32_t ccptr;
        vfu_pci_hdr_ss_t ss;
        uint32_t erom;
        uint8_t cap;
        uint8_t res1[7];
        vfu_pci_hdr_intr_t intr;
        uint8_t mgnt;
        uint8_t mlat;
    } __attribute__((packed));
} __attribute__((packed)) vfu_pci_hdr_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_hdr_t) == 0x40, "header is 64 bytes");

/*
 * Configuration space: 256 bytes, followed by the extended space (up to
 * 4096 bytes in all) for PCI-X mode 2 and PCI Express devices.
 */
typedef struct {
    union {
        uint8_t raw[PCI_CFG_SPACE_SIZE];
        vfu_pci_hdr_t hdr;
    } __attribute__((packed));
    uint8_t extended[];
} __attribute__((packed)) vfu_pci_config_space_t;
VFU_STATIC_ASSERT(sizeof(vfu_pci_config_space_t) == 0x100, "config space is 256 bytes");

#ifdef __cplusplus
}
#endif

#endif /* LIBVFIO_USER_PCI_DEFS_H */
