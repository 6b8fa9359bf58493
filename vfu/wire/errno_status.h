// The one mapping between absl::Status and the errno values vfio-user
// replies carry.
//
// A failure that must reach the peer as a specific errno is built with
// WireError(), which stores the exact errno in the status; other statuses
// are mapped by their code. The reverse direction turns a peer's error reply
// into a Status.
#ifndef VFU_WIRE_ERRNO_STATUS_H_
#define VFU_WIRE_ERRNO_STATUS_H_

#include <string_view>

#include "absl/status/status.h"

namespace vfu::wire {

// A non-OK status whose reply errno is exactly `errno_value` (> 0); its code
// is the canonical one for that errno (EINVAL -> kInvalidArgument).
absl::Status WireError(int errno_value, std::string_view message);

// The errno an error reply for `status` carries. `status` must not be OK.
// Statuses from WireError() give back their errno; others are mapped by code
// (kInvalidArgument -> EINVAL, kNotFound -> ENOENT, kAlreadyExists -> EEXIST,
// kUnavailable -> ECONNRESET, ...), defaulting to EINVAL.
int ReplyErrno(const absl::Status& status);

// The status for a peer's error reply whose header `error` field is
// `error_field`. Values outside (0, 4096] are read as EINVAL, as the
// protocol allows ERROR with error 0.
absl::Status StatusFromReplyError(uint32_t error_field, std::string_view context);

}  // namespace vfu::wire

#endif  // VFU_WIRE_ERRNO_STATUS_H_
