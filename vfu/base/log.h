// Minimal leveled logging to stderr (the Abseil this project builds against
// has no absl/log yet).
//
//   VFU_LOG(kWarning, "client ", id, " sent ", n, " fds with DMA_UNMAP");
//
// Arguments are joined with absl::StrCat. Each line is written with a single
// write(2), so lines from different threads do not interleave. Thread-safe.
// Tests can capture lines with ScopedLogCapture.
//
// For lines a peer can trigger at will (refused input, abusive clients),
// VFU_LOG_RATE_LIMITED writes at most one line per call site per
// kLogRateLimitInterval and tells how many it held back:
//
//   VFU_LOG_RATE_LIMITED(kWarning, name, ": dropping reply with unknown id ", id);
//   -> "... dropping reply with unknown id 7 (12 similar lines suppressed)"
//
// Held-back lines still reach an active ScopedLogCapture, so a test that
// expects a line sees it whatever ran before it.
//
// A thread can send its lines elsewhere than stderr with a
// ScopedThreadLogSink (the C API hands the lines logged while it serves a
// context to that context's log callback, at the level the user asked).
#ifndef VFU_BASE_LOG_H_
#define VFU_BASE_LOG_H_

#include <functional>
#include <string>
#include <string_view>

#include <atomic>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace vfu {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Lines below this level are dropped. Default kInfo; the environment
// variable VFU_LOG_LEVEL (debug, info, warning, error) overrides it at start.
void SetMinLogLevel(LogLevel level);
LogLevel MinLogLevel();

namespace log_internal {
void Emit(LogLevel level, const char* file, int line, std::string message);
// Hands a line to the active capture only (a rate-limited line held back).
void EmitToCapture(LogLevel level, std::string message);
}  // namespace log_internal

// Shortest time between two lines of one VFU_LOG_RATE_LIMITED call site.
inline constexpr absl::Duration kLogRateLimitInterval = absl::Seconds(1);

// Lets one event through per interval and counts the others. Lock-free;
// one per call site (a function-local static of VFU_LOG_RATE_LIMITED).
class LogRateLimiter {
 public:
  explicit LogRateLimiter(absl::Duration interval = kLogRateLimitInterval)
      : interval_ns_(absl::ToInt64Nanoseconds(interval)) {}

  // Whether an event at `now` may be logged. When it may, `*suppressed` is
  // set to the number of events held back since the last one let through.
  bool Allow(absl::Time now, uint64_t* suppressed);

 private:
  const int64_t interval_ns_;
  // Nanoseconds since the epoch before which events are held back.
  std::atomic<int64_t> next_allowed_ns_{0};
  std::atomic<uint64_t> suppressed_{0};
};

// While alive, every emitted line (at any level) is also handed to `sink`.
// Sinks nest; the innermost one is called. For tests.
class ScopedLogCapture {
 public:
  explicit ScopedLogCapture(std::function<void(LogLevel, std::string_view)> sink);
  ~ScopedLogCapture();
  ScopedLogCapture(const ScopedLogCapture&) = delete;
  ScopedLogCapture& operator=(const ScopedLogCapture&) = delete;

 private:
  std::function<void(LogLevel, std::string_view)> previous_;
};

// While alive, the lines this thread logs go to `write(arg, ...)` instead
// of stderr when at `min_level` or above, and are dropped otherwise (all of
// them when `write` is null); MinLogLevel() does not apply. An active
// ScopedLogCapture still sees every line. Sinks nest per thread; create and
// destroy on the same thread.
class ScopedThreadLogSink {
 public:
  using Write = void (*)(void* arg, LogLevel level, std::string_view message);
  ScopedThreadLogSink(LogLevel min_level, Write write, void* arg);
  ~ScopedThreadLogSink();
  ScopedThreadLogSink(const ScopedThreadLogSink&) = delete;
  ScopedThreadLogSink& operator=(const ScopedThreadLogSink&) = delete;

  bool Wants(LogLevel level) const { return write_ != nullptr && level >= min_level_; }
  void Deliver(LogLevel level, std::string_view message) const { write_(arg_, level, message); }

 private:
  const LogLevel min_level_;
  const Write write_;
  void* const arg_;
  ScopedThreadLogSink* const previous_;
};

}  // namespace vfu

#define VFU_LOG(level, ...)                                                    \
  do {                                                                         \
    if (::vfu::log_internal::Enabled(::vfu::LogLevel::level)) {                \
      ::vfu::log_internal::Emit(::vfu::LogLevel::level, __FILE__, __LINE__,    \
                                ::absl::StrCat(__VA_ARGS__));                  \
    }                                                                          \
  } while (false)

#define VFU_LOG_RATE_LIMITED(level, ...)                                                  \
  do {                                                                                   \
    static ::vfu::LogRateLimiter vfu_log_limiter;                                        \
    if (::vfu::log_internal::Enabled(::vfu::LogLevel::level)) {                          \
      uint64_t vfu_log_suppressed = 0;                                                   \
      if (vfu_log_limiter.Allow(::absl::Now(), &vfu_log_suppressed)) {                   \
        ::vfu::log_internal::Emit(                                                       \
            ::vfu::LogLevel::level, __FILE__, __LINE__,                                  \
            ::vfu::log_internal::WithSuppressed(::absl::StrCat(__VA_ARGS__),             \
                                                vfu_log_suppressed));                    \
      } else if (::vfu::log_internal::CaptureActive()) {                                 \
        ::vfu::log_internal::EmitToCapture(::vfu::LogLevel::level,                       \
                                           ::absl::StrCat(__VA_ARGS__));                 \
      }                                                                                  \
    }                                                                                    \
  } while (false)

namespace vfu::log_internal {
bool CaptureActive();
// Whether a line at `level` goes anywhere from this thread (its sink, or
// stderr by MinLogLevel(), or a capture).
bool Enabled(LogLevel level);
// `message`, plus how many similar lines were held back if any.
std::string WithSuppressed(std::string message, uint64_t suppressed);
}  // namespace vfu::log_internal

#endif  // VFU_BASE_LOG_H_
