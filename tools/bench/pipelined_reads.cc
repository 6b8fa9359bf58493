#include "tools/bench/pipelined_reads.h"

#include <algorithm>
#include <vector>

#include "absl/status/status.h"
#include "vfu/base/status_macros.h"
#include "vfu/wire/constants.h"
#include "vfu/wire/region_access.h"

namespace vfu::bench {

absl::StatusOr<int64_t> RunPipelinedReads(Client& client, int window, int64_t max_replies,
                                          absl::FunctionRef<bool()> expired) {
  if (window < 1 || max_replies < 1) return absl::InvalidArgumentError("nothing to read");
  std::vector<uint8_t> request;
  wire::EncodeRegionReadRequest({.offset = 0, .region = 0, .count = kPipelinedReadSize}, request);
  // A REGION_READ reply payload: the 16-byte prefix and the data.
  constexpr size_t kReplyPayload = wire::kRegionAccessPrefixSize + kPipelinedReadSize;
  std::vector<uint16_t> ids(static_cast<size_t>(window));
  int64_t target = max_replies;
  int64_t sent = 0;
  for (; sent < std::min<int64_t>(window, target); ++sent) {
    VFU_ASSIGN_OR_RETURN(ids[sent], client.Send(wire::Command::kRegionRead, request));
  }
  int64_t done = 0;
  for (; done < sent; ++done) {
    VFU_ASSIGN_OR_RETURN(Reply reply, client.Await(ids[done % window]));
    if (reply.header.is_error() || reply.payload().size() != kReplyPayload) {
      return absl::InternalError("bad REGION_READ reply");
    }
    if (sent < target && expired()) target = sent;
    if (sent < target) {
      // The slot just freed: sent == done + window.
      VFU_ASSIGN_OR_RETURN(ids[sent % window], client.Send(wire::Command::kRegionRead, request));
      ++sent;
    }
  }
  return done;
}

}  // namespace vfu::bench
