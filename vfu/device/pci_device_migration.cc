// PciDevice's side of live migration: the Device migration hooks on top of
// the stream's saver and loader, and the framework's own state (config
// space, MSI-X table, pending interrupts, memory-backed regions).
//
// What is not in the stream, and why:
//  - interrupt eventfds and VFIO-level masks (SET_IRQS): they belong to the
//    client, and the destination's client installs its own. Device-level
//    masks (MSI-X vector and function masks, MSI mask bits, INTx disable)
//    live in config space and the MSI-X table and come back with them.
//  - DMA mappings and dirty logging: client state of the session; the
//    destination's client maps its memory and logs what it wants.
#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "proto/migration_stream.pb.h"
#include "vfu/base/check.h"
#include "vfu/base/log.h"
#include "vfu/base/status_macros.h"
#include "vfu/device/migration_loader.h"
#include "vfu/device/migration_saver.h"
#include "vfu/device/migration_stream.h"
#include "vfu/device/region_dirty_tracker.h"
#include "vfu/device/pci_device.h"
#include "vfu/wire/errno_status.h"

namespace vfu {
namespace {

constexpr uint32_t kMsixDword = 4;
// INTx, MSI and MSI-X: the indexes whose pending bits migrate.
constexpr uint32_t kMigratedIrqIndexes = 3;

bool IsRunningState(MigrationState state) {
  return state == MigrationState::kRunning || state == MigrationState::kPreCopy;
}

}  // namespace

proto::MigrationStreamHeader PciDevice::MigrationHeader() const {
  proto::MigrationStreamHeader h;
  h.set_format_version(kMigrationFormatVersion);
  const pci::Identity& id = spec_.identity;
  h.set_vendor_id(id.vendor_id);
  h.set_device_id(id.device_id);
  h.set_subsystem_vendor_id(id.subsystem_vendor_id);
  h.set_subsystem_id(id.subsystem_id);
  h.set_class_code(id.class_code);
  h.set_revision(id.revision);
  if (spec_.migration) {
    h.set_device_type(spec_.migration->device_type);
    h.set_device_version(spec_.migration->device_version);
  }
  {
    absl::MutexLock lock(&config_mu_);
    h.set_config_space_size(config_ ? config_->size() : 0);
    h.set_msix_vectors(msix_table_ ? msix_table_->vectors() : 0);
  }
  for (uint32_t index = 0; index < regions_.size(); ++index) {
    if (regions_[index].memory == nullptr) continue;
    proto::MigrationRegionLayout* region = h.add_memory_regions();
    region->set_index(index);
    region->set_size(regions_[index].spec.size);
  }
  return h;
}

std::unique_ptr<MigrationSaver> PciDevice::NewSaver() {
  MigrationSaver::Sources sources;
  sources.header = MigrationHeader();
  for (uint32_t index = 0; index < regions_.size(); ++index) {
    if (regions_[index].memory == nullptr) continue;
    sources.regions.push_back({.index = index, .memory = region_memory(index)});
  }
  sources.framework_state = [this] { return CaptureFrameworkState(); };
  sources.device_state = [this](bool final, std::string& out) {
    return SaveState(final ? SavePhase::kStopCopy : SavePhase::kPreCopy, out);
  };
  sources.device_pending = [this] { return PendingStateBytes(); };
  return std::make_unique<MigrationSaver>(std::move(sources));
}

std::unique_ptr<MigrationLoader> PciDevice::NewLoader() {
  MigrationLoader::Expectation expectation{.header = MigrationHeader()};
  for (uint32_t index = 0; index < kMigratedIrqIndexes; ++index) {
    expectation.irq_vectors[index] = irqs_.vectors(index);
  }
  return std::make_unique<MigrationLoader>(std::move(expectation));
}

proto::MigrationFrameworkState PciDevice::CaptureFrameworkState() {
  proto::MigrationFrameworkState state;
  absl::MutexLock lock(&config_mu_);
  std::string& config = *state.mutable_config_space();
  config.resize(config_->size());
  config_->Read(0, absl::MakeSpan(reinterpret_cast<uint8_t*>(config.data()), config.size()));
  if (msix_table_) {
    std::string& table = *state.mutable_msix_table();
    table.resize(msix_table_->table_bytes());
    for (uint64_t offset = 0; offset < table.size(); offset += kMsixDword) {
      // Aligned dwords inside the table: cannot fail.
      (void)msix_table_->Read(
          offset, absl::MakeSpan(reinterpret_cast<uint8_t*>(table.data() + offset), kMsixDword));
    }
  }
  state.set_msix_table_written(msix_table_driven_);
  for (uint32_t index = 0; index < kMigratedIrqIndexes; ++index) {
    for (uint32_t vector = 0; vector < irqs_.vectors(index); ++vector) {
      if (irqs_.IsPending(index, vector) || RestoredPendingLocked(index, vector)) {
        proto::MigrationPendingIrq* irq = state.add_pending();
        irq->set_index(index);
        irq->set_vector(vector);
      }
    }
  }
  return state;
}

absl::Status PciDevice::FinishResuming() {
  if (!loader_) return wire::WireError(EINVAL, "no migration stream was written");
  absl::StatusOr<MigrationLoader::Loaded> loaded = loader_->Finish();
  // Refused or not, this stream is over: a retry starts a new one.
  loader_ = NewLoader();
  if (!loaded.ok()) {
    VFU_LOG_RATE_LIMITED(kWarning, loaded.status().message());
    return loaded.status();
  }
  if (absl::Status status = LoadState(loaded->device_pieces); !status.ok()) {
    VFU_LOG_RATE_LIMITED(kWarning, "migration stream refused by the device: ", status.message());
    return status;
  }
  for (const auto& [index, staged] : loaded->regions) {
    // The loader sized the staging from this device's own layout.
    absl::Span<uint8_t> memory = region_memory(index);
    VFU_CHECK(memory.size() == staged.bytes.size(), "staged region of another size");
    constexpr uint64_t kPage = RegionDirtyTracker::kPageSize;
    if (staged.pages_present == staged.present.size()) {
      std::memcpy(memory.data(), staged.bytes.data(), memory.size());
      continue;
    }
    for (uint64_t page = 0; page < staged.present.size(); ++page) {
      if (!staged.present[page]) continue;
      const uint64_t offset = page * kPage;
      std::memcpy(memory.data() + offset, staged.bytes.data() + offset,
                  std::min<uint64_t>(kPage, memory.size() - offset));
    }
  }
  const proto::MigrationFrameworkState& state = loaded->framework;
  absl::MutexLock lock(&config_mu_);
  // Through the write masks: the destination's read-only structure stays.
  config_->Reset();
  config_->Write(0, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(state.config_space().data()),
                                        state.config_space().size()));
  if (msix_table_) {
    msix_table_->Reset();
    const std::string& table = state.msix_table();
    for (uint64_t offset = 0; offset < table.size(); offset += kMsixDword) {
      VFU_RETURN_IF_ERROR(msix_table_->Write(
          offset, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(table.data() + offset),
                                      kMsixDword)).status());
    }
  }
  msix_table_driven_ = state.msix_table_written();
  restored_pending_.clear();
  for (const proto::MigrationPendingIrq& irq : state.pending()) {
    restored_pending_.emplace_back(irq.index(), irq.vector());
  }
  UpdateDeviceMasks();
  return absl::OkStatus();
}

