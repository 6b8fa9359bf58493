// VFU_CHECK: aborts the process when an internal invariant is broken.
//
// For bugs in vfu itself only, never for anything a peer sends: peer input
// is validated and answered with an error (see vfu/wire/errno_status.h).
#ifndef VFU_BASE_CHECK_H_
#define VFU_BASE_CHECK_H_

#include <cstdio>
#include <cstdlib>

#include "absl/base/optimization.h"

#define VFU_CHECK(condition, message)                                       \
  do {                                                                      \
    if (ABSL_PREDICT_FALSE(!(condition))) {                                 \
      std::fprintf(stderr, "%s:%d: check failed: %s: %s\n", __FILE__,      \
                   __LINE__, #condition, message);                          \
      std::abort();                                                         \
    }                                                                       \
  } while (false)

#endif  // VFU_BASE_CHECK_H_
