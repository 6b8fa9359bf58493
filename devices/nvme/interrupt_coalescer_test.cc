// InterruptCoalescer on its own, with a recording signal: thresholds,
// deadlines, CD, the implicit disable of THR or TIME 0, pause flushing,
// reset dropping and stop.
#include "devices/nvme/interrupt_coalescer.h"

#include <array>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace vfu::nvme {
namespace {

using Clock = InterruptCoalescer::Clock;

constexpr absl::Duration kTimeout = absl::Seconds(20);
// Feature 08h value.
constexpr uint32_t Coalescing(uint32_t thr, uint32_t time) { return thr | (time << 8); }

// Records every signal per vector; waits for counts with a deadline.
class Recorder {
 public:
  void Signal(uint16_t vector) {
    absl::MutexLock lock(&mu_);
    ++counts_[vector];
    last_ = Clock::now();
  }
  uint64_t count(uint16_t vector) {
    absl::MutexLock lock(&mu_);
    return counts_[vector];
  }
  // Whether vector `vector` reached `count` signals in time.
  bool WaitFor(uint16_t vector, uint64_t count) {
    absl::MutexLock lock(&mu_);
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return counts_[vector] >= count; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), kTimeout);
  }
  Clock::time_point last() {
    absl::MutexLock lock(&mu_);
    return last_;
  }

 private:
  absl::Mutex mu_;
  std::vector<uint64_t> counts_ ABSL_GUARDED_BY(mu_) = std::vector<uint64_t>(kMsixVectors);
  Clock::time_point last_ ABSL_GUARDED_BY(mu_);
};

// Tests that assert entries are held back hold the timer
// (HoldTimerForTesting), so that a slow machine cannot make TIME run out
// under them; the timer's own tests let it run.
class CoalescerTest : public ::testing::Test {
 protected:
  Recorder recorder_;
  InterruptCoalescer coalescer_{[this](uint16_t vector) { recorder_.Signal(vector); }};
  std::array<bool, kMsixVectors> none_disabled_ = {};
};

// THR = 3: the fourth entry raises the vector, the first three do not.
TEST_F(CoalescerTest, ThresholdOfFourEntriesGivesOneInterrupt) {
  coalescer_.HoldTimerForTesting(true);
  coalescer_.Configure(Coalescing(3, 255), none_disabled_);
  for (int i = 0; i < 3; ++i) coalescer_.Completed(1, 1);
  EXPECT_EQ(recorder_.count(1), 0u) << "three entries wait";
  coalescer_.Completed(1, 1);
  EXPECT_EQ(recorder_.count(1), 1u) << "the fourth reaches THR + 1";
  EXPECT_EQ(coalescer_.timer_signals(), 0u);
}

TEST_F(CoalescerTest, BatchReachingThresholdSignalsOnce) {
  coalescer_.HoldTimerForTesting(true);
  coalescer_.Configure(Coalescing(3, 255), none_disabled_);
  coalescer_.Completed(2, 3);
  EXPECT_EQ(recorder_.count(2), 0u) << "three held";
  coalescer_.Completed(2, 9);
  EXPECT_EQ(recorder_.count(2), 1u) << "one interrupt covers the twelve";
}

// The held timer is released: what came due meanwhile is signalled then.
TEST_F(CoalescerTest, ReleasedTimerSignalsWhatCameDue) {
  coalescer_.HoldTimerForTesting(true);
  coalescer_.Configure(Coalescing(255, 1), none_disabled_);  // 100 us
  coalescer_.Completed(3, 1);
  EXPECT_EQ(recorder_.count(3), 0u);
  coalescer_.HoldTimerForTesting(false);
  ASSERT_TRUE(recorder_.WaitFor(3, 1));
  EXPECT_EQ(coalescer_.timer_signals(), 1u);
}

// A lone entry below the threshold is signalled by the timer, not before
// TIME and not never.
TEST_F(CoalescerTest, LoneEntrySignalledAfterTime) {
  coalescer_.Configure(Coalescing(255, 20), none_disabled_);  // 2 ms
  const Clock::time_point posted = Clock::now();
  coalescer_.Completed(3, 1);
  ASSERT_TRUE(recorder_.WaitFor(3, 1)) << "the timer signals the waiting entry";
  EXPECT_GE(recorder_.last() - posted, std::chrono::milliseconds(2));
  EXPECT_EQ(coalescer_.timer_signals(), 1u);
}

TEST_F(CoalescerTest, ShortestTimeStillSignals) {
  coalescer_.Configure(Coalescing(255, 1), none_disabled_);  // 100 us
  const Clock::time_point posted = Clock::now();
  coalescer_.Completed(4, 1);
  ASSERT_TRUE(recorder_.WaitFor(4, 1));
  EXPECT_GE(recorder_.last() - posted, InterruptCoalescer::kTimeUnit);
}

// NVMe: THR or TIME cleared to 0 disables coalescing implicitly.
TEST_F(CoalescerTest, ZeroTimeOrZeroThresholdSignalsEveryCompletion) {
  coalescer_.HoldTimerForTesting(true);
  coalescer_.Configure(Coalescing(3, 0), none_disabled_);
  for (int i = 0; i < 4; ++i) coalescer_.Completed(1, 1);
  EXPECT_EQ(recorder_.count(1), 4u);
  coalescer_.Configure(Coalescing(0, 255), none_disabled_);
  for (int i = 0; i < 4; ++i) coalescer_.Completed(1, 1);
  EXPECT_EQ(recorder_.count(1), 8u);
  coalescer_.Configure(Coalescing(3, 255), none_disabled_);
  for (int i = 0; i < 4; ++i) coalescer_.Completed(1, 1);
  EXPECT_EQ(recorder_.count(1), 9u) << "both set: coalesced";
}

