// The 16-byte header that starts every vfio-user message, and helpers to
// build whole messages (header followed by payload) in one buffer.
//
//   Off Size Field
//    0   2   msg_id    chosen by the command's sender, echoed in the reply
//    2   2   cmd       command number (Command)
//    4   4   msg_size  whole message, header included (>= 16)
//    8   4   flags     bits 0-3 type, bit 4 NO_REPLY, bit 5 ERROR
//   12   4   error     errno of a failed command (replies only)
#ifndef VFU_WIRE_HEADER_H_
#define VFU_WIRE_HEADER_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "vfu/wire/constants.h"

namespace vfu::wire {

struct Header {
  uint16_t msg_id = 0;
  uint16_t command = 0;
  uint32_t msg_size = 0;
  uint32_t flags = 0;
  uint32_t error = 0;

  uint32_t type() const { return flags & kFlagsTypeMask; }
  bool is_command() const { return type() == kTypeCommand; }
  bool is_reply() const { return type() == kTypeReply; }
  bool no_reply() const { return (flags & kFlagNoReply) != 0; }
  bool is_error() const { return (flags & kFlagError) != 0; }

  friend bool operator==(const Header&, const Header&) = default;
};

// Reads the header from the first 16 bytes of `bytes` (which must hold at
// least that many; the caller checks). Does not judge the values.
Header DecodeHeader(absl::Span<const uint8_t> bytes);

// Checks what the header alone can tell: `msg_size` >= 16 and the type is
// command or reply. Errors carry EINVAL.
absl::Status ValidateHeader(const Header& header);

// Writes `header` into the first 16 bytes of `out`.
void EncodeHeader(const Header& header, absl::Span<uint8_t> out);

// Message assembly without copying the payload:
//   std::vector<uint8_t> msg = StartMessage();
//   EncodeRegionReadRequest(request, msg);   // appends the payload
//   FinishMessage(CommandHeader(id, Command::kRegionRead), msg);
// FinishMessage() sets `msg_size` to msg.size() and writes the header.
std::vector<uint8_t> StartMessage(size_t payload_size_hint = 0);
void FinishMessage(Header header, std::vector<uint8_t>& message);

// Header of a command with the given id.
Header CommandHeader(uint16_t msg_id, Command command, bool no_reply = false);
// Header of a successful reply to `request`.
Header ReplyHeader(const Header& request);
// A complete error reply (header only) to `request` carrying `errno_value`.
std::vector<uint8_t> ErrorReply(const Header& request, int errno_value);

}  // namespace vfu::wire

#endif  // VFU_WIRE_HEADER_H_
