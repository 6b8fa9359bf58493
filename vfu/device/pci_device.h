// PciDevice: the base class device authors derive from.
//
// The framework owns everything PCI defines: config space (header, BAR
// sizing, capabilities), the MSI-X table and PBA, interrupt state, region
// bookkeeping, and the memory behind memory-backed regions. The author
// describes the device in a PciDeviceSpec and overrides only the hooks for
// behaviour it has:
//
//   class Gpio : public vfu::PciDevice {
//    public:
//     Gpio() : PciDevice(MakeSpec()) {}
//     absl::Status OnRegionRead(uint32_t region, uint64_t offset,
//                               absl::Span<uint8_t> out) override;
//     ...
//   };
//
// Hooks run on worker threads, one client command at a time per device.
// The services (TriggerIrq, dma(), region_memory(), config reads) may be
// used from any thread, including the device's own.
#ifndef VFU_DEVICE_PCI_DEVICE_H_
#define VFU_DEVICE_PCI_DEVICE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "vfu/base/unique_fd.h"
#include "vfu/device/device.h"
#include "vfu/device/interrupt_router.h"
#include "vfu/device/pci_device_spec.h"
#include "vfu/irq/irq_controller.h"
#include "vfu/pci/config_space.h"
#include "vfu/pci/msix_table.h"

namespace vfu {

class MigrationLoader;
class MigrationSaver;
namespace proto {
class MigrationFrameworkState;
class MigrationStreamHeader;
}  // namespace proto

class PciDevice : public Device {
 public:
  explicit PciDevice(PciDeviceSpec spec);
  ~PciDevice() override;

  PciDevice(const PciDevice&) = delete;
  PciDevice& operator=(const PciDevice&) = delete;

  // ---- Hooks for the device author (defaults shown) ----

  // An access to a BAR, the ROM or a device-specific region that the
  // framework does not serve itself (the MSI-X table and PBA are its own).
  // Bounds and permissions are already checked. Default: the region's
  // backing memory, or an error if it has none.
  virtual absl::Status OnRegionRead(uint32_t region, uint64_t offset, absl::Span<uint8_t> out);
  virtual absl::Status OnRegionWrite(uint32_t region, uint64_t offset,
                                     absl::Span<const uint8_t> data);
  // A config-space write the framework has applied (read-only bits already
  // dropped). `offset` and `data` are what the client wrote.
  virtual void OnConfigWrite(uint32_t offset, absl::Span<const uint8_t> data) {}
  // DEVICE_RESET, or a function-level reset (a config write of Initiate
  // FLR in the PCI Express capability's Device Control, when the capability
  // advertises FLR), after config space and the MSI-X table are back to
  // their defaults; for an FLR the client's interrupts are disabled too.
  // DEVICE_RESET also ends any migration: the stream is dropped and the
  // device runs (migration_state() is RUNNING; no OnMigrationStateChange).
  virtual absl::Status OnReset() { return absl::OkStatus(); }
  // Stop touching client memory and raising interrupts, then call `done`
  // (now or later, from any thread; see Device::Quiesce). OnUnquiesce ends
  // it. Default: nothing in flight, done at once.
  virtual void OnQuiesce(QuiesceReason reason, QuiesceDone done) {
    std::move(done)(absl::OkStatus());
  }
  virtual void OnUnquiesce() {}
  // A client attached / went away (its interrupts and DMA mappings are
  // already released when OnClientDetached runs).
  virtual void OnClientAttached() {}
  virtual void OnClientDetached() {}
  // The client changed interrupt state with SET_IRQS.
  virtual void OnIrqStateChanged(uint32_t index, uint32_t start, uint32_t count,
                                 IrqController::Change change) {}

  // ---- Migration hooks (opt in with PciDeviceSpec::migration) ----
  //
  // The framework writes and reads the stream (proto/migration_stream.proto)
  // and saves what it owns: config space, the MSI-X table, pending
  // interrupts and the memory of `backed_by_memory` regions (pre-copied in
  // rounds with its own dirty tracking). The device adds its own state.

