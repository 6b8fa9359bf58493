#include "vfu/capi/callback_device.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "vfu/wire/errno_status.h"

namespace vfu::capi {
namespace {

using wire::WireError;

std::array<uint32_t, IrqController::kNumIndexes> IrqCounts(const vfu_ctx& ctx) {
  std::array<uint32_t, IrqController::kNumIndexes> counts;
  for (size_t i = 0; i < counts.size(); ++i) counts[i] = ctx.irq_counts[i];
  return counts;
}

}  // namespace

CallbackDevice::CallbackDevice(vfu_ctx& ctx, Translator translate, AttachHooks hooks,
                               QuiesceBy quiesce_by)
    : ctx_(ctx),
      translate_(std::move(translate)),
      hooks_(std::move(hooks)),
      quiesce_by_(quiesce_by),
      irqs_(IrqCounts(ctx)) {
  irqs_.set_listener([this](uint32_t index, uint32_t start, uint32_t count,
                            IrqController::Change change) {
    if (index >= VFU_DEV_NUM_IRQS) return;
    vfu_dev_irq_state_cb_t* callback = ctx_.irq_state_callbacks[index];
    if (callback == nullptr) return;
    if (change == IrqController::Change::kMasked) callback(&ctx_, start, count, true);
    if (change == IrqController::Change::kUnmasked) callback(&ctx_, start, count, false);
  });
}

RegionDescription CallbackDevice::DescribeRegion(uint32_t index) const {
  RegionDescription description;
  if (index >= VFU_PCI_DEV_NUM_REGIONS) return description;
  if (index == VFU_PCI_DEV_CFG_REGION_IDX) {
    description.size = ctx_.config->size();
    description.readable = true;
    description.writable = true;
    return description;
  }
  const RegionSetup& region = ctx_.regions[index];
  description.size = region.size;
  description.readable = (region.flags & VFU_REGION_FLAG_READ) != 0;
  description.writable = (region.flags & VFU_REGION_FLAG_WRITE) != 0;
  if (region.fd) {
    description.mmap_fd = region.fd.get();
    description.fd_offset = region.fd_offset;
    if (region.mmap_areas.empty()) {
      description.mmap_areas.push_back({.offset = 0, .size = region.size});
    } else {
      for (const struct iovec& area : region.mmap_areas) {
        description.mmap_areas.push_back(
            {.offset = reinterpret_cast<uint64_t>(area.iov_base), .size = area.iov_len});
      }
    }
  }
  return description;
}

void CallbackDevice::DescribeRegionIoFds(uint32_t index, std::vector<wire::IoFdEntry>& entries,
                                         std::vector<int>& fds) const {
  for (const IoEventFd& ioeventfd : ctx_.ioeventfds) {
    if (ioeventfd.region != index) continue;
    // An fd registered for several sub-regions is attached once.
    const auto found = std::find(fds.begin(), fds.end(), ioeventfd.fd.get());
    const size_t fd_index = static_cast<size_t>(found - fds.begin());
    if (found == fds.end()) fds.push_back(ioeventfd.fd.get());
    entries.push_back({.offset = ioeventfd.offset,
                       .size = ioeventfd.size,
                       .fd_index = static_cast<uint32_t>(fd_index),
                       .type = wire::IoFdType::kIoeventfd,
                       .flags = ioeventfd.flags,
                       .datamatch = ioeventfd.datamatch});
  }
}

uint32_t CallbackDevice::IrqCount(uint32_t index) const {
  return index < VFU_DEV_NUM_IRQS ? ctx_.irq_counts[index] : 0;
}

absl::Status CallbackDevice::Access(uint32_t index, uint64_t offset, uint8_t* buf, size_t count,
                                    bool write) {
  const RegionSetup& region = ctx_.regions[index];
  if (index == VFU_PCI_DEV_CFG_REGION_IDX) {
    ConfigSpace::Callback callback;
    if (region.callback != nullptr) {
      callback = [this, cb = region.callback](uint8_t* data, size_t n, uint64_t at, bool w) {
        return cb(&ctx_, reinterpret_cast<char*>(data), n, static_cast<loff_t>(at), w);
      };
    }
    return ctx_.config->Access(offset, absl::MakeSpan(buf, count), write, callback,
                               (region.flags & VFU_REGION_FLAG_ALWAYS_CB) != 0, [this] {
                                 if (ctx_.reset != nullptr) ctx_.reset(&ctx_, VFU_RESET_PCI_FLR);
                               });
  }
  if (region.callback == nullptr) {
    return WireError(EINVAL, absl::StrCat("region ", index, " has no access callback"));
  }
  errno = 0;
  const ssize_t n = region.callback(&ctx_, reinterpret_cast<char*>(buf), count,
                                    static_cast<loff_t>(offset), write);
  if (n < 0) return WireError(errno != 0 ? errno : EIO, "region callback failed");
  if (static_cast<size_t>(n) != count) {
    return WireError(EINVAL, absl::StrCat("region callback handled ", n, " of ", count, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status CallbackDevice::ReadRegion(uint32_t index, uint64_t offset, absl::Span<uint8_t> out) {
  return Access(index, offset, out.data(), out.size(), /*write=*/false);
}

absl::Status CallbackDevice::WriteRegion(uint32_t index, uint64_t offset,
                                         absl::Span<const uint8_t> data) {
  // The callback takes a non-const buffer (libvfio-user's signature); a
  // copy keeps the engine's bytes untouched. The buffer is reused: no
  // allocation per write once it has grown.
  write_scratch_.assign(data.begin(), data.end());
  return Access(index, offset, write_scratch_.data(), write_scratch_.size(), /*write=*/true);
}

absl::Status CallbackDevice::Reset() {
  if (ctx_.reset == nullptr) return absl::OkStatus();
  errno = 0;
  if (ctx_.reset(&ctx_, VFU_RESET_DEVICE) != 0) {
    return WireError(errno != 0 ? errno : EIO, "device reset callback failed");
  }
  return absl::OkStatus();
}

namespace {

// The libvfio-user state a migration arc ends in. The P2P states are never
// entered (the engine does not offer them).
std::optional<vfu_migr_state_t> CState(MigrationState state) {
  switch (state) {
    case MigrationState::kStop:
      return VFU_MIGR_STATE_STOP;
    case MigrationState::kRunning:
      return VFU_MIGR_STATE_RUNNING;
    case MigrationState::kStopCopy:
      return VFU_MIGR_STATE_STOP_AND_COPY;
    case MigrationState::kPreCopy:
      return VFU_MIGR_STATE_PRE_COPY;
    case MigrationState::kResuming:
      return VFU_MIGR_STATE_RESUME;
    default:
      return std::nullopt;
  }
}

}  // namespace

absl::Status CallbackDevice::OnMigrationArc(MigrationState from, MigrationState to) {
  std::optional<vfu_migr_state_t> state = CState(to);
  if (!state) return WireError(EINVAL, "migration state the C API cannot name");
  errno = 0;
  if (ctx_.migration.transition(&ctx_, *state) != 0) {
    return WireError(errno != 0 ? errno : EIO, "migration transition callback failed");
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> CallbackDevice::ReadMigrationData(absl::Span<uint8_t> out) {
  errno = 0;
  const ssize_t n = ctx_.migration.read_data(&ctx_, out.data(), out.size());
  if (n < 0) return WireError(errno != 0 ? errno : EIO, "migration read_data callback failed");
  if (static_cast<size_t>(n) > out.size()) {
    return WireError(EINVAL, "migration read_data callback returned more than asked");
  }
  return static_cast<size_t>(n);
}

absl::Status CallbackDevice::WriteMigrationData(absl::Span<const uint8_t> data) {
  write_scratch_.assign(data.begin(), data.end());
  errno = 0;
  const ssize_t n = ctx_.migration.write_data(&ctx_, write_scratch_.data(), write_scratch_.size());
  if (n < 0) return WireError(errno != 0 ? errno : EIO, "migration write_data callback failed");
  if (static_cast<size_t>(n) != data.size()) {
    return WireError(EINVAL, "migration write_data callback took only part of the data");
  }
  return absl::OkStatus();
}

absl::Status CallbackDevice::SetIrqs(const wire::SetIrqsRequest& request,
                                     std::vector<UniqueFd>& fds) {
  return irqs_.SetIrqs(request, fds);
}

absl::Status CallbackDevice::Trigger(uint32_t vector) {
  // Whichever of MSI-X, MSI, INTx the client enabled for this vector.
  for (uint32_t index : {uint32_t{VFU_DEV_MSIX_IRQ}, uint32_t{VFU_DEV_MSI_IRQ},
                         uint32_t{VFU_DEV_INTX_IRQ}}) {
    if (vector < ctx_.irq_counts[index] && irqs_.IsEnabled(index, vector)) {
      return irqs_.Trigger(index, vector);
    }
  }
  return WireError(ENOENT, absl::StrCat("interrupt vector ", vector, " is not enabled"));
}

void CallbackDevice::OnDmaMapped(const DmaRange& range) {
  vfu_dma_info_t info = {};
  info.iova.iov_base = reinterpret_cast<void*>(range.iova);
  info.iova.iov_len = range.size;
  if (range.mapped) {
    // The engine mapped the client's fd: find where.
    const DmaDirection direction = (range.flags & wire::kDmaMapFlagRead) ? DmaDirection::kRead
                                                                          : DmaDirection::kWrite;
    absl::StatusOr<DmaSgList> list = translate_(range.iova, range.size, direction);
    if (list.ok() && !list->segments().empty() && list->segments()[0].host != nullptr) {
      info.vaddr = list->segments()[0].host;
      info.mapping.iov_base = info.vaddr;
      info.mapping.iov_len = range.size;
      info.page_size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
      info.prot = ((range.flags & wire::kDmaMapFlagRead) ? PROT_READ : 0) |
                  ((range.flags & wire::kDmaMapFlagWrite) ? PROT_WRITE : 0);
    }
  }
  registered_[range.iova] = info;
  if (ctx_.dma_register != nullptr) ctx_.dma_register(&ctx_, &registered_[range.iova]);
}

void CallbackDevice::Unregister(std::map<uint64_t, vfu_dma_info_t>::iterator it) {
  vfu_dma_info_t info = it->second;
  registered_.erase(it);
  if (ctx_.dma_unregister != nullptr) ctx_.dma_unregister(&ctx_, &info);
}

void CallbackDevice::BeforeUnmap(const wire::DmaUnmapRequest& request) {
  if (request.flags & wire::kDmaUnmapFlagAll) {
    UnregisterAll();
    return;
  }
  auto it = registered_.find(request.addr);
  if (it != registered_.end() && it->second.iova.iov_len == request.size) Unregister(it);
}

void CallbackDevice::UnregisterAll() {
  while (!registered_.empty()) Unregister(registered_.begin());
}

void CallbackDevice::OnDmaUnmapped(const DmaRange& range) {
  // Normally unregistered already (BeforeUnmap); this catches the rest.
  auto it = registered_.find(range.iova);
  if (it != registered_.end()) Unregister(it);
}

void CallbackDevice::Quiesce(QuiesceReason reason, QuiesceDone done) {
  if (quiesce_by_ == QuiesceBy::kDriver || ctx_.quiesce == nullptr) {
    std::move(done)(absl::OkStatus());
    return;
  }
  {
    // Kept before the callback runs: a device that defers may answer from
    // another thread before the callback has even returned.
    absl::MutexLock lock(&quiesce_mu_);
    pending_quiesce_ = std::move(done);
  }
  errno = 0;
  const int result = ctx_.quiesce(&ctx_);
  const int error = errno;
  if (result != 0 && error == EBUSY) return;  // vfu_device_quiesced() answers
  QuiesceDone answer;
  {
    absl::MutexLock lock(&quiesce_mu_);
    answer = std::move(pending_quiesce_);
    pending_quiesce_ = nullptr;
  }
  if (answer == nullptr) return;  // answered already, from another thread
  std::move(answer)(result == 0 ? absl::OkStatus()
                                : WireError(error != 0 ? error : EIO, "quiesce callback failed"));
}

int CallbackDevice::CompleteQuiesce(int quiesce_errno) {
  QuiesceDone answer;
  {
    absl::MutexLock lock(&quiesce_mu_);
    answer = std::move(pending_quiesce_);
    pending_quiesce_ = nullptr;
  }
  if (answer == nullptr) {
    errno = EINVAL;
    return -1;
  }
  std::move(answer)(quiesce_errno == 0
                        ? absl::OkStatus()
                        : WireError(quiesce_errno, "the device failed to quiesce"));
  return 0;
}

void CallbackDevice::OnAttach(std::shared_ptr<DeviceContext> context) {
  if (hooks_.attached) hooks_.attached(std::move(context));
}

void CallbackDevice::OnDetach() {
  irqs_.ReleaseClientResources();
  if (hooks_.detached) hooks_.detached();
}

}  // namespace vfu::capi
