#include "vfu/device/pci_device.h"

#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "vfu/base/log.h"
#include "vfu/base/status_macros.h"
#include "vfu/device/migration_loader.h"
#include "vfu/device/migration_saver.h"
#include "vfu/pci/capabilities.h"
#include "vfu/wire/errno_status.h"

namespace vfu {
namespace {

constexpr uint64_t kPageSize = 4096;
constexpr uint32_t kMsixEntrySize = 16;

std::array<uint32_t, 5> IrqCounts(const PciDeviceSpec& spec) {
  const InterruptSpec& irq = spec.interrupts;
  return {irq.intx ? 1u : 0u, irq.msi_vectors, irq.msix_vectors, irq.err ? 1u : 0u,
          irq.req ? 1u : 0u};
}

uint64_t MsixTableBytes(uint16_t vectors) { return uint64_t{vectors} * kMsixEntrySize; }
// One pending bit per vector, in 64-bit words.
uint64_t MsixPbaBytes(uint16_t vectors) { return (uint64_t{vectors} + 63) / 64 * 8; }

bool Overlaps(uint64_t a, uint64_t a_size, uint64_t b, uint64_t b_size) {
  return a < b + b_size && b < a + a_size;
}

// What dma() returns while no client is attached.
class DetachedContext final : public DeviceContext {
 public:
  absl::Status DmaRead(uint64_t, absl::Span<uint8_t>) override { return Refuse(); }
  absl::Status DmaWrite(uint64_t, absl::Span<const uint8_t>) override { return Refuse(); }
  absl::StatusOr<DmaSgList> DmaPin(uint64_t, uint64_t, DmaDirection) override {
    return Refuse();
  }

