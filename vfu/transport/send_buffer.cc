#include "vfu/transport/send_buffer.h"

#include <sys/socket.h>

#include <climits>

namespace vfu {

void RaiseSendBuffer(int fd, size_t message_size) {
  int current = 0;
  socklen_t length = sizeof current;
  if (::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &current, &length) == 0 &&
      static_cast<size_t>(current) >= 2 * message_size) {
    return;
  }
  const int wanted = message_size > INT_MAX ? INT_MAX : static_cast<int>(message_size);
  [[maybe_unused]] int rc = ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &wanted, sizeof wanted);
}

}  // namespace vfu
