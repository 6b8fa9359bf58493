/* PCI Express capability (PCIe 2.1, section 7.8), up to Device Control 2. */
#ifndef LIB_VFIO_USER_PCI_CAPS_PX_H
#define LIB_VFIO_USER_PCI_CAPS_PX_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* PCI Express capabilities register. */
struct pxcaps {
    unsigned int ver:4;
    unsigned int dpt:4;
    unsigned int si:1;
    unsigned int imn:5;
    unsigned int res1:2;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxcaps) == 2, "pxcaps is 2 bytes");

/* Device capabilities; flrc announces function-level reset. */
struct pxdcap {
    unsigned int mps:3;
    unsigned int pfs:2;
    unsigned int etfs:1;
    unsigned int l0sl:3;
    unsigned int l1l:3;
    unsigned int per:1;
    unsigned int res1:2;
    unsigned int csplv:8;
    unsigned int cspls:2;
    unsigned int flrc:1;
    unsigned int res2:3;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxdcap) == 4, "pxdcap is 4 bytes");

/* Device control; writing iflr = 1 starts a function-level reset. */
union pxdc {
    uint16_t raw;
    struct {
        unsigned int cere:1;
        unsigned int nfere:1;
        unsigned int fere:1;
        unsigned int urre:1;
        unsigned int ero:1;
        unsigned int mps:3;
        unsigned int ete:1;
        unsigned int pfe:1;
        unsigned int appme:1;
        unsigned int ens:1;
        unsigned int mrrs:3;
        unsigned int iflr:1;
    } __attribute__((packed));
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(union pxdc) == 2, "pxdc is 2 bytes");

struct pxds {
    unsigned int stuff:16;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxds) == 2, "pxds is 2 bytes");

struct pxlcap {
    unsigned int stuff:32;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxlcap) == 4, "pxlcap is 4 bytes");

struct pxlc {
    unsigned int stuff:16;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxlc) == 2, "pxlc is 2 bytes");

struct pxls {
    unsigned int stuff:16;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxls) == 2, "pxls is 2 bytes");

struct pxdcap2 {
    unsigned int ctrs:4;
    unsigned int ctds:1;
    unsigned int arifs:1;
    unsigned int aors:1;
    unsigned int aocs32:1;
    unsigned int aocs64:1;
    unsigned int ccs128:1;
    unsigned int nprpr:1;
    unsigned int ltrs:1;
    unsigned int tphcs:2;
    unsigned int obffs:2;
    unsigned int effs:1;
    unsigned int eetps:1;
    unsigned int meetp:2;
    unsigned int res1:8;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxdcap2) == 4, "pxdcap2 is 4 bytes");

struct pxdc2 {
    unsigned int stuff:16;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxdc2) == 2, "pxdc2 is 2 bytes");

/* Slot and root registers are not modelled: `pad` stands in for them. */
struct pxcap {
    struct cap_hdr hdr;
    struct pxcaps pxcaps;
    struct pxdcap pxdcap;
    union pxdc pxdc;
    struct pxds pxds;
    struct pxlcap pxlcap;
    struct pxlc pxlc;
    struct pxls pxls;
    uint8_t pad[0x10];
    struct pxdcap2 pxdcap2;
    struct pxdc2 pxdc2;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pxcap) == 0x2a, "pxcap size");

#ifdef __cplusplus
}
#endif

#endif /* LIB_VFIO_USER_PCI_CAPS_PX_H */
