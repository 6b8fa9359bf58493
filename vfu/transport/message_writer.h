// MessageWriter: the outgoing queue of one connection, flushed to a
// non-blocking stream socket with partial-write handling.
//
// Consecutive messages without fds leave in one sendmsg (an iovec per
// segment: a message's `bytes`, then each of its borrowed spans), so a burst
// of replies costs one syscall and a borrowed payload is never copied. A
// message with fds is sent in a sendmsg of its own, its fds attached to its
// first byte: a receiver ties fds to the message that starts the send that
// carried them. A short write leaves the cursor at the exact byte, whichever
// segment it falls in; the caller arms EPOLLOUT when Flush() reports that
// bytes remain. A message that carries a still_wanted() predicate is asked
// just before its first byte would leave and dropped unsent when it says no
// (a request whose caller gave up while replies queued ahead of it).
//
//   queue_: [ front (sent_ bytes of it gone) | msg | msg | ... ]
//   a message on the wire: [ bytes | borrowed[0] | borrowed[1] | ... ]
//
// Thread-compatible: used by the IO thread only.
#ifndef VFU_TRANSPORT_MESSAGE_WRITER_H_
#define VFU_TRANSPORT_MESSAGE_WRITER_H_

#include <cstddef>
#include <deque>

#include "absl/status/status.h"
#include "vfu/base/syscalls.h"
#include "vfu/transport/message.h"
#include "vfu/transport/spare_buffers.h"

namespace vfu {

class MessageWriter {
 public:
  // Queues `message`. Its borrowed spans must stay valid and unchanged until
  // it has been sent, or until Clear() or OwnBorrowedBytes().
  void Enqueue(OutboundMessage message);

  // Sends as much as the socket takes.
  //   OK           everything was sent, or the socket is full (see empty())
  //   Unavailable  the peer is gone (EPIPE, ECONNRESET)
  //   other        an unexpected sendmsg error
  absl::Status Flush(int fd, Syscalls& syscalls);

  bool empty() const { return queue_.empty(); }
  // Bytes queued and not yet sent; what back-pressure is judged on.
  size_t queued_bytes() const { return queued_bytes_; }
  size_t queued_messages() const { return queue_.size(); }
  // Queued messages that still borrow memory.
  size_t borrowing_messages() const { return borrowing_messages_; }
  // fds queued and not yet sent (each is open in this process until its
  // message's first byte leaves); what fd back-pressure is judged on.
  size_t queued_fds() const { return queued_fds_; }

  // Copies every borrowed span still queued into its message's own bytes,
  // so that the memory may change or go away. The bytes sent stay the same.
  void OwnBorrowedBytes();

  // Gives the `bytes` of every message sent in full to `spares` (not owned;
  // must outlive the writer or be reset to null), for the owner to build
  // later messages in. Null (the default): they are freed.
  void set_spare_buffers(SpareBuffers* spares) { spares_ = spares; }

  // Drops everything queued (closing its fds), e.g. on disconnect.
  void Clear();

  // Messages dropped unsent because their still_wanted() said no.
  size_t dropped_messages() const { return dropped_messages_; }

  // Most iovecs (message segments) gathered into one sendmsg.
  static constexpr size_t kMaxIovecs = 64;

 private:
  // Removes queue_.front(), not started, from the queue and its counts.
  void DropFront();

  std::deque<OutboundMessage> queue_;
  // Bytes of queue_.front() already sent.
  size_t sent_ = 0;
  size_t queued_bytes_ = 0;
  size_t borrowing_messages_ = 0;
  size_t queued_fds_ = 0;
  size_t dropped_messages_ = 0;
  SpareBuffers* spares_ = nullptr;
};

}  // namespace vfu

#endif  // VFU_TRANSPORT_MESSAGE_WRITER_H_
