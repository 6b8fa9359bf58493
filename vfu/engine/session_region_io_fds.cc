// DEVICE_GET_REGION_IO_FDS (PROTOCOL.md 4.5): the device's ioeventfds for a
// region, the fds attached to a complete reply.
#include <fcntl.h>

#include <cerrno>
#include <vector>

#include "absl/strings/str_cat.h"
#include "vfu/base/status_macros.h"
#include "vfu/engine/session.h"
#include "vfu/wire/errno_status.h"
#include "vfu/wire/region_io_fds.h"

namespace vfu {

using wire::WireError;

absl::Status Session::HandleGetRegionIoFds(const InboundMessage& message,
                                           std::vector<uint8_t>& reply,
                                           std::vector<UniqueFd>& reply_fds) {
  // Rows 4, 5, 6 and 21's flags/count: the decoder.
  VFU_ASSIGN_OR_RETURN(wire::RegionIoFdsRequest request,
                       wire::DecodeRegionIoFdsRequest(message.payload(), message.fds.size()));
  if (request.index >= device_.num_regions()) {  // row 20
    return WireError(EINVAL, absl::StrCat("region ", request.index, " does not exist (",
                                          device_.num_regions(), " regions)"));
  }
  std::vector<wire::IoFdEntry> entries;
  std::vector<int> fds;
  device_.DescribeRegionIoFds(request.index, entries, fds);
  if (entries.empty()) {  // row 21: unconfigured region
    return WireError(EINVAL, absl::StrCat("region ", request.index, " has no io fds"));
  }
  // Our own device's answer, checked all the same: a bad fd_index would
  // hand the client a wrong fd.
  for (const wire::IoFdEntry& entry : entries) {
    if (entry.fd_index >= fds.size() || fds[entry.fd_index] < 0) {
      return WireError(EIO, absl::StrCat("region ", request.index, ": the device described an "
                                         "io fd entry with fd index ", entry.fd_index));
    }
  }
  const wire::RegionIoFdsReplyKind kind =
      wire::EncodeRegionIoFdsReply(request.index, entries, request.argsz, reply);
  // The argsz-too-small case: the header says how much to ask for; no fds.
  if (kind == wire::RegionIoFdsReplyKind::kHeaderOnly) return absl::OkStatus();
  const uint32_t max_fds = negotiated_ ? negotiated_->limits.max_fds_to_client : 1;
  // The error reply replaces what was encoded.
  if (fds.size() > max_fds) {
    return WireError(E2BIG, absl::StrCat("region ", request.index, " has ", fds.size(),
                                         " io fds, the client accepts ", max_fds,
                                         " per message (max_msg_fds)"));
  }
  for (int fd : fds) {
    const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) {
      reply_fds.clear();
      return WireError(errno, "duplicating an io fd");
    }
    reply_fds.emplace_back(copy);
  }
  return absl::OkStatus();
}

}  // namespace vfu
