// NvmeController: an NVMe 1.4 controller on the PCI device model, serving
// file-backed namespaces.
//
// PCI: class 01/08/02, BAR 0 64-bit (registers at 0, doorbells from 0x1000,
// the MSI-X table at 0x2000 and PBA at 0x3000), PCI Express, power
// management, MSI-X with one vector per completion queue, MSI and INTx
// (INTMS/INTMC mask them) as fallbacks.
//
// Threads. Region accesses (the framework's workers) only record register
// values and doorbells and wake a thread; they never wait for the client.
// The admin thread runs the controller's state changes (enable, reset,
// shutdown, detach) and the admin queue. `io_threads` I/O threads serve the
// I/O submission queues, queue q by thread (q - 1) % io_threads; a thread
// fetches a command only after reserving its completion slot, runs it to
// the end (file I/O straight into client memory when pinnable) and posts
// the completion, then raises the completion queue's vector once per batch,
// or less often under interrupt coalescing (InterruptCoalescer: Features
// 08h/09h, I/O completion queues only; its timer thread raises vectors
// whose TIME ran out).
//
// Reset (CC.EN 1 -> 0, DEVICE_RESET, the client's detach): the admin
// thread removes every I/O queue from its thread and waits until that
// thread has finished the batch it was running; completion queues are
// killed first, so a command that finishes meanwhile posts nothing. Only
// then does CSTS.RDY read 0: after that no DMA reaches the client, commands
// not yet completed are dropped without completion (NVMe 1.4 section 7.3),
// none is completed twice. A hostile driver (queues in unmapped memory, bad
// PRPs, out-of-range doorbells) gets error statuses, an error event (AER)
// for bad doorbells, or CSTS.CFS when a queue cannot be read or written.
//
// Quiesce and migration: the threads park between batches, so a command is
// either completed or still unfetched in its SQ; the saved state is the
// registers, every queue's indices, features and events (commands fetched
// and not completed are the Asynchronous Event Requests, saved by CID).
//
// Doorbells on ioeventfds: the SQ tail and CQ head doorbells of I/O queues
// 1 .. kIoeventfdQueues are offered to the client as ioeventfds (DEVICE_GET_REGION_IO_FDS); a
// doorbell thread waits on them and wakes the queue's thread. A ring
// carries no value, so it serves queues with shadow doorbells (the value is
// in the shadow buffer), as with SPDK's target; trapped writes still carry
// their values.
//
// Bounds on what a client can make the controller hold: kMaxIoQueues
// queue pairs of at most kMaxQueueEntries entries (none of it copied: the
// queues stay in client memory), kAerLimit event requests (and as many
// event completions waiting for room in a full admin CQ), 16 queued events.
#ifndef VFU_DEVICES_NVME_NVME_CONTROLLER_H_
#define VFU_DEVICES_NVME_NVME_CONTROLLER_H_

#include <array>
#include <atomic>
#include <deque>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "devices/nvme/admin_command_set.h"
#include "devices/nvme/guest_data.h"
#include "devices/nvme/interrupt_coalescer.h"
#include "devices/nvme/nvm_command_set.h"
#include "devices/nvme/nvme_defs.h"
#include "devices/nvme/nvme_namespace.h"
#include "devices/nvme/nvme_queue.h"
#include "devices/nvme/nvme_state.pb.h"
#include "vfu/device/pci_device.h"
#include "vfu/vfu.h"

namespace vfu::nvme {

struct NvmeControllerOptions {
  // NSID n is namespaces[n - 1]; at least one.
  std::vector<std::unique_ptr<NvmeNamespace>> namespaces;
  // Empty serial: a unique one is made up.
  ControllerIdentity identity;
  uint32_t io_threads = 2;
};

class NvmeController : public PciDevice, private AdminQueueHost {
 public:
  // Opens one namespace per path with `lba_size` and builds a controller.
  static absl::StatusOr<std::unique_ptr<NvmeController>> Create(
      const std::vector<std::string>& namespace_paths, uint32_t lba_size,
      uint32_t io_threads = 2);

