#include "vfu/base/status_macros.h"

#include "gtest/gtest.h"
#include "testing/status_matchers.h"

namespace vfu {
namespace {

using ::vfu::testing::IsOk;
using ::vfu::testing::StatusIs;

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  VFU_ASSIGN_OR_RETURN(int half, Half(x));
  VFU_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

absl::Status CheckQuarter(int x, int* out) {
  VFU_RETURN_IF_ERROR(Quarter(x).status());
  *out = *Quarter(x);
  return absl::OkStatus();
}

// The first failing step's status is returned unchanged.
TEST(StatusMacrosTest, PropagatesFirstError) {
  EXPECT_THAT(Quarter(6), StatusIs(absl::StatusCode::kInvalidArgument));
  int out = 0;
  EXPECT_THAT(CheckQuarter(6, &out), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(out, 0);
}

// Values flow through when every step succeeds.
TEST(StatusMacrosTest, PassesValues) {
  ASSERT_OK_AND_ASSIGN(int q, Quarter(8));
  EXPECT_EQ(q, 2);
  int out = 0;
  EXPECT_THAT(CheckQuarter(12, &out), IsOk());
  EXPECT_EQ(out, 3);
}

}  // namespace
}  // namespace vfu
