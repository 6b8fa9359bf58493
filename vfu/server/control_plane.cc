#include "vfu/server/control_plane.h"

#include <atomic>

namespace vfu {
namespace {

std::atomic<ControlPlaneFactory> factory{nullptr};

}  // namespace

void SetControlPlaneFactory(ControlPlaneFactory f) { factory.store(f, std::memory_order_release); }

ControlPlaneFactory GetControlPlaneFactory() { return factory.load(std::memory_order_acquire); }

}  // namespace vfu
