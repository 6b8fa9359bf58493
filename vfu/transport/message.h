// Whole vfio-user messages as the transport hands them over: the bytes of
// one message (header included) and the fds that travelled with it.
#ifndef VFU_TRANSPORT_MESSAGE_H_
#define VFU_TRANSPORT_MESSAGE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/types/span.h"
#include "vfu/base/unique_fd.h"
#include "vfu/wire/constants.h"
#include "vfu/wire/header.h"

namespace vfu {

// A message received from the peer. Move-only (it owns its fds).
struct InboundMessage {
  wire::Header header;
  // The whole message, header first. Empty when `oversized`.
  std::vector<uint8_t> bytes;
  // The fds that arrived with the message's first byte, in order.
  std::vector<UniqueFd> fds;
  // The fds did not all arrive (MSG_CTRUNC: more than the receiver allows);
  // those that did are in `fds`. The request must fail with EINVAL.
  bool fds_truncated = false;
  // msg_size exceeded the receiver's limit: the body was discarded unread
  // and only `header` is valid. The request must fail with EINVAL.
  bool oversized = false;
  // Bytes of the message received straight into the ReplySink its waiter
  // registered (its data), and so missing from `bytes`, which holds the
  // rest in order (header.msg_size still counts them all). 0 otherwise.
  size_t sunk_bytes = 0;

  // Everything after the header that is in `bytes`.
  absl::Span<const uint8_t> payload() const {
    return bytes.size() <= wire::kHeaderSize
               ? absl::Span<const uint8_t>()
               : absl::MakeConstSpan(bytes).subspan(wire::kHeaderSize);
  }
};

// A message to send: `bytes`, then each span of `borrowed` in order. `fds`
// go out with its first byte.
//
// `borrowed` lets a large payload leave from where it lies (e.g. registered
// memory answering a DMA_READ) instead of being copied into `bytes`. Whoever
// queues such a message keeps that memory valid and unchanged until the
// writer has sent the message, dropped it (Clear()), or copied the borrowed
// bytes in (MessageWriter::OwnBorrowedBytes()).
struct OutboundMessage {
  std::vector<uint8_t> bytes;
  std::vector<UniqueFd> fds;
  absl::InlinedVector<absl::Span<const uint8_t>, 2> borrowed = {};
  // For a request of ours whose caller may stop waiting (a DMA_WRITE that
  // times out): asked by the writer just before the message's first byte
  // would leave; false drops the message unsent. Empty: always sent.
  std::function<bool()> still_wanted = nullptr;

  // Bytes on the wire: `bytes` and every borrowed span.
  size_t size() const {
    size_t total = bytes.size();
    for (absl::Span<const uint8_t> span : borrowed) total += span.size();
    return total;
  }
};

}  // namespace vfu

#endif  // VFU_TRANSPORT_MESSAGE_H_
