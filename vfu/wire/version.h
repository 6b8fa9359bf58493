// VERSION (1): the first exchange on a connection; request and reply share
// one layout (PROTOCOL.md 3.1).
//
//   Off Size Field
//    0   2   major
//    2   2   minor
//    4   var capabilities JSON text followed by one NUL; optional (the
//            payload may end at offset 4)
//
// The request carries no fds; the reply carries one only when it grants
// twin-socket mode. What the server answers is decided by negotiation.h.
#ifndef VFU_WIRE_VERSION_H_
#define VFU_WIRE_VERSION_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "vfu/wire/capabilities.h"

namespace vfu::wire {

// major + minor.
inline constexpr size_t kVersionFixedSize = 4;

// Largest VERSION payload a decoder accepts: the fixed part, the longest
// capabilities text (kMaxCapabilitiesJsonSize) and its NUL.
inline constexpr size_t kMaxVersionPayloadSize = kVersionFixedSize + kMaxCapabilitiesJsonSize + 1;

struct Version {
  uint16_t major = 0;
  uint16_t minor = 0;
  // Parsed JSON; all defaults when the payload has none.
  Capabilities capabilities = {};

  friend bool operator==(const Version&, const Version&) = default;
};

// Decodes a client's VERSION command. EINVAL when: the payload is shorter
// than 4 bytes; the JSON area does not end in NUL or holds an earlier NUL;
// the text is longer than kMaxCapabilitiesJsonSize; ParseCapabilities()
// rejects it; or `num_fds` > 0 (PROTOCOL.md 10 rows 10, 12, 13). The major is
// not judged here (negotiation.h does).
absl::StatusOr<Version> DecodeVersionRequest(absl::Span<const uint8_t> payload, size_t num_fds);

// Decodes a server's VERSION reply: the same checks, except that up to one fd
// (the twin socket) may come with it. Whether that fd is consistent with the
// JSON is judged by ValidateServerVersionReply() (negotiation.h).
absl::StatusOr<Version> DecodeVersionReply(absl::Span<const uint8_t> payload, size_t num_fds);

// Appends major, minor, `json` and one NUL. An empty `json` appends no JSON
// area at all (a 4-byte payload), since a lone NUL is not valid JSON.
// `json` must not contain a NUL (a bug in the caller; aborts).
void EncodeVersionWithJson(uint16_t major, uint16_t minor, std::string_view json,
                           std::vector<uint8_t>& out);

// Appends `version` with the capabilities members in `members` as its JSON
// (see SerializeCapabilities()). The JSON is always present.
void EncodeVersion(const Version& version, const CapabilityMembers& members,
                   std::vector<uint8_t>& out);

}  // namespace vfu::wire

#endif  // VFU_WIRE_VERSION_H_
