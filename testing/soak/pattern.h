// Pattern: one kind of client the soak test runs against the server, over
// and over, in sessions (connect, do its thing, leave). Well-behaved
// patterns check every reply and every DMA byte; hostile ones do what a
// broken or malicious VMM does and check that the server copes. Each
// pattern has a device instance of its own (one client per socket), so
// patterns meet only in what the server shares: its IO thread, its
// workers, its fds and its memory.
//
// A session must bound every loop (by count, and by
// SessionContext::session_deadline, the end of the run) and every wait (by
// the scale's call timeout or a stated bound), and must leave nothing behind
// in this process (fds, threads). It records what it did and every wrong
// answer in PatternStats.
#ifndef VFU_TESTING_SOAK_PATTERN_H_
#define VFU_TESTING_SOAK_PATTERN_H_

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "testing/soak/server_process.h"

namespace vfu::soak {

// What a run scales with the build: sanitizers slow everything down.
struct SoakScale {
  // Client timeout for one command, and the bound of one wait for the
  // device (an interrupt, a job).
  absl::Duration call_timeout = absl::Seconds(10);
  // Largest DMA engine copy of the well-behaved client.
  uint32_t max_copy_bytes = 1 << 20;
  // Bytes of client memory shared per kind (fd-backed, fd-less).
  uint64_t client_memory_bytes = 4 << 20;
  // Commands or connections per hostile session (floods, storms, drips).
  uint32_t burst = 2000;
  // The server's RuntimeOptions::max_write_stall: a client reading no
  // replies must be gone this long after its replies stopped draining.
  absl::Duration server_write_stall = absl::Seconds(2);
};

// Per-pattern counters, written only by the pattern's own thread and read
// once it has been joined.
struct PatternStats {
  uint64_t sessions = 0;
  // Commands, copies, connections: whatever unit the pattern works in.
  uint64_t operations = 0;
  // Bytes compared against what they must be (reads, DMA copies).
  uint64_t bytes_verified = 0;
  // Connection attempts retried without a session: a non-blocking connect
  // that found the kernel's backlog full, or a client that gave up waiting
  // for its turn while the previous session was torn down.
  uint64_t retried = 0;
  // Wrong replies, missing interrupts, lost writes, unusable slots...
  uint64_t errors = 0;
  std::vector<std::string> error_samples;
  // Largest growth of the server's fd count / RSS seen during a session.
  int max_fd_growth = 0;
  int64_t max_rss_growth_kb = 0;

  template <typename... Args>
  void Fail(const Args&... args) {
    ++errors;
    if (error_samples.size() < 5) error_samples.push_back(absl::StrCat(args...));
  }
};

// What one session may use.
struct SessionContext {
  // The pattern's own device instance.
  std::string socket;
  ServerProcess* server = nullptr;
  SoakScale scale;
  // The end of the run: loops stop starting new work past it. (Waits are
  // bounded on their own, so a stuck server makes a session return with an
  // error, never hang.)
  absl::Time session_deadline;
  std::mt19937_64* rng = nullptr;

  uint64_t Uniform(uint64_t low, uint64_t high) {  // [low, high]
    return std::uniform_int_distribution<uint64_t>(low, high)(*rng);
  }
  absl::Time CallDeadline() const { return absl::Now() + scale.call_timeout; }
};

enum class DeviceKind { kGpio, kDmaEngine, kScratchpad, kNvme };
const char* DeviceKindName(DeviceKind kind);

class Pattern {
 public:
  virtual ~Pattern() = default;
  virtual std::string_view name() const = 0;
  virtual DeviceKind device() const = 0;
  // Well-behaved patterns must make progress; a hostile one's slot is
  // probed after each session (a fresh client must be served).
  virtual bool hostile() const = 0;
  // One session: connect, act, verify, leave.
  virtual void RunSession(SessionContext& context, PatternStats& stats) = 0;
};

// Every pattern, in the order the report lists them.
std::vector<std::unique_ptr<Pattern>> AllPatterns();

}  // namespace vfu::soak

#endif  // VFU_TESTING_SOAK_PATTERN_H_
