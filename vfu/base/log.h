// Minimal leveled logging to stderr (the Abseil this project builds against
// has no absl/log yet).
//
//   VFU_LOG(kWarning, "client ", id, " sent ", n, " fds with DMA_UNMAP");
//
// Arguments are joined with absl::StrCat. Each line is written with a single
// write(2), so lines from different threads do not interleave. Thread-safe.
// Tests can capture lines with ScopedLogCapture.
#ifndef VFU_BASE_LOG_H_
#define VFU_BASE_LOG_H_

#include <functional>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace vfu {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Lines below this level are dropped. Default kInfo; the environment
// variable VFU_LOG_LEVEL (debug, info, warning, error) overrides it at start.
void SetMinLogLevel(LogLevel level);
LogLevel MinLogLevel();

namespace log_internal {
void Emit(LogLevel level, const char* file, int line, std::string message);
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

namespace vfu::log_internal {
bool CaptureActive();
}  // namespace vfu::log_internal

#endif  // VFU_BASE_LOG_H_
