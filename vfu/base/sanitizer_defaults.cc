// ThreadSanitizer suppressions for vfu's own executables: tests (through
// //testing:gtest_main), tools and example devices. Linked statically, since
// libtsan reads this hook from the executable, not from shared libraries
// loaded after it. Not part of //vfu: a consumer may define its own.
//
// 1. Abseil 20220623's Mutex wakes a sleeping thread by posting to that
//    thread's ThreadIdentity, created in memory it mmap()ed when it first
//    blocked. The hand-off runs through the mutex's waiter list, whose
//    synchronization Abseil hides from TSan, so the post is reported as
//    racing with the mmap() (google/sanitizers#953, abseil/abseil-cpp#217).
//    Waiter::Post touches only Abseil's per-thread state.
// 2. moodycamel::ConcurrentQueue orders its slots with standalone atomic
//    fences, which TSan does not model (the queue's header says so; its
//    MOODYCAMEL_NO_TSAN attribute needs clang). Reports inside its frames
//    are about its own slots.
// 3. Debian's gRPC (the control plane, vfu/control/) is not built with
//    ThreadSanitizer, so TSan cannot see the synchronization inside it and
//    reports its own threads' hand-offs (dozens per run), including those
//    inside Debian's Abseil, which gRPC's mutexes are (inline namespace
//    absl::debian3; ours is absl::lts_20220623). Suppressed by library and
//    namespace only; the control plane's state on our side
//    (EventBus, DeviceStatistics, the server backend) is instrumented and
//    tested under TSan through the Abseil-using side.
#if defined(__SANITIZE_THREAD__)
#define VFU_TSAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VFU_TSAN_BUILD 1
#endif
#endif

#ifdef VFU_TSAN_BUILD
extern "C" __attribute__((visibility("default"), used)) const char*
__tsan_default_suppressions() {
  return "race:absl::*::synchronization_internal::Waiter::Post\n"
         "race:moodycamel::ConcurrentQueue\n"
         "called_from_lib:libgrpc_unsecure.so.29\n"
         "called_from_lib:libgrpc++_unsecure.so.1.51\n"
         "called_from_lib:libgpr.so.29\n"
         "race:libgrpc_unsecure.so.29\n"
         "race:libgrpc++_unsecure.so.1.51\n"
         "race:libgpr.so.29\n"
         "race:grpc::\n"
         "race:grpc_core::\n"
         // Debian's Abseil (soname-versioned; ours is linked in unversioned).
         "called_from_lib:libabsl_synchronization.so.20220623\n"
         "called_from_lib:libabsl_graphcycles_internal.so.20220623\n"
         "called_from_lib:libabsl_status.so.20220623\n"
         "race:libabsl_*.so.20220623\n"
         "race:absl::debian3::\n";
}
#endif
