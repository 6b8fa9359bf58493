// Driver: what runs a realized vfu_ctx. PollDriver (the default) runs vfu's
// engine on the caller's thread; ThreadedDriver (VFU_FLAG_THREADED) hands
// the context to vfu's threaded Server. The C functions call this
// interface and do not know which one runs.
#ifndef VFU_CAPI_DRIVER_H_
#define VFU_CAPI_DRIVER_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "vfu/dma/dma_sg_list.h"

namespace vfu::capi {

class CallbackDevice;

class Driver {
 public:
  virtual ~Driver() = default;

  // vfu_realize_ctx(): builds the device adapter from the context's setup.
  virtual absl::Status Realize() = 0;
  // The C calls of the same names; each returns what the C function
  // returns and sets errno.
  virtual int Attach() = 0;
  virtual int GetPollFd() const = 0;
  virtual int Run() = 0;
  virtual int QuiesceDone(int quiesce_errno) = 0;

  // Null before Realize().
  virtual CallbackDevice* device() = 0;

  // The attached client's memory (vfu_addr_to_sgl, vfu_sgl_*). Unavailable
  // when no client is attached.
  virtual absl::StatusOr<DmaSgList> Translate(uint64_t iova, uint64_t length,
                                              DmaDirection direction) = 0;
  virtual absl::Status ReadMemory(uint64_t iova, absl::Span<uint8_t> out) = 0;
  virtual absl::Status WriteMemory(uint64_t iova, absl::Span<const uint8_t> data) = 0;
};

}  // namespace vfu::capi

#endif  // VFU_CAPI_DRIVER_H_
