// DMA: callbacks, scatter/gather lists and copies to and from client memory.
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "libvfio-user.h"
#include "vfu/capi/api_errno.h"
#include "vfu/capi/context.h"
#include "vfu/capi/dma_sg.h"
#include "vfu/capi/driver.h"
#include "vfu/dma/dma_sg_list.h"

using vfu::DmaDirection;
using vfu::DmaSgList;
using vfu::capi::FailWith;
using vfu::capi::FailWithErrno;

namespace {

DmaDirection DirectionOf(const dma_sg& sg) {
  return (sg.prot & PROT_WRITE) ? DmaDirection::kWrite : DmaDirection::kRead;
}

bool Usable(vfu_ctx_t* ctx) { return ctx != nullptr && ctx->realized && ctx->dma_enabled; }

}  // namespace

extern "C" {

size_t dma_sg_size(void) { return sizeof(dma_sg); }

int vfu_setup_device_dma(vfu_ctx_t* vfu_ctx, vfu_dma_register_cb_t* dma_register,
                         vfu_dma_unregister_cb_t* dma_unregister) {
  if (vfu_ctx == nullptr || vfu_ctx->realized) return FailWithErrno(EINVAL);
  vfu_ctx->dma_enabled = true;
  vfu_ctx->dma_register = dma_register;
  vfu_ctx->dma_unregister = dma_unregister;
  return 0;
}

int vfu_addr_to_sgl(vfu_ctx_t* vfu_ctx, vfu_dma_addr_t dma_addr, size_t len, dma_sg_t* sgl,
                    size_t max_nr_sgs, int prot) {
  if (!Usable(vfu_ctx) || (prot & ~(PROT_READ | PROT_WRITE)) != 0) return FailWithErrno(EINVAL);
  const uint64_t iova = reinterpret_cast<uint64_t>(dma_addr);
  vfu::capi::Driver& table = *vfu_ctx->driver;
  // Every access asked for must be granted; a write-only check stands for
  // PROT_NONE too.
  absl::StatusOr<DmaSgList> list =
      table.Translate(iova, len, (prot & PROT_WRITE) ? DmaDirection::kWrite : DmaDirection::kRead);
  if (list.ok() && (prot & PROT_READ) && (prot & PROT_WRITE)) {
    absl::StatusOr<DmaSgList> readable = table.Translate(iova, len, DmaDirection::kRead);
    if (!readable.ok()) list = readable.status();
  }
  if (!list.ok()) return FailWith(list.status());
  const size_t needed = list->segments().size();
  if (needed > max_nr_sgs) {
    errno = 0;
    return -static_cast<int>(needed) - 1;
  }
  for (size_t i = 0; i < needed; ++i) {
    const DmaSgList::Segment& segment = list->segments()[i];
    dma_sg& sg = sgl[i];
    std::memset(&sg, 0, sizeof(sg));
    sg.iova = segment.iova;
    sg.length = segment.length;
    sg.prot = static_cast<uint32_t>(prot);
    sg.mappable = segment.host != nullptr;
  }
  return static_cast<int>(needed);
}

int vfu_sgl_get(vfu_ctx_t* vfu_ctx, dma_sg_t* sgl, struct iovec* iov, size_t cnt, int flags) {
  if (!Usable(vfu_ctx) || flags != 0 || (cnt != 0 && (sgl == nullptr || iov == nullptr))) {
    return FailWithErrno(EINVAL);
  }
  for (size_t i = 0; i < cnt; ++i) {
    dma_sg& sg = sgl[i];
    absl::Status failure;
    if (!sg.mappable || sg.pin != nullptr) {
      failure = absl::InvalidArgumentError("entry not mappable, or taken already");
    } else {
      absl::StatusOr<DmaSgList> list =
          vfu_ctx->driver->Translate(sg.iova, sg.length, DirectionOf(sg));
      if (!list.ok()) {
        failure = list.status();
      } else if (list->segments().size() != 1 || list->segments()[0].host == nullptr) {
        failure = absl::InvalidArgumentError("the client's mappings changed under the entry");
      } else {
        iov[i].iov_base = list->segments()[0].host;
        iov[i].iov_len = sg.length;
        sg.pin = new DmaSgList(std::move(*list));
      }
    }
    if (!failure.ok()) {
      for (size_t j = 0; j < i; ++j) {
        delete sgl[j].pin;
        sgl[j].pin = nullptr;
      }
      if (absl::IsInvalidArgument(failure)) return FailWithErrno(EFAULT);
      return FailWith(failure);
    }
  }
  return 0;
}

void vfu_sgl_mark_dirty(vfu_ctx_t* vfu_ctx, dma_sg_t* sgl, size_t cnt) {
  if (!Usable(vfu_ctx) || sgl == nullptr) return;
  for (size_t i = 0; i < cnt; ++i) {
    if (sgl[i].pin != nullptr) sgl[i].pin->MarkAllDirty();
  }
}

void vfu_sgl_put(vfu_ctx_t* vfu_ctx, dma_sg_t* sgl, struct iovec* iov, size_t cnt) {
  (void)iov;
  if (vfu_ctx == nullptr || sgl == nullptr) return;
  for (size_t i = 0; i < cnt; ++i) {
    DmaSgList* pin = sgl[i].pin;
    if (pin == nullptr) continue;
    if (sgl[i].prot & PROT_WRITE) pin->MarkAllDirty();
    delete pin;
    sgl[i].pin = nullptr;
  }
}

int vfu_sgl_read(vfu_ctx_t* vfu_ctx, dma_sg_t* sg, size_t cnt, void* data) {
  if (!Usable(vfu_ctx) || (cnt != 0 && (sg == nullptr || data == nullptr))) {
    return FailWithErrno(EINVAL);
  }
  auto* out = static_cast<uint8_t*>(data);
  for (size_t i = 0; i < cnt; ++i) {
    absl::Status status = vfu_ctx->driver->ReadMemory(sg[i].iova, absl::MakeSpan(out, sg[i].length));
    if (!status.ok()) return FailWith(status);
    out += sg[i].length;
  }
  return 0;
}

int vfu_sgl_write(vfu_ctx_t* vfu_ctx, dma_sg_t* sg, size_t cnt, void* data) {
  if (!Usable(vfu_ctx) || (cnt != 0 && (sg == nullptr || data == nullptr))) {
    return FailWithErrno(EINVAL);
  }
  const auto* in = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < cnt; ++i) {
    absl::Status status =
        vfu_ctx->driver->WriteMemory(sg[i].iova, absl::MakeConstSpan(in, sg[i].length));
    if (!status.ok()) return FailWith(status);
    in += sg[i].length;
  }
  return 0;
}

bool vfu_sg_is_mappable(vfu_ctx_t* vfu_ctx, dma_sg_t* sg) {
  return vfu_ctx != nullptr && sg != nullptr && sg->mappable != 0;
}

}  // extern "C"
