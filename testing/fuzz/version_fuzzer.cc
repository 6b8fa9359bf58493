// Fuzzes the VERSION codec and negotiation (vfu/wire/version.h,
// vfu/wire/negotiation.h) on one payload, from both ends of the connection.
//
// Input: one selector byte, then the VERSION payload. Selector bits: 0-1
// number of fds that came with it; 2 the server policy grants
// write_multiple; 3 it grants twin sockets (and the client-side proposal
// offers them); 4-5 the device's migration page size (none, 4096, 65536);
// 6 the server speaks minor 0 instead of 2; 7 a 4 KiB max_data_xfer_size.
//
// Checks:
//  - every rejection is EINVAL; a request with fds, a reply with more than
//    one, and a JSON area not ending in NUL are rejected;
//  - request and reply decoding agree when neither carries fds;
//  - round trip: EncodeVersion(All) of what decoded decodes to an equal
//    Version, as a request and as a reply;
//  - NegotiateVersion() with the policy fails only for a different major
//    or a conflicting migration page size; when it succeeds its reply is
//    within what QEMU accepts, grants only features both sides offer,
//    derives the connection limits from both sides (the incoming message
//    limit covers both transfer sizes, at least kMinIncomingMessageLimit),
//    encodes to a payload
//    that decodes back to the same reply, and passes the client's own
//    ValidateServerVersionReply() (the reply is a subset of the proposal);
//  - a decoded reply that a QEMU-like proposal accepts is consistent with
//    it (major, minor, fd count, twin fd_index, offered features).
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "testing/fuzz/fuzz_util.h"
#include "vfu/wire/capabilities.h"
#include "vfu/wire/constants.h"
#include "vfu/wire/negotiation.h"
#include "vfu/wire/version.h"

