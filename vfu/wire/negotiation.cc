#include "vfu/wire/negotiation.h"

#include <algorithm>
#include <bit>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "vfu/base/status_macros.h"
#include "vfu/wire/errno_status.h"

namespace vfu::wire {

absl::Status ValidateServerVersionPolicy(const ServerVersionPolicy& policy) {
  if (policy.max_data_xfer_size == 0) {
    return absl::InvalidArgumentError("server policy: max_data_xfer_size is 0");
  }
  if ((policy.pgsizes & kReplyPgsizesMask) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "server policy: pgsizes 0x", absl::Hex(policy.pgsizes), " has no page size >= 4 KiB"));
  }
  if (policy.migration_pgsize.has_value() &&
      (!std::has_single_bit(*policy.migration_pgsize) ||
       *policy.migration_pgsize < kMinMigrationPgsize)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "server policy: migration pgsize ", *policy.migration_pgsize,
        " is not a power of two >= ", kMinMigrationPgsize));
  }
  return absl::OkStatus();
}

absl::StatusOr<NegotiatedVersion> NegotiateVersion(const Version& client,
                                                   const ServerVersionPolicy& policy) {
  VFU_RETURN_IF_ERROR(ValidateServerVersionPolicy(policy));
  if (client.major != policy.major) {
    return WireError(EINVAL, absl::StrCat("client proposes major version ", client.major,
                                          ", we speak ", policy.major));
  }
  const Capabilities& offered = client.capabilities;

  NegotiatedVersion n;
  n.reply.major = policy.major;
  n.reply.minor = std::min(client.minor, policy.minor);

  Capabilities& caps = n.reply.capabilities;
  caps.max_msg_fds = std::min(policy.max_msg_fds, kReplyMaxMsgFdsCap);
  caps.max_data_xfer_size = std::min(policy.max_data_xfer_size, kReplyMaxDataXferSizeCap);
  caps.max_dma_maps = std::min(policy.max_dma_maps, kReplyMaxDmaMapsCap);
  caps.pgsizes = policy.pgsizes & kReplyPgsizesMask;
  n.reply_members = {.max_msg_fds = true,
                     .max_data_xfer_size = true,
                     .max_dma_maps = true,
                     .pgsizes = true};

  // Twin mode needs the client to receive the socket as an fd (3.5 step 1).
  if (policy.twin_socket && offered.twin_socket.supported && offered.max_msg_fds >= 1) {
    caps.twin_socket = {.supported = true, .fd_index = 0};
    n.reply_members.twin_socket = true;
  }

  if (policy.write_multiple && offered.write_multiple) {
    caps.write_multiple = true;
    n.reply_members.write_multiple = true;
  }

  if (policy.migration_pgsize.has_value() && offered.migration.has_value()) {
    const std::optional<uint64_t>& client_pgsize = offered.migration->pgsize;
    if (client_pgsize.has_value() && *client_pgsize != *policy.migration_pgsize) {
      return WireError(EINVAL, absl::StrCat("client migration pgsize ", *client_pgsize,
                                            " differs from the device's ",
                                            *policy.migration_pgsize));
    }
    caps.migration = MigrationCapability{.pgsize = policy.migration_pgsize};
    n.reply_members.migration = true;
  }

  n.limits.max_fds_to_client = offered.max_msg_fds;
  n.limits.max_fds_from_client = caps.max_msg_fds;
  n.limits.max_data_xfer_to_client = offered.max_data_xfer_size;
  n.limits.max_data_xfer_from_client = caps.max_data_xfer_size;
  // Most messages scale with our max_data_xfer_size, but MIG_DATA_WRITE is
  // bounded by the client's value, and QEMU's REGION_WRITE_MULTI batches
  // (200 x 24 bytes) do not scale at all: accept the largest of them.
  n.limits.max_incoming_message_size =
      std::max({MaxMessageSizeFor(caps.max_data_xfer_size),
                MaxMessageSizeFor(offered.max_data_xfer_size), kMinIncomingMessageLimit});
  return n;
}

void EncodeVersionReply(const NegotiatedVersion& negotiated, std::vector<uint8_t>& out) {
  EncodeVersion(negotiated.reply, negotiated.reply_members, out);
}

absl::Status ValidateServerVersionReply(const Version& proposed, const Version& reply,
                                        size_t num_fds) {
  if (reply.major != proposed.major) {
    return WireError(EINVAL, absl::StrCat("server replies major ", reply.major,
                                          ", we proposed ", proposed.major));
  }
  if (reply.minor > proposed.minor) {
    return WireError(EINVAL, absl::StrCat("server replies minor ", reply.minor,
                                          ", above our ", proposed.minor));
  }
  const Capabilities& ours = proposed.capabilities;
  const Capabilities& theirs = reply.capabilities;
  if (num_fds > ours.max_msg_fds) {
    return WireError(EINVAL, absl::StrCat("VERSION reply with ", num_fds,
                                          " fds, we accept ", ours.max_msg_fds));
  }

  if (theirs.twin_socket.supported) {
    if (!ours.twin_socket.supported) {
      return WireError(EINVAL, "server grants twin_socket, which we did not offer");
    }
    const std::optional<uint32_t>& index = theirs.twin_socket.fd_index;
    if (!index.has_value() || num_fds != 1 || *index >= num_fds) {
      return WireError(EINVAL, absl::StrCat("twin_socket fd_index ",
                                            index.has_value() ? absl::StrCat(*index) : "absent",
                                            " does not name the one fd of ", num_fds,
                                            " received"));
    }
  } else {
    if (theirs.twin_socket.fd_index.has_value()) {
      return WireError(EINVAL, "twin_socket fd_index without twin_socket.supported");
    }
    if (num_fds != 0) {
      return WireError(EINVAL, absl::StrCat("VERSION reply with ", num_fds,
                                            " fds but no twin socket"));
    }
  }

  if (theirs.write_multiple && !ours.write_multiple) {
    return WireError(EINVAL, "server grants write_multiple, which we did not offer");
  }
  if (theirs.migration.has_value()) {
    if (!ours.migration.has_value()) {
      return WireError(EINVAL, "server grants migration, which we did not offer");
    }
    const std::optional<uint64_t>& our_pgsize = ours.migration->pgsize;
    const std::optional<uint64_t>& their_pgsize = theirs.migration->pgsize;
    if (our_pgsize.has_value() && their_pgsize.has_value() && *our_pgsize != *their_pgsize) {
      return WireError(EINVAL, absl::StrCat("server migration pgsize ", *their_pgsize,
                                            " differs from our ", *our_pgsize));
    }
  }
  return absl::OkStatus();
}

}  // namespace vfu::wire
