// Fuzzes SplitFrame() (vfu/wire/frame_splitter.h) as the IO thread uses it:
// walks a byte stream message by message under a limit taken from the input.
//
// Input: one selector byte (the limit: 0, 15, 16, 64, 4096, the server's
// pre-negotiation limit, the default negotiated limit, or a raw u32 that
// follows), then the stream.
//
// Checks, at every message boundary:
//  - each status agrees with the header's msg_size: kComplete has
//    16 <= size == msg_size <= limit and size <= the bytes at hand;
//    kNeedMore has size > 0 and names exactly the missing bytes;
//    kOversized has size == msg_size > limit; kCorrupt has msg_size < 16;
//  - `reason` is set exactly for kOversized and kCorrupt;
//  - the answer depends only on the message itself: the complete message
//    alone gives the same answer, and one byte less gives kNeedMore 1;
//    any prefix shorter than a header gives kNeedMore for the rest of it;
//  - each complete message's header (vfu/wire/header.h) re-encodes to its
//    16 bytes exactly, and ValidateHeader() accepts it exactly when its type
//    is command or reply (EINVAL otherwise).
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "testing/fuzz/fuzz_util.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/constants.h"
#include "vfu/wire/frame_splitter.h"
#include "vfu/wire/header.h"

namespace vfu::fuzz {
namespace {

using wire::FrameSplit;
using wire::FrameStatus;
using wire::kHeaderSize;

size_t ChooseLimit(InputReader& in) {
  switch (in.U8() % 8) {
    case 0:
      return 0;
    case 1:
      return kHeaderSize - 1;
    case 2:
      return kHeaderSize;
    case 3:
      return 64;
    case 4:
      return 4096;
    case 5:
      return 64 * 1024 + 64;  // the server's pre-negotiation limit
    case 6:
      return wire::MaxMessageSizeFor(wire::kDefaultMaxDataXferSize);
    default:
      return in.U32();
  }
}

void CheckOne(absl::Span<const uint8_t> have, size_t limit, const FrameSplit& split) {
  if (have.size() < kHeaderSize) {
    VFU_FUZZ_CHECK(
        split.status == FrameStatus::kNeedMore && split.size == kHeaderSize - have.size(),
        "partial header of ", have.size(), " bytes: status ", static_cast<int>(split.status),
        " size ", split.size);
    VFU_FUZZ_CHECK(split.reason.empty(), "kNeedMore with a reason: ", split.reason);
    return;
  }
  const size_t msg_size = wire::LoadU32(have, 4);
  switch (split.status) {
    case FrameStatus::kComplete:
      VFU_FUZZ_CHECK(split.size >= kHeaderSize && split.size == msg_size &&
                         split.size <= have.size() && split.size <= limit,
                     "kComplete of ", split.size, " (msg_size ", msg_size, ", have ", have.size(),
                     ", limit ", limit, ")");
      VFU_FUZZ_CHECK(split.reason.empty(), "kComplete with a reason: ", split.reason);
      break;
    case FrameStatus::kNeedMore:
      VFU_FUZZ_CHECK(split.size > 0 && msg_size >= kHeaderSize && msg_size <= limit &&
                         msg_size > have.size() && split.size == msg_size - have.size(),
                     "kNeedMore ", split.size, " (msg_size ", msg_size, ", have ", have.size(),
                     ", limit ", limit, ")");
      VFU_FUZZ_CHECK(split.reason.empty(), "kNeedMore with a reason: ", split.reason);
      break;
    case FrameStatus::kOversized:
      VFU_FUZZ_CHECK(split.size == msg_size && msg_size > limit && msg_size >= kHeaderSize,
                     "kOversized ", split.size, " (msg_size ", msg_size, ", limit ", limit, ")");
      VFU_FUZZ_CHECK(!split.reason.empty(), "kOversized without a reason");
      break;
    case FrameStatus::kCorrupt:
      VFU_FUZZ_CHECK(split.size == msg_size && msg_size < kHeaderSize, "kCorrupt ", split.size,
                     " (msg_size ", msg_size, ")");
      VFU_FUZZ_CHECK(!split.reason.empty(), "kCorrupt without a reason");
      break;
  }
}

void CheckHeader(absl::Span<const uint8_t> message) {
  const wire::Header h = wire::DecodeHeader(message);
  uint8_t encoded[kHeaderSize];
  wire::EncodeHeader(h, absl::MakeSpan(encoded));
  VFU_FUZZ_CHECK(std::equal(encoded, encoded + kHeaderSize, message.begin()),
                 "header re-encoded as ", Hex(encoded));
  const absl::Status s = wire::ValidateHeader(h);
  VFU_FUZZ_CHECK(s.ok() == (h.is_command() || h.is_reply()), "ValidateHeader(type ", h.type(),
                 ") = ", s.ToString());
  if (!s.ok()) VFU_FUZZ_CHECK(Errno(s) == EINVAL, s.ToString());
}

void Run(InputReader& in) {
  const size_t limit = ChooseLimit(in);
  absl::Span<const uint8_t> stream = in.Rest();

  while (true) {
    const FrameSplit split = wire::SplitFrame(stream, limit);
    CheckOne(stream, limit, split);
    // Every prefix shorter than a header asks for the rest of the header.
    for (size_t n = 0; n < kHeaderSize && n < stream.size(); ++n) {
      CheckOne(stream.first(n), limit, wire::SplitFrame(stream.first(n), limit));
    }
    if (split.status == FrameStatus::kComplete) {
      // The message alone gives the same answer; one byte less needs one more.
      absl::Span<const uint8_t> message = stream.first(split.size);
      VFU_FUZZ_CHECK(wire::SplitFrame(message, limit) == split,
                     "the message alone splits differently");
      const FrameSplit shorter = wire::SplitFrame(message.first(split.size - 1), limit);
      const size_t want = split.size - 1 < kHeaderSize ? kHeaderSize - (split.size - 1) : 1;
      VFU_FUZZ_CHECK(shorter.status == FrameStatus::kNeedMore && shorter.size == want,
                     "one byte short of a complete message: status ",
                     static_cast<int>(shorter.status), " size ", shorter.size);
      CheckHeader(message);
      stream.remove_prefix(split.size);
      continue;
    }
    if (split.status == FrameStatus::kOversized) {
      // The header alone already tells; the receiver then discards msg_size.
      VFU_FUZZ_CHECK(wire::SplitFrame(stream.first(kHeaderSize), limit) == split,
                     "the oversized header alone splits differently");
      if (split.size >= stream.size()) break;
      stream.remove_prefix(split.size);
      continue;
    }
    break;  // kNeedMore: wait for bytes; kCorrupt: the connection closes.
  }
}

}  // namespace
}  // namespace vfu::fuzz

VFU_FUZZ_ENTRY_POINT(vfu::fuzz::Run)
