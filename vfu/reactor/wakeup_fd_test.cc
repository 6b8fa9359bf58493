#include "vfu/reactor/wakeup_fd.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cstdint>
#include <limits>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"

namespace vfu {
namespace {

// True if `fd` polls readable right now.
bool IsReadable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
  int n = ::poll(&p, 1, /*timeout=*/0);
  EXPECT_GE(n, 0);
  return n == 1 && (p.revents & POLLIN) != 0;
}

// The eventfd comes back non-blocking, close-on-exec and idle.
TEST(WakeupFdTest, CreateGivesIdleNonBlockingFd) {
  ASSERT_OK_AND_ASSIGN(WakeupFd wakeup, WakeupFd::Create());
  ASSERT_GE(wakeup.fd(), 0);
  EXPECT_NE(::fcntl(wakeup.fd(), F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(::fcntl(wakeup.fd(), F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_FALSE(IsReadable(wakeup.fd()));
}

// Wake makes the fd readable; Drain makes it idle again.
TEST(WakeupFdTest, WakeThenDrain) {
  ASSERT_OK_AND_ASSIGN(WakeupFd wakeup, WakeupFd::Create());
  EXPECT_OK(wakeup.Wake());
  EXPECT_TRUE(IsReadable(wakeup.fd()));
  EXPECT_OK(wakeup.Drain());
  EXPECT_FALSE(IsReadable(wakeup.fd()));
}

// Several wakes coalesce: one Drain clears them all.
TEST(WakeupFdTest, WakesCoalesce) {
  ASSERT_OK_AND_ASSIGN(WakeupFd wakeup, WakeupFd::Create());
  for (int i = 0; i < 3; ++i) EXPECT_OK(wakeup.Wake());
  EXPECT_OK(wakeup.Drain());
  EXPECT_FALSE(IsReadable(wakeup.fd()));
}

// Draining an idle fd (EAGAIN) is not an error.
TEST(WakeupFdTest, DrainIdleIsOk) {
  ASSERT_OK_AND_ASSIGN(WakeupFd wakeup, WakeupFd::Create());
  EXPECT_OK(wakeup.Drain());
}

// A saturated counter makes write() fail with EAGAIN; the fd is readable, so
// Wake still reports success.
TEST(WakeupFdTest, WakeOnSaturatedCounterIsOk) {
  ASSERT_OK_AND_ASSIGN(WakeupFd wakeup, WakeupFd::Create());
  const uint64_t max = std::numeric_limits<uint64_t>::max() - 1;
  ASSERT_EQ(::write(wakeup.fd(), &max, sizeof(max)), sizeof(max));
  EXPECT_OK(wakeup.Wake());
  EXPECT_TRUE(IsReadable(wakeup.fd()));
  EXPECT_OK(wakeup.Drain());
  EXPECT_FALSE(IsReadable(wakeup.fd()));
}

// Ownership moves with the object.
TEST(WakeupFdTest, MoveTransfersFd) {
  ASSERT_OK_AND_ASSIGN(WakeupFd a, WakeupFd::Create());
  int fd = a.fd();
  WakeupFd b = std::move(a);
  EXPECT_EQ(b.fd(), fd);
  EXPECT_OK(b.Wake());
  EXPECT_TRUE(IsReadable(b.fd()));
}

}  // namespace
}  // namespace vfu
