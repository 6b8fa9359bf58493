/* Power Management capability (PCI PM 1.2, section 3.2). */
#ifndef LIB_VFIO_USER_PCI_CAPS_PM_H
#define LIB_VFIO_USER_PCI_CAPS_PM_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* PMC: power management capabilities. */
struct pc {
    unsigned int vs:3;
    unsigned int pmec:1;
    unsigned int res:1;
    unsigned int dsi:1;
    unsigned int auxc:3;
    unsigned int d1s:1;
    unsigned int d2s:1;
    unsigned int psup:5;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pc) == 2, "pc is 2 bytes");

/* PMCSR: power management control/status. */
struct pmcs {
    union {
        uint16_t raw;
        struct {
            unsigned short ps:2;
            unsigned short res1:1;
            unsigned short nsfrst:1;
            unsigned short res2:4;
            unsigned short pmee:1;
            unsigned short dse:4;
            unsigned short dsc:2;
            unsigned short pmes:1;
        };
    };
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pmcs) == 2, "pmcs is 2 bytes");

struct pmcap {
    struct cap_hdr hdr;
    struct pc pc;
    struct pmcs pmcs;
    uint8_t pmcsr_bse;
    uint8_t data;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct pmcap) == PCI_PM_SIZEOF, "pmcap size");

#ifdef __cplusplus
}
#endif

#endif /* LIB_VFIO_USER_PCI_CAPS_PM_H */
