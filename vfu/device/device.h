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
// memory of one attached client. vfu hands the device a new one for every
// attachment (Device::OnAttach) and revokes it when that client goes away:
// a device thread still working for the previous client then gets a clean
// Unavailable, never the next client's memory. Its methods may be called
// from any thread, including the device's own.
#ifndef VFU_DEVICE_DEVICE_H_
#define VFU_DEVICE_DEVICE_H_

#include <linux/vfio.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "vfu/base/unique_fd.h"
#include "vfu/dma/dma_map_table.h"
#include "vfu/device/migration_state.h"
#include "vfu/dma/dma_sg_list.h"
#include "vfu/wire/constants.h"
#include "vfu/wire/dma_unmap.h"
#include "vfu/wire/irq.h"
#include "vfu/wire/region_info.h"
#include "vfu/wire/region_io_fds.h"

namespace vfu {

// What DEVICE_GET_REGION_INFO reports for one region index.
struct RegionDescription {
  // 0 means the region is not implemented.
  uint64_t size = 0;
  bool readable = false;
  bool writable = false;
  // Parts of the region the client may mmap (offsets within the region),
  // served from `mmap_fd` starting at file offset `fd_offset`. The fd is
  // borrowed: the device keeps it open while it describes it.
  std::vector<wire::SparseMmapArea> mmap_areas;
  int mmap_fd = -1;
  uint64_t fd_offset = 0;
  // Device-specific regions (index >= 9) carry a type.
  std::optional<wire::RegionType> type;
};

// What vfu offers a device: the memory of one client attachment.
// Thread-safe.
//
// Lifetime: shared (std::shared_ptr), so a device thread may keep its handle
// as long as it likes, even past Server::Stop(). The context is revoked when
// its client detaches: from then on every call fails with Unavailable
// without touching client memory (the next client's included). The detach
// waits for calls already in progress, then unmaps the client's memory;
// message DMA in progress fails fast with Unavailable, as the client is
// gone. A DmaSgList from DmaPin keeps its mappings alive on its own terms
// (see DmaSgList).
class DeviceContext {
 public:
  virtual ~DeviceContext() = default;

  // Copies client memory at IO virtual address `iova` into `out`, or
  // `data` into client memory. Blocks until done. Fails with Unavailable
  // once the context is revoked (its client detached) or when the client
  // disconnects meanwhile, with DeadlineExceeded when the client does not
  // answer in time, and with the DMA fault status (vfu/dma/dma_fault.h,
  // IsDmaFault) when the client took the memory away (shrank the file
  // behind its mapping); that client is then disconnected.
  //
  // Do not call these from a region-access hook for a non-posted access:
  // QEMU serves DMA requests only when its vCPU lock is free, and a vCPU
  // waiting for the access reply holds it (PROTOCOL.md section 12). Reply
  // first, then do the DMA from the device's own thread.
  virtual absl::Status DmaRead(uint64_t iova, absl::Span<uint8_t> out) = 0;
  virtual absl::Status DmaWrite(uint64_t iova, absl::Span<const uint8_t> data) = 0;

