#include "vfu/wire/errno_status.h"

#include <cerrno>

#include "gtest/gtest.h"

namespace vfu::wire {
namespace {

// An errno given to WireError comes back exactly, even where several errnos
// share a status code.
TEST(ErrnoStatusTest, WireErrorKeepsExactErrno) {
  for (int e : {EINVAL, EEXIST, ENOENT, ENOSPC, ENOTSUP, EPROTO, E2BIG, EFAULT, ECONNRESET}) {
    absl::Status s = WireError(e, "x");
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(ReplyErrno(s), e) << e;
  }
}

// WireError picks the canonical code for its errno.
TEST(ErrnoStatusTest, WireErrorUsesCanonicalCode) {
  EXPECT_EQ(WireError(EINVAL, "").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WireError(EEXIST, "").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(WireError(ENOENT, "").code(), absl::StatusCode::kNotFound);
}

// Plain statuses are mapped by code.
TEST(ErrnoStatusTest, MapsPlainStatusByCode) {
  EXPECT_EQ(ReplyErrno(absl::InvalidArgumentError("")), EINVAL);
  EXPECT_EQ(ReplyErrno(absl::OutOfRangeError("")), EINVAL);
  EXPECT_EQ(ReplyErrno(absl::NotFoundError("")), ENOENT);
  EXPECT_EQ(ReplyErrno(absl::AlreadyExistsError("")), EEXIST);
  EXPECT_EQ(ReplyErrno(absl::UnavailableError("")), ECONNRESET);
  EXPECT_EQ(ReplyErrno(absl::DeadlineExceededError("")), ETIMEDOUT);
  EXPECT_EQ(ReplyErrno(absl::UnknownError("")), EINVAL);
  EXPECT_EQ(ReplyErrno(absl::OkStatus()), 0);
}

// A peer's error field in (0, 4096] is kept; 0 and larger values read as EINVAL.
TEST(ErrnoStatusTest, ReplyErrorFieldIsClamped) {
  EXPECT_EQ(ReplyErrno(StatusFromReplyError(EFAULT, "DMA_READ")), EFAULT);
  EXPECT_EQ(ReplyErrno(StatusFromReplyError(4096, "x")), 4096);
  EXPECT_EQ(ReplyErrno(StatusFromReplyError(0, "x")), EINVAL);
  EXPECT_EQ(ReplyErrno(StatusFromReplyError(4097, "x")), EINVAL);
  EXPECT_EQ(ReplyErrno(StatusFromReplyError(0xffffffffu, "x")), EINVAL);
}

}  // namespace
}  // namespace vfu::wire
