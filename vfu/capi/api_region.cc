// Regions and ioeventfds.
#include <cerrno>
#include <utility>

#include "libvfio-user.h"
#include "vfu/capi/api_errno.h"
#include "vfu/capi/context.h"

using vfu::capi::FailWithErrno;

extern "C" {

int vfu_setup_region(vfu_ctx_t* vfu_ctx, int region_idx, size_t size,
                     vfu_region_access_cb_t* region_access, int flags,
                     struct iovec* mmap_areas, uint32_t nr_mmap_areas, int fd, uint64_t offset) {
  if (vfu_ctx == nullptr || vfu_ctx->realized) return FailWithErrno(EINVAL);
  if (region_idx < 0 || region_idx >= VFU_PCI_DEV_NUM_REGIONS) return FailWithErrno(EINVAL);
  if ((flags & ~VFU_REGION_FLAG_MASK) != 0) return FailWithErrno(EINVAL);
  if ((flags & VFU_REGION_FLAG_ALWAYS_CB) != 0 &&
      (region_idx != VFU_PCI_DEV_CFG_REGION_IDX || region_access == nullptr)) {
    return FailWithErrno(EINVAL);
  }
  if ((mmap_areas == nullptr) != (nr_mmap_areas == 0)) return FailWithErrno(EINVAL);
  if (mmap_areas != nullptr && fd < 0) return FailWithErrno(EINVAL);
  if (region_idx == VFU_PCI_DEV_CFG_REGION_IDX && fd >= 0) return FailWithErrno(EINVAL);
  std::vector<struct iovec> areas;
  for (uint32_t i = 0; i < nr_mmap_areas; ++i) {
    const uint64_t begin = reinterpret_cast<uint64_t>(mmap_areas[i].iov_base);
    const uint64_t length = mmap_areas[i].iov_len;
    if (length == 0 || begin > size || length > size - begin) return FailWithErrno(EINVAL);
    areas.push_back(mmap_areas[i]);
  }
  vfu::capi::RegionSetup& region = vfu_ctx->regions[region_idx];
  region.size = region_idx == VFU_PCI_DEV_CFG_REGION_IDX ? 0 : size;
  region.flags = flags;
  region.callback = region_access;
  region.mmap_areas = std::move(areas);
  // From here on the fd is ours, as in libvfio-user.
  region.fd = vfu::UniqueFd(fd);
  region.fd_offset = offset;
  return 0;
}

int vfu_create_ioeventfd(vfu_ctx_t* vfu_ctx, uint32_t region_idx, int fd, size_t offset,
                         uint32_t size, uint32_t flags, uint64_t datamatch, int shadow_fd) {
  if (vfu_ctx == nullptr || fd < 0 || region_idx >= VFU_PCI_DEV_NUM_REGIONS) {
    return FailWithErrno(EINVAL);
  }
  // Shadow ioeventfds need a kernel libvfio-user itself only builds for
  // with an option; like its default build, we refuse them.
  if (shadow_fd != -1) return FailWithErrno(EINVAL);
  const vfu::capi::RegionSetup& region = vfu_ctx->regions[region_idx];
  if (size == 0 || offset > region.size || size > region.size - offset) {
    return FailWithErrno(EINVAL);
  }
  vfu_ctx->ioeventfds.push_back(vfu::capi::IoEventFd{region_idx, vfu::UniqueFd(fd), offset, size,
                                                     flags, datamatch});
  return 0;
}

}  // extern "C"