TEST_F(CoalescerTest, CoalescingDisabledVectorSignalsEveryCompletion) {
  std::array<bool, kMsixVectors> disabled = {};
  disabled[5] = true;
  coalescer_.HoldTimerForTesting(true);
  coalescer_.Configure(Coalescing(3, 255), disabled);
  for (int i = 0; i < 4; ++i) coalescer_.Completed(5, 1);
  EXPECT_EQ(recorder_.count(5), 4u) << "CD = 1";
  for (int i = 0; i < 4; ++i) coalescer_.Completed(6, 1);
  EXPECT_EQ(recorder_.count(6), 1u) << "other vectors still coalesce";
}

TEST_F(CoalescerTest, SignalNowCoversWaitingEntries) {
  coalescer_.HoldTimerForTesting(true);
  coalescer_.Configure(Coalescing(3, 255), none_disabled_);
  coalescer_.Completed(0, 3);
  coalescer_.SignalNow(0);
  EXPECT_EQ(recorder_.count(0), 1u);
  coalescer_.Completed(0, 3);
  EXPECT_EQ(recorder_.count(0), 1u) << "counting restarted at the direct interrupt";
}

TEST_F(CoalescerTest, PauseSignalsWaitingEntriesAndStopsCoalescing) {
  coalescer_.HoldTimerForTesting(true);
  coalescer_.Configure(Coalescing(255, 255), none_disabled_);
  coalescer_.Completed(7, 1);
  coalescer_.Completed(8, 2);
  coalescer_.Pause();
  EXPECT_EQ(recorder_.count(7), 1u) << "signalled before Pause returns";
  EXPECT_EQ(recorder_.count(8), 1u);
  coalescer_.Completed(7, 1);
  EXPECT_EQ(recorder_.count(7), 2u) << "paused: at once";
  coalescer_.Resume();
  coalescer_.Completed(7, 1);
  EXPECT_EQ(recorder_.count(7), 2u) << "coalescing again";
}

TEST_F(CoalescerTest, ChangingTheSettingSignalsWaitingEntries) {
  coalescer_.HoldTimerForTesting(true);
  coalescer_.Configure(Coalescing(255, 255), none_disabled_);
  coalescer_.Completed(9, 1);
  EXPECT_EQ(recorder_.count(9), 0u) << "held";
  coalescer_.Configure(Coalescing(0, 0), none_disabled_);
  EXPECT_EQ(recorder_.count(9), 1u);
}

// A reset drops waiting entries: no interrupt after it, even once their
// deadline has passed, and the setting is back to none.
TEST_F(CoalescerTest, ResetDropsWaitingEntriesAndSetting) {
  coalescer_.HoldTimerForTesting(true);
  coalescer_.Configure(Coalescing(3, 255), none_disabled_);
  coalescer_.Completed(13, 3);
  EXPECT_EQ(recorder_.count(13), 0u) << "held";
  coalescer_.Configure(Coalescing(255, 1), none_disabled_);  // 100 us
  EXPECT_EQ(recorder_.count(13), 1u) << "the new setting signals what waited";
  coalescer_.Completed(10, 1);
  coalescer_.Reset();
  coalescer_.HoldTimerForTesting(false);
  // The timer is serving again: a later lone entry on another vector is
  // signalled at once (no coalescing any more), and vector 10, whose
  // deadline has long passed, stays quiet.
  coalescer_.Completed(11, 1);
  EXPECT_EQ(recorder_.count(11), 1u);
  coalescer_.Configure(Coalescing(255, 1), none_disabled_);
  coalescer_.Completed(12, 1);
  ASSERT_TRUE(recorder_.WaitFor(12, 1));
  EXPECT_EQ(recorder_.count(10), 0u) << "dropped by the reset";
}

// Stop with an entry waiting on a long TIME: returns at once, no signal.
TEST_F(CoalescerTest, StopWithWaitingEntryIsSafe) {
  coalescer_.HoldTimerForTesting(true);
  coalescer_.Configure(Coalescing(255, 255), none_disabled_);
  coalescer_.Completed(1, 1);
  coalescer_.Stop();
  EXPECT_EQ(recorder_.count(1), 0u) << "held, then dropped by Stop";
  coalescer_.Completed(2, 1);
  EXPECT_EQ(recorder_.count(2), 1u) << "stopped: signals at once";
}

// Many threads completing on shared vectors: every entry is covered by
// some interrupt, which the timer delivers for the stragglers.
TEST_F(CoalescerTest, ConcurrentCompletionsAreAllSignalled) {
  coalescer_.Configure(Coalescing(7, 5), none_disabled_);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < 1000; ++i) coalescer_.Completed(static_cast<uint16_t>(t % 2), 1);
    });
  }
  for (auto& thread : threads) thread.join();
  // 2000 entries per vector, THR + 1 = 8: at least 2000 / 8 interrupts,
  // and fewer than one per entry.
  ASSERT_TRUE(recorder_.WaitFor(0, 250));
  ASSERT_TRUE(recorder_.WaitFor(1, 250));
  EXPECT_LT(recorder_.count(0), 2000u);
}

}  // namespace
}  // namespace vfu::nvme
