#include "vfu/base/fault_guard.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace vfu {
namespace {

constexpr size_t kSize = 2 * 4096;

// A shared file mapping whose file is then truncated to nothing: every
// access to it raises SIGBUS, as client memory does after the client
// shrinks its memfd.
class VanishedMemory {
 public:
  VanishedMemory() {
    fd_ = ::memfd_create("fault_guard_test", MFD_CLOEXEC);
    EXPECT_GE(fd_, 0);
    EXPECT_EQ(::ftruncate(fd_, kSize), 0);
    void* p = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    EXPECT_NE(p, MAP_FAILED);
    data_ = static_cast<uint8_t*>(p);
    std::memset(data_, 0x5a, kSize);
  }
  ~VanishedMemory() {
    ::munmap(data_, kSize);
    ::close(fd_);
  }
  void Vanish() { ASSERT_EQ(::ftruncate(fd_, 0), 0); }
  uint8_t* data() { return data_; }

 private:
  int fd_ = -1;
  uint8_t* data_ = nullptr;
};

TEST(FaultGuardTest, CopiesWhenNothingFaults) {
  VanishedMemory memory;
  std::vector<uint8_t> out(kSize);
  ASSERT_TRUE(GuardedMemcpy(out.data(), memory.data(), kSize));
  EXPECT_EQ(out, std::vector<uint8_t>(kSize, 0x5a));
  std::vector<uint8_t> in(100, 0x11);
  ASSERT_TRUE(GuardedMemmove(memory.data() + 10, in.data(), in.size()));
  EXPECT_EQ(memory.data()[10], 0x11);
}

TEST(FaultGuardTest, ReadOfVanishedMemoryFails) {
  VanishedMemory memory;
  memory.Vanish();
  std::vector<uint8_t> out(kSize);
  void* where = nullptr;
  EXPECT_FALSE(GuardedMemcpy(out.data(), memory.data(), kSize, &where));
  EXPECT_GE(static_cast<uint8_t*>(where), memory.data());
  EXPECT_LT(static_cast<uint8_t*>(where), memory.data() + kSize);
  // The guard is disarmed and re-armable: the same thread faults again,
  // and is caught again.
  EXPECT_FALSE(GuardedMemcpy(out.data(), memory.data() + 4096, 16));
}

TEST(FaultGuardTest, WriteToVanishedMemoryFails) {
  VanishedMemory memory;
  memory.Vanish();
  std::vector<uint8_t> in(kSize, 1);
  EXPECT_FALSE(GuardedMemcpy(memory.data(), in.data(), kSize));
  EXPECT_FALSE(GuardedMemmove(memory.data() + 1, in.data(), 64));
}

TEST(FaultGuardTest, RunFaultGuardedReportsAFaultInTheFunction) {
  VanishedMemory memory;
  memory.Vanish();
  struct Args {
    volatile uint8_t* p;
    volatile int steps;  // volatile: stores before the fault must happen
  } args{memory.data(), 0};
  void* where = nullptr;
  EXPECT_FALSE(RunFaultGuarded(
      [](void* a) {
        auto* args = static_cast<Args*>(a);
        args->steps = 1;
        args->p[4096 + 7] = 3;  // faults
        args->steps = 2;
      },
      &args, &where));
  EXPECT_EQ(args.steps, 1);
  EXPECT_EQ(static_cast<uint8_t*>(where), memory.data() + 4096 + 7);
}

TEST(FaultGuardTest, GuardsNest) {
  VanishedMemory memory;
  memory.Vanish();
  struct Args {
    uint8_t* vanished;
    bool inner_ok = true;
    bool after_inner = false;
  } args{memory.data()};
  // The inner fault returns to the inner guard; the outer section goes on
  // and completes normally.
  EXPECT_TRUE(RunFaultGuarded(
      [](void* a) {
        auto* args = static_cast<Args*>(a);
        uint8_t byte;
        args->inner_ok = GuardedMemcpy(&byte, args->vanished, 1);
        args->after_inner = true;
      },
      &args));
  EXPECT_FALSE(args.inner_ok);
  EXPECT_TRUE(args.after_inner);
}

TEST(FaultGuardTest, FaultsOnOtherThreadsAreCaughtThere) {
  VanishedMemory memory;
  memory.Vanish();
  std::vector<uint8_t> thread_out(64);
  std::vector<uint8_t> main_out(64);
  bool thread_result = true;
  std::thread thread(
      [&] { thread_result = GuardedMemcpy(thread_out.data(), memory.data(), 64); });
  const bool main_result = GuardedMemcpy(main_out.data(), memory.data() + 4096, 64);
  thread.join();
  EXPECT_FALSE(thread_result);
  EXPECT_FALSE(main_result);
}

// Exit code of the handler that was in place before the guard's.
constexpr int kPreviousHandlerExit = 42;

void PreviousHandler(int) { ::_exit(kPreviousHandlerExit); }

// A SIGBUS outside any guarded section goes to the handler that was there
// before: the guard swallows only its own faults.
TEST(FaultGuardDeathTest, UnguardedFaultChainsToThePreviousHandler) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        struct sigaction action;
        std::memset(&action, 0, sizeof(action));
        action.sa_handler = PreviousHandler;
        ::sigaction(SIGBUS, &action, nullptr);
        InstallFaultGuardHandler();
        VanishedMemory memory;
        memory.Vanish();
        uint8_t byte = 0;
        EXPECT_FALSE(GuardedMemcpy(&byte, memory.data(), 1));  // still caught
        volatile uint8_t* p = memory.data();
        byte = p[0];  // not guarded
      },
      ::testing::ExitedWithCode(kPreviousHandlerExit), "");
}

TEST(FaultGuardDeathTest, UnguardedFaultStillKillsWithoutAPreviousHandler) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        InstallFaultGuardHandler();
        VanishedMemory memory;
        memory.Vanish();
        volatile uint8_t* p = memory.data();
        (void)p[0];
      },
      "");
}

}  // namespace
}  // namespace vfu
