// The soak test's hostile device patterns (see hostile_device_patterns.cc for each).
#ifndef VFU_TESTING_SOAK_HOSTILE_DEVICE_PATTERNS_H_
#define VFU_TESTING_SOAK_HOSTILE_DEVICE_PATTERNS_H_

#include <memory>
#include <vector>

#include "testing/soak/pattern.h"

namespace vfu::soak {

std::vector<std::unique_ptr<Pattern>> HostileDevicePatterns();

}  // namespace vfu::soak

#endif  // VFU_TESTING_SOAK_HOSTILE_DEVICE_PATTERNS_H_