  explicit NvmeController(NvmeControllerOptions options);
  // Stops the threads. The server must be stopped first.
  ~NvmeController() override;

  // PciDevice hooks.
  absl::Status OnRegionRead(uint32_t region, uint64_t offset, absl::Span<uint8_t> out) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status OnRegionWrite(uint32_t region, uint64_t offset,
                             absl::Span<const uint8_t> data) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status OnReset() override ABSL_LOCKS_EXCLUDED(mu_);
  // Resets the controller and returns once no thread uses the departed
  // client's memory (quick: its DMA fails at once by now).
  void OnClientDetached() override ABSL_LOCKS_EXCLUDED(mu_);
  // Quiesce: the I/O threads finish the batch they run (every command
  // fetched is completed in it) and park; the admin thread parks after its
  // round. The last to park calls `done`. Parked threads touch no client
  // memory and raise no interrupt; resets still go through (they touch
  // neither).
  void OnQuiesce(QuiesceReason reason, QuiesceDone done) override ABSL_LOCKS_EXCLUDED(mu_);
  void OnUnquiesce() override ABSL_LOCKS_EXCLUDED(mu_);
  // Migration (device type "vfu-nvme", nvme_controller_migration.cc): the
  // threads stay parked while migration stops the device; the state saved
  // at STOP_COPY is nvme_state.proto's NvmeControllerState.
  absl::Status OnMigrationStateChange(MigrationState from, MigrationState to) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status SaveState(SavePhase phase, std::string& out) override
      ABSL_LOCKS_EXCLUDED(mu_, queues_mu_);
  absl::Status LoadState(absl::Span<const std::string> pieces) override
      ABSL_LOCKS_EXCLUDED(mu_, queues_mu_);

  // Transfers that went zero copy / through messages, over all threads (for
  // tests and the benchmark's report).
  uint64_t zero_copy_transfers() const { return zero_copy_.load(std::memory_order_relaxed); }
  uint64_t bounced_transfers() const { return bounced_.load(std::memory_order_relaxed); }
  // Event completions that had to wait for room in the admin CQ.
  uint64_t delayed_events() const { return delayed_events_.load(std::memory_order_relaxed); }
  // Tests: holds the coalescing timer (InterruptCoalescer::HoldTimerForTesting).
  void HoldCoalescingTimerForTesting(bool hold) { coalescer_.HoldTimerForTesting(hold); }

 private:
  // One I/O thread and the submission queues it serves.
  struct IoThread {
    absl::Mutex mu;
    absl::CondVar cv;
    bool kicked ABSL_GUARDED_BY(mu) = false;
    bool stop ABSL_GUARDED_BY(mu) = false;
    std::vector<std::shared_ptr<SubmissionQueue>> queues ABSL_GUARDED_BY(mu);
    std::shared_ptr<DeviceContext> dma ABSL_GUARDED_BY(mu);
    // Inside a batch over a snapshot of `queues`; `batches` counts the
    // ended ones, so a remover knows its queue is out of every snapshot.
    bool busy ABSL_GUARDED_BY(mu) = false;
    uint64_t batches ABSL_GUARDED_BY(mu) = 0;
    // Quiesced or stopped by migration: no new batch. `owes_park`: a
    // quiesce counted this thread busy and waits for its batch to end.
    bool paused ABSL_GUARDED_BY(mu) = false;
    bool owes_park ABSL_GUARDED_BY(mu) = false;
    std::thread thread;
  };

  // ---- Registers (hooks) ----
  uint32_t ReadRegisterLocked(uint64_t reg) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteRegisterLocked(uint64_t reg, uint32_t value, uint32_t mask)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteDoorbell(uint64_t offset, uint32_t value) ABSL_LOCKS_EXCLUDED(mu_, queues_mu_);
  void ReportEvent(uint32_t event) ABSL_LOCKS_EXCLUDED(mu_);
  void KickAdminLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Kick(IoThread& thread);
  IoThread& ThreadFor(uint16_t qid) { return *io_threads_[(qid - 1) % io_threads_.size()]; }