  // One direct arc of a migration state change (migration_state.h), after
  // the device quiesced (OnQuiesce, kMigration) and before it is
  // unquiesced. Arcs into STOP, STOP_COPY and RESUMING: from then until an
  // arc back to RUNNING or PRE_COPY the device must not touch client memory
  // or raise interrupts (its in-flight work stays saved as device state).
  // Called before the framework's own part of the arc, except for
  // RESUMING -> STOP, where LoadState and the framework's restore come
  // first. An error fails the state change with its errno.
  virtual absl::Status OnMigrationStateChange(MigrationState from, MigrationState to) {
    return absl::OkStatus();
  }
  enum class SavePhase {
    kPreCopy,   // once per pre-copy round, the device running: may append
                // nothing (most devices) or what it can send early
    kStopCopy,  // once, the device stopped: the rest of its state
  };
  // Appends the device's own state to `out` (usually its own message,
  // serialized). An error fails the MIG_DATA_READ.
  virtual absl::Status SaveState(SavePhase phase, std::string& out) { return absl::OkStatus(); }
  // Estimate of what the next kPreCopy SaveState will append.
  virtual uint64_t PendingStateBytes() { return 0; }
  // At RESUMING -> STOP, once the framework has checked the whole stream:
  // every piece SaveState wrote, in order (the last from kStopCopy).
  // Validate them before changing anything: an error refuses the stream
  // (its errno fails the state change) and nothing of it is applied.
  virtual absl::Status LoadState(absl::Span<const std::string> pieces) {
    return absl::OkStatus();
  }
  // The state the last arc reached (RUNNING initially and after a reset).
  MigrationState migration_state() const {
    return migration_state_.load(std::memory_order_acquire);
  }

  // ---- Services, any thread ----

  // Raises the device's interrupt vector `vector` through what the guest
  // enabled: MSI-X entry `vector`, else MSI (folded into the messages the
  // guest granted), else the INTx line, each with its masks and pending
  // bits. INTx is masked by each delivery until the client unmasks it, as
  // under the kernel's vfio-pci. The full rules are in interrupt_router.h.
  // OK when delivered, held pending or coalesced; FailedPrecondition when
  // nothing can carry it (no eventfd on the route); Unavailable when that
  // is because no client is attached; OutOfRange for an MSI-X vector
  // beyond the table. Lock-free, never allocates: for device threads.
  absl::Status RaiseInterrupt(uint32_t vector);

  // Level-triggered INTx: holds the line up until the device lowers it,
  // delivering again at each client unmask while it is up. MSI and MSI-X
  // ignore the level; a device whose interrupt is a level raises
  // RaiseInterrupt() on its rising edge and also tracks the level here.
  // FailedPrecondition if the device has no INTx. Lock-free.
  absl::Status SetIntxLevel(bool asserted);

  // Where RaiseInterrupt() delivers now (a snapshot).
  InterruptRouter::Route interrupt_route() const { return router_.route(); }

  // Low-level: raises vector `vector` of IRQ index `index` directly,
  // bypassing the routing above.

  // (kIntxIrq, kMsiIrq, kMsixIrq, ...): an eventfd write when the vector is enabled and
  // unmasked; pending (delivered on unmask) while masked. Lock-free; never
  // held up by the client's eventfd (a full counter coalesces: irq_controller.h).
  // Unavailable when the vector cannot fire because no client is attached
  // (a departed client's eventfds are gone); FailedPrecondition when the
  // attached client has not enabled it.
  absl::Status TriggerIrq(uint32_t index, uint32_t vector);
  bool IrqEnabled(uint32_t index, uint32_t vector) const;

  // Client memory (DMA): a handle on the memory of the client attached now,
  // never null. Keep the handle for a piece of work done for that client
  // (e.g. one job):
  //
  //   std::shared_ptr<DeviceContext> dma = this->dma();
  //   VFU_RETURN_IF_ERROR(dma->DmaRead(descriptor_iova, absl::MakeSpan(d)));
  //   ...
  //   VFU_RETURN_IF_ERROR(dma->DmaWrite(status_iova, status));
  //
  // Once that client detaches, every call of the handle fails with
  // Unavailable, even while the next client attaches: one client's job
  // never touches another's memory. With no client attached (before the
  // first, between two, after Server::Stop()) calls fail with Unavailable.
  std::shared_ptr<DeviceContext> dma() const ABSL_LOCKS_EXCLUDED(context_mu_);

  // The shared memory behind a `backed_by_memory` region (empty span
  // otherwise). Stable for the device's lifetime; the client may have it
  // mapped, so treat it as shared with another process.
  absl::Span<uint8_t> region_memory(uint32_t region) const;