 private:
  static absl::Status Refuse() { return absl::UnavailableError("no client attached"); }
};

std::shared_ptr<DeviceContext> NoClientContext() {
  // Never destroyed: devices may outlive static destruction order.
  static const auto* const context =
      new std::shared_ptr<DeviceContext>(std::make_shared<DetachedContext>());
  return *context;
}

}  // namespace

PciDevice::PciDevice(PciDeviceSpec spec)
    : spec_(std::move(spec)),
      irqs_(IrqCounts(spec_), /*auto_mask_intx=*/true),
      context_(NoClientContext()) {
  init_status_ = Build();
  if (!init_status_.ok()) {
    VFU_LOG(kError, "invalid PCI device description: ", init_status_.message());
  }
  irqs_.set_listener([this](uint32_t index, uint32_t start, uint32_t count,
                            IrqController::Change change) {
    // A migrated pending interrupt fires once its vector has an eventfd.
    if (change == IrqController::Change::kEnabled) DeliverRestoredPending();
    OnIrqStateChanged(index, start, count, change);
  });
}

PciDevice::~PciDevice() {
  for (Region& region : regions_) {
    if (region.memory != nullptr) ::munmap(region.memory, region.spec.size);
  }
}

absl::Status PciDevice::Build() {
  const InterruptSpec& irq = spec_.interrupts;
  pci::Identity identity = spec_.identity;
  // The pin says whether INTx exists (PROTOCOL.md section 5).
  identity.interrupt_pin = irq.intx ? 1 : 0;

  std::array<pci::BarLayout, 6> bars;
  for (int i = 0; i < 6; ++i) {
    const RegionSpec& bar = spec_.bars[i];
    bars[i] = {.size = bar.size, .kind = bar.kind, .prefetchable = bar.prefetchable};
  }
  absl::StatusOr<pci::ConfigSpace> config =
      pci::ConfigSpace::Create(identity, bars, spec_.rom.size, spec_.express);
  if (!config.ok()) return config.status();

  // Interrupt capabilities, then the device's own.
  if (spec_.power_management) {
    VFU_RETURN_IF_ERROR(config->AddCapability(pci::PowerManagement()).status());
  }
  if (irq.msi_vectors != 0) {
    VFU_ASSIGN_OR_RETURN(pci::Capability msi,
                         pci::Msi(irq.msi_vectors, irq.msi_64bit, irq.msi_per_vector_mask));
    VFU_RETURN_IF_ERROR(config->AddCapability(msi).status());
  }
  if (irq.msix_vectors != 0) {
    if (irq.msix_bar > 5 || spec_.bars[irq.msix_bar].size == 0 ||
        spec_.bars[irq.msix_bar].kind == pci::BarKind::kIo) {
      return absl::InvalidArgumentError("the MSI-X BAR must be an implemented memory BAR");
    }
    const uint64_t bar_size = spec_.bars[irq.msix_bar].size;
    const uint64_t table = MsixTableBytes(irq.msix_vectors);
    const uint64_t pba = MsixPbaBytes(irq.msix_vectors);
    if (uint64_t{irq.msix_table_offset} + table > bar_size ||
        uint64_t{irq.msix_pba_offset} + pba > bar_size) {
      return absl::InvalidArgumentError("the MSI-X table or PBA does not fit in its BAR");
    }
    if (Overlaps(irq.msix_table_offset, table, irq.msix_pba_offset, pba)) {
      return absl::InvalidArgumentError("the MSI-X table and PBA overlap");
    }
    VFU_ASSIGN_OR_RETURN(pci::Capability msix,
                         pci::MsiX(irq.msix_vectors, irq.msix_bar, irq.msix_table_offset,
                                   irq.msix_bar, irq.msix_pba_offset));
    VFU_RETURN_IF_ERROR(config->AddCapability(msix).status());
  }
  if (spec_.express) {
    VFU_ASSIGN_OR_RETURN(pci::Capability express, pci::PciExpress({}));
    VFU_RETURN_IF_ERROR(config->AddCapability(express).status());
  }
  for (const pci::Capability& cap : spec_.capabilities) {
    VFU_RETURN_IF_ERROR(config->AddCapability(cap).status());
  }
  if (!spec_.express &&
      (spec_.serial_number.has_value() || !spec_.extended_capabilities.empty())) {
    return absl::InvalidArgumentError(
        "extended capabilities need PCI Express (4 KiB config space)");
  }
  if (spec_.serial_number) {
    VFU_RETURN_IF_ERROR(
        config->AddExtendedCapability(pci::DeviceSerialNumber(*spec_.serial_number)).status());
  }
  for (const pci::ExtendedCapability& cap : spec_.extended_capabilities) {
    VFU_RETURN_IF_ERROR(config->AddExtendedCapability(cap).status());
  }

  // Regions: BARs, ROM, config, VGA (absent), then device-specific ones.
  regions_.resize(kFirstDeviceSpecificRegion + spec_.device_regions.size());
  for (int i = 0; i < 6; ++i) regions_[i].spec = std::move(spec_.bars[i]);
  regions_[kRomRegion].spec = std::move(spec_.rom);
  regions_[kRomRegion].spec.writable = false;
  for (size_t i = 0; i < spec_.device_regions.size(); ++i) {
    RegionSpec& region = spec_.device_regions[i];
    if (region.size == 0 || !region.type) {
      return absl::InvalidArgumentError(absl::StrCat(
          "device-specific region ", kFirstDeviceSpecificRegion + i, " needs a size and a type"));
    }
    regions_[kFirstDeviceSpecificRegion + i].spec = std::move(region);
  }
  // The moved-from descriptions would mislead: spec() reports the served ones.
  for (int i = 0; i < 6; ++i) spec_.bars[i] = RegionSpec{.size = regions_[i].spec.size,
                                                         .readable = regions_[i].spec.readable,
                                                         .writable = regions_[i].spec.writable,
                                                         .kind = regions_[i].spec.kind,
                                                         .prefetchable =
                                                             regions_[i].spec.prefetchable};
  spec_.rom = RegionSpec{.size = regions_[kRomRegion].spec.size};
  spec_.device_regions.clear();

  for (size_t index = 0; index < regions_.size(); ++index) {
    if (index == kConfigRegion || index == kVgaRegion) continue;
    Region& region = regions_[index];
    RegionSpec& rs = region.spec;
    if (rs.size == 0) continue;
    if (rs.backed_by_memory) {
      if (rs.fd) return absl::InvalidArgumentError("a region has both backing memory and an fd");
      const std::string name = absl::StrCat("vfu-region-", index);
      region.memfd = UniqueFd(::memfd_create(name.c_str(), MFD_CLOEXEC));
      if (!region.memfd) return wire::WireError(errno, "memfd_create");
      // Whole pages, so the client can map the last partial page too.
      const uint64_t bytes = (rs.size + kPageSize - 1) / kPageSize * kPageSize;
      if (::ftruncate(region.memfd.get(), static_cast<off_t>(bytes)) != 0) {
        return wire::WireError(errno, "ftruncate of region memory");
      }
      void* memory =
          ::mmap(nullptr, rs.size, PROT_READ | PROT_WRITE, MAP_SHARED, region.memfd.get(), 0);
      if (memory == MAP_FAILED) return wire::WireError(errno, "mmap of region memory");
      region.memory = static_cast<uint8_t*>(memory);
    }
    if (!rs.mmap_areas.empty() && !rs.backed_by_memory && !rs.fd) {
      return absl::InvalidArgumentError(
          absl::StrCat("region ", index, " has mmap areas but no memory or fd behind them"));
    }
    for (const wire::SparseMmapArea& area : rs.mmap_areas) {
      if (area.size == 0 || area.offset % kPageSize != 0 || area.size % kPageSize != 0 ||
          area.offset > rs.size || area.size > rs.size - area.offset) {
        return absl::InvalidArgumentError(absl::StrCat(
            "region ", index, ": mmap area must be page aligned and inside the region"));
      }
      if (index == irq.msix_bar && irq.msix_vectors != 0 &&
          (Overlaps(area.offset, area.size, irq.msix_table_offset,
                    MsixTableBytes(irq.msix_vectors)) ||
           Overlaps(area.offset, area.size, irq.msix_pba_offset,
                    MsixPbaBytes(irq.msix_vectors)))) {
        return absl::InvalidArgumentError(
            "an mmap area covers the MSI-X table or PBA, which the framework must see");
      }
    }
  }
  regions_[kConfigRegion].spec =
      RegionSpec{.size = config->size(), .readable = true, .writable = true};

  std::optional<pci::MsixTable> msix_table;
  if (irq.msix_vectors != 0) {
    VFU_ASSIGN_OR_RETURN(msix_table, pci::MsixTable::Create(irq.msix_vectors));
  }
  VFU_RETURN_IF_ERROR(BuildIoeventfds());
  absl::MutexLock lock(&config_mu_);
  config_ = std::move(*config);
  msix_table_ = std::move(msix_table);
  UpdateDeviceMasks();
  return absl::OkStatus();
}

uint32_t PciDevice::num_regions() const {
  // QEMU needs at least 9 even when nothing past the config space exists.
  return std::max<uint32_t>(wire::kPciNumRegions, static_cast<uint32_t>(regions_.size()));
}

const PciDevice::Region* PciDevice::FindRegion(uint32_t index) const {
  if (index >= regions_.size()) return nullptr;
  return &regions_[index];
}

RegionDescription PciDevice::DescribeRegion(uint32_t index) const {
  const Region* region = FindRegion(index);
  if (region == nullptr || region->spec.size == 0 || !init_status_.ok()) return {};
  const RegionSpec& rs = region->spec;
  RegionDescription d{.size = rs.size, .readable = rs.readable, .writable = rs.writable};
  if (!rs.mmap_areas.empty()) {
    d.mmap_areas = rs.mmap_areas;
    d.mmap_fd = region->memfd ? region->memfd.get() : rs.fd.get();
    d.fd_offset = region->memfd ? 0 : rs.fd_offset;
  }
  d.type = rs.type;
  return d;
}

uint32_t PciDevice::IrqCount(uint32_t index) const { return irqs_.vectors(index); }

uint32_t PciDevice::IrqInfoFlags(uint32_t index) const {
  if (irqs_.vectors(index) == 0) return 0;
  if (index == kIntxIrq) {
    return VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
  }
  return VFIO_IRQ_INFO_EVENTFD;
}

absl::Span<uint8_t> PciDevice::region_memory(uint32_t region) const {
  const Region* r = FindRegion(region);
  if (r == nullptr || r->memory == nullptr) return {};
  return absl::MakeSpan(r->memory, r->spec.size);
}

bool PciDevice::InMsixTable(uint32_t region, uint64_t offset, uint64_t size) const {
  const InterruptSpec& irq = spec_.interrupts;
  return irq.msix_vectors != 0 && region == irq.msix_bar &&
         Overlaps(offset, size, irq.msix_table_offset, MsixTableBytes(irq.msix_vectors));
}

bool PciDevice::InMsixPba(uint32_t region, uint64_t offset, uint64_t size) const {
  const InterruptSpec& irq = spec_.interrupts;
  return irq.msix_vectors != 0 && region == irq.msix_bar &&
         Overlaps(offset, size, irq.msix_pba_offset, MsixPbaBytes(irq.msix_vectors));
}

absl::Status PciDevice::ReadRegion(uint32_t index, uint64_t offset, absl::Span<uint8_t> out) {
  if (index == kConfigRegion) return ReadConfigRegion(offset, out);
  const InterruptSpec& irq = spec_.interrupts;
  if (InMsixTable(index, offset, out.size())) {
    absl::MutexLock lock(&config_mu_);
    if (offset < irq.msix_table_offset) {
      return wire::WireError(EINVAL, "access straddles the MSI-X table");
    }
    return msix_table_->Read(offset - irq.msix_table_offset, out);
  }
  if (InMsixPba(index, offset, out.size())) {
    absl::MutexLock lock(&config_mu_);
    if (offset < irq.msix_pba_offset) {
      return wire::WireError(EINVAL, "access straddles the MSI-X PBA");
    }
    return msix_table_->ReadPba(
        offset - irq.msix_pba_offset, out,
        [this](uint32_t vector) ABSL_EXCLUSIVE_LOCKS_REQUIRED(config_mu_) {
          return irqs_.IsPending(kMsixIrq, vector) || RestoredPendingLocked(kMsixIrq, vector);
        });
  }
  return OnRegionRead(index, offset, out);
}

absl::Status PciDevice::WriteRegion(uint32_t index, uint64_t offset,
                                    absl::Span<const uint8_t> data) {
  if (index == kConfigRegion) return WriteConfigRegion(offset, data);
  const InterruptSpec& irq = spec_.interrupts;
  if (InMsixTable(index, offset, data.size())) {
    absl::MutexLock lock(&config_mu_);
    if (offset < irq.msix_table_offset) {
      return wire::WireError(EINVAL, "access straddles the MSI-X table");
    }
    VFU_RETURN_IF_ERROR(msix_table_->Write(offset - irq.msix_table_offset, data).status());
    msix_table_driven_ = true;
    UpdateDeviceMasks();
    return absl::OkStatus();
  }
  if (InMsixPba(index, offset, data.size())) {
    // The PBA is read-only; QEMU drops such writes too.
    return absl::OkStatus();
  }
  // A doorbell the client did not ring through its eventfd: the same ring.
  if (std::optional<size_t> doorbell = ioeventfds_.Match(index, offset, data)) {
    ioeventfds_.Ring(*doorbell);
    return absl::OkStatus();
  }
  return OnRegionWrite(index, offset, data);
}

absl::Status PciDevice::OnRegionRead(uint32_t region, uint64_t offset, absl::Span<uint8_t> out) {
  absl::Span<uint8_t> memory = region_memory(region);
  if (memory.empty()) {
    return wire::WireError(EINVAL, absl::StrCat("region ", region, " has no read handler"));
  }
  std::memcpy(out.data(), memory.data() + offset, out.size());
  return absl::OkStatus();
}

absl::Status PciDevice::OnRegionWrite(uint32_t region, uint64_t offset,
                                      absl::Span<const uint8_t> data) {
  absl::Span<uint8_t> memory = region_memory(region);
  if (memory.empty()) {
    return wire::WireError(EINVAL, absl::StrCat("region ", region, " has no write handler"));
  }
  std::memcpy(memory.data() + offset, data.data(), data.size());
  return absl::OkStatus();
}

absl::Status PciDevice::ReadConfigRegion(uint64_t offset, absl::Span<uint8_t> out) {
  absl::MutexLock lock(&config_mu_);
  config_->Read(static_cast<uint32_t>(offset), out);
  router_.OverlayInterruptStatus(offset, out);
  return absl::OkStatus();
}

std::optional<uint32_t> PciDevice::FlrByteOffset() const {
  absl::MutexLock lock(&config_mu_);
  if (!config_) return std::nullopt;
  std::optional<uint16_t> express = config_->FindCapability(PCI_CAP_ID_EXP);
  if (!express || (config_->Get32(*express + PCI_EXP_DEVCAP) & PCI_EXP_DEVCAP_FLR) == 0) {
    return std::nullopt;
  }
  return *express + PCI_EXP_DEVCTL + 1;
}

bool PciDevice::IsFunctionLevelReset(uint32_t region, uint64_t offset,
                                     absl::Span<const uint8_t> data) const {
  if (region != kConfigRegion) return false;
  const std::optional<uint32_t> flr_byte = FlrByteOffset();
  if (!flr_byte || *flr_byte < offset || *flr_byte - offset >= data.size()) return false;
  constexpr uint8_t kInitiateFlrInHighByte = PCI_EXP_DEVCTL_BCR_FLR >> 8;
  return (data[*flr_byte - offset] & kInitiateFlrInHighByte) != 0;
}

absl::Status PciDevice::WriteConfigRegion(uint64_t offset, absl::Span<const uint8_t> data) {
  if (IsFunctionLevelReset(kConfigRegion, offset, data)) {
    // The reset replaces whatever else the write said: every register
    // returns to its default, and the bit itself always reads 0.
    irqs_.ReleaseClientResources();
    ResetConfig();  // after the release: the route follows the eventfds too
    return OnReset();
  }
  {
    absl::MutexLock lock(&config_mu_);
    config_->Write(static_cast<uint32_t>(offset), data);
    UpdateDeviceMasks();
  }
  OnConfigWrite(static_cast<uint32_t>(offset), data);
  return absl::OkStatus();
}

uint32_t PciDevice::ReadConfig32(uint32_t offset) const {
  uint8_t bytes[4] = {};
  ReadConfigSnapshot(offset, absl::MakeSpan(bytes));
  return bytes[0] | bytes[1] << 8 | bytes[2] << 16 | uint32_t{bytes[3]} << 24;
}

uint16_t PciDevice::ReadConfig16(uint32_t offset) const {
  uint8_t bytes[2] = {};
  ReadConfigSnapshot(offset, absl::MakeSpan(bytes));
  return static_cast<uint16_t>(bytes[0] | bytes[1] << 8);
}

void PciDevice::ReadConfigSnapshot(uint32_t offset, absl::Span<uint8_t> out) const {
  absl::MutexLock lock(&config_mu_);
  if (!config_) return;
  config_->Read(offset, out);
  router_.OverlayInterruptStatus(offset, out);
}

void PciDevice::UpdateDeviceMasks() {
  if (!config_) return;
  router_.UpdateFromConfig(*config_);
  if (std::optional<pci::MsiState> msi = pci::ReadMsiState(*config_)) {
    for (uint32_t v = 0; v < irqs_.vectors(kMsiIrq); ++v) {
      irqs_.SetDeviceMask(kMsiIrq, v, msi->per_vector_mask && ((msi->mask_bits >> v) & 1) != 0);
    }
  }
  if (std::optional<pci::MsixState> msix = pci::ReadMsixState(*config_)) {
    for (uint32_t v = 0; v < irqs_.vectors(kMsixIrq); ++v) {
      const bool vector_masked = msix_table_driven_ && msix_table_->VectorMasked(v);
      irqs_.SetDeviceMask(kMsixIrq, v, msix->function_masked || vector_masked);
    }
  }
}

void PciDevice::ResetConfig() {
  {
    absl::MutexLock lock(&config_mu_);
    if (config_) config_->Reset();
    if (msix_table_) msix_table_->Reset();
    msix_table_driven_ = false;
    restored_pending_.clear();
    UpdateDeviceMasks();
  }
  // A reset device drives no line; OnReset may raise it again.
  if (irqs_.vectors(kIntxIrq) != 0) router_.SetIntxLevel(false).IgnoreError();
}

absl::Status PciDevice::Reset() {
  EndMigration();
  ResetConfig();
  return OnReset();
}

absl::Status PciDevice::SetIrqs(const wire::SetIrqsRequest& request,
                                std::vector<UniqueFd>& fds) {
  absl::Status status = irqs_.SetIrqs(request, fds);
  // Eventfds alone can move the interrupt route (interrupt_router.h).
  absl::MutexLock lock(&config_mu_);
  UpdateDeviceMasks();
  return status;
}

absl::Status PciDevice::TriggerIrq(uint32_t index, uint32_t vector) {
  absl::Status status = irqs_.Trigger(index, vector);
  // After a detach the client's eventfds are gone; say why in a way a
  // device thread can tell from a vector the client never enabled.
  if (!status.ok() && !attached_.load(std::memory_order_acquire)) {
    return absl::UnavailableError(absl::StrCat("no client attached (", status.message(), ")"));
  }
  return status;
}

absl::Status PciDevice::RaiseInterrupt(uint32_t vector) {
  absl::Status status = router_.Raise(vector);
  if (!status.ok() && !attached_.load(std::memory_order_acquire)) {
    return absl::UnavailableError(absl::StrCat("no client attached (", status.message(), ")"));
  }
  return status;
}

absl::Status PciDevice::SetIntxLevel(bool asserted) { return router_.SetIntxLevel(asserted); }

bool PciDevice::IrqEnabled(uint32_t index, uint32_t vector) const {
  return irqs_.IsEnabled(index, vector);
}

std::shared_ptr<DeviceContext> PciDevice::dma() const {
  absl::MutexLock lock(&context_mu_);
  return context_;
}

void PciDevice::OnAttach(std::shared_ptr<DeviceContext> context) {
  {
    absl::MutexLock lock(&context_mu_);
    context_ = std::move(context);
  }
  attached_.store(true, std::memory_order_release);
  OnClientAttached();
}

void PciDevice::OnDetach() {
  attached_.store(false, std::memory_order_release);
  {
    // The client's context is revoked already; drop our reference to it.
    absl::MutexLock lock(&context_mu_);
    context_ = NoClientContext();
  }
  irqs_.ReleaseClientResources();
  // The departed client may keep its eventfd copies: fresh ones for the next.
  if (absl::Status renewed = ioeventfds_.Renew(); !renewed.ok()) {
    VFU_LOG(kError, "renewing ioeventfds: ", renewed.ToString());
  }
  {
    absl::MutexLock lock(&config_mu_);
    UpdateDeviceMasks();
  }
  OnClientDetached();
}

}  // namespace vfu
