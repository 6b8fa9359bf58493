#include "vfu/wire/version.h"

#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"
#include "vfu/base/check.h"
#include "vfu/base/status_macros.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/errno_status.h"

namespace vfu::wire {
namespace {

// Everything but the fd count, common to request and reply.
absl::StatusOr<Version> DecodeVersionPayload(absl::Span<const uint8_t> payload) {
  if (payload.size() < kVersionFixedSize) {
    return WireError(EINVAL, absl::StrCat("VERSION payload of ", payload.size(),
                                          " bytes, need 4"));
  }
  if (payload.size() > kMaxVersionPayloadSize) {
    return WireError(EINVAL, absl::StrCat("VERSION payload of ", payload.size(),
                                          " bytes, at most ", kMaxVersionPayloadSize));
  }
  Version v;
  v.major = LoadU16(payload, 0);
  v.minor = LoadU16(payload, 2);
  absl::Span<const uint8_t> json_area = payload.subspan(kVersionFixedSize);
  if (json_area.empty()) return v;  // No JSON: all defaults.

  // The JSON is a C string: exactly one NUL, at the very end.
  if (json_area.back() != 0) {
    return WireError(EINVAL, "VERSION JSON does not end with NUL");
  }
  std::string_view text(reinterpret_cast<const char*>(json_area.data()), json_area.size() - 1);
  if (text.find('\0') != std::string_view::npos) {
    return WireError(EINVAL, "VERSION JSON holds a NUL before its end");
  }
  VFU_ASSIGN_OR_RETURN(v.capabilities, ParseCapabilities(text));
  return v;
}

}  // namespace

absl::StatusOr<Version> DecodeVersionRequest(absl::Span<const uint8_t> payload, size_t num_fds) {
  if (num_fds != 0) {
    return WireError(EINVAL, absl::StrCat("VERSION command with ", num_fds, " fds, takes none"));
  }
  return DecodeVersionPayload(payload);
}

absl::StatusOr<Version> DecodeVersionReply(absl::Span<const uint8_t> payload, size_t num_fds) {
  if (num_fds > 1) {
    return WireError(EINVAL, absl::StrCat("VERSION reply with ", num_fds, " fds, at most 1"));
  }
  return DecodeVersionPayload(payload);
}

void EncodeVersionWithJson(uint16_t major, uint16_t minor, std::string_view json,
                           std::vector<uint8_t>& out) {
  VFU_CHECK(json.find('\0') == std::string_view::npos, "VERSION JSON must not contain NUL");
  ByteWriter writer(out);
  writer.U16(major).U16(minor);
  if (json.empty()) return;
  writer.Bytes(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(json.data()), json.size()))
      .U8(0);
}

void EncodeVersion(const Version& version, const CapabilityMembers& members,
                   std::vector<uint8_t>& out) {
  EncodeVersionWithJson(version.major, version.minor,
                        SerializeCapabilities(version.capabilities, members), out);
}

}  // namespace vfu::wire
