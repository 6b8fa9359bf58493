// Helpers for wire-codec tests: byte vectors from hex and the exact errno a
// status carries.
#ifndef VFU_TESTING_WIRE_MATCHERS_H_
#define VFU_TESTING_WIRE_MATCHERS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "vfu/wire/errno_status.h"

namespace vfu::testing {

// Bytes from hex text; spaces, newlines and '|' are ignored, so a golden
// vector can be laid out field by field: "20000000 | 03000000 | ...".
// Aborts on malformed text (a bug in the test).
std::vector<uint8_t> HexBytes(std::string_view hex);

// Hex text of `bytes`, for failure messages.
std::string ToHex(const std::vector<uint8_t>& bytes);

inline const absl::Status& StatusOf(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}

// Matches a failed Status/StatusOr whose reply errno is `errno_value`.
MATCHER_P(FailsWithErrno, errno_value,
          "fails with errno " + std::to_string(errno_value)) {
  const absl::Status& status = StatusOf(arg);
  if (status.ok()) {
    *result_listener << "status is OK";
    return false;
  }
  int actual = ::vfu::wire::ReplyErrno(status);
  *result_listener << "errno " << actual << " (" << status << ")";
  return actual == errno_value;
}

}  // namespace vfu::testing

#endif  // VFU_TESTING_WIRE_MATCHERS_H_
