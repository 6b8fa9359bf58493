// How the C functions turn a Status into libvfio-user's "-1 and errno".
#ifndef VFU_CAPI_API_ERRNO_H_
#define VFU_CAPI_API_ERRNO_H_

#include <cerrno>

#include "absl/status/status.h"
#include "vfu/wire/errno_status.h"

namespace vfu::capi {

// Sets errno from `status` (not OK) and returns -1. Missing access rights
// are EACCES, as vfu_addr_to_sgl() documents.
inline int FailWith(const absl::Status& status) {
  errno = absl::IsPermissionDenied(status) ? EACCES : wire::ReplyErrno(status);
  return -1;
}

inline int FailWithErrno(int error) {
  errno = error;
  return -1;
}

}  // namespace vfu::capi

#endif  // VFU_CAPI_API_ERRNO_H_
