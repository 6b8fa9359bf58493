#include "vfu/wire/header.h"

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "vfu/base/check.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/errno_status.h"

namespace vfu::wire {

Header DecodeHeader(absl::Span<const uint8_t> bytes) {
  Header h;
  h.msg_id = LoadU16(bytes, 0);
  h.command = LoadU16(bytes, 2);
  h.msg_size = LoadU32(bytes, 4);
  h.flags = LoadU32(bytes, 8);
  h.error = LoadU32(bytes, 12);
  return h;
}

absl::Status ValidateHeader(const Header& header) {
  if (header.msg_size < kHeaderSize) {
    return WireError(EINVAL, absl::StrCat("msg_size ", header.msg_size,
                                          " is smaller than the 16-byte header"));
  }
  if (!header.is_command() && !header.is_reply()) {
    return WireError(EINVAL, absl::StrCat("message type ", header.type(),
                                          " is neither command nor reply"));
  }
  return absl::OkStatus();
}

void EncodeHeader(const Header& header, absl::Span<uint8_t> out) {
  Store<uint16_t>(out, 0, header.msg_id);
  Store<uint16_t>(out, 2, header.command);
  Store<uint32_t>(out, 4, header.msg_size);
  Store<uint32_t>(out, 8, header.flags);
  Store<uint32_t>(out, 12, header.error);
}

std::vector<uint8_t> StartMessage(size_t payload_size_hint) {
  std::vector<uint8_t> message;
  message.reserve(kHeaderSize + payload_size_hint);
  message.resize(kHeaderSize);
  return message;
}

void FinishMessage(Header header, std::vector<uint8_t>& message) {
  VFU_CHECK(message.size() >= kHeaderSize, "message lacks its header");
  header.msg_size = static_cast<uint32_t>(message.size());
  EncodeHeader(header, absl::MakeSpan(message));
}

Header CommandHeader(uint16_t msg_id, Command command, bool no_reply) {
  Header h;
  h.msg_id = msg_id;
  h.command = static_cast<uint16_t>(command);
  h.flags = kTypeCommand | (no_reply ? kFlagNoReply : 0);
  return h;
}

Header ReplyHeader(const Header& request) {
  Header h;
  h.msg_id = request.msg_id;
  h.command = request.command;
  h.flags = kTypeReply;
  return h;
}

std::vector<uint8_t> ErrorReply(const Header& request, int errno_value) {
  Header h = ReplyHeader(request);
  h.flags |= kFlagError;
  h.error = static_cast<uint32_t>(errno_value);
  std::vector<uint8_t> message = StartMessage();
  FinishMessage(h, message);
  return message;
}

}  // namespace vfu::wire