  // Zero-copy access: host pointers to client memory the client shared
  // with an fd. The list keeps the mappings alive (a DMA_UNMAP waits for
  // it, up to DmaMapLimits::pin_release_timeout, then revokes them);
  // FailedPrecondition if part of the range has no fd, NotFound if part is
  // unmapped. Touch the bytes only through the list's guarded methods
  // (Read, Write, Copy, RunGuarded): the client can shrink the file at any
  // time, and a plain access would then kill the server with SIGBUS. A
  // device writing through RunGuarded marks what it wrote with
  // DmaSgList::MarkDirty.
  virtual absl::StatusOr<DmaSgList> DmaPin(uint64_t iova, uint64_t length,
                                           DmaDirection direction) = 0;
};

// Why the engine asks a device to quiesce (Device::Quiesce).
enum class QuiesceReason {
  kDmaMap,          // DMA_MAP
  kDmaUnmap,        // DMA_UNMAP
  kReset,           // DEVICE_RESET
  kFunctionReset,   // a config write that initiates a function-level reset
  kMigration,       // a MIG_DEVICE_STATE change
  kDmaLogging,      // DMA logging start or stop
  kLostConnection,  // the client went away (detach)
};

constexpr std::string_view QuiesceReasonName(QuiesceReason reason) {
  switch (reason) {
    case QuiesceReason::kDmaMap:
      return "DMA map";
    case QuiesceReason::kDmaUnmap:
      return "DMA unmap";
    case QuiesceReason::kReset:
      return "reset";
    case QuiesceReason::kFunctionReset:
      return "function-level reset";
    case QuiesceReason::kMigration:
      return "migration state change";
    case QuiesceReason::kDmaLogging:
      return "DMA logging";
    case QuiesceReason::kLostConnection:
      return "lost connection";
  }
  return "unknown";
}

// Completes a quiesce: call it exactly once, from any thread, with OK once
// the device has stopped touching client memory and raising interrupts, or
// with the error (its errno goes to the client, vfu/wire/errno_status.h)
// that fails the command which asked.
using QuiesceDone = absl::AnyInvocable<void(absl::Status) &&>;

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
  // DEVICE_GET_IRQ_INFO's flags for `index` (VFIO_IRQ_INFO_*).
  virtual uint32_t IrqInfoFlags(uint32_t index) const {
    return IrqCount(index) > 0 ? VFIO_IRQ_INFO_EVENTFD : 0;
  }
  // DEVICE_GET_REGION_IO_FDS: the region's sub-regions served by fds.
  // Appends entries whose fd_index index `fds`; the fds are borrowed and
  // stay open until the next hook call. None: the region has no io fds
  // (the client gets EINVAL).
  virtual void DescribeRegionIoFds(uint32_t index, std::vector<wire::IoFdEntry>& entries,
                                   std::vector<int>& fds) const {}

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

  // DEVICE_RESET (after Quiesce(kReset)). Also ends any migration: the
  // engine's migration state is RUNNING afterwards whatever it was, as
  // QEMU's recovery path (SET RUNNING, DEVICE_RESET, then assume RUNNING)
  // needs, so a device drops any half-read or half-written migration stream
  // here and runs.
  virtual absl::Status Reset() { return absl::OkStatus(); }

  // True when a config-space REGION_WRITE (region `region`, at `offset`,
  // of `data`) initiates a function-level reset. The engine then quiesces
  // the device (kFunctionReset) before WriteRegion and unquiesces after.
  virtual bool IsFunctionLevelReset(uint32_t region, uint64_t offset,
                                    absl::Span<const uint8_t> data) const {
    return false;
  }

  // ---- Quiesce ----
  //
  // Before an operation that changes what the device may touch (see
  // QuiesceReason), the engine asks the device to quiesce: to stop touching
  // client memory and raising interrupts until Unquiesce(). The device
  // calls `done` when it has (at once from inside Quiesce, the default, or
  // later from any thread, e.g. when its in-flight jobs finish). The
  // engine does not hold a thread meanwhile; that client's later commands
  // wait, in order. An error passed to `done` fails the command (the
  // client gets an error reply with its errno) and no Unquiesce follows.
  // Not called again before Unquiesce() or a failed answer, except after a
  // client left and the engine stopped waiting for this device's answer
  // (RuntimeOptions::quiesce_wait_after_disconnect): its late answer is
  // then ignored, and the next Quiesce() may come first.
  virtual void Quiesce(QuiesceReason reason, QuiesceDone done) {
    std::move(done)(absl::OkStatus());
  }
  // The operation that needed the quiesce is over (whether it succeeded or
  // not): the device may touch memory and raise interrupts again.
  virtual void Unquiesce() {}

