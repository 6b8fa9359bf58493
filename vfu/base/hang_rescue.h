// HangRescue: a test helper that turns "the call under test blocks
// forever" into a failed assertion instead of a hung test.
//
//   HangRescue rescue([&] { Drain(fd); });   // what unblocks the call
//   CallThatMightBlock();
//   ASSERT_TRUE(rescue.Finish()) << "blocked until the rescue drained it";
//
// A helper thread waits up to `limit` (a generous failure bound, never a
// synchronization delay) for Finish(); if it does not come, it runs
// `unblock`, which must make the call return, and Finish() then reports
// false. testonly.
#ifndef VFU_BASE_HANG_RESCUE_H_
#define VFU_BASE_HANG_RESCUE_H_

#include <functional>
#include <thread>
#include <utility>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace vfu {

class HangRescue {
 public:
  explicit HangRescue(std::function<void()> unblock, absl::Duration limit = absl::Seconds(10))
      : thread_([this, limit, unblock = std::move(unblock)] {
          if (!done_.WaitForNotificationWithTimeout(limit)) {
            rescued_ = true;
            unblock();
          }
        }) {}
  HangRescue(const HangRescue&) = delete;
  HangRescue& operator=(const HangRescue&) = delete;
  ~HangRescue() {
    if (thread_.joinable()) Finish();
  }

  // Call once the call under test has returned. True if it returned on its
  // own, false if the rescue had to unblock it.
  bool Finish() {
    done_.Notify();
    thread_.join();
    return !rescued_;
  }

 private:
  absl::Notification done_;
  bool rescued_ = false;  // written by thread_, read after joining it
  std::thread thread_;
};

}  // namespace vfu

#endif  // VFU_BASE_HANG_RESCUE_H_
