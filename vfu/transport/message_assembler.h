// MessageAssembler: rebuilds whole messages from a byte stream that arrives
// in arbitrary pieces, and gives each message the fds that came with it.
//
// The socket reader (MessageReader) receives straight into the assembler's
// memory: ReceiveSpace() -> recvmsg -> Commit(n, fds). TakeMessages() then
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
// Large messages. Once the header of a message larger than the direct
// threshold has arrived (and its size is within the limit), the message gets
// a buffer of its own (from MessageBufferPool, so a recycled one need not be
// zero-filled), which becomes the delivered InboundMessage::bytes. The bytes
// already received move there once; the rest is received in place, so
// buffer_ never grows to the size of a message:
//
//   body_:   [ header + body received (in_place_received_) | room | (not yet allocated) ]
//   ReceiveSpace(): body_'s room; buffer_'s free space too once body_ is
//                   allocated up to the message's end
//
// The header alone never allocates more than kInitialBodySize (2 MiB) of a
// larger message: body_ starts there (or at what has arrived) and doubles,
// capped at the message's size, whenever its room is used up, so a peer
// makes us hold at most about twice what it actually sent (plus 2 MiB).
// Each growth copies the bytes received so far into the larger buffer once:
// over a whole message that is less than one extra copy of it (1/2 + 1/4 +
// ...), paid only by messages larger than kInitialBodySize that no reply
// sink takes (a reply sink's part never lives in body_, see below). A receive that ends the
// message spills into buffer_ (the bytes that follow it), so the stream
// stays in order: buffer_ holds bytes only once body_ is full.
//
// Reply sinks. When a large message's header names a reply someone waits
// for with a ReplySink of exactly that size (set_reply_sink_lookup), the
// sink's part of the message is received into the sink's memory and body_
// holds the rest (the bytes before and after it), so the receive space is
// up to three parts of the message plus buffer_. ReceiveSpace() locks the
// sink (ReplySink::BeginWrite) when its space includes the sink's memory,
// and Commit() or ReleaseReceiveSpace() unlocks it. A sink revoked before
// all its bytes arrived is abandoned: the rest of the message is skipped
// with a log line (its waiter is gone) and the stream stays in sync.
//
// Which message owns received fds: the kernel never delivers bytes that
// follow an fd-carrying send in the same recvmsg, and a sender sends each
// fd-carrying message as its own send (vfio-user peers, QEMU included, do),
// so the fds belong to the *last* message that starts within the bytes of
// the recvmsg that delivered them. fds whose recvmsg held no message start
// (a peer that attached them mid-message) are closed with a warning once
// the message around them ends.
//
// fd bound (set_max_fds(), the max_msg_fds we advertised): a receive with
// more fds keeps the first max_fds and is marked truncated (the message
// then fails with EINVAL). After TakeMessages() the fds still held (those
// of the message not yet complete, plus any mid-message ones waiting to be
// closed) never exceed max_fds: a peer that sends more, e.g. one fd with
// every byte of a large message, loses the stream (DataLoss, all held fds
// closed). So the assembler holds at most 2 * max_fds fds (the bound plus
// one receive) when the owner calls TakeMessages() after each Commit(), as
// MessageReader does.
//
// Thread-compatible: one owner (the IO thread) at a time.
#ifndef VFU_TRANSPORT_MESSAGE_ASSEMBLER_H_
#define VFU_TRANSPORT_MESSAGE_ASSEMBLER_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "vfu/base/unique_fd.h"
#include "vfu/transport/message.h"
#include "vfu/transport/reply_sink.h"
#include "vfu/transport/spare_buffers.h"
#include "vfu/wire/header.h"

namespace vfu {

class MessageAssembler {
 public:
  // Receives are at least this large, so a stream of small messages is
  // taken in few syscalls.
  static constexpr size_t kMinReceiveSize = 64 * 1024;
  // Messages above this size are received into their own buffer.
  static constexpr size_t kDefaultDirectThreshold = kMinReceiveSize;
  // A message received in place first gets a buffer this large (or as
  // large as what has arrived), grown as more arrives. Messages up to this
  // size (every DMA chunk at the default 1 MiB max_data_xfer_size) are
  // allocated in full at once: growing 1 MiB DMA_WRITEs from 128 KiB made
  // the client library's receive of them several times slower (measured
  // with dma_throughput_bench), and a peer can make us reserve at most this
  // much per socket without sending it.
  static constexpr size_t kInitialBodySize = 2 << 20;

  // `max_message_size`: larger messages are refused (yielded as `oversized`,
  // their bodies skipped without buffering). `direct_threshold`: messages
  // larger than this are received in place (see the file comment).
  explicit MessageAssembler(size_t max_message_size,
                            size_t direct_threshold = kDefaultDirectThreshold);

  // Raises or lowers the limit, e.g. after VERSION negotiation. A message
  // partly received when the limit drops below its size is refused as
  // oversized by the next TakeMessages(), as if it had just arrived.
  void set_max_message_size(size_t size) { max_message_size_ = size; }
  size_t max_message_size() const { return max_message_size_; }

  // Most fds one message may bring (see "fd bound" in the file comment).
  // Unlimited by default.
  void set_max_fds(size_t max_fds) { max_fds_ = max_fds; }

  // Where the next receive puts its bytes: parts[0], then parts[1] once
  // parts[0] is full, and so on. Together at least `min_size` and at least
  // kMinReceiveSize bytes.
  struct Space {
    static constexpr size_t kMaxParts = 4;
    std::array<absl::Span<uint8_t>, kMaxParts> parts;
    size_t num_parts = 0;

