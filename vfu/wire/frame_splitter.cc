#include "vfu/wire/frame_splitter.h"

#include "absl/strings/str_cat.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/constants.h"

namespace vfu::wire {

FrameSplit SplitFrame(absl::Span<const uint8_t> received, size_t max_message_size) {
  const size_t have = received.size();
  if (have < kHeaderSize) return {.status = FrameStatus::kNeedMore, .size = kHeaderSize - have};

  const size_t msg_size = LoadU32(received, 4);  // header offset of msg_size
  if (msg_size < kHeaderSize) {
    return {.status = FrameStatus::kCorrupt,
            .size = msg_size,
            .reason = absl::StrCat("msg_size ", msg_size,
                                   " is smaller than the 16-byte header; framing is lost")};
  }
  if (msg_size > max_message_size) {
    return {.status = FrameStatus::kOversized,
            .size = msg_size,
            .reason = absl::StrCat("msg_size ", msg_size, " exceeds the limit of ",
                                   max_message_size, " bytes")};
  }
  if (have < msg_size) return {.status = FrameStatus::kNeedMore, .size = msg_size - have};
  return {.status = FrameStatus::kComplete, .size = msg_size};
}

}  // namespace vfu::wire
