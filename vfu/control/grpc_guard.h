// Include this FIRST in every file that includes gRPC headers.
//
// Debian's gRPC is compiled against Debian's Abseil (/usr/include/absl,
// ABSL_OPTION_USE_STD_* = 0); vfu builds its own Abseil (options = 2). A
// file that sees both compiles gRPC's inline code against the wrong Abseil
// (an ODR violation that breaks on the first API using absl::optional or
// absl::string_view). Files including gRPC must therefore not depend on
// @com_google_absl, directly or through any target: they reach the rest of
// vfu through Abseil-free interfaces (std types and proto messages;
// vfu/control/control_backend.h).
//
// This makes that a build error: if our Abseil is on the include path, the
// options.h found here is ours and the check below fails.
#ifndef VFU_CONTROL_GRPC_GUARD_H_
#define VFU_CONTROL_GRPC_GUARD_H_

#include "absl/base/options.h"

#if ABSL_OPTION_USE_STD_OPTIONAL != 0
#error "vfu's own Abseil is visible in a file that includes gRPC: remove @com_google_absl from this target's dependencies (see vfu/control/grpc_guard.h)"
#endif

#endif  // VFU_CONTROL_GRPC_GUARD_H_