    size_t size() const;
    // Copies `bytes` across the parts in order, as the kernel scatters a
    // receive (`bytes` must fit).
    void Scatter(absl::Span<const uint8_t> bytes) const;
    void Add(absl::Span<uint8_t> part) {
      if (!part.empty()) parts[num_parts++] = part;
    }
  };
  // Invalidated by the next call to any other method. Must be followed by
  // Commit() or ReleaseReceiveSpace() (a reply sink may be locked until
  // then).
  Space ReceiveSpace(size_t min_size = 0);

  // Accepts `size` bytes just written into the last ReceiveSpace() (filling
  // the parts in order) and the fds that came with them.
  // `fds_truncated`: the kernel reported MSG_CTRUNC.
  void Commit(size_t size, std::vector<UniqueFd> fds, bool fds_truncated);
  // Ends a ReceiveSpace() that received nothing (the socket would block, or
  // failed).
  void ReleaseReceiveSpace();

  // Where a large reply's data may go instead of its own buffer: returns
  // the sink registered for the reply with this header, or nullptr. Called
  // once per message above the direct threshold, when its header is in.
  using ReplySinkLookup = std::function<std::shared_ptr<ReplySink>(const wire::Header&)>;
  void set_reply_sink_lookup(ReplySinkLookup lookup) { sink_lookup_ = std::move(lookup); }

  // Small messages are delivered in buffers taken from `spares` (not owned;
  // must outlive the assembler or be reset to null) instead of freshly
  // allocated ones. Null (the default): allocated.
  void set_spare_buffers(SpareBuffers* spares) { spares_ = spares; }

  // Copies `bytes` in and commits them (tests and fuzzers).
  void Append(absl::Span<const uint8_t> bytes, std::vector<UniqueFd> fds = {},
              bool fds_truncated = false);

  // Moves every complete message into `out`, in stream order. Returns a
  // DataLoss error when the stream can no longer be framed (msg_size < 16)
  // or when more fds than max_fds are held for one message (and then keeps
  // returning it); the connection must then be closed. Messages completed
  // before are still delivered.
  absl::Status TakeMessages(std::vector<InboundMessage>& out);

  // Bytes received but not yet part of a delivered message.
  size_t buffered_bytes() const { return in_place_received_ + (data_end_ - data_begin_); }
  // Bytes still to skip of an oversized message.
  uint64_t discarding_bytes() const { return discard_remaining_; }
  // How many more bytes would complete the message at the front (at least
  // 1), or 0 if none is started. Used to size the next receive.
  size_t bytes_wanted() const { return wanted_; }
  // Whether the front message is being received into its own buffer.
  bool receiving_in_place() const { return in_place_size_ != 0; }
  // Whether it is being received into a reply sink.
  bool receiving_into_sink() const { return sink_ != nullptr; }
  // fds received and not yet delivered or closed.
  size_t held_fds() const { return held_fds_; }
  // Memory reserved for bytes not yet delivered (reassembly buffer and the
  // in-place message's buffer), whatever their contents.
  size_t reserved_bytes() const { return buffer_.capacity() + body_.capacity(); }

 private:
  SpareBuffers* spares_ = nullptr;
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
  // Moves the front message's `have` buffered bytes into a buffer of its
  // own (and a reply sink, if one waits for it) for a message of `size`
  // bytes in all.
  void StartInPlace(size_t have, size_t size);
  // Grows body_ (no sink) so that its room holds at least `min_room`
  // bytes or reaches the message's end.
  void GrowBody(size_t min_room);
  // Whether body_ reaches the in-place message's end.
  bool BodyComplete() const;
  // Drops the front fd batch, closing its fds.
  void DropFdBatch(const char* why);
  // Fails the stream if more than max_fds_ fds are held.
  absl::Status CheckHeldFds();
  // TakeMessages() while receiving in place: delivers or refuses the front
  // message if it can. Returns false while it still needs bytes.
  bool TakeInPlace(std::vector<InboundMessage>& out);
  // Where message bytes [from, size) of the in-place message go: body_
  // before and after the sink's part, the sink's memory in between.
  void AddInPlaceParts(size_t from, bool with_sink, Space& space);
  // Stops receiving into the sink (revoked): skips the rest of the message.
  void AbandonSink();
  // Ends the in-place message: back to buffer_ only.
  void EndInPlace();

  size_t max_message_size_;
  const size_t direct_threshold_;
  size_t max_fds_ = SIZE_MAX;
  // Total fds in fd_batches_.
  size_t held_fds_ = 0;
  // Set once too many fds were held: the stream is lost.
  bool fds_exceeded_ = false;
  // Size of the last ReceiveSpace(), the most Commit() may accept.
  size_t space_size_ = 0;
  std::vector<uint8_t> buffer_;
  size_t data_begin_ = 0;
  size_t data_end_ = 0;
  // The front message while received in place: its size (0 when none),
  // how many of its bytes have arrived, and its own buffer (without a sink:
  // a growing prefix of the message; with one: all but the sink's part).
  size_t in_place_size_ = 0;
  size_t in_place_received_ = 0;
  std::vector<uint8_t> body_;
  // The in-place message's reply sink, and whether the last ReceiveSpace()
  // locked it.
  std::shared_ptr<ReplySink> sink_;
  bool sink_locked_ = false;
  ReplySinkLookup sink_lookup_;
  // Stream offset of the next message's first byte (body_[0] when receiving
  // in place, else buffer_[data_begin_]).
  uint64_t stream_offset_ = 0;
  // Stream offset just past the last committed byte.
  uint64_t stream_end_ = 0;
  uint64_t discard_remaining_ = 0;
  size_t wanted_ = 0;
  std::deque<FdBatch> fd_batches_;
};

}  // namespace vfu

#endif  // VFU_TRANSPORT_MESSAGE_ASSEMBLER_H_
