#include "vfu/transport/message_writer.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

namespace vfu {

void MessageWriter::Enqueue(OutboundMessage message) {
  queued_bytes_ += message.bytes.size();
  queue_.push_back(std::move(message));
}

void MessageWriter::Clear() {
  queue_.clear();
  sent_ = 0;
  queued_bytes_ = 0;
}

absl::Status MessageWriter::Flush(int fd, Syscalls& syscalls) {
  struct iovec iov[kMaxIovecs];
  std::vector<char> control;
  while (!queue_.empty()) {
    OutboundMessage& front = queue_.front();
    const bool send_fds = sent_ == 0 && !front.fds.empty();

    size_t count = 0;
    iov[count++] = {front.bytes.data() + sent_, front.bytes.size() - sent_};
    if (!send_fds) {
      // Gather following messages up to the next one that carries fds.
      for (size_t i = 1; i < queue_.size() && count < kMaxIovecs; ++i) {
        OutboundMessage& next = queue_[i];
        if (!next.fds.empty()) break;
        iov[count++] = {next.bytes.data(), next.bytes.size()};
      }
    }

    struct msghdr msg = {};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    if (send_fds) {
      const size_t fd_bytes = sizeof(int) * front.fds.size();
      control.assign(CMSG_SPACE(fd_bytes), 0);
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(fd_bytes);
      for (size_t i = 0; i < front.fds.size(); ++i) {
        int raw = front.fds[i].get();
        std::memcpy(CMSG_DATA(c) + i * sizeof(int), &raw, sizeof raw);
      }
    }

    SyscallResult r = syscalls.SendMsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r.would_block()) return absl::OkStatus();
    if (!r.ok()) {
      if (r.error == EPIPE || r.error == ECONNRESET) {
        return absl::UnavailableError("peer closed the connection");
      }
      return absl::ErrnoToStatus(r.error, "sendmsg");
    }

    // The kernel took the fds with the first byte; our copies can close.
    size_t written = static_cast<size_t>(r.value);
    if (send_fds && written > 0) front.fds.clear();
    queued_bytes_ -= written;
    while (written > 0) {
      OutboundMessage& head = queue_.front();
      size_t left = head.bytes.size() - sent_;
      if (written < left) {
        sent_ += written;
        break;
      }
      written -= left;
      sent_ = 0;
      queue_.pop_front();
    }
  }
  return absl::OkStatus();
}

}  // namespace vfu
