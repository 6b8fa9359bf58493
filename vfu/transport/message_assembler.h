// MessageAssembler: rebuilds whole messages from a byte stream that arrives
// in arbitrary pieces, and gives each message the fds that came with it.
//
// The socket reader (MessageReader) receives straight into the assembler's
// buffer: WritableSpace() -> recvmsg -> Commit(n, fds). TakeMessages() then
// moves out every complete message. No syscalls here, so the logic is
// tested and fuzzed with chosen fragmentations.
//
// Buffer layout:
//
//   buffer_: [ consumed | unparsed bytes (data_begin_..data_end_) | free ]
//
// consumed space is reclaimed by moving the unparsed bytes to the front
// when the free space runs short.
//
// Which message owns received fds: the kernel never delivers bytes that
// follow an fd-carrying send in the same recvmsg, and a sender sends each
// fd-carrying message as its own send (vfio-user peers, QEMU included, do),
// so the fds belong to the *last* message that starts within the bytes of
// the recvmsg that delivered them. fds whose recvmsg held no message start
// (a peer that attached them mid-message) are closed with a warning.
//
// Thread-compatible: one owner (the IO thread) at a time.
#ifndef VFU_TRANSPORT_MESSAGE_ASSEMBLER_H_
#define VFU_TRANSPORT_MESSAGE_ASSEMBLER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "vfu/base/unique_fd.h"
#include "vfu/transport/message.h"

namespace vfu {

class MessageAssembler {
 public:
  // `max_message_size`: larger messages are refused (yielded as `oversized`,
  // their bodies skipped without buffering).
  explicit MessageAssembler(size_t max_message_size);

  // Raises or lowers the limit, e.g. after VERSION negotiation.
  void set_max_message_size(size_t size) { max_message_size_ = size; }
  size_t max_message_size() const { return max_message_size_; }

  // Free space of at least `min_size` bytes at the end of the buffer, to
  // receive into. Invalidated by the next call to any other method.
  absl::Span<uint8_t> WritableSpace(size_t min_size);

  // Accepts `size` bytes just written into WritableSpace() and the fds that
  // came with them. `fds_truncated`: the kernel reported MSG_CTRUNC.
  void Commit(size_t size, std::vector<UniqueFd> fds, bool fds_truncated);

  // Copies `bytes` in and commits them (tests and fuzzers).
  void Append(absl::Span<const uint8_t> bytes, std::vector<UniqueFd> fds = {},
              bool fds_truncated = false);

  // Moves every complete message into `out`, in stream order. Returns a
  // DataLoss error when the stream can no longer be framed (msg_size < 16);
  // the connection must then be closed. Messages completed before the
  // corrupt header are still delivered.
  absl::Status TakeMessages(std::vector<InboundMessage>& out);

  // Bytes received but not yet part of a delivered message.
  size_t buffered_bytes() const { return data_end_ - data_begin_; }
  // Bytes still to skip of an oversized message.
  uint64_t discarding_bytes() const { return discard_remaining_; }
  // How many more bytes would complete the message at the front (at least
  // 1), or 0 if none is started. Used to size the next receive.
  size_t bytes_wanted() const { return wanted_; }

 private:
  // fds delivered by one receive, with the stream range that receive covered.
  struct FdBatch {
    uint64_t range_begin;
    uint64_t range_end;
    std::vector<UniqueFd> fds;
    bool truncated;
  };

  // Gives the message starting at stream offset `start`, `size` bytes long,
  // the fds that belong to it (see the file comment).
  void ClaimFds(uint64_t start, uint64_t size, InboundMessage& message);
  void Compact();

  size_t max_message_size_;
  std::vector<uint8_t> buffer_;
  size_t data_begin_ = 0;
  size_t data_end_ = 0;
  // Stream offset of buffer_[data_begin_] (start of the next message).
  uint64_t stream_offset_ = 0;
  // Stream offset just past the last committed byte.
  uint64_t stream_end_ = 0;
  uint64_t discard_remaining_ = 0;
  size_t wanted_ = 0;
  std::deque<FdBatch> fd_batches_;
};

}  // namespace vfu

#endif  // VFU_TRANSPORT_MESSAGE_ASSEMBLER_H_
