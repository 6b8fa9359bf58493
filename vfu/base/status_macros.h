// Early-return helpers for absl::Status and absl::StatusOr, spelled as in
// newer Abseil releases (absl/status/status_macros.h), which the Abseil this
// project builds against does not have yet.
//
//   absl::Status Load() {
//     VFU_RETURN_IF_ERROR(Open());
//     VFU_ASSIGN_OR_RETURN(Header header, DecodeHeader(bytes));
//     ...
//   }
#ifndef VFU_BASE_STATUS_MACROS_H_
#define VFU_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns from the enclosing function with `expr`'s status if it is not OK.
#define VFU_RETURN_IF_ERROR(expr)                                  \
  do {                                                             \
    ::absl::Status vfu_status_internal_ = (expr);                  \
    if (!vfu_status_internal_.ok()) return vfu_status_internal_;   \
  } while (false)

#define VFU_STATUS_MACROS_CONCAT_INNER_(a, b) a##b
#define VFU_STATUS_MACROS_CONCAT_(a, b) VFU_STATUS_MACROS_CONCAT_INNER_(a, b)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status from
// the enclosing function, otherwise moves the value into `lhs`, which may be
// a declaration (`VFU_ASSIGN_OR_RETURN(auto x, F())`).
#define VFU_ASSIGN_OR_RETURN(lhs, rexpr)                                   \
  VFU_ASSIGN_OR_RETURN_IMPL_(                                              \
      VFU_STATUS_MACROS_CONCAT_(vfu_statusor_, __LINE__), lhs, rexpr)

#define VFU_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                               \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // VFU_BASE_STATUS_MACROS_H_
