#include "vfu/base/rcu.h"

#include <pthread.h>

#include <urcu/urcu-bp.h>

namespace vfu {
namespace {

#if defined(__SANITIZE_THREAD__)
#define VFU_RCU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VFU_RCU_TSAN 1
#endif
#endif

#ifdef VFU_RCU_TSAN
// liburcu is not instrumented, so ThreadSanitizer cannot see that a grace
// period orders every earlier section before what the writer does next
// (typically freeing what the readers used). Each section's end releases
// this address and each grace period acquires it, which says exactly that.
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
char grace_period_token;
void AnnotateSectionEnd() { __tsan_release(&grace_period_token); }
void AnnotateGracePeriod() { __tsan_acquire(&grace_period_token); }
#else
void AnnotateSectionEnd() {}
void AnnotateGracePeriod() {}
#endif

// liburcu's registry lock must not be held across fork(), or a child that
// goes on using RCU (rather than exec()ing) would deadlock: the library asks
// to be told about every fork. Installed when this file is loaded, which is
// before any section can start.
[[maybe_unused]] const bool fork_handlers_installed = [] {
  return ::pthread_atfork(urcu_bp_before_fork, urcu_bp_after_fork_parent,
                          urcu_bp_after_fork_child) == 0;
}();

}  // namespace

namespace rcu_internal {

void ReadLock() { urcu_bp_read_lock(); }

void ReadUnlock() {
  AnnotateSectionEnd();
  urcu_bp_read_unlock();
}

}  // namespace rcu_internal

void RcuSynchronize() {
  urcu_bp_synchronize_rcu();
  AnnotateGracePeriod();
}

}  // namespace vfu
