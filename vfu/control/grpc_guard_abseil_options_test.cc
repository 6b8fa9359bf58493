// vfu's own Abseil uses std types (ABSL_OPTION_USE_STD_* = 2), which is what
// grpc_guard.h detects; if that ever changed, the guard would stop firing
// and grpc_guard_test would no longer model it.
#include "absl/base/options.h"

#include <gtest/gtest.h>

TEST(GrpcGuardAbseilOptionsTest, OurAbseilUsesStdOptional) {
  EXPECT_EQ(ABSL_OPTION_USE_STD_OPTIONAL, 2);
}
