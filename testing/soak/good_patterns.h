// The soak test's well-behaved clients (see good_patterns.cc for each).
#ifndef VFU_TESTING_SOAK_GOOD_PATTERNS_H_
#define VFU_TESTING_SOAK_GOOD_PATTERNS_H_

#include <memory>
#include <vector>

#include "testing/soak/pattern.h"

namespace vfu::soak {

std::vector<std::unique_ptr<Pattern>> GoodPatterns();

}  // namespace vfu::soak

#endif  // VFU_TESTING_SOAK_GOOD_PATTERNS_H_
