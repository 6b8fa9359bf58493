// Message framing on a byte stream (PROTOCOL.md 2.1, 2.2; section 10 rows
// 1-2): where the next message ends, judged from `msg_size` alone.
//
// The IO thread reads whatever the socket has into a buffer and asks
// SplitFrame() about the bytes from the current message boundary on:
//
//   received: |<--------------- have --------------->|
//             | header (16) | payload ... | next message ...
//             |<-------- msg_size ------->|
//
//   kComplete   the first `size` bytes are one whole message: hand them on,
//               advance the boundary by `size`, ask again.
//   kNeedMore   read at least `size` more bytes before asking again (still
//               inside the header: 16 - have; else msg_size - have).
//   kOversized  msg_size exceeds the limit: refuse the message without
//               allocating for it, and discard exactly `size` (= msg_size)
//               bytes as they arrive to stay in sync; or close.
//   kCorrupt    msg_size < 16: no message boundary can be found any more;
//               close the connection (after an EINVAL reply, row 1).
//
// Only msg_size matters here; the type bits, command and flags are judged
// after the message is complete (ValidateHeader() in header.h). Pure function,
// no allocation except for the `reason` of kOversized and kCorrupt.
#ifndef VFU_WIRE_FRAME_SPLITTER_H_
#define VFU_WIRE_FRAME_SPLITTER_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/types/span.h"

namespace vfu::wire {

enum class FrameStatus {
  // A whole message of `size` bytes is at the front of the buffer.
  kComplete,
  // At least `size` more bytes are needed (always > 0).
  kNeedMore,
  // The header is whole and its msg_size (in `size`) is above the limit.
  kOversized,
  // The header's msg_size (in `size`) is below 16: framing is lost.
  kCorrupt,
};

struct FrameSplit {
  FrameStatus status = FrameStatus::kNeedMore;
  // See FrameStatus: message size, missing bytes, or the offending msg_size.
  size_t size = 0;
  // Human-readable cause, for kOversized and kCorrupt only (empty otherwise).
  std::string reason = {};

  friend bool operator==(const FrameSplit&, const FrameSplit&) = default;
};

// Looks at the bytes received so far, starting at a message boundary.
// `max_message_size` is the largest whole message (header included) the
// caller accepts, e.g. ConnectionLimits::max_incoming_message_size; a limit
// below 16 makes every well-formed message kOversized.
FrameSplit SplitFrame(absl::Span<const uint8_t> received, size_t max_message_size);

}  // namespace vfu::wire

#endif  // VFU_WIRE_FRAME_SPLITTER_H_
