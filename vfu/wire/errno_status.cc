#include "vfu/wire/errno_status.h"

#include <cerrno>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "vfu/wire/constants.h"

namespace vfu::wire {
namespace {

// Status payload key under which WireError() keeps the exact errno.
constexpr std::string_view kErrnoPayloadUrl = "vfu.dev/errno";

int ErrnoForCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument: return EINVAL;
    case absl::StatusCode::kOutOfRange: return EINVAL;
    case absl::StatusCode::kNotFound: return ENOENT;
    case absl::StatusCode::kAlreadyExists: return EEXIST;
    case absl::StatusCode::kPermissionDenied: return EPERM;
    case absl::StatusCode::kResourceExhausted: return ENOSPC;
    case absl::StatusCode::kFailedPrecondition: return EINVAL;
    case absl::StatusCode::kUnimplemented: return ENOTSUP;
    case absl::StatusCode::kUnavailable: return ECONNRESET;
    case absl::StatusCode::kDeadlineExceeded: return ETIMEDOUT;
    case absl::StatusCode::kAborted: return EINTR;
    case absl::StatusCode::kCancelled: return ECANCELED;
    case absl::StatusCode::kDataLoss: return EIO;
    case absl::StatusCode::kInternal: return EIO;
    default: return EINVAL;
  }
}

}  // namespace

absl::Status WireError(int errno_value, std::string_view message) {
  if (errno_value <= 0) errno_value = EINVAL;
  absl::Status status(absl::ErrnoToStatusCode(errno_value), message);
  status.SetPayload(kErrnoPayloadUrl, absl::Cord(absl::StrCat(errno_value)));
  return status;
}

int ReplyErrno(const absl::Status& status) {
  if (status.ok()) return 0;
  if (auto payload = status.GetPayload(kErrnoPayloadUrl)) {
    int value = 0;
    if (absl::SimpleAtoi(std::string(*payload), &value) && value > 0) return value;
  }
  return ErrnoForCode(status.code());
}

absl::Status StatusFromReplyError(uint32_t error_field, std::string_view context) {
  int value = (error_field == 0 || error_field > kMaxErrno) ? EINVAL
                                                           : static_cast<int>(error_field);
  return WireError(value, absl::StrCat(context, ": peer replied with error ", value));
}

}  // namespace vfu::wire
