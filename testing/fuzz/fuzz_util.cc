#include "testing/fuzz/fuzz_util.h"

#include <fcntl.h>
#include <sys/eventfd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "vfu/base/log.h"
#include "vfu/wire/errno_status.h"

namespace vfu::fuzz {
namespace {

absl::Span<const uint8_t> current_input;

}  // namespace

InputScope::InputScope(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    SetMinLogLevel(LogLevel::kError);
    return true;
  }();
  (void)quiet;
  current_input = absl::MakeConstSpan(data, size);
}

InputScope::~InputScope() { current_input = {}; }

void Fail(const char* file, int line, const char* condition, const std::string& message) {
  std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n  %s\n  input (%zu bytes): %s\n", file, line,
               condition, message.c_str(), current_input.size(), Hex(current_input, 4096).c_str());
  std::abort();
}

std::string Hex(absl::Span<const uint8_t> bytes, size_t max_bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  const size_t n = bytes.size() < max_bytes ? bytes.size() : max_bytes;
  out.reserve(2 * n + 3);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[bytes[i] >> 4]);
    out.push_back(kDigits[bytes[i] & 0xf]);
  }
  if (n < bytes.size()) out += "...";
  return out;
}

uint8_t InputReader::U8() {
  absl::Span<const uint8_t> b = Take(1);
  return b.empty() ? 0 : b[0];
}

uint16_t InputReader::U16() {
  uint16_t v = 0;
  absl::Span<const uint8_t> b = Take(sizeof v);
  if (!b.empty()) std::memcpy(&v, b.data(), b.size());
  return v;
}

uint32_t InputReader::U32() {
  uint32_t v = 0;
  absl::Span<const uint8_t> b = Take(sizeof v);
  if (!b.empty()) std::memcpy(&v, b.data(), b.size());
  return v;
}

uint64_t InputReader::U64() {
  uint64_t v = 0;
  absl::Span<const uint8_t> b = Take(sizeof v);
  if (!b.empty()) std::memcpy(&v, b.data(), b.size());
  return v;
}

absl::Span<const uint8_t> InputReader::Take(size_t n) {
  absl::Span<const uint8_t> b = data_.first(n < data_.size() ? n : data_.size());
  data_.remove_prefix(b.size());
  return b;
}

absl::Span<const uint8_t> InputReader::Rest() { return Take(data_.size()); }

int Errno(const absl::Status& status) { return wire::ReplyErrno(status); }

int FdTracker::NewEventFd() {
  int fd = ::eventfd(0, EFD_CLOEXEC);
  VFU_FUZZ_CHECK(fd >= 0, "eventfd: ", std::strerror(errno));
  fds_.push_back(fd);
  return fd;
}

void FdTracker::CheckAllClosed() const {
  // Numbers are reused once closed, so an fd of ours that was closed and
  // whose number went to a later fd of ours is still caught: at this point
  // none of ours may be open at all. libFuzzer opens nothing meanwhile.
  for (int fd : fds_) {
    errno = 0;
    const bool open = ::fcntl(fd, F_GETFD) != -1 || errno != EBADF;
    VFU_FUZZ_CHECK(!open, "fd ", fd, " leaked (", fds_.size(), " created)");
  }
}

}  // namespace vfu::fuzz
