// The soak test's hostile dma patterns (see hostile_dma_patterns.cc for each).
#ifndef VFU_TESTING_SOAK_HOSTILE_DMA_PATTERNS_H_
#define VFU_TESTING_SOAK_HOSTILE_DMA_PATTERNS_H_

#include <memory>
#include <vector>

#include "testing/soak/pattern.h"

namespace vfu::soak {

std::vector<std::unique_ptr<Pattern>> HostileDmaPatterns();

}  // namespace vfu::soak

#endif  // VFU_TESTING_SOAK_HOSTILE_DMA_PATTERNS_H_
