// Minimal leveled logging to stderr (the Abseil this project builds against
// has no absl/log yet).
//
//   VFU_LOG(kWarning, "client ", id, " sent ", n, " fds with DMA_UNMAP");
//
// Lines a peer can trigger at will go through VFU_LOG_EVERY, which lets one
// line per call site out per period and counts the ones it held back:
//
//   VFU_LOG_EVERY(absl::Seconds(10), kWarning, "DMA_MAP refused: ", why);
//
// Arguments are joined with absl::StrCat. Each line is written with a single
// write(2), so lines from different threads do not interleave. Thread-safe.
// Tests can capture lines with ScopedLogCapture.
#ifndef VFU_BASE_LOG_H_
#define VFU_BASE_LOG_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace vfu {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Lines below this level are dropped. Default kInfo; the environment
// variable VFU_LOG_LEVEL (debug, info, warning, error) overrides it at start.
void SetMinLogLevel(LogLevel level);
LogLevel MinLogLevel();

namespace log_internal {
void Emit(LogLevel level, const char* file, int line, std::string message);

// The gate of one VFU_LOG_EVERY call site. Thread-safe, lock-free.
class RateLimiter {
 public:
  explicit RateLimiter(absl::Duration period);
  // True when a line may go out now (the first call, then the first one a
  // whole period after the last line let out); `*suppressed` is then the
  // number of calls held back since that line.
  bool Allow(uint64_t* suppressed);

 private:
  const int64_t period_ns_;
  // When the next line may go out (ns since the epoch; 0: now).
  std::atomic<int64_t> next_ns_{0};
  std::atomic<uint64_t> suppressed_{0};
};

// " (N similar lines suppressed)", or "" for 0.
std::string SuppressedNote(uint64_t suppressed);
}  // namespace log_internal

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

}  // namespace vfu

#define VFU_LOG(level, ...)                                                    \
  do {                                                                         \
    if (::vfu::LogLevel::level >= ::vfu::MinLogLevel() ||                      \
        ::vfu::log_internal::CaptureActive()) {                                \
      ::vfu::log_internal::Emit(::vfu::LogLevel::level, __FILE__, __LINE__,    \
                                ::absl::StrCat(__VA_ARGS__));                  \
    }                                                                          \
  } while (false)

#define VFU_LOG_EVERY(period, level, ...)                                      \
  do {                                                                         \
    static ::vfu::log_internal::RateLimiter vfu_log_rate_limiter(period);      \
    uint64_t vfu_log_suppressed = 0;                                           \
    if (vfu_log_rate_limiter.Allow(&vfu_log_suppressed)) {                     \
      VFU_LOG(level, __VA_ARGS__,                                              \
              ::vfu::log_internal::SuppressedNote(vfu_log_suppressed));        \
    }                                                                          \
  } while (false)

namespace vfu::log_internal {
bool CaptureActive();
}  // namespace vfu::log_internal

#endif  // VFU_BASE_LOG_H_
