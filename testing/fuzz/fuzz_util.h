// Helpers shared by the fuzz targets in this directory: reading structured
// choices from the front of the input, a check macro that reports the input
// that broke an invariant, and small wire helpers.
//
// Every LLVMFuzzerTestOneInput starts with
//
//   vfu::fuzz::InputScope scope(data, size);
//
// so that a failed VFU_FUZZ_CHECK prints the input (as hex) before it
// aborts, under libFuzzer and under the replay test alike.
//
// Not thread-safe; fuzz targets run single-threaded.
#ifndef VFU_TESTING_FUZZ_FUZZ_UTIL_H_
#define VFU_TESTING_FUZZ_FUZZ_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"

namespace vfu::fuzz {

// Marks `data` as the input under test while alive; also silences info and
// warning logs (decoders log every rejected message).
class InputScope {
 public:
  InputScope(const uint8_t* data, size_t size);
  ~InputScope();
  InputScope(const InputScope&) = delete;
  InputScope& operator=(const InputScope&) = delete;
};

// Prints `condition`, `message` and the current input, then aborts.
[[noreturn]] void Fail(const char* file, int line, const char* condition,
                       const std::string& message);

// Lowercase hex of `bytes`, at most `max_bytes` of them (then "...").
std::string Hex(absl::Span<const uint8_t> bytes, size_t max_bytes = 256);

// Consumes the input front to back. Reads past the end yield zeros (and an
// empty span), so a target never needs to check the size first.
class InputReader {
 public:
  InputReader(const uint8_t* data, size_t size) : data_(data, size) {}
  explicit InputReader(absl::Span<const uint8_t> data) : data_(data) {}

  uint8_t U8();
  uint16_t U16();
  uint32_t U32();
  uint64_t U64();
  // Up to `n` bytes (fewer at the end of the input).
  absl::Span<const uint8_t> Take(size_t n);
  // Everything not consumed yet.
  absl::Span<const uint8_t> Rest();

  size_t remaining() const { return data_.size(); }
  bool empty() const { return data_.empty(); }

 private:
  absl::Span<const uint8_t> data_;
};

// The errno an error reply for `status` would carry (vfu/wire/errno_status.h).
int Errno(const absl::Status& status);

// Holds the eventfds a target hands to the code under test and checks at
// the end that every one of them was closed (by whoever owned it last).
class FdTracker {
 public:
  // A fresh eventfd; its number is remembered.
  int NewEventFd();
  // Checks that no fd created here is still open. Call once everything
  // that could own one has been destroyed.
  void CheckAllClosed() const;
  size_t created() const { return fds_.size(); }

 private:
  std::vector<int> fds_;
};

}  // namespace vfu::fuzz

// Aborts with the current input when `condition` is false. The optional
// arguments are joined with absl::StrCat into the message.
#define VFU_FUZZ_CHECK(condition, ...)                                                \
  do {                                                                                \
    if (!(condition)) {                                                               \
      ::vfu::fuzz::Fail(__FILE__, __LINE__, #condition, ::absl::StrCat(__VA_ARGS__)); \
    }                                                                                 \
  } while (false)

// Defines libFuzzer's entry point: runs `run(InputReader&)` on each input
// inside an InputScope (so a failed check prints the input).
#define VFU_FUZZ_ENTRY_POINT(run)                                          \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { \
    ::vfu::fuzz::InputScope scope(data, size);                             \
    ::vfu::fuzz::InputReader in(data, size);                               \
    run(in);                                                               \
    return 0;                                                              \
  }

#endif  // VFU_TESTING_FUZZ_FUZZ_UTIL_H_
