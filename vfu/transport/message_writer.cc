#include "vfu/transport/message_writer.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

namespace vfu {
namespace {

// Appends iovecs for `message` from byte `skip` on, stopping at `max`.
// Returns the new count.
size_t GatherIovecs(const OutboundMessage& message, size_t skip, struct iovec* iov,
                    size_t count, size_t max) {
  auto add = [&](const uint8_t* data, size_t size) {
    if (skip >= size) {
      skip -= size;
      return;
    }
    if (count < max) {
      iov[count++] = {const_cast<uint8_t*>(data) + skip, size - skip};
    }
    skip = 0;
  };
  add(message.bytes.data(), message.bytes.size());
  for (absl::Span<const uint8_t> span : message.borrowed) add(span.data(), span.size());
  return count;
}

}  // namespace

void MessageWriter::Enqueue(OutboundMessage message) {
  queued_bytes_ += message.size();
  queued_fds_ += message.fds.size();
  if (!message.borrowed.empty()) ++borrowing_messages_;
  queue_.push_back(std::move(message));
}

void MessageWriter::DropFront() {
  OutboundMessage& front = queue_.front();
  queued_bytes_ -= front.size();
  queued_fds_ -= front.fds.size();
  if (!front.borrowed.empty()) --borrowing_messages_;
  ++dropped_messages_;
  queue_.pop_front();
}

void MessageWriter::Clear() {
  queue_.clear();
  sent_ = 0;
  queued_bytes_ = 0;
  queued_fds_ = 0;
  borrowing_messages_ = 0;
}

void MessageWriter::OwnBorrowedBytes() {
  if (borrowing_messages_ == 0) return;
  for (OutboundMessage& message : queue_) {
    if (message.borrowed.empty()) continue;
    // Appending keeps every byte at its offset, so sent_ stays valid.
    message.bytes.reserve(message.size());
    for (absl::Span<const uint8_t> span : message.borrowed) {
      message.bytes.insert(message.bytes.end(), span.begin(), span.end());
    }
    message.borrowed.clear();
  }
  borrowing_messages_ = 0;
}

absl::Status MessageWriter::Flush(int fd, Syscalls& syscalls) {
  struct iovec iov[kMaxIovecs];
  std::vector<char> control;
  while (!queue_.empty()) {
    OutboundMessage& front = queue_.front();
    if (sent_ == 0 && front.still_wanted && !front.still_wanted()) {
      DropFront();
      continue;
    }
    const bool send_fds = sent_ == 0 && !front.fds.empty();

    size_t count = GatherIovecs(front, sent_, iov, 0, kMaxIovecs);
    if (!send_fds) {
      // Gather following messages up to the next one that carries fds or
      // must be asked whether it is still wanted (it is asked as the front).
      for (size_t i = 1; i < queue_.size() && count < kMaxIovecs; ++i) {
        OutboundMessage& next = queue_[i];
        if (!next.fds.empty() || next.still_wanted) break;
        count = GatherIovecs(next, 0, iov, count, kMaxIovecs);
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
    if (send_fds && written > 0) {
      queued_fds_ -= front.fds.size();
      front.fds.clear();
    }
    queued_bytes_ -= written;
    while (written > 0) {
      OutboundMessage& head = queue_.front();
      const size_t left = head.size() - sent_;
      if (written < left) {
        sent_ += written;
        break;
      }
      written -= left;
      sent_ = 0;
      if (!head.borrowed.empty()) --borrowing_messages_;
      if (spares_ != nullptr) spares_->Give(std::move(head.bytes));
      queue_.pop_front();
    }
  }
  return absl::OkStatus();
}

}  // namespace vfu
