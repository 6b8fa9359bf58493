// Helpers the soak patterns share: connecting while the previous session's
// client is still attached, client memory of both kinds, eventfds, and
// 32-bit register access through a Client.
#ifndef VFU_TESTING_SOAK_SESSION_HELPERS_H_
#define VFU_TESTING_SOAK_SESSION_HELPERS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "testing/soak/pattern.h"
#include "vfu/base/unique_fd.h"
#include "vfu/client/client.h"

namespace vfu::soak {

// Connects a Client to the session's socket, retrying while the server
// refuses (it serves one client per socket and may not yet have seen the
// previous one leave), up to `patience` and the session deadline. Counts
// retries in stats.retried.
absl::StatusOr<std::unique_ptr<Client>> ConnectClient(SessionContext& context,
                                                      PatternStats& stats,
                                                      absl::Duration patience);

// Paces attempt number `attempt` of a retry loop: at once for the first
// hundred (the server normally notices a departed client within that),
// then 1 ms apart, so that a slot that stays taken costs neither the CPU
// nor the server's log thousands of refusals per second.
void PaceRetry(int attempt);

// A memfd of `size` bytes mapped in this process, or a sparse one.
class SharedMemory {
 public:
  static absl::StatusOr<std::unique_ptr<SharedMemory>> Create(uint64_t size, bool map = true);
  ~SharedMemory();
  absl::Span<uint8_t> bytes() { return absl::MakeSpan(memory_, mapped_ ? size_ : 0); }
  UniqueFd Share() const { return DuplicateFd(fd_.get()); }
  int fd() const { return fd_.get(); }
  uint64_t size() const { return size_; }

 private:
  SharedMemory() = default;
  UniqueFd fd_;
  uint64_t size_ = 0;
  uint8_t* memory_ = nullptr;
  bool mapped_ = false;
};

// A non-blocking eventfd (or a blocking one).
UniqueFd NewEventfd(bool blocking = false);
// Waits until `deadline` for `fd` to be signalled and consumes it: the
// count, or nullopt.
std::optional<uint64_t> ReadEventfd(const UniqueFd& fd, absl::Time deadline);
// Consumes whatever `fd` holds now without waiting (0 if nothing).
uint64_t DrainEventfd(const UniqueFd& fd);

absl::StatusOr<uint32_t> Read32(Client& client, uint32_t region, uint64_t offset);
absl::Status Write32(Client& client, uint32_t region, uint64_t offset, uint32_t value,
                     bool posted = false);
absl::Status Write64(Client& client, uint32_t region, uint64_t offset, uint64_t value,
                     bool posted = false);

// Fills `bytes` with random bytes.
void FillRandom(SessionContext& context, absl::Span<uint8_t> bytes);

// Index of the first byte where `a` and `b` differ, or -1.
int64_t FirstDifference(absl::Span<const uint8_t> a, absl::Span<const uint8_t> b);

// Records the growth of the server's fds and RSS since `before` in stats.
void NoteServerGrowth(const SessionContext& context, const ProcessFigures& before,
                      PatternStats& stats);

}  // namespace vfu::soak

#endif  // VFU_TESTING_SOAK_SESSION_HELPERS_H_
