// ControlStatus: a request's outcome, as both sides of the control plane's
// Abseil-free seam can name it (vfu/control/control_backend.h).
//
// `code` uses the canonical numbering that absl::StatusCode and
// grpc::StatusCode share (3 INVALID_ARGUMENT, 5 NOT_FOUND, ...), so each
// side converts with a cast.
#ifndef VFU_CONTROL_CONTROL_STATUS_H_
#define VFU_CONTROL_CONTROL_STATUS_H_

#include <string>
#include <utility>

namespace vfu::control {

struct ControlStatus {
  enum Code : int {
    kOk = 0,
    kInvalidArgument = 3,
    kDeadlineExceeded = 4,
    kNotFound = 5,
    kAlreadyExists = 6,
    kResourceExhausted = 8,
    kFailedPrecondition = 9,
    kUnimplemented = 12,
    kInternal = 13,
    kUnavailable = 14,
  };
  int code = kOk;
  std::string message;

  bool ok() const { return code == kOk; }
  static ControlStatus Ok() { return {}; }
  static ControlStatus Error(int code, std::string message) {
    return ControlStatus{code, std::move(message)};
  }
};

}  // namespace vfu::control

#endif  // VFU_CONTROL_CONTROL_STATUS_H_