  // A snapshot read of config space (e.g. to check bus-master enable).
  uint32_t ReadConfig32(uint32_t offset) const ABSL_LOCKS_EXCLUDED(config_mu_);
  uint16_t ReadConfig16(uint32_t offset) const ABSL_LOCKS_EXCLUDED(config_mu_);

  // ---- Doorbells on eventfds (spec().ioeventfds), any thread ----
  //
  // Doorbell i rings when the client writes it, through its eventfd (as
  // KVM does for QEMU) or a trapped REGION_WRITE: both look the same here,
  // and the value written is not kept (use shadow registers for values, or
  // set trapped_write_rings = false to get trapped writes, with their
  // value, in OnRegionWrite instead). A device thread waits for rings with
  // poll()/epoll on ioeventfd(i) (readable while rings are unconsumed;
  // stable across clients) and takes them with ConsumeIoeventfd(i), or
  // lets WaitForIoeventfds do both.
  size_t num_ioeventfds() const { return ioeventfds_.size(); }
  int ioeventfd(size_t i) const { return ioeventfds_.wait_fd(i); }
  // Rings of doorbell i since the last call (0: none); re-arms ioeventfd(i).
  uint64_t ConsumeIoeventfd(size_t i) { return ioeventfds_.Consume(i); }
  struct DoorbellWait {
    std::vector<size_t> rung;  // the doorbells that rang, each consumed
    bool wake_fd_ready = false;
  };
  // Waits up to `timeout` (InfiniteDuration: forever) until one of
  // `doorbells` rings or `wake_fd` (if >= 0, e.g. the thread's stop
  // eventfd; not read) is readable. Empty result on timeout. OutOfRange
  // for an unknown doorbell; EINTR is retried.
  absl::StatusOr<DoorbellWait> WaitForIoeventfds(absl::Span<const size_t> doorbells,
                                                 int wake_fd, absl::Duration timeout);

  const PciDeviceSpec& spec() const { return spec_; }

  // ---- Device (the engine's contract); final: authors use the hooks ----
  absl::Status Validate() const final { return init_status_; }
  uint32_t num_regions() const final;
  uint32_t num_irqs() const final { return wire::kPciNumIrqs; }
  RegionDescription DescribeRegion(uint32_t index) const final;
  uint32_t IrqCount(uint32_t index) const final;
  // INTx adds MASKABLE and AUTOMASKED, as the kernel's vfio-pci reports it.
  uint32_t IrqInfoFlags(uint32_t index) const final;
  void DescribeRegionIoFds(uint32_t index, std::vector<wire::IoFdEntry>& entries,
                           std::vector<int>& fds) const final;
  absl::Status ReadRegion(uint32_t index, uint64_t offset, absl::Span<uint8_t> out) final;
  absl::Status WriteRegion(uint32_t index, uint64_t offset,
                           absl::Span<const uint8_t> data) final;
  absl::Status Reset() final;
  bool IsFunctionLevelReset(uint32_t region, uint64_t offset,
                            absl::Span<const uint8_t> data) const final;
  void Quiesce(QuiesceReason reason, QuiesceDone done) final {
    OnQuiesce(reason, std::move(done));
  }
  void Unquiesce() final { OnUnquiesce(); }
  bool SupportsMigration() const final { return spec_.migration.has_value(); }
  absl::Status OnMigrationArc(MigrationState from, MigrationState to) final;
  absl::StatusOr<size_t> ReadMigrationData(absl::Span<uint8_t> out) final;
  absl::Status WriteMigrationData(absl::Span<const uint8_t> data) final;
  uint64_t MigrationDataEstimate() final;
  absl::Status SetIrqs(const wire::SetIrqsRequest& request, std::vector<UniqueFd>& fds) final;
  void OnAttach(std::shared_ptr<DeviceContext> context) final;
  void OnDetach() final;

 private:
  // One region as served: the spec plus the framework's memory.
  struct Region {
    RegionSpec spec;
    UniqueFd memfd;
    uint8_t* memory = nullptr;  // mmapped memfd, or null
  };

