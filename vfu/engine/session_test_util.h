// Helpers for tests that drive a Session directly: build command messages
// and read its replies.
#ifndef VFU_ENGINE_SESSION_TEST_UTIL_H_
#define VFU_ENGINE_SESSION_TEST_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "vfu/engine/session.h"
#include "vfu/transport/message.h"
#include "vfu/wire/header.h"
#include "vfu/wire/version.h"

namespace vfu::testing {

inline InboundMessage MakeCommand(uint16_t id, wire::Command cmd,
                                  const std::vector<uint8_t>& payload, bool no_reply = false) {
  InboundMessage m;
  m.bytes = wire::StartMessage(payload.size());
  m.bytes.insert(m.bytes.end(), payload.begin(), payload.end());
  wire::FinishMessage(wire::CommandHeader(id, cmd, no_reply), m.bytes);
  m.header = wire::DecodeHeader(m.bytes);
  return m;
}

inline std::vector<uint8_t> VersionPayload(const std::string& json) {
  std::vector<uint8_t> p;
  wire::EncodeVersionWithJson(0, 2, json, p);
  return p;
}

// The errno of an error reply, or 0 for a success reply.
inline int ReplyErrno(const Session::Result& r) {
  EXPECT_TRUE(r.reply.has_value());
  if (!r.reply) return -1;
  wire::Header h = wire::DecodeHeader(r.reply->bytes);
  EXPECT_TRUE(h.is_reply());
  if (h.is_error()) {
    EXPECT_EQ(h.msg_size, wire::kHeaderSize) << "error replies are header only";
    return static_cast<int>(h.error);
  }
  return 0;
}

inline absl::Span<const uint8_t> ReplyPayload(const Session::Result& r) {
  return absl::MakeConstSpan(r.reply->bytes).subspan(wire::kHeaderSize);
}

}  // namespace vfu::testing

#endif  // VFU_ENGINE_SESSION_TEST_UTIL_H_
