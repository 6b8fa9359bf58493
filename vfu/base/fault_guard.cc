#include "vfu/base/fault_guard.h"

#include <setjmp.h>
#include <signal.h>
#include <ucontext.h>

#include <atomic>
#include <cstring>

namespace vfu {
namespace {

// The innermost guarded section of this thread. Initial-exec TLS: the
// signal handler reads it, and a dynamically allocated TLS block could need
// malloc on first touch.
struct GuardState {
  sigjmp_buf* env = nullptr;
  void* fault_address = nullptr;
  // The signal mask of the interrupted code. SA_NODEFER keeps SIGBUS
  // unblocked in our handler, but a runtime that wraps handlers (TSan's
  // blocks every signal while one runs) may not, and a jump that skips the
  // wrapper's return would leave the thread with signals blocked, where the
  // next SIGBUS kills the process. So the fault path restores it.
  sigset_t mask;
};
__attribute__((tls_model("initial-exec"))) thread_local GuardState tls_guard;

// What was installed before us; written once, before our handler can run.
struct sigaction previous_action;

void ChainToPrevious(int sig, siginfo_t* info, void* context) {
  if ((previous_action.sa_flags & SA_SIGINFO) != 0) {
    if (previous_action.sa_sigaction != nullptr) {
      previous_action.sa_sigaction(sig, info, context);
      return;
    }
  } else if (previous_action.sa_handler != SIG_DFL && previous_action.sa_handler != SIG_IGN) {
    previous_action.sa_handler(sig);
    return;
  }
  // Default (or ignored, which cannot stop a hardware fault from repeating):
  // die the way the process would have without us.
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  ::sigaction(sig, &dfl, nullptr);
  ::raise(sig);
}

void OnSigbus(int sig, siginfo_t* info, void* context) {
  GuardState& state = tls_guard;
  sigjmp_buf* env = state.env;
  // Only a fault of this thread's own access (si_code > 0) is the guard's: a
  // SIGBUS sent with kill() goes where it would have gone without vfu.
  if (env == nullptr || info->si_code <= 0) {
    ChainToPrevious(sig, info, context);
    return;
  }
  // Disarm first: a fault after this point is not ours to swallow.
  state.env = nullptr;
  state.fault_address = info->si_addr;
  state.mask = static_cast<ucontext_t*>(context)->uc_sigmask;
  // The jump buffer was saved without the mask (saving it costs a system
  // call per guarded access); the guard puts the mask back after the jump.
  siglongjmp(*env, 1);
}

bool Install() {
  struct sigaction action;
  std::memset(&action, 0, sizeof(action));
  action.sa_sigaction = OnSigbus;
  action.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  // previous_action is complete before the handler can see a fault in a
  // guarded section: no guard is armed before Install() returns.
  return ::sigaction(SIGBUS, &action, &previous_action) == 0;
}

// Arms the guard of the current thread with `env`.
inline void Arm(sigjmp_buf* env) {
  tls_guard.env = env;
  // The handler (same thread) must see the store before any guarded access.
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

inline void Disarm(sigjmp_buf* outer) {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  tls_guard.env = outer;
}

// After the jump back from a fault: the interrupted code's signal mask
// again, and where the fault struck.
inline void RecoverFromFault(void** fault_address) {
  ::pthread_sigmask(SIG_SETMASK, &tls_guard.mask, nullptr);
  if (fault_address != nullptr) *fault_address = tls_guard.fault_address;
}

}  // namespace

void InstallFaultGuardHandler() {
  static const bool installed = Install();
  (void)installed;
}

// Each entry point keeps its own sigsetjmp: the frame that saved the jump
// buffer must still be live when the handler jumps back to it, and a
// function that calls sigsetjmp cannot be inlined into its caller. So the
// body is a macro, expanded once per entry point.
#define VFU_RUN_FAULT_GUARDED_(access, fault_address) \
  do {                                                 \
    InstallFaultGuardHandler();                        \
    sigjmp_buf env;                                    \
    sigjmp_buf* const outer = tls_guard.env;           \
    if (sigsetjmp(env, /*savemask=*/0) != 0) {         \
      Disarm(outer);                                   \
      RecoverFromFault(fault_address);                 \
      return false;                                    \
    }                                                  \
    Arm(&env);                                         \
    access;                                            \
    Disarm(outer);                                     \
    return true;                                       \
  } while (false)

bool RunFaultGuarded(void (*fn)(void*), void* arg, void** fault_address) {
  VFU_RUN_FAULT_GUARDED_(fn(arg), fault_address);
}

bool GuardedMemcpy(void* dst, const void* src, size_t n, void** fault_address) {
  VFU_RUN_FAULT_GUARDED_(std::memcpy(dst, src, n), fault_address);
}

bool GuardedMemmove(void* dst, const void* src, size_t n, void** fault_address) {
  VFU_RUN_FAULT_GUARDED_(std::memmove(dst, src, n), fault_address);
}

#undef VFU_RUN_FAULT_GUARDED_

}  // namespace vfu
