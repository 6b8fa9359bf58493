#include "vfu/device/ioeventfd_set.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "vfu/base/status_macros.h"
#include "vfu/wire/errno_status.h"

namespace vfu {
namespace {

// KVM_IOEVENTFD_FLAG_DATAMATCH (<linux/kvm.h>), which the entry's flags carry.
constexpr uint32_t kKvmIoeventfdFlagDatamatch = 1u << 0;

bool Overlap(const IoeventfdSpec& a, const IoeventfdSpec& b) {
  return a.region == b.region && a.offset < b.offset + b.size && b.offset < a.offset + a.size;
}

uint64_t LittleEndianValue(absl::Span<const uint8_t> data) {
  uint64_t value = 0;
  for (size_t i = 0; i < data.size() && i < 8; ++i) value |= uint64_t{data[i]} << (8 * i);
  return value;
}

}  // namespace

absl::StatusOr<IoeventfdSet> IoeventfdSet::CreateChecked(std::vector<IoeventfdSpec> specs) {
  for (size_t i = 0; i < specs.size(); ++i) {
    const IoeventfdSpec& s = specs[i];
    if (s.size != 1 && s.size != 2 && s.size != 4 && s.size != 8) {
      return absl::InvalidArgumentError(
          absl::StrCat("ioeventfd ", i, ": width ", s.size, " is not 1, 2, 4 or 8"));
    }
    if (s.offset % s.size != 0) {
      return absl::InvalidArgumentError(absl::StrCat("ioeventfd ", i, " is not aligned"));
    }
    if (s.size < 8 && s.datamatch && *s.datamatch >> (8 * s.size) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("ioeventfd ", i, ": datamatch wider than the doorbell"));
    }
    for (size_t j = 0; j < i; ++j) {
      const IoeventfdSpec& t = specs[j];
      if (!Overlap(s, t)) continue;
      // KVM's rule: the same range again only with distinct datamatches.
      const bool distinct = s.offset == t.offset && s.size == t.size && s.datamatch &&
                            t.datamatch && *s.datamatch != *t.datamatch;
      if (!distinct) {
        return absl::InvalidArgumentError(
            absl::StrCat("ioeventfds ", j, " and ", i, " overlap"));
      }
    }
  }
  IoeventfdSet set;
  set.doorbells_ = std::make_unique<Doorbell[]>(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    Doorbell& d = set.doorbells_[i];
    d.epoll = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    if (!d.epoll) return wire::WireError(errno, "epoll_create1 for an ioeventfd");
    UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!fd) return wire::WireError(errno, "eventfd for an ioeventfd");
    VFU_RETURN_IF_ERROR(Install(d, std::move(fd)));
  }
  set.specs_ = std::move(specs);
  return set;
}

absl::Status IoeventfdSet::Install(Doorbell& d, UniqueFd fd) {
  epoll_event event{};
  event.events = EPOLLIN;
  if (::epoll_ctl(d.epoll.get(), EPOLL_CTL_ADD, fd.get(), &event) != 0) {
    return wire::WireError(errno, "adding an ioeventfd to its epoll set");
  }
  const int old_fd = [&] {
    EventfdSlot::Lease lease = d.eventfd.Acquire();
    return lease ? lease.fd() : -1;
  }();
  // The client keeps the old file open, so closing our fd would not take
  // it out of the epoll set: remove it first.
  if (old_fd >= 0) ::epoll_ctl(d.epoll.get(), EPOLL_CTL_DEL, old_fd, nullptr);
  d.eventfd.Replace(std::move(fd));
  return absl::OkStatus();
}

absl::Status IoeventfdSet::Renew() {
  // All new fds first, so a failure leaves every doorbell as it was.
  std::vector<UniqueFd> fresh;
  fresh.reserve(size());
  for (size_t i = 0; i < size(); ++i) {
    fresh.emplace_back(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!fresh.back()) return wire::WireError(errno, "eventfd for an ioeventfd");
  }
  for (size_t i = 0; i < size(); ++i) {
    VFU_RETURN_IF_ERROR(Install(doorbells_[i], std::move(fresh[i])));
  }
  return absl::OkStatus();
}

int IoeventfdSet::wait_fd(size_t i) const { return doorbells_[i].epoll.get(); }

uint64_t IoeventfdSet::Consume(size_t i) {
  EventfdSlot::Lease lease = doorbells_[i].eventfd.Acquire();
  if (!lease) return 0;
  uint64_t count = 0;
  iovec io{.iov_base = &count, .iov_len = sizeof count};
  // The client shares the file description and may clear O_NONBLOCK (and
  // drain the counter between our poll and this read): RWF_NOWAIT keeps
  // the read from blocking whatever the file's flags. EAGAIN: no ring.
  ssize_t n = ::preadv2(lease.fd(), &io, 1, -1, RWF_NOWAIT);
  if (n < 0 && errno == EOPNOTSUPP) {
    // Kernels before eventfd honoured RWF_NOWAIT (5.12): O_NONBLOCK only.
    n = ::read(lease.fd(), &count, sizeof count);
  }
  return n == sizeof count ? count : 0;
}

void IoeventfdSet::Ring(size_t i) {
  if (EventfdSlot::Lease lease = doorbells_[i].eventfd.Acquire(); lease) lease.Notify();
}

std::optional<size_t> IoeventfdSet::Match(uint32_t region, uint64_t offset,
                                          absl::Span<const uint8_t> data) const {
  for (size_t i = 0; i < specs_.size(); ++i) {
    const IoeventfdSpec& s = specs_[i];
    if (!s.trapped_write_rings) continue;
    if (s.region != region || s.offset != offset || s.size != data.size()) continue;
    if (s.datamatch && *s.datamatch != LittleEndianValue(data)) continue;
    return i;
  }
  return std::nullopt;
}

void IoeventfdSet::Describe(uint32_t region, std::vector<wire::IoFdEntry>& entries,
                            std::vector<int>& fds) const {
  for (size_t i = 0; i < specs_.size(); ++i) {
    const IoeventfdSpec& s = specs_[i];
    if (s.region != region) continue;
    EventfdSlot::Lease lease = doorbells_[i].eventfd.Acquire();
    if (!lease) continue;
    entries.push_back(wire::IoFdEntry{
        .offset = s.offset,
        .size = s.size,
        .fd_index = static_cast<uint32_t>(fds.size()),
        .type = wire::IoFdType::kIoeventfd,
        .flags = s.datamatch ? kKvmIoeventfdFlagDatamatch : 0,
        .datamatch = s.datamatch.value_or(0),
    });
    // Valid after the lease ends: only Renew (this strand) closes it.
    fds.push_back(lease.fd());
  }
}

}  // namespace vfu
