// The C ABI's layouts against libvfio-user's: sizes, offsets and enum
// values, checked at compile time (a mismatch fails the build of this
// test). The expected numbers are libvfio-user's, from its headers' own
// definitions and static assertions.
#include <cstddef>
#include <cstdio>

#include "libvfio-user.h"

namespace {


#define EXPECT_LAYOUT(actual, expected) static_assert((actual) == (expected), #actual)

// Sizes.
EXPECT_LAYOUT(sizeof(vfu_pci_hdr_t), 0x40);
EXPECT_LAYOUT(sizeof(vfu_pci_config_space_t), 0x100);
EXPECT_LAYOUT(sizeof(vfu_bar_t), 4);
EXPECT_LAYOUT(sizeof(vfu_pci_hdr_cc_t), 3);
EXPECT_LAYOUT(sizeof(struct cap_hdr), 2);
EXPECT_LAYOUT(sizeof(struct pmcap), 8);
EXPECT_LAYOUT(sizeof(struct msicap), 0x18);
EXPECT_LAYOUT(sizeof(struct msixcap), 12);
EXPECT_LAYOUT(alignof(struct msixcap), 4);
EXPECT_LAYOUT(sizeof(struct pxcap), 0x2a);
EXPECT_LAYOUT(sizeof(struct dsncap), 12);
EXPECT_LAYOUT(sizeof(struct pcie_ext_cap_hdr), 4);
EXPECT_LAYOUT(sizeof(struct vsc), 3);
EXPECT_LAYOUT(sizeof(vfu_dma_info_t), 56);
EXPECT_LAYOUT(sizeof(vfu_migration_callbacks_t), 32);
EXPECT_LAYOUT(sizeof(struct vfio_user_header), 16);

// The standard header's fields.
EXPECT_LAYOUT(offsetof(vfu_pci_hdr_t, id), 0x00);
EXPECT_LAYOUT(offsetof(vfu_pci_hdr_t, cmd), 0x04);
EXPECT_LAYOUT(offsetof(vfu_pci_hdr_t, sts), 0x06);
EXPECT_LAYOUT(offsetof(vfu_pci_hdr_t, rid), 0x08);
EXPECT_LAYOUT(offsetof(vfu_pci_hdr_t, cc), 0x09);
EXPECT_LAYOUT(offsetof(vfu_pci_hdr_t, cls), 0x0c);
EXPECT_LAYOUT(offsetof(vfu_pci_hdr_t, mlt), 0x0d);
EXPECT_LAYOUT(offsetof(vfu_pci_hdr_t, htype), 0x0e);
EXPECT_LAYOUT(offsetof(vfu_pci_hdr_t, bist), 0x0f);
EXPECT_LAYOUT(offsetof(vfu_pci_hdr_t, bars), 0x10);
EXPECT_LAYOUT(offsetof(vfu_pci_hdr_t, ccptr), 0x28);
EXPECT_LAYOUT(offsetof(vfu_pci_hdr_t, ss), 0x2c);
EXPECT_LAYOUT(offsetof(vfu_pci_hdr_t, erom), 0x30);
EXPECT_LAYOUT(offsetof(vfu_pci_hdr_t, cap), 0x34);
EXPECT_LAYOUT(offsetof(vfu_pci_hdr_t, intr), 0x3c);
EXPECT_LAYOUT(offsetof(vfu_pci_hdr_t, mgnt), 0x3e);
EXPECT_LAYOUT(offsetof(vfu_pci_hdr_t, mlat), 0x3f);
EXPECT_LAYOUT(offsetof(vfu_pci_config_space_t, extended), 0x100);

// Capabilities.
EXPECT_LAYOUT(offsetof(struct pmcap, pc), 2);
EXPECT_LAYOUT(offsetof(struct pmcap, pmcs), 4);
EXPECT_LAYOUT(offsetof(struct pmcap, pmcsr_bse), 6);
EXPECT_LAYOUT(offsetof(struct pmcap, data), 7);
EXPECT_LAYOUT(offsetof(struct msicap, mc), 2);
EXPECT_LAYOUT(offsetof(struct msicap, ma), 4);
EXPECT_LAYOUT(offsetof(struct msicap, mua), 8);
EXPECT_LAYOUT(offsetof(struct msicap, md), 0xc);
EXPECT_LAYOUT(offsetof(struct msicap, mmask), 0x10);
EXPECT_LAYOUT(offsetof(struct msicap, mpend), 0x14);
EXPECT_LAYOUT(offsetof(struct msixcap, mxc), 2);
EXPECT_LAYOUT(offsetof(struct msixcap, mtab), 4);
EXPECT_LAYOUT(offsetof(struct msixcap, mpba), 8);
EXPECT_LAYOUT(offsetof(struct pxcap, pxcaps), 2);
EXPECT_LAYOUT(offsetof(struct pxcap, pxdcap), 4);
EXPECT_LAYOUT(offsetof(struct pxcap, pxdc), 8);
EXPECT_LAYOUT(offsetof(struct pxcap, pxds), 0xa);
EXPECT_LAYOUT(offsetof(struct pxcap, pxlcap), 0xc);
EXPECT_LAYOUT(offsetof(struct pxcap, pxlc), 0x10);
EXPECT_LAYOUT(offsetof(struct pxcap, pxls), 0x12);
EXPECT_LAYOUT(offsetof(struct pxcap, pxdcap2), 0x24);
EXPECT_LAYOUT(offsetof(struct pxcap, pxdc2), 0x28);
EXPECT_LAYOUT(offsetof(struct dsncap, sn_lo), 4);
EXPECT_LAYOUT(offsetof(struct dsncap, sn_hi), 8);

// DMA info and migration callbacks.
EXPECT_LAYOUT(offsetof(vfu_dma_info_t, iova), 0);
EXPECT_LAYOUT(offsetof(vfu_dma_info_t, vaddr), 16);
EXPECT_LAYOUT(offsetof(vfu_dma_info_t, mapping), 24);
EXPECT_LAYOUT(offsetof(vfu_dma_info_t, page_size), 40);
EXPECT_LAYOUT(offsetof(vfu_dma_info_t, prot), 48);
EXPECT_LAYOUT(offsetof(vfu_migration_callbacks_t, version), 0);
EXPECT_LAYOUT(offsetof(vfu_migration_callbacks_t, transition), 8);
EXPECT_LAYOUT(offsetof(vfu_migration_callbacks_t, read_data), 16);
EXPECT_LAYOUT(offsetof(vfu_migration_callbacks_t, write_data), 24);

// Constants and enum values.
EXPECT_LAYOUT(LIBVFIO_USER_FLAG_ATTACH_NB, 1);
EXPECT_LAYOUT(VFU_TRANS_SOCK, 0);
EXPECT_LAYOUT(VFU_TRANS_PIPE, 1);
EXPECT_LAYOUT(VFU_TRANS_MAX, 2);
EXPECT_LAYOUT(VFU_DEV_TYPE_PCI, 0);
EXPECT_LAYOUT(VFU_REGION_FLAG_READ, 1);
EXPECT_LAYOUT(VFU_REGION_FLAG_WRITE, 2);
EXPECT_LAYOUT(VFU_REGION_FLAG_RW, 3);
EXPECT_LAYOUT(VFU_REGION_FLAG_MEM, 4);
EXPECT_LAYOUT(VFU_REGION_FLAG_ALWAYS_CB, 8);
EXPECT_LAYOUT(VFU_REGION_FLAG_MASK, 0xf);
EXPECT_LAYOUT(VFU_RESET_DEVICE, 0);
EXPECT_LAYOUT(VFU_RESET_LOST_CONN, 1);
EXPECT_LAYOUT(VFU_RESET_PCI_FLR, 2);
EXPECT_LAYOUT(VFU_DEV_INTX_IRQ, 0);
EXPECT_LAYOUT(VFU_DEV_MSI_IRQ, 1);
EXPECT_LAYOUT(VFU_DEV_MSIX_IRQ, 2);
EXPECT_LAYOUT(VFU_DEV_ERR_IRQ, 3);
EXPECT_LAYOUT(VFU_DEV_REQ_IRQ, 4);
EXPECT_LAYOUT(VFU_DEV_NUM_IRQS, 5);
EXPECT_LAYOUT(VFU_MIGR_STATE_STOP, 0);
EXPECT_LAYOUT(VFU_MIGR_STATE_RUNNING, 1);
EXPECT_LAYOUT(VFU_MIGR_STATE_STOP_AND_COPY, 2);
EXPECT_LAYOUT(VFU_MIGR_STATE_PRE_COPY, 3);
EXPECT_LAYOUT(VFU_MIGR_STATE_RESUME, 4);
EXPECT_LAYOUT(VFU_MIGR_CALLBACKS_VERS, 2);
EXPECT_LAYOUT(LIBVFIO_USER_MIG_FLAG_HAVE_DATA, 1);
EXPECT_LAYOUT(VFU_PCI_DEV_BAR0_REGION_IDX, 0);
EXPECT_LAYOUT(VFU_PCI_DEV_ROM_REGION_IDX, 6);
EXPECT_LAYOUT(VFU_PCI_DEV_CFG_REGION_IDX, 7);
EXPECT_LAYOUT(VFU_PCI_DEV_VGA_REGION_IDX, 8);
EXPECT_LAYOUT(VFU_PCI_DEV_NUM_REGIONS, 9);
EXPECT_LAYOUT(VFU_PCI_TYPE_CONVENTIONAL, 0);
EXPECT_LAYOUT(VFU_PCI_TYPE_PCI_X_1, 1);
EXPECT_LAYOUT(VFU_PCI_TYPE_PCI_X_2, 2);
EXPECT_LAYOUT(VFU_PCI_TYPE_EXPRESS, 3);
EXPECT_LAYOUT(VFU_CAP_FLAG_EXTENDED, 1);
EXPECT_LAYOUT(VFU_CAP_FLAG_CALLBACK, 2);
EXPECT_LAYOUT(VFU_CAP_FLAG_READONLY, 4);
EXPECT_LAYOUT(VFIO_USER_PCI_CAP_MSI_SIZEOF, 0x18);
EXPECT_LAYOUT(PCI_BARS_NR, 6);
EXPECT_LAYOUT(VFIO_USER_DMA_READ, 11);
EXPECT_LAYOUT(VFIO_USER_MIG_DATA_WRITE, 18);

}  // namespace

// The opaque dma_sg_t is sized by the library at run time.
int main() {
  if (dma_sg_size() != 40) {
    std::fprintf(stderr, "dma_sg_size() is %zu, libvfio-user's is 40\n", dma_sg_size());
    return 1;
  }
  return 0;
}
