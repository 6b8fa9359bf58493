// struct dma_sg: one scatter/gather entry of vfu_addr_to_sgl(). Opaque to
// users, who allocate arrays of dma_sg_size() bytes per entry; its size is
// libvfio-user's (40 bytes on LP64) so that code sizing arrays with
// sizeof-based constants of its own keeps working.
#ifndef VFU_CAPI_DMA_SG_H_
#define VFU_CAPI_DMA_SG_H_

#include <cstdint>

namespace vfu {
class DmaSgList;
}  // namespace vfu

struct dma_sg {
  uint64_t iova;
  uint64_t length;
  // The pin vfu_sgl_get() took (released by vfu_sgl_put()), else null.
  vfu::DmaSgList* pin;
  // PROT_READ / PROT_WRITE the entry was made for.
  uint32_t prot;
  // Whether the memory is mapped into this process (shared with an fd).
  uint32_t mappable;
  uint64_t reserved;
};

static_assert(sizeof(dma_sg) == 40, "libvfio-user's dma_sg_t is 40 bytes");

#endif  // VFU_CAPI_DMA_SG_H_
