// AdminCommandSet: what the admin commands do, and the controller state
// only they touch: features, the asynchronous event requests waiting for
// an event, the count of I/O queues allowed.
//
// Commands: Identify (controller, namespace, active namespace list,
// namespace identification descriptors), Create / Delete I/O SQ and CQ,
// Get / Set Features (arbitration, temperature threshold, volatile write
// cache, number of queues, interrupt coalescing, interrupt vector
// configuration, async event configuration), Get Log Page (error, SMART /
// health, firmware slot), Asynchronous Event Request, Abort, Doorbell Buffer
// Config (shadow doorbells for the I/O queues). Anything else is
// kInvalidOpcode; checks and their order follow NVMe 1.4 and QEMU's
// controller (see each function).
//
// The queues themselves belong to the controller, reached through
// AdminQueueHost. Thread-compatible: only the controller's admin thread
// calls it.
#ifndef VFU_DEVICES_NVME_ADMIN_COMMAND_SET_H_
#define VFU_DEVICES_NVME_ADMIN_COMMAND_SET_H_

#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "devices/nvme/guest_data.h"
#include "devices/nvme/nvme_defs.h"
#include "devices/nvme/nvme_namespace.h"
#include "devices/nvme/nvme_state.pb.h"
#include "vfu/device/device.h"

namespace vfu::nvme {

// The controller's side of queue management, called on the admin thread.
class AdminQueueHost {
 public:
  virtual ~AdminQueueHost() = default;
  virtual bool CqExists(uint16_t qid) const = 0;
  virtual bool SqExists(uint16_t qid) const = 0;
  // An I/O SQ still completes into CQ `qid`.
  virtual bool CqInUse(uint16_t qid) const = 0;
  virtual void CreateCq(uint16_t qid, uint64_t base, uint32_t size, uint16_t vector,
                        bool irq_enabled) = 0;
  virtual void CreateSq(uint16_t qid, uint64_t base, uint32_t size, uint16_t cqid) = 0;
  // Returns once no thread runs a command of the queue any more.
  virtual void DeleteSq(uint16_t qid) = 0;
  virtual void DeleteCq(uint16_t qid) = 0;
  // Doorbell Buffer Config: shadow doorbells at `shadow`, EventIdx values at
  // `event_index` (both checked page-aligned client addresses), for every
  // I/O queue now and later, until the controller resets.
  virtual void SetShadowDoorbells(uint64_t shadow, uint64_t event_index) = 0;
  // The memory page size CC.MPS selected.
  virtual uint64_t page_size() const = 0;
};

// Who the controller is, for Identify.
struct ControllerIdentity {
  std::string serial;   // up to 20 ASCII characters
  std::string model;    // up to 40
  std::string firmware; // up to 8
  uint16_t controller_id = 1;
};

class AdminCommandSet {
 public:
  struct Result {
    uint16_t status = kSuccess;
    uint32_t dw0 = 0;
    // An Asynchronous Event Request kept for a later event: no completion now.
    bool deferred = false;
  };

  AdminCommandSet(ControllerIdentity identity, std::vector<NvmeNamespace*> namespaces,
                  AdminQueueHost& host);

  Result Execute(const SubmissionEntry& sqe, DeviceContext& dma, GuestData& data);

  // Forgets features, queue allocation and pending event requests (a
  // controller reset drops them without completions).
  void Reset();

  // Queues an asynchronous event (AerResult value). If a request is
  // waiting, returns its CID to complete with `event` as DW0 now; else the
  // event waits for the next request (at most kMaxQueuedEvents wait; more
  // are dropped, the driver learns of them from the log).
  std::optional<uint16_t> QueueEvent(uint32_t event);

  // Migration: features and event state. LoadState checks every value
  // first and changes nothing on an error.
  void SaveState(NvmeAdminState& out) const;
  static absl::Status CheckState(const NvmeAdminState& state);
  absl::Status LoadState(const NvmeAdminState& state);

  // Whether the volatile write cache is enabled (Set Features 06h).
  bool write_cache_enabled() const { return write_cache_enabled_; }
  // Set Features 08h (THR 7:0, TIME 15:8) and 09h's CD bit per vector.
  uint32_t interrupt_coalescing() const { return interrupt_coalescing_; }
  const std::array<bool, kMsixVectors>& coalescing_disabled() const {
    return coalescing_disabled_;
  }

  static constexpr size_t kMaxQueuedEvents = 16;

 private:
  Result Identify(const SubmissionEntry& sqe, DeviceContext& dma, GuestData& data);
  Result CreateCq(const SubmissionEntry& sqe);
  Result CreateSq(const SubmissionEntry& sqe);
  Result DeleteSq(const SubmissionEntry& sqe);
  Result DeleteCq(const SubmissionEntry& sqe);
  Result GetFeatures(const SubmissionEntry& sqe);
  Result SetFeatures(const SubmissionEntry& sqe);
  Result GetLogPage(const SubmissionEntry& sqe, DeviceContext& dma, GuestData& data);
  Result AsyncEventRequest(const SubmissionEntry& sqe);

  void FillIdentifyController(uint8_t* page) const;
  void FillIdentifyNamespace(const NvmeNamespace& ns, uint32_t nsid, uint8_t* page) const;
  void FillSmartLog(uint8_t* page) const;
  // The highest I/O queue ID allowed now.
  uint16_t max_qid() const { return queues_allocated_; }

  const ControllerIdentity identity_;
  const std::vector<NvmeNamespace*> namespaces_;
  AdminQueueHost& host_;

  // Features (current values).
  uint32_t arbitration_ = 0;
  uint16_t over_temperature_ = 0;
  uint16_t under_temperature_ = 0;
  bool write_cache_enabled_ = true;
  uint16_t queues_allocated_ = kMaxIoQueues;  // count (1-based), SQs = CQs
  bool queues_created_ = false;
  uint32_t interrupt_coalescing_ = 0;
  std::array<bool, kMsixVectors> coalescing_disabled_ = {};
  uint32_t async_event_config_ = 0;

  std::vector<uint16_t> pending_event_requests_;  // CIDs, at most kAerLimit
  std::deque<uint32_t> queued_events_;
};

}  // namespace vfu::nvme

#endif  // VFU_DEVICES_NVME_ADMIN_COMMAND_SET_H_