  // ---- Admin thread ----
  void AdminLoop() ABSL_LOCKS_EXCLUDED(mu_);
  void Enable() ABSL_LOCKS_EXCLUDED(mu_);
  void Disable() ABSL_LOCKS_EXCLUDED(mu_);
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);
  // Serves the admin queue: whether entries remain.
  bool ServeAdminQueue() ABSL_LOCKS_EXCLUDED(mu_);
  // Completes Asynchronous Event Request `cid` with `event`, now or (the
  // admin CQ full) once the driver frees a slot; PostPendingEvents retries.
  void PostEvent(uint16_t cid, uint32_t event) ABSL_LOCKS_EXCLUDED(mu_);
  void PostPendingEvents() ABSL_LOCKS_EXCLUDED(mu_);
  // Removes `queue` from its thread; returns once the thread is done with it.
  void DetachQueue(const std::shared_ptr<SubmissionQueue>& queue);

  // AdminQueueHost (admin thread).
  bool CqExists(uint16_t qid) const override ABSL_LOCKS_EXCLUDED(queues_mu_);
  bool SqExists(uint16_t qid) const override ABSL_LOCKS_EXCLUDED(queues_mu_);
  bool CqInUse(uint16_t qid) const override ABSL_LOCKS_EXCLUDED(queues_mu_);
  void CreateCq(uint16_t qid, uint64_t base, uint32_t size, uint16_t vector,
                bool irq_enabled) override ABSL_LOCKS_EXCLUDED(queues_mu_);
  void CreateSq(uint16_t qid, uint64_t base, uint32_t size, uint16_t cqid) override
      ABSL_LOCKS_EXCLUDED(queues_mu_);
  void DeleteSq(uint16_t qid) override ABSL_LOCKS_EXCLUDED(queues_mu_);
  void DeleteCq(uint16_t qid) override ABSL_LOCKS_EXCLUDED(queues_mu_);
  // Delete I/O SQ: completes the commands the driver submitted and the
  // controller had not fetched with Aborted - SQ Deletion, as far as the
  // CQ has room (the rest are not completed). Admin thread, the queue
  // detached from its thread.
  void AbortUnfetched(SubmissionQueue& sq);
  void SetShadowDoorbells(uint64_t shadow, uint64_t event_index) override
      ABSL_LOCKS_EXCLUDED(queues_mu_);
  // Points queue `qid`'s doorbells (either may be null) at the shadow
  // buffer `shadow` (0: not configured) and EventIdx buffer `event_index`.
  void ShadowQueue(uint16_t qid, SubmissionQueue* sq, CompletionQueue* cq, uint64_t shadow,
                   uint64_t event_index) ABSL_LOCKS_EXCLUDED(queues_mu_);
  uint64_t page_size() const override { return page_size_.load(std::memory_order_relaxed); }

  // ---- I/O threads ----
  void IoLoop(IoThread& thread);
  // Runs up to a batch of `queue`'s commands: whether more wait.
  bool ServeIoQueue(SubmissionQueue& queue, DeviceContext& dma, GuestData& data);

  // Waits on the ioeventfd doorbells and wakes the threads of the queues
  // that rang (their values are in the shadow buffer).
  void DoorbellLoop();

  // Any thread. Signals completion queue vector `vector` through the route
  // the guest enabled (PciDevice::RaiseInterrupt), honouring INTMS for MSI
  // and INTx. Completions reach it through `coalescer_`.
  void SignalVector(uint16_t vector);
  // Admin thread: hands the coalescing features to `coalescer_`.
  void ApplyCoalescing() {
    coalescer_.Configure(admin_.interrupt_coalescing(), admin_.coalescing_disabled());
  }
  // INTx goes down once no completion queue holds unconsumed entries.
  void UpdateIntxLevel() ABSL_LOCKS_EXCLUDED(queues_mu_);
  void Fatal(const char* why) ABSL_LOCKS_EXCLUDED(mu_);

