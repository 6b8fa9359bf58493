#include "vfu/base/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace vfu {
namespace {

LogLevel LevelFromEnvironment() {
  const char* value = std::getenv("VFU_LOG_LEVEL");
  if (value == nullptr) return LogLevel::kInfo;
  if (std::strcmp(value, "debug") == 0) return LogLevel::kDebug;
  if (std::strcmp(value, "warning") == 0) return LogLevel::kWarning;
  if (std::strcmp(value, "error") == 0) return LogLevel::kError;
  return LogLevel::kInfo;
}

std::atomic<int>& MinLevel() {
  static std::atomic<int> level{static_cast<int>(LevelFromEnvironment())};
  return level;
}

absl::Mutex sink_mu(absl::kConstInit);
std::function<void(LogLevel, std::string_view)>* sink ABSL_GUARDED_BY(sink_mu) = nullptr;
std::atomic<bool> capture_active{false};
// This thread's innermost ScopedThreadLogSink.
thread_local ScopedThreadLogSink* thread_sink = nullptr;

char LevelLetter(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return 'D';
    case LogLevel::kInfo: return 'I';
    case LogLevel::kWarning: return 'W';
    case LogLevel::kError: return 'E';
  }
  return '?';
}

}  // namespace

void SetMinLogLevel(LogLevel level) {
  MinLevel().store(static_cast<int>(level), std::memory_order_relaxed);
}

LogLevel MinLogLevel() {
  return static_cast<LogLevel>(MinLevel().load(std::memory_order_relaxed));
}

namespace log_internal {

bool CaptureActive() { return capture_active.load(std::memory_order_relaxed); }

bool Enabled(LogLevel level) {
  if (CaptureActive()) return true;
  if (thread_sink != nullptr) return thread_sink->Wants(level);
  return level >= MinLogLevel();
}

void EmitToCapture(LogLevel level, std::string message) {
  absl::MutexLock lock(&sink_mu);
  if (sink != nullptr) (*sink)(level, message);
}

std::string WithSuppressed(std::string message, uint64_t suppressed) {
  if (suppressed == 0) return message;
  return absl::StrCat(message, " (", suppressed, " similar lines suppressed)");
}

void Emit(LogLevel level, const char* file, int line, std::string message) {
  {
    absl::MutexLock lock(&sink_mu);
    if (sink != nullptr) (*sink)(level, message);
  }
  if (thread_sink != nullptr) {
    if (thread_sink->Wants(level)) thread_sink->Deliver(level, message);
    return;
  }
  if (level < MinLogLevel()) return;
  const char* base = std::strrchr(file, '/');
  std::string text = absl::StrCat(
      std::string(1, LevelLetter(level)),
      absl::FormatTime(" %H:%M:%E6S ", absl::Now(), absl::LocalTimeZone()),
      base ? base + 1 : file, ":", line, "] ", message, "\n");
  // One write per line keeps concurrent lines whole; a short write to a
  // terminal or pipe is finished off rather than dropped.
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) break;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace log_internal

bool LogRateLimiter::Allow(absl::Time now, uint64_t* suppressed) {
  const int64_t now_ns = absl::ToUnixNanos(now);
  int64_t next = next_allowed_ns_.load(std::memory_order_relaxed);
  // One thread wins the slot; the others count themselves as held back.
  if (now_ns < next ||
      !next_allowed_ns_.compare_exchange_strong(next, now_ns + interval_ns_,
                                                std::memory_order_relaxed)) {
    suppressed_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  *suppressed = suppressed_.exchange(0, std::memory_order_relaxed);
  return true;
}

ScopedLogCapture::ScopedLogCapture(std::function<void(LogLevel, std::string_view)> new_sink) {
  absl::MutexLock lock(&sink_mu);
  if (sink != nullptr) previous_ = std::move(*sink);
  delete sink;
  sink = new std::function<void(LogLevel, std::string_view)>(std::move(new_sink));
  capture_active.store(true, std::memory_order_relaxed);
}

ScopedLogCapture::~ScopedLogCapture() {
  absl::MutexLock lock(&sink_mu);
  delete sink;
  sink = previous_ ? new std::function<void(LogLevel, std::string_view)>(std::move(previous_))
                   : nullptr;
  capture_active.store(sink != nullptr, std::memory_order_relaxed);
}

ScopedThreadLogSink::ScopedThreadLogSink(LogLevel min_level, Write write, void* arg)
    : min_level_(min_level), write_(write), arg_(arg), previous_(thread_sink) {
  thread_sink = this;
}

ScopedThreadLogSink::~ScopedThreadLogSink() { thread_sink = previous_; }

}  // namespace vfu
