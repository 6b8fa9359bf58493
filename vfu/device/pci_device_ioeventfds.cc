// PciDevice's doorbells on eventfds (see ioeventfd_set.h).
#include <poll.h>

#include <cerrno>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "vfu/device/pci_device.h"
#include "vfu/wire/errno_status.h"

namespace vfu {

absl::Status PciDevice::BuildIoeventfds() {
  absl::StatusOr<IoeventfdSet> set = IoeventfdSet::Create(
      std::move(spec_.ioeventfds), [this](uint32_t region, uint64_t offset, uint64_t size) {
        // Writable BARs and device-specific regions, not the framework's
        // own ranges (config space, ROM, MSI-X table and PBA).
        if (region == kConfigRegion || region == kRomRegion || region == kVgaRegion ||
            region >= regions_.size()) {
          return false;
        }
        const RegionSpec& rs = regions_[region].spec;
        return rs.writable && offset < rs.size && size <= rs.size - offset &&
               !InMsixTable(region, offset, size) && !InMsixPba(region, offset, size);
      });
  if (!set.ok()) return set.status();
  ioeventfds_ = std::move(*set);
  // spec() reports what is served.
  spec_.ioeventfds.clear();
  for (size_t i = 0; i < ioeventfds_.size(); ++i) spec_.ioeventfds.push_back(ioeventfds_.spec(i));
  return absl::OkStatus();
}

void PciDevice::DescribeRegionIoFds(uint32_t index, std::vector<wire::IoFdEntry>& entries,
                                    std::vector<int>& fds) const {
  if (!init_status_.ok()) return;
  ioeventfds_.Describe(index, entries, fds);
}

absl::StatusOr<PciDevice::DoorbellWait> PciDevice::WaitForIoeventfds(
    absl::Span<const size_t> doorbells, int wake_fd, absl::Duration timeout) {
  std::vector<pollfd> fds;
  fds.reserve(doorbells.size() + 1);
  for (size_t i : doorbells) {
    if (i >= ioeventfds_.size()) {
      return absl::OutOfRangeError(absl::StrCat("no doorbell ", i));
    }
    fds.push_back({.fd = ioeventfds_.wait_fd(i), .events = POLLIN});
  }
  if (wake_fd >= 0) fds.push_back({.fd = wake_fd, .events = POLLIN});
  const absl::Time deadline =
      timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  DoorbellWait result;
  while (true) {
    int wait_ms = -1;
    if (deadline != absl::InfiniteFuture()) {
      const absl::Duration left = std::max(deadline - absl::Now(), absl::ZeroDuration());
      wait_ms = static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(absl::Ceil(
                                                       left, absl::Milliseconds(1))),
                                                   std::numeric_limits<int>::max()));
    }
    const int ready = ::poll(fds.data(), fds.size(), wait_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return wire::WireError(errno, "poll on ioeventfds");
    }
    if (ready == 0) return result;  // timed out
    for (size_t k = 0; k < doorbells.size(); ++k) {
      if ((fds[k].revents & POLLIN) != 0 && ConsumeIoeventfd(doorbells[k]) != 0) {
        result.rung.push_back(doorbells[k]);
      }
    }
    result.wake_fd_ready = wake_fd >= 0 && (fds.back().revents & POLLIN) != 0;
    // Another consumer may have taken the rings between poll and read.
    if (!result.rung.empty() || result.wake_fd_ready) return result;
  }
}

}  // namespace vfu
