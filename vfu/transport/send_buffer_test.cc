#include "vfu/transport/send_buffer.h"

#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

#include "gtest/gtest.h"

namespace vfu {
namespace {

int SendBuffer(int fd) {
  int size = 0;
  socklen_t length = sizeof size;
  EXPECT_EQ(::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, &length), 0);
  return size;
}

// The buffer grows to hold the message where the system allows it, and is
// never made smaller.
TEST(SendBufferTest, GrowsUpToTheSystemLimitAndNeverShrinks) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  const int before = SendBuffer(pair[0]);
  long max = 0;
  std::ifstream("/proc/sys/net/core/wmem_max") >> max;

  constexpr size_t kMessage = 1 << 20;
  RaiseSendBuffer(pair[0], kMessage);
  const int raised = SendBuffer(pair[0]);
  EXPECT_GE(raised, before);
  if (max >= static_cast<long>(kMessage)) EXPECT_GE(raised, static_cast<int>(kMessage));

  RaiseSendBuffer(pair[0], 4096);  // a smaller message: left alone
  EXPECT_EQ(SendBuffer(pair[0]), raised);
  ::close(pair[0]);
  ::close(pair[1]);
}

}  // namespace
}  // namespace vfu
