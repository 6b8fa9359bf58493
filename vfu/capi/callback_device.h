// CallbackDevice: a vfu::Device served by the C callbacks and setup of one
// vfu_ctx. vfu's protocol engine (Session) calls it; it calls the user.
//
// Region accesses go to the region callbacks (config space through
// ConfigSpace), DEVICE_RESET to the reset callback, migration (the engine
// walks the arcs of a state change) to the migration callbacks, SET_IRQS to vfu's
// IrqController (mask changes to the IRQ state callbacks), DMA map changes
// to the DMA callbacks with libvfio-user's vfu_dma_info_t.
//
// DMA unregistration happens before the engine unmaps (BeforeUnmap), as in
// libvfio-user: the device must drop its use of the range inside the
// callback, and the unmap then finds the range idle.
//
// Thread-compatible: one driver thread (or, threaded, one worker at a
// time) calls it; CompleteQuiesce() and Trigger() may come from any thread.
#ifndef VFU_CAPI_CALLBACK_DEVICE_H_
#define VFU_CAPI_CALLBACK_DEVICE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "vfu/capi/context.h"
#include "vfu/device/device.h"
#include "vfu/dma/dma_map_table.h"
#include "vfu/irq/irq_controller.h"
#include "vfu/wire/dma_unmap.h"

namespace vfu::capi {

class CallbackDevice : public Device {
 public:
  // Finds where client memory is mapped in this process (for
  // vfu_dma_info_t's vaddr); called from the DMA map hook.
  using Translator =
      std::function<absl::StatusOr<DmaSgList>(uint64_t iova, uint64_t length, DmaDirection)>;
  // Told when a client attaches (with its memory handle) and detaches.
  struct AttachHooks {
    std::function<void(std::shared_ptr<DeviceContext>)> attached;
    std::function<void()> detached;
  };

  // Who calls the quiesce callback: the poll driver, before it hands a
  // command to the engine (so it can park it on EBUSY itself), or the
  // engine, through Quiesce() (threaded mode; vfu_device_quiesced()
  // answers a deferred one through CompleteQuiesce()).
  enum class QuiesceBy { kDriver, kEngine };

  // `ctx` outlives the device.
  CallbackDevice(vfu_ctx& ctx, Translator translate, AttachHooks hooks = {},
                 QuiesceBy quiesce_by = QuiesceBy::kDriver);

  uint32_t num_regions() const override { return VFU_PCI_DEV_NUM_REGIONS; }
  uint32_t num_irqs() const override { return VFU_DEV_NUM_IRQS; }
  RegionDescription DescribeRegion(uint32_t index) const override;
  uint32_t IrqCount(uint32_t index) const override;
  // vfu_create_ioeventfd()'s fds for the region, in creation order (one fd
  // per distinct fd, as libvfio-user attaches them).
  void DescribeRegionIoFds(uint32_t index, std::vector<wire::IoFdEntry>& entries,
                           std::vector<int>& fds) const override;
  absl::Status ReadRegion(uint32_t index, uint64_t offset, absl::Span<uint8_t> out) override;
  absl::Status WriteRegion(uint32_t index, uint64_t offset,
                           absl::Span<const uint8_t> data) override;
  absl::Status Reset() override;
  // Migration v2: the C transition / read_data / write_data callbacks.
  bool SupportsMigration() const override { return ctx_.migration_enabled; }
  absl::Status OnMigrationArc(MigrationState from, MigrationState to) override;
  absl::StatusOr<size_t> ReadMigrationData(absl::Span<uint8_t> out) override;
  absl::Status WriteMigrationData(absl::Span<const uint8_t> data) override;
  absl::Status SetIrqs(const wire::SetIrqsRequest& request, std::vector<UniqueFd>& fds) override;
  void OnDmaMapped(const DmaRange& range) override;
  void OnDmaUnmapped(const DmaRange& range) override;
  void OnAttach(std::shared_ptr<DeviceContext> context) override;
  void OnDetach() override;
  // The quiesce callback (QuiesceBy::kEngine): done at once when it
  // returns 0 or fails; kept for CompleteQuiesce() when it defers (EBUSY).
  void Quiesce(QuiesceReason reason, QuiesceDone done) override ABSL_LOCKS_EXCLUDED(quiesce_mu_);
  // vfu_device_quiesced() for a deferred quiesce, from any thread: 0, or -1
  // with errno EINVAL when none is pending.
  int CompleteQuiesce(int quiesce_errno) ABSL_LOCKS_EXCLUDED(quiesce_mu_);
  // Unregisters what the unmap names before the engine unmaps it.
  void BeforeDmaUnmap(const wire::DmaUnmapRequest& request) override { BeforeUnmap(request); }

  // The client asks to unmap `request`: calls the unregister callback for
  // each registered range it names (all of them for ALL).
  void BeforeUnmap(const wire::DmaUnmapRequest& request);
  // The client is gone: unregisters every range.
  void UnregisterAll();

  // vfu_irq_trigger(): any thread.
  absl::Status Trigger(uint32_t vector);

 private:
  absl::Status Access(uint32_t index, uint64_t offset, uint8_t* buf, size_t count, bool write);
  void Unregister(std::map<uint64_t, vfu_dma_info_t>::iterator it);

  vfu_ctx& ctx_;
  Translator translate_;
  AttachHooks hooks_;
  const QuiesceBy quiesce_by_;
  absl::Mutex quiesce_mu_;
  // The engine's answer for a quiesce the callback deferred.
  QuiesceDone pending_quiesce_ ABSL_GUARDED_BY(quiesce_mu_);
  IrqController irqs_;
  // Ranges told to the register callback and not yet unregistered.
  std::map<uint64_t, vfu_dma_info_t> registered_;
  // The bytes of the write being handed to a region callback.
  std::vector<uint8_t> write_scratch_;
};

}  // namespace vfu::capi

#endif  // VFU_CAPI_CALLBACK_DEVICE_H_
