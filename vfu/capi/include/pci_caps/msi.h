/* MSI capability (PCI 3.0, section 6.8.1), the 64-bit per-vector-mask form. */
#ifndef LIB_VFIO_USER_PCI_CAPS_MSI_H
#define LIB_VFIO_USER_PCI_CAPS_MSI_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Message control. */
struct mc {
    unsigned int msie:1;
    unsigned int mmc:3;
    unsigned int mme:3;
    unsigned int c64:1;
    unsigned int pvm:1;
    unsigned int res1:7;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct mc) == 2, "mc is 2 bytes");

/* Message address (low dword). */
struct ma {
    unsigned int res1:2;
    unsigned int addr:30;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct ma) == 4, "ma is 4 bytes");

#define VFIO_USER_PCI_CAP_MSI_SIZEOF (0x18)

struct msicap {
    struct cap_hdr hdr;
    struct mc mc;
    struct ma ma;
    uint32_t mua;
    uint16_t md;
    uint16_t padding;
    uint32_t mmask;
    uint32_t mpend;
} __attribute__((packed));
VFU_STATIC_ASSERT(sizeof(struct msicap) == VFIO_USER_PCI_CAP_MSI_SIZEOF, "msicap size");

#ifdef __cplusplus
}
#endif

#endif /* LIB_VFIO_USER_PCI_CAPS_MSI_H */