  absl::Status Build();
  // Creates ioeventfds_ from the spec (pci_device_ioeventfds.cc).
  absl::Status BuildIoeventfds();
  const Region* FindRegion(uint32_t index) const;
  // The MSI-X table / PBA ranges inside the MSI-X BAR.
  bool InMsixTable(uint32_t region, uint64_t offset, uint64_t size) const;
  bool InMsixPba(uint32_t region, uint64_t offset, uint64_t size) const;
  // Config bytes as the client would read them.
  void ReadConfigSnapshot(uint32_t offset, absl::Span<uint8_t> out) const
      ABSL_LOCKS_EXCLUDED(config_mu_);
  absl::Status ReadConfigRegion(uint64_t offset, absl::Span<uint8_t> out)
      ABSL_LOCKS_EXCLUDED(config_mu_);
  absl::Status WriteConfigRegion(uint64_t offset, absl::Span<const uint8_t> data)
      ABSL_LOCKS_EXCLUDED(config_mu_);
  // Config space, the MSI-X table and the masks back to their defaults.
  void ResetConfig() ABSL_LOCKS_EXCLUDED(config_mu_);
  // The config-space offset of the byte holding Initiate FLR (Device
  // Control bit 15) when the PCI Express capability advertises FLR.
  std::optional<uint32_t> FlrByteOffset() const ABSL_LOCKS_EXCLUDED(config_mu_);
  // Recomputes the device-level interrupt masks from config space and the
  // MSI-X table after either changed (delivers what became unmasked).
  void UpdateDeviceMasks() ABSL_EXCLUSIVE_LOCKS_REQUIRED(config_mu_);

  // Migration (pci_device_migration.cc).
  proto::MigrationStreamHeader MigrationHeader() const ABSL_LOCKS_EXCLUDED(config_mu_);
  std::unique_ptr<MigrationSaver> NewSaver();
  std::unique_ptr<MigrationLoader> NewLoader();
  proto::MigrationFrameworkState CaptureFrameworkState() ABSL_LOCKS_EXCLUDED(config_mu_);
  // RESUMING -> STOP: judges the stream, then LoadState, then restores.
  absl::Status FinishResuming();
  // Raises the migrated pending interrupts whose vectors can fire now.
  void DeliverRestoredPending() ABSL_LOCKS_EXCLUDED(config_mu_);
  bool RestoredPendingLocked(uint32_t index, uint32_t vector) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(config_mu_);
  // Any half-done stream is dropped; the state is RUNNING (Reset).
  void EndMigration();
  // Faults in the memory-backed regions' pages (contents kept) when a
  // stream starts arriving, so restoring them at RESUMING -> STOP, inside
  // the migration's downtime, copies instead of allocating page by page.
  void PopulateRegionMemory();

  PciDeviceSpec spec_;
  absl::Status init_status_;
  std::vector<Region> regions_;  // indexed by region number; fixed after Build
  IrqController irqs_;
  InterruptRouter router_{irqs_};
  IoeventfdSet ioeventfds_;  // set in Build, then only renewed

  mutable absl::Mutex config_mu_;
  std::optional<pci::ConfigSpace> config_ ABSL_GUARDED_BY(config_mu_);
  std::optional<pci::MsixTable> msix_table_ ABSL_GUARDED_BY(config_mu_);
  // QEMU emulates the MSI-X table itself and masks through SET_IRQS, so the
  // table's masks (all set at reset, as PCI says) count only once the
  // client has written the table.
  bool msix_table_driven_ ABSL_GUARDED_BY(config_mu_) = false;

  // Pending interrupts that arrived in a migration stream and have not been
  // raised yet (their vector had no eventfd): raised once it has one, shown
  // in the MSI-X PBA meanwhile. (index, vector) pairs.
  std::vector<std::pair<uint32_t, uint32_t>> restored_pending_ ABSL_GUARDED_BY(config_mu_);

  // The stream being read (source) or written (destination). Command strand
  // only: migration hooks never run concurrently.
  std::unique_ptr<MigrationSaver> saver_;
  std::unique_ptr<MigrationLoader> loader_;
  std::atomic<MigrationState> migration_state_{MigrationState::kRunning};

  // The attached client's context, or one that refuses every call.
  mutable absl::Mutex context_mu_;
  std::shared_ptr<DeviceContext> context_ ABSL_GUARDED_BY(context_mu_);
  std::atomic<bool> attached_{false};
};

}  // namespace vfu

#endif  // VFU_DEVICE_PCI_DEVICE_H_
