#include "testing/soak/session_helpers.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace vfu::soak {

const char* DeviceKindName(DeviceKind kind) {
  switch (kind) {
    case DeviceKind::kGpio:
      return "gpio";
    case DeviceKind::kDmaEngine:
      return "dma_engine";
    case DeviceKind::kScratchpad:
      return "scratchpad";
    case DeviceKind::kNvme:
      return "nvme";
  }
  return "?";
}

void PaceRetry(int attempt) {
  if (attempt < 100) {
    std::this_thread::yield();
  } else {
    absl::SleepFor(absl::Milliseconds(1));
  }
}

absl::StatusOr<std::unique_ptr<Client>> ConnectClient(SessionContext& context,
                                                      PatternStats& stats,
                                                      absl::Duration patience) {
  const absl::Time deadline = absl::Now() + patience;
  ClientOptions options;
  options.timeout = context.scale.call_timeout;
  absl::Status last;
  // Each failed attempt (a client that gave up waiting for its turn) is
  // retried; the count bounds the loop as well as the deadline.
  for (int attempt = 0; attempt < 100000; ++attempt) {
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(context.socket, options);
    if (client.ok()) return client;
    last = client.status();
    if (!context.server->Alive()) return absl::UnavailableError("the server process is gone");
    if (absl::Now() >= deadline) break;
    ++stats.retried;
    PaceRetry(attempt);
  }
  return absl::UnavailableError(absl::StrCat("no connection within ",
                                             absl::FormatDuration(patience), ": ",
                                             last.ToString()));
}

absl::StatusOr<std::unique_ptr<SharedMemory>> SharedMemory::Create(uint64_t size, bool map) {
  std::unique_ptr<SharedMemory> memory(new SharedMemory());
  memory->size_ = size;
  memory->fd_.reset(::memfd_create("soak", MFD_CLOEXEC));
  if (!memory->fd_.valid()) return absl::ErrnoToStatus(errno, "memfd_create");
  if (::ftruncate(memory->fd_.get(), static_cast<off_t>(size)) != 0) {
    return absl::ErrnoToStatus(errno, "ftruncate");
  }
  if (map) {
    void* address =
        ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, memory->fd_.get(), 0);
    if (address == MAP_FAILED) return absl::ErrnoToStatus(errno, "mmap");
    memory->memory_ = static_cast<uint8_t*>(address);
    memory->mapped_ = true;
  }
  return memory;
}

SharedMemory::~SharedMemory() {
  if (mapped_) ::munmap(memory_, size_);
}

UniqueFd NewEventfd(bool blocking) {
  return UniqueFd(::eventfd(0, EFD_CLOEXEC | (blocking ? 0 : EFD_NONBLOCK)));
}

std::optional<uint64_t> ReadEventfd(const UniqueFd& fd, absl::Time deadline) {
  while (true) {
    uint64_t count = 0;
    if (::read(fd.get(), &count, sizeof count) == sizeof count) return count;
    const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left <= 0) return std::nullopt;
    pollfd p = {.fd = fd.get(), .events = POLLIN, .revents = 0};
    ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
  }
}

uint64_t DrainEventfd(const UniqueFd& fd) {
  uint64_t count = 0;
  return ::read(fd.get(), &count, sizeof count) == sizeof count ? count : 0;
}

absl::StatusOr<uint32_t> Read32(Client& client, uint32_t region, uint64_t offset) {
  absl::StatusOr<std::vector<uint8_t>> bytes = client.RegionRead(region, offset, 4);
  if (!bytes.ok()) return bytes.status();
  if (bytes->size() != 4) {
    return absl::DataLossError(absl::StrCat("REGION_READ of 4 bytes returned ", bytes->size()));
  }
  uint32_t value;
  std::memcpy(&value, bytes->data(), 4);
  return value;
}

absl::Status Write32(Client& client, uint32_t region, uint64_t offset, uint32_t value,
                     bool posted) {
  uint8_t bytes[4];
  std::memcpy(bytes, &value, 4);
  return client.RegionWrite(region, offset, bytes, posted);
}

absl::Status Write64(Client& client, uint32_t region, uint64_t offset, uint64_t value,
                     bool posted) {
  uint8_t bytes[8];
  std::memcpy(bytes, &value, 8);
  return client.RegionWrite(region, offset, bytes, posted);
}

void FillRandom(SessionContext& context, absl::Span<uint8_t> bytes) {
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    const uint64_t word = (*context.rng)();
    std::memcpy(bytes.data() + i, &word, 8);
  }
  for (; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>((*context.rng)());
}

int64_t FirstDifference(absl::Span<const uint8_t> a, absl::Span<const uint8_t> b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return static_cast<int64_t>(i);
  }
  return a.size() == b.size() ? -1 : static_cast<int64_t>(n);
}

void NoteServerGrowth(const SessionContext& context, const ProcessFigures& before,
                      PatternStats& stats) {
  const ProcessFigures now = context.server->Figures();
  if (now.fds < 0 || before.fds < 0) return;
  stats.max_fd_growth = std::max(stats.max_fd_growth, now.fds - before.fds);
  stats.max_rss_growth_kb = std::max(
      stats.max_rss_growth_kb, static_cast<int64_t>(now.rss_kb) - static_cast<int64_t>(before.rss_kb));
}

}  // namespace vfu::soak