bool PciDevice::RestoredPendingLocked(uint32_t index, uint32_t vector) const {
  for (const auto& [i, v] : restored_pending_) {
    if (i == index && v == vector) return true;
  }
  return false;
}

void PciDevice::DeliverRestoredPending() {
  if (!IsRunningState(migration_state())) return;
  absl::MutexLock lock(&config_mu_);
  std::erase_if(restored_pending_, [this](const std::pair<uint32_t, uint32_t>& irq) {
    if (!irqs_.IsEnabled(irq.first, irq.second)) return false;
    // Masked: it becomes pending in the controller, delivered on unmask.
    (void)irqs_.Trigger(irq.first, irq.second);
    return true;
  });
}

void PciDevice::PopulateRegionMemory() {
  for (uint32_t index = 0; index < regions_.size(); ++index) {
    absl::Span<uint8_t> memory = region_memory(index);
    if (memory.empty()) continue;
    // Best effort (Linux 5.14+): an older kernel faults the pages in later.
    (void)::madvise(memory.data(), memory.size(), MADV_POPULATE_WRITE);
  }
}

void PciDevice::EndMigration() {
  saver_.reset();
  loader_.reset();
  migration_state_.store(MigrationState::kRunning, std::memory_order_release);
}

absl::Status PciDevice::OnMigrationArc(MigrationState from, MigrationState to) {
  if (!SupportsMigration()) return wire::WireError(ENOTSUP, "device does not migrate");
  if (from == MigrationState::kResuming && to == MigrationState::kStop) {
    VFU_RETURN_IF_ERROR(FinishResuming());
    loader_.reset();
  }
  VFU_RETURN_IF_ERROR(OnMigrationStateChange(from, to));
  if (from == MigrationState::kRunning && to == MigrationState::kPreCopy) {
    saver_ = NewSaver();
    saver_->BeginPreCopy();
  } else if (to == MigrationState::kStopCopy) {
    if (!saver_) saver_ = NewSaver();  // STOP -> STOP_COPY: no pre-copy
    saver_->BeginStopCopy();
  } else if (from == MigrationState::kPreCopy || from == MigrationState::kStopCopy) {
    saver_.reset();  // PRE_COPY -> RUNNING (cancelled) or STOP_COPY -> STOP (done)
  } else if (to == MigrationState::kResuming) {
    loader_ = NewLoader();
    PopulateRegionMemory();
  }
  migration_state_.store(to, std::memory_order_release);
  if (to == MigrationState::kRunning) DeliverRestoredPending();
  return absl::OkStatus();
}

absl::StatusOr<size_t> PciDevice::ReadMigrationData(absl::Span<uint8_t> out) {
  if (!saver_) return wire::WireError(EINVAL, "no migration stream is being saved");
  return saver_->Read(out);
}

absl::Status PciDevice::WriteMigrationData(absl::Span<const uint8_t> data) {
  if (!loader_) return wire::WireError(EINVAL, "no migration stream is being loaded");
  loader_->Write(data);
  return absl::OkStatus();
}

uint64_t PciDevice::MigrationDataEstimate() { return saver_ ? saver_->Estimate() : 0; }

}  // namespace vfu