  // ---- Quiesce ----
  // A thread counted busy by a quiesce parked: the `done` to call when it
  // was the last (empty otherwise).
  QuiesceDone ParkedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReportParked() ABSL_LOCKS_EXCLUDED(mu_);
  bool PausedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return quiesced_ || migration_stopped_;
  }
  // Lets the threads run again unless still quiesced or stopped.
  void ResumeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Migration: checks a saved state against the controller's limits.
  static absl::Status CheckState(const NvmeControllerState& state);

  std::vector<std::unique_ptr<NvmeNamespace>> namespaces_;
  const NvmCommandSet nvm_;

  // Registers and the controller state machine.
  mutable absl::Mutex mu_;
  uint32_t cc_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t aqa_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t asq_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t acq_ ABSL_GUARDED_BY(mu_) = 0;
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  bool fatal_ ABSL_GUARDED_BY(mu_) = false;
  uint32_t shutdown_state_ ABSL_GUARDED_BY(mu_) = kShstNormal;
  // What the admin thread has applied: the controller is enabled.
  bool enabled_ ABSL_GUARDED_BY(mu_) = false;
  bool admin_kicked_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t reset_requests_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t resets_done_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<uint32_t> events_ ABSL_GUARDED_BY(mu_);
  // INTMC unmasked the MSI/INTx vector since the admin thread last looked.
  bool unmasked_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::CondVar admin_cv_;
  bool quiesced_ ABSL_GUARDED_BY(mu_) = false;
  bool migration_stopped_ ABSL_GUARDED_BY(mu_) = false;
  // The quiesce waiting for `unparked_` threads to park.
  QuiesceDone quiesce_done_ ABSL_GUARDED_BY(mu_);
  uint32_t unparked_ ABSL_GUARDED_BY(mu_) = 0;
  // The admin thread is in a round that may touch client memory.
  bool admin_busy_ ABSL_GUARDED_BY(mu_) = false;
  bool admin_owes_park_ ABSL_GUARDED_BY(mu_) = false;
  // INTMS: the MSI/INTx vector mask (bit 0 used).
  std::atomic<uint32_t> interrupt_mask_{0};
  std::atomic<uint64_t> page_size_{4096};
  // Set Features 06h, mirrored from the admin thread for the I/O threads.
  std::atomic<bool> write_cache_enabled_{true};

  // The queues. Written by the admin thread, looked up by doorbells.
  mutable absl::Mutex queues_mu_;
  std::shared_ptr<SubmissionQueue> admin_sq_ ABSL_GUARDED_BY(queues_mu_);
  std::array<std::shared_ptr<SubmissionQueue>, kMaxIoQueues + 1> sqs_ ABSL_GUARDED_BY(queues_mu_);
  std::array<std::shared_ptr<CompletionQueue>, kMaxIoQueues + 1> cqs_ ABSL_GUARDED_BY(queues_mu_);
  // Doorbell Buffer Config (0: not configured); the admin queue never uses it.
  uint64_t shadow_buffer_ ABSL_GUARDED_BY(queues_mu_) = 0;
  uint64_t event_index_buffer_ ABSL_GUARDED_BY(queues_mu_) = 0;

  // Admin thread only.
  struct EventCompletion {
    uint16_t cid;
    uint32_t event;
  };
  // Event completions waiting for room in the admin CQ (at most kAerLimit).
  std::deque<EventCompletion> aer_completions_;
  AdminCommandSet admin_;
  GuestData admin_data_;
  std::shared_ptr<DeviceContext> admin_dma_;

  std::atomic<uint64_t> zero_copy_{0};
  std::atomic<uint64_t> bounced_{0};
  std::atomic<uint64_t> delayed_events_{0};

  // Interrupt coalescing of the I/O completion queues; its timer thread
  // raises vectors through SignalVector. Paused while the controller is
  // quiesced or stopped by migration (it signals what waits when pausing),
  // reset with the controller, stopped after the I/O threads.
  InterruptCoalescer coalescer_{[this](uint16_t vector) { SignalVector(vector); }};

  // Last: started once everything above exists.
  std::vector<std::unique_ptr<IoThread>> io_threads_;
  std::thread admin_thread_;
  UniqueFd stop_doorbells_;  // written once to stop doorbell_thread_
  std::thread doorbell_thread_;
};

}  // namespace vfu::nvme

#endif  // VFU_DEVICES_NVME_NVME_CONTROLLER_H_