  // ---- Migration (VFIO migration v2, PROTOCOL.md section 6) ----
  //
  // The device starts RUNNING. The engine keeps the state, walks the arcs
  // (vfu/device/migration_state.h) and judges which commands each state
  // allows; the device implements the arcs and the data stream.

  // When false (the default) DEVICE_FEATURE MIGRATION and MIG_DEVICE_STATE
  // fail (ENOTSUP) and no migration hook is called.
  virtual bool SupportsMigration() const { return false; }
  // One direct arc, `from` -> `to` (IsMigrationArc), called once per arc of
  // a state change's path after the device quiesced (kMigration). An error
  // stops the walk: the state stays `from` and the client gets the error's
  // errno unchanged. RESUMING -> STOP is where the device checks the stream
  // it was given is complete and valid, and fails if not.
  virtual absl::Status OnMigrationArc(MigrationState from, MigrationState to) {
    return absl::UnimplementedError("device does not migrate");
  }
  // MIG_DATA_READ in PRE_COPY or STOP_COPY: fills the front of `out` with
  // the next bytes of the stream and returns how many. Fewer than
  // out.size() means no more for now (PRE_COPY) or the end of the stream
  // (STOP_COPY).
  virtual absl::StatusOr<size_t> ReadMigrationData(absl::Span<uint8_t> out) {
    return absl::UnimplementedError("device does not migrate");
  }
  // MIG_DATA_WRITE in RESUMING: the next bytes of the stream; the device
  // takes them all (or fails the command).
  virtual absl::Status WriteMigrationData(absl::Span<const uint8_t> data) {
    return absl::UnimplementedError("device does not migrate");
  }
  // An estimate of the bytes STOP_COPY would still have to move (the
  // kernel's stop_copy_length), asked in any state: DEVICE_FEATURE
  // MIG_DATA_SIZE (9) reports it, and QEMU weighs it against its downtime
  // budget. QEMU takes a device that does not answer as having 100 GiB, so
  // a migration with it might never converge.
  virtual uint64_t MigrationDataEstimate() { return 0; }

  // DEVICE_SET_IRQS, decoded (the errno of a failure goes to the client).
  // Takes the fds it keeps out of `fds`; the rest are closed.
  virtual absl::Status SetIrqs(const wire::SetIrqsRequest& request, std::vector<UniqueFd>& fds) {
    return absl::InvalidArgumentError("device has no interrupts");
  }

  // The client mapped or unmapped memory (DMA_MAP / DMA_UNMAP, and every
  // mapping at disconnect). An unmap is reported after no device thread
  // uses the mapping any more.
  virtual void OnDmaMapped(const DmaRange& range) {}
  virtual void OnDmaUnmapped(const DmaRange& range) {}
  // A DMA_UNMAP (decoded, after the quiesce) or the client leaving (a
  // request with kDmaUnmapFlagAll) is about to unmap: called before the
  // engine waits for the ranges to go idle, so a device that lets go of
  // them here (libvfio-user's unregister callback) does not hold that wait
  // up. The unmap may still fail (e.g. no such range).
  virtual void BeforeDmaUnmap(const wire::DmaUnmapRequest& request) {}

  // A server refuses to serve a device whose description is invalid.
  virtual absl::Status Validate() const { return absl::OkStatus(); }

  // A client attached (after VERSION negotiation, before the client gets
  // the VERSION reply) or went away. `context` reaches this client's memory
  // and nobody else's: it is revoked before OnDetach (its calls fail with
  // Unavailable from then on), and the next client comes with a new one.
  // The device may keep it as long as it likes. OnAttach must not wait for
  // DMA itself: the client has not had its VERSION reply yet.
  virtual void OnAttach(std::shared_ptr<DeviceContext> context) {}
  virtual void OnDetach() {}
};

}  // namespace vfu

#endif  // VFU_DEVICE_DEVICE_H_
