// Pipelined 4-byte REGION_READs over one vfu client: the client code of
// vfu_bench's pipelined figure (c), shared with the many-devices figure.
#ifndef VFU_TOOLS_BENCH_PIPELINED_READS_H_
#define VFU_TOOLS_BENCH_PIPELINED_READS_H_

#include <cstdint>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "vfu/client/client.h"

namespace vfu::bench {

// Every read is of kPipelinedReadSize bytes at offset 0 of region 0.
inline constexpr uint32_t kPipelinedReadSize = 4;

// Keeps `window` REGION_READs in flight on `client`, sending a new one as
// each reply is collected (Client::Send/Await), until `max_replies` replies
// or until `expired()` returns true; then no new read goes out and the
// outstanding ones are collected. Returns the replies collected (at least
// min(window, max_replies)). An error reply or a reply of the wrong size is
// an error.
absl::StatusOr<int64_t> RunPipelinedReads(Client& client, int window, int64_t max_replies,
                                          absl::FunctionRef<bool()> expired);

}  // namespace vfu::bench

#endif  // VFU_TOOLS_BENCH_PIPELINED_READS_H_