namespace vfu::fuzz {
namespace {

using wire::CapabilityMembers;
using wire::NegotiatedVersion;
using wire::ServerVersionPolicy;
using wire::Version;

ServerVersionPolicy PolicyFor(uint8_t selector) {
  ServerVersionPolicy policy;
  policy.write_multiple = (selector & 4) != 0;
  policy.twin_socket = (selector & 8) != 0;
  switch ((selector >> 4) & 3) {
    case 1:
      policy.migration_pgsize = 4096;
      break;
    case 2:
      policy.migration_pgsize = 65536;
      break;
    default:
      break;
  }
  if (selector & 64) policy.minor = 0;
  if (selector & 128) policy.max_data_xfer_size = 4096;
  return policy;
}

// What QEMU proposes (PROTOCOL.md 3.3 "Deployed values"), plus twin sockets
// when the selector asks.
Version ProposalFor(uint8_t selector) {
  Version v;
  v.major = 0;
  v.minor = (selector & 64) ? 0 : 2;
  v.capabilities.max_msg_fds = 16;
  v.capabilities.write_multiple = true;
  v.capabilities.migration =
      wire::MigrationCapability{.pgsize = 4096, .max_bitmap_size = 256u << 20};
  v.capabilities.twin_socket.supported = (selector & 8) != 0;
  return v;
}

void CheckNegotiation(const Version& client, const ServerVersionPolicy& policy) {
  const absl::StatusOr<NegotiatedVersion> n = wire::NegotiateVersion(client, policy);
  const wire::Capabilities& offered = client.capabilities;
  const bool pgsize_conflict = policy.migration_pgsize.has_value() &&
                               offered.migration.has_value() &&
                               offered.migration->pgsize.has_value() &&
                               *offered.migration->pgsize != *policy.migration_pgsize;
  if (!n.ok()) {
    VFU_FUZZ_CHECK(Errno(n.status()) == EINVAL, n.status().ToString());
    VFU_FUZZ_CHECK(client.major != policy.major || pgsize_conflict,
                   "negotiation failed without cause: ", n.status().ToString());
    return;
  }
  VFU_FUZZ_CHECK(client.major == policy.major && !pgsize_conflict,
                 "negotiation succeeded despite a major or pgsize conflict");
  const Version& reply = n->reply;
  const wire::Capabilities& granted = reply.capabilities;
  VFU_FUZZ_CHECK(reply.major == client.major, "reply major ", reply.major);
  VFU_FUZZ_CHECK(reply.minor == std::min(client.minor, policy.minor), "reply minor ", reply.minor);
  VFU_FUZZ_CHECK(granted.max_msg_fds <= wire::kReplyMaxMsgFdsCap &&
                     granted.max_data_xfer_size >= 1 &&
                     granted.max_data_xfer_size <= wire::kReplyMaxDataXferSizeCap &&
                     granted.max_dma_maps <= wire::kReplyMaxDmaMapsCap && granted.pgsizes != 0 &&
                     (granted.pgsizes & ~wire::kReplyPgsizesMask) == 0,
                 "reply limits outside what QEMU accepts");
  VFU_FUZZ_CHECK(
      granted.twin_socket.supported ==
          (policy.twin_socket && offered.twin_socket.supported && offered.max_msg_fds >= 1),
      "twin socket granted ", granted.twin_socket.supported);
  if (granted.twin_socket.supported) {
    VFU_FUZZ_CHECK(granted.twin_socket.fd_index == 0u, "twin fd_index not 0");
  }
  VFU_FUZZ_CHECK(granted.write_multiple == (policy.write_multiple && offered.write_multiple),
                 "write_multiple granted ", granted.write_multiple);
  VFU_FUZZ_CHECK(granted.migration.has_value() ==
                     (policy.migration_pgsize.has_value() && offered.migration.has_value()),
                 "migration granted ", granted.migration.has_value());
  if (granted.migration.has_value()) {
    VFU_FUZZ_CHECK(granted.migration->pgsize == policy.migration_pgsize, "migration pgsize");
  }
  const wire::ConnectionLimits& limits = n->limits;
  VFU_FUZZ_CHECK(limits.max_fds_to_client == offered.max_msg_fds &&
                     limits.max_fds_from_client == granted.max_msg_fds &&
                     limits.max_data_xfer_to_client == offered.max_data_xfer_size &&
                     limits.max_data_xfer_from_client == granted.max_data_xfer_size &&
                     limits.max_incoming_message_size ==
                         std::max({wire::MaxMessageSizeFor(granted.max_data_xfer_size),
                                   wire::MaxMessageSizeFor(offered.max_data_xfer_size),
                                   wire::kMinIncomingMessageLimit}),
                 "connection limits do not follow from the negotiation");

  std::vector<uint8_t> out;
  wire::EncodeVersionReply(*n, out);
  const size_t fds = n->twin_socket() ? 1 : 0;
  const absl::StatusOr<Version> back = wire::DecodeVersionReply(out, fds);
  VFU_FUZZ_CHECK(back.ok(), "own reply rejected: ", back.status().ToString());
  VFU_FUZZ_CHECK(*back == reply, "reply round trip differs: ", Hex(out));
  const absl::Status accepted = wire::ValidateServerVersionReply(client, *back, fds);
  VFU_FUZZ_CHECK(accepted.ok(), "the client rejects our reply: ", accepted.ToString());
}

void CheckClientSide(const Version& reply, size_t num_fds, uint8_t selector) {
  const Version proposed = ProposalFor(selector);
  const absl::Status s = wire::ValidateServerVersionReply(proposed, reply, num_fds);
  if (!s.ok()) {
    VFU_FUZZ_CHECK(Errno(s) == EINVAL, s.ToString());
    return;
  }
  const wire::Capabilities& ours = proposed.capabilities;
  const wire::Capabilities& theirs = reply.capabilities;
  VFU_FUZZ_CHECK(reply.major == proposed.major && reply.minor <= proposed.minor,
                 "accepted version ", reply.major, ".", reply.minor);
  VFU_FUZZ_CHECK(num_fds <= ours.max_msg_fds, "accepted ", num_fds, " fds");
  if (theirs.twin_socket.supported) {
    VFU_FUZZ_CHECK(ours.twin_socket.supported && num_fds == 1 && theirs.twin_socket.fd_index == 0u,
                   "accepted an inconsistent twin socket grant");
  } else {
    VFU_FUZZ_CHECK(num_fds == 0 && !theirs.twin_socket.fd_index.has_value(),
                   "accepted fds or an fd_index without twin mode");
  }
  VFU_FUZZ_CHECK(!theirs.write_multiple || ours.write_multiple, "accepted write_multiple");
  if (theirs.migration.has_value() && theirs.migration->pgsize.has_value()) {
    VFU_FUZZ_CHECK(theirs.migration->pgsize == ours.migration->pgsize,
                   "accepted a different migration pgsize");
  }
}

void Run(InputReader& in) {
  const uint8_t selector = in.U8();
  const size_t num_fds = selector & 3;
  const absl::Span<const uint8_t> payload = in.Rest();
  const bool json_without_nul = payload.size() > wire::kVersionFixedSize && payload.back() != 0;

  const absl::StatusOr<Version> request = wire::DecodeVersionRequest(payload, num_fds);
  if (num_fds > 0) VFU_FUZZ_CHECK(!request.ok(), "VERSION command with fds accepted");
  if (!request.ok()) {
    VFU_FUZZ_CHECK(Errno(request.status()) == EINVAL, request.status().ToString());
  } else {
    VFU_FUZZ_CHECK(!json_without_nul, "JSON without its NUL accepted");
    std::vector<uint8_t> out;
    wire::EncodeVersion(*request, CapabilityMembers::All(), out);
    const absl::StatusOr<Version> back = wire::DecodeVersionRequest(out, 0);
    VFU_FUZZ_CHECK(back.ok(), "own request rejected: ", back.status().ToString());
    VFU_FUZZ_CHECK(*back == *request, "request round trip differs: ", Hex(out));
    CheckNegotiation(*request, PolicyFor(selector));
  }

  const absl::StatusOr<Version> reply = wire::DecodeVersionReply(payload, num_fds);
  if (num_fds > 1) VFU_FUZZ_CHECK(!reply.ok(), "VERSION reply with ", num_fds, " fds accepted");
  if (num_fds == 0) {
    VFU_FUZZ_CHECK(reply.ok() == request.ok(), "request and reply decoding disagree");
    if (reply.ok()) VFU_FUZZ_CHECK(*reply == *request, "request and reply decode differently");
  }
  if (!reply.ok()) {
    VFU_FUZZ_CHECK(Errno(reply.status()) == EINVAL, reply.status().ToString());
    return;
  }
  std::vector<uint8_t> out;
  wire::EncodeVersion(*reply, CapabilityMembers::All(), out);
  const absl::StatusOr<Version> back = wire::DecodeVersionReply(out, num_fds);
  VFU_FUZZ_CHECK(back.ok(), "own reply rejected: ", back.status().ToString());
  VFU_FUZZ_CHECK(*back == *reply, "reply round trip differs: ", Hex(out));
  CheckClientSide(*reply, num_fds, selector);
}

}  // namespace
}  // namespace vfu::fuzz

VFU_FUZZ_ENTRY_POINT(vfu::fuzz::Run)
