// The soak test's hostile stream patterns (see hostile_stream_patterns.cc for each).
#ifndef VFU_TESTING_SOAK_HOSTILE_STREAM_PATTERNS_H_
#define VFU_TESTING_SOAK_HOSTILE_STREAM_PATTERNS_H_

#include <memory>
#include <vector>

#include "testing/soak/pattern.h"

namespace vfu::soak {

std::vector<std::unique_ptr<Pattern>> HostileStreamPatterns();

}  // namespace vfu::soak

#endif  // VFU_TESTING_SOAK_HOSTILE_STREAM_PATTERNS_H_
