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
// Thread-compatible: one driver thread calls it.
#ifndef VFU_CAPI_CALLBACK_DEVICE_H_
#define VFU_CAPI_CALLBACK_DEVICE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/status.h"
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

  // `ctx` outlives the device.
  CallbackDevice(vfu_ctx& ctx, Translator translate, AttachHooks hooks = {});

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
  IrqController irqs_;
  // Ranges told to the register callback and not yet unregistered.
  std::map<uint64_t, vfu_dma_info_t> registered_;
  // The bytes of the write being handed to a region callback.
  std::vector<uint8_t> write_scratch_;
};

}  // namespace vfu::capi

#endif  // VFU_CAPI_CALLBACK_DEVICE_H_
