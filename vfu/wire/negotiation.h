// VERSION negotiation (PROTOCOL.md 3.2-3.5) as pure functions: what a server
// answers to a client's proposal, and what a client accepts from a server.
//
// Server side, once per connection, on the first message:
//   VFU_ASSIGN_OR_RETURN(Version client, DecodeVersionRequest(payload, num_fds));
//   absl::StatusOr<NegotiatedVersion> n = NegotiateVersion(client, policy);
//   if (!n.ok()) { send ErrorReply(header, ReplyErrno(n.status())); close; }
//   EncodeVersionReply(*n, reply_payload);
//   if (n->twin_socket()) attach the client's end of a socketpair as fd 0;
//   then apply n->limits to the connection.
// A failed negotiation always ends the connection (rows 10-13): the caller
// sends the EINVAL error reply and closes.
//
// What the reply grants:
//   limits (always written): our max_msg_fds, max_data_xfer_size,
//     max_dma_maps and pgsizes, clamped to what QEMU accepts from a server
//     (<= 16 fds, <= 64 MiB, <= 65535 maps, pgsizes without bits below 4 KiB);
//   features (written only when granted, so the reply stays a subset of the
//     proposal): twin_socket {supported, fd_index 0} when the client offered
//     it, can receive an fd and the policy enables it; write_multiple when
//     offered and supported; migration {pgsize} when offered and the device
//     migrates.
#ifndef VFU_WIRE_NEGOTIATION_H_
#define VFU_WIRE_NEGOTIATION_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "vfu/wire/capabilities.h"
#include "vfu/wire/constants.h"
#include "vfu/wire/version.h"

namespace vfu::wire {

// What QEMU's client accepts in a server's reply (PROTOCOL.md 3.3 "Deployed
// values"); larger values make it abort the handshake.
inline constexpr uint32_t kReplyMaxMsgFdsCap = 16;
inline constexpr uint64_t kReplyMaxDataXferSizeCap = 64ull << 20;
inline constexpr uint32_t kReplyMaxDmaMapsCap = 65535;
// pgsizes bits QEMU accepts: page sizes of 4 KiB and up.
inline constexpr uint64_t kReplyPgsizesMask = ~uint64_t{0xfff};
// Migration page sizes must be a multiple of this for QEMU.
inline constexpr uint64_t kMinMigrationPgsize = 4096;

// The server's side of the negotiation, fixed per device.
struct ServerVersionPolicy {
  // We speak 0.2, like libvfio-user; the reply's minor is
  // min(client minor, ours) and a different major fails.
  uint16_t major = 0;
  uint16_t minor = 2;
  // Most fds we accept in one message. 8, like libvfio-user and what QEMU
  // assumes when the member is absent: the path QEMU is tested against. QEMU
  // would take up to 16; that only halves the number of SET_IRQS messages
  // for large MSI-X tables at setup, which is not worth leaving that path.
  uint32_t max_msg_fds = 8;
  // Largest REGION_READ/WRITE count we accept.
  uint64_t max_data_xfer_size = kDefaultMaxDataXferSize;
  uint32_t max_dma_maps = kDefaultMaxDmaMaps;
  uint64_t pgsizes = kDefaultPgsizes;
  // Whether the dispatcher handles REGION_WRITE_MULTI.
  bool write_multiple = false;
  // Whether we grant twin-socket mode when offered (QEMU never offers it).
  bool twin_socket = false;
  // Set iff the device migrates: its dirty-tracking page size, a power of
  // two >= kMinMigrationPgsize (the host page size, for libvfio-user parity).
  std::optional<uint64_t> migration_pgsize = std::nullopt;
};

// Per-connection limits that follow from a negotiation.
// Floor of the incoming message limit: a 200-entry REGION_WRITE_MULTI (what
// QEMU batches) plus headroom for DMA-logging range lists.
inline constexpr size_t kMinIncomingMessageLimit = 64 * 1024;

struct ConnectionLimits {
  // Most fds we may attach to one message to the client (its max_msg_fds).
  uint32_t max_fds_to_client = kDefaultMaxMsgFds;
  // Most fds the client may attach to one message to us (what we
  // advertised): size the recvmsg() control buffer for this many.
  uint32_t max_fds_from_client = kDefaultMaxMsgFds;
  // Largest count we may put in one DMA_READ/DMA_WRITE (the client's
  // max_data_xfer_size).
  uint64_t max_data_xfer_to_client = kDefaultMaxDataXferSize;
  // Largest REGION_READ/REGION_WRITE count the client may send (ours, as
  // advertised).
  uint64_t max_data_xfer_from_client = kDefaultMaxDataXferSize;
  // Largest incoming message we accept, the SplitFrame() limit: the largest message either transfer size allows
  // (MIG_DATA_WRITE carries up to the client's), at least
  // kMinIncomingMessageLimit.
  size_t max_incoming_message_size = MaxMessageSizeFor(kDefaultMaxDataXferSize);

  friend bool operator==(const ConnectionLimits&, const ConnectionLimits&) = default;
};

struct NegotiatedVersion {
  // The reply's major, minor and capabilities.
  Version reply = {};
  // Which capabilities members the reply's JSON carries.
  CapabilityMembers reply_members = {};
  ConnectionLimits limits = {};

  // Twin mode granted: the reply must carry exactly one fd, the client's end
  // of a fresh socketpair, at index 0.
  bool twin_socket() const { return reply.capabilities.twin_socket.supported; }
  // The client may send REGION_WRITE_MULTI.
  bool write_multiple() const { return reply.capabilities.write_multiple; }
  // Legacy migration capability agreed (page size = the policy's).
  bool migration() const { return reply.capabilities.migration.has_value(); }

  friend bool operator==(const NegotiatedVersion&, const NegotiatedVersion&) = default;
};

// Checks what clamping cannot fix: max_data_xfer_size 0, pgsizes without a
// size of 4 KiB or more, migration_pgsize not a power of two >= 4096.
// Errors are kInvalidArgument (EINVAL). Call it when the device is set up.
absl::Status ValidateServerVersionPolicy(const ServerVersionPolicy& policy);

// The server's answer to the client's decoded VERSION. EINVAL when the
// client's major differs from ours (row 11), when the device migrates and
// the client's migration.pgsize differs from ours (row 12), or when the
// policy is invalid (ValidateServerVersionPolicy()). A client migration
// object without pgsize is accepted (libvfio-user does the same).
absl::StatusOr<NegotiatedVersion> NegotiateVersion(const Version& client,
                                                   const ServerVersionPolicy& policy);

// Appends the VERSION reply payload for `negotiated` (always with JSON).
void EncodeVersionReply(const NegotiatedVersion& negotiated, std::vector<uint8_t>& out);

// Client side: checks a server's decoded VERSION reply against what we
// `proposed`, given the number of fds that came with it. EINVAL when: the
// major differs; the minor is above ours; more fds came than we advertised;
// twin_socket is granted though we did not offer it, or without an fd_index
// naming the single received fd; fds or an fd_index came without twin mode;
// write_multiple or migration is granted though we did not offer it; or the
// migration pgsize differs from the one we proposed.
absl::Status ValidateServerVersionReply(const Version& proposed, const Version& reply,
                                        size_t num_fds);

}  // namespace vfu::wire

#endif  // VFU_WIRE_NEGOTIATION_H_
