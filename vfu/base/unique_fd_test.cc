#include "vfu/base/unique_fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <utility>

#include "gtest/gtest.h"

namespace vfu {
namespace {

bool IsOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

// Destruction closes the descriptor.
TEST(UniqueFdTest, ClosesOnDestruction) {
  int raw;
  {
    UniqueFd fd(::dup(STDERR_FILENO));
    raw = fd.get();
    ASSERT_TRUE(IsOpen(raw));
  }
  EXPECT_FALSE(IsOpen(raw));
}

// Moving transfers ownership: the source no longer closes it.
TEST(UniqueFdTest, MoveTransfersOwnership) {
  UniqueFd a(::dup(STDERR_FILENO));
  int raw = a.get();
  UniqueFd b = std::move(a);
  EXPECT_FALSE(a.valid());
  EXPECT_EQ(b.get(), raw);
  EXPECT_TRUE(IsOpen(raw));
}

// release() hands the fd out without closing it.
TEST(UniqueFdTest, ReleaseDoesNotClose) {
  UniqueFd fd(::dup(STDERR_FILENO));
  int raw = fd.release();
  EXPECT_FALSE(fd.valid());
  EXPECT_TRUE(IsOpen(raw));
  ::close(raw);
}

// DuplicateFd yields an independent close-on-exec descriptor.
TEST(UniqueFdTest, DuplicateIsCloexec) {
  UniqueFd dup = DuplicateFd(STDERR_FILENO);
  ASSERT_TRUE(dup.valid());
  EXPECT_NE(dup.get(), STDERR_FILENO);
  EXPECT_TRUE(::fcntl(dup.get(), F_GETFD) & FD_CLOEXEC);
}

}  // namespace
}  // namespace vfu
