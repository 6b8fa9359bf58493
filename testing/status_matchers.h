// GoogleTest matchers for absl::Status and absl::StatusOr, in the spelling of
// newer Abseil releases (absl/status/status_matchers.h):
//
//   EXPECT_THAT(DoIt(), IsOk());
//   EXPECT_THAT(Decode(bytes), StatusIs(absl::StatusCode::kInvalidArgument));
//   ASSERT_OK_AND_ASSIGN(auto value, Decode(bytes));
#ifndef VFU_TESTING_STATUS_MATCHERS_H_
#define VFU_TESTING_STATUS_MATCHERS_H_

#include <ostream>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace vfu::testing {

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& status = GetStatus(arg);
  if (!status.ok()) *result_listener << "status is " << status;
  return status.ok();
}

MATCHER_P(StatusIs, code,
          "has status code " + std::string(absl::StatusCodeToString(code))) {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code;
}

}  // namespace vfu::testing

#define VFU_TESTING_CONCAT_INNER_(a, b) a##b
#define VFU_TESTING_CONCAT_(a, b) VFU_TESTING_CONCAT_INNER_(a, b)

// Asserts that `rexpr` (an absl::StatusOr) is OK and moves its value to `lhs`.
#define ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  ASSERT_OK_AND_ASSIGN_IMPL_(VFU_TESTING_CONCAT_(vfu_statusor_, __LINE__), lhs, rexpr)
#define ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, rexpr)            \
  auto statusor = (rexpr);                                          \
  ASSERT_TRUE(statusor.ok()) << "status is " << statusor.status();  \
  lhs = std::move(statusor).value()

#define ASSERT_OK(expr) ASSERT_THAT((expr), ::vfu::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT((expr), ::vfu::testing::IsOk())

#endif  // VFU_TESTING_STATUS_MATCHERS_H_
