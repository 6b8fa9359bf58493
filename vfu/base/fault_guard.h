// Memory access that survives the memory going away under it.
//
// Client memory is a file the client can truncate at any time; touching a
// page past the new end raises SIGBUS. A guarded access turns that signal
// into a false return instead of the death of the whole server:
//
//   if (!GuardedMemcpy(out, client_bytes, n)) {
//     // The client's memory faulted: fail the transfer, drop the client.
//   }
//
// For other accesses than a copy, RunFaultGuarded(fn, arg) runs `fn(arg)`
// with the same protection. Rules for `fn`, because a fault leaves it
// half-way with siglongjmp and nothing on its stack gets unwound:
//   - nothing with a destructor lives in it (no std::string, no locks held
//     by a guard object, no allocation that would leak);
//   - it takes no lock and calls nothing that might (malloc included);
//   - it only reads and writes plain memory. Which of its stores before the
//     fault took place is unspecified (the compiler may defer or drop them),
//     unless they are to volatile objects.
//
// Only SIGBUS is caught. A SIGSEGV means memory that is not mapped at all:
// the DMA code never lets that happen (a mapping stays mapped, or is
// replaced in place with scratch memory, while anyone may touch it), so
// SIGSEGV stays a crash that points at the bug.
//
// The handler is installed once per process, on first use or by
// InstallFaultGuardHandler(), and chains to the handler it replaced for any
// SIGBUS outside a guarded section (a real bug still crashes, and a
// sanitizer still reports it). Code that installs its own SIGBUS handler
// afterwards takes the guard's protection away.
//
// Thread-safe; guards nest. The cost when nothing faults is one sigsetjmp
// (no system call: the signal mask is not saved, the handler runs with
// SA_NODEFER) and two thread-local stores; only a fault pays a system call
// (restoring the signal mask).
#ifndef VFU_BASE_FAULT_GUARD_H_
#define VFU_BASE_FAULT_GUARD_H_

#include <cstddef>

namespace vfu {

// Installs the process-wide SIGBUS handler if it is not installed yet.
// Idempotent and thread-safe; the guarded calls below call it themselves.
void InstallFaultGuardHandler();

// Runs fn(arg). True when it returned; false when a SIGBUS interrupted it
// (then `*fault_address`, when given, is where it struck).
bool RunFaultGuarded(void (*fn)(void*), void* arg, void** fault_address = nullptr);

// memcpy / memmove that return false instead of dying when either side
// faults. The destination may be partly written.
bool GuardedMemcpy(void* dst, const void* src, size_t n, void** fault_address = nullptr);
bool GuardedMemmove(void* dst, const void* src, size_t n, void** fault_address = nullptr);

}  // namespace vfu

#endif  // VFU_BASE_FAULT_GUARD_H_
