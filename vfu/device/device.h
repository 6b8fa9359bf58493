// Device and DeviceContext: the two halves of the contract between vfu and a
// device author.
//
// Device is what the author implements: vfu calls it when the client asks
// something of the device. Every hook has a default, so a device overrides
// only what it has. Hooks run on worker threads, one client command at a
// time per device (never two hooks of one device concurrently), so device
// state touched only from hooks needs no lock.
//
// DeviceContext is what vfu offers the device in return: access to the
// client's memory, and (later) interrupts. Its methods may be called from
// any thread, including the device's own.
#ifndef VFU_DEVICE_DEVICE_H_
#define VFU_DEVICE_DEVICE_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "vfu/wire/constants.h"

namespace vfu {

// What DEVICE_GET_REGION_INFO reports for one region index.
struct RegionDescription {
  // 0 means the region is not implemented.
  uint64_t size = 0;
  bool readable = false;
  bool writable = false;
};

// What vfu offers a device. Thread-safe.
class DeviceContext {
 public:
  virtual ~DeviceContext() = default;

  // Copies client memory at IO virtual address `iova` into `out`, or
  // `data` into client memory. Blocks until done. Fails with Unavailable
  // when no client is attached or it disconnects meanwhile, and with
  // DeadlineExceeded when the client does not answer in time.
  //
  // Do not call these from a region-access hook for a non-posted access:
  // QEMU serves DMA requests only when its vCPU lock is free, and a vCPU
  // waiting for the access reply holds it (PROTOCOL.md section 12). Reply
  // first, then do the DMA from the device's own thread.
  virtual absl::Status DmaRead(uint64_t iova, absl::Span<uint8_t> out) = 0;
  virtual absl::Status DmaWrite(uint64_t iova, absl::Span<const uint8_t> data) = 0;
};

// What a device author implements.
class Device {
 public:
  virtual ~Device() = default;

  // Layout, as DEVICE_GET_INFO and DEVICE_GET_REGION_INFO report it.
  virtual uint32_t num_regions() const { return wire::kPciNumRegions; }
  virtual uint32_t num_irqs() const { return wire::kPciNumIrqs; }
  virtual RegionDescription DescribeRegion(uint32_t index) const { return {}; }
  // Vectors of IRQ index `index` (0 = unsupported).
  virtual uint32_t IrqCount(uint32_t index) const { return 0; }

  // Region accesses. vfu has already checked the index, the bounds and
  // the region's permissions. An error becomes an error reply (its errno
  // from vfu/wire/errno_status.h).
  virtual absl::Status ReadRegion(uint32_t index, uint64_t offset, absl::Span<uint8_t> out) {
    return absl::UnimplementedError("region has no read handler");
  }
  virtual absl::Status WriteRegion(uint32_t index, uint64_t offset,
                                   absl::Span<const uint8_t> data) {
    return absl::UnimplementedError("region has no write handler");
  }

  // DEVICE_RESET.
  virtual absl::Status Reset() { return absl::OkStatus(); }

  // A client attached (after VERSION negotiation, before the client gets
  // the VERSION reply) or went away. `context` stays valid for the
  // device's lifetime; between OnDetach and the next OnAttach its DMA calls
  // fail with Unavailable. OnAttach must not wait for DMA itself: the
  // client has not had its VERSION reply yet.
  virtual void OnAttach(DeviceContext& context) {}
  virtual void OnDetach() {}
};

}  // namespace vfu

#endif  // VFU_DEVICE_DEVICE_H_
