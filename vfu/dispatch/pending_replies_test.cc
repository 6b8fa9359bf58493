#include "vfu/dispatch/pending_replies.h"

#include <sys/eventfd.h>

#include <deque>
#include <memory>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/base/unique_fd.h"

namespace vfu {
namespace {

using ::vfu::testing::IsOk;
using ::vfu::testing::StatusIs;
using Reply = PendingReplies::Reply;
using Slot = PendingReplies::Slot;

// Deadline for waits that only time out when the code under test is broken.
absl::Time Later() { return absl::Now() + absl::Seconds(10); }

Reply BytesReply(std::vector<uint8_t> bytes) {
  Reply reply;
  reply.bytes = std::move(bytes);
  return reply;
}

// A blocking FIFO of message IDs: waiters hand their IDs to a fake IO
// thread.
class IdChannel {
 public:
  void Push(uint16_t id) {
    absl::MutexLock lock(&mu_);
    ids_.push_back(id);
  }
  uint16_t Pop() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &IdChannel::NonEmpty));
    uint16_t id = ids_.front();
    ids_.pop_front();
    return id;
  }

 private:
  bool NonEmpty() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return !ids_.empty();
  }
  absl::Mutex mu_;
  std::deque<uint16_t> ids_ ABSL_GUARDED_BY(mu_);
};

// The reply arrives before the waiter calls Wait(): Wait() returns it at
// once, fds included.
TEST(PendingRepliesTest, CompleteBeforeWait) {
  PendingReplies replies;
  Slot slot;
  ASSERT_OK_AND_ASSIGN(uint16_t id, replies.Register(&slot));
  EXPECT_EQ(slot.id(), id);
  EXPECT_EQ(replies.in_flight(), 1u);

  Reply reply = BytesReply({1, 2, 3});
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  const int raw_fd = fd.get();
  reply.fds.push_back(std::move(fd));
  EXPECT_TRUE(replies.Complete(id, std::move(reply)));
  EXPECT_EQ(replies.in_flight(), 0u);

  ASSERT_OK_AND_ASSIGN(Reply got, replies.Wait(&slot, absl::InfinitePast()));
  EXPECT_EQ(got.bytes, (std::vector<uint8_t>{1, 2, 3}));
  ASSERT_EQ(got.fds.size(), 1u);
  EXPECT_EQ(got.fds[0].get(), raw_fd);
}

// The waiter blocks in Wait(); the IO thread completes from another thread.
TEST(PendingRepliesTest, WaitThenCompleteFromAnotherThread) {
  PendingReplies replies;
  IdChannel channel;
  absl::StatusOr<Reply> result;
  std::thread waiter([&] {
    Slot slot;
    absl::StatusOr<uint16_t> id = replies.Register(&slot);
    if (!id.ok()) {
      result = id.status();
      channel.Push(0);  // Unblock the main thread; the test fails below.
      return;
    }
    channel.Push(*id);
    result = replies.Wait(&slot, Later());
  });
  const uint16_t id = channel.Pop();
  EXPECT_TRUE(replies.Complete(id, BytesReply({42})));
  waiter.join();
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(result->bytes, (std::vector<uint8_t>{42}));
}

// No reply by the deadline: DeadlineExceeded, the ID is freed, and a late
// reply for it is refused (and touches no freed slot: run under ASan).
TEST(PendingRepliesTest, TimeoutFreesIdAndLateReplyIsRefused) {
  PendingReplies replies;
  uint16_t id;
  {
    Slot slot;
    ASSERT_OK_AND_ASSIGN(id, replies.Register(&slot));
    EXPECT_THAT(replies.Wait(&slot, absl::Now() + absl::Milliseconds(1)),
                StatusIs(absl::StatusCode::kDeadlineExceeded));
    EXPECT_EQ(replies.in_flight(), 0u);
  }
  EXPECT_FALSE(replies.Complete(id, BytesReply({7})));
}

// A reply for an ID nobody registered is refused.
TEST(PendingRepliesTest, CompleteUnknownIdReturnsFalse) {
  PendingReplies replies;
  EXPECT_FALSE(replies.Complete(123, BytesReply({})));
  Slot slot;
  ASSERT_OK_AND_ASSIGN(uint16_t id, replies.Register(&slot));
  EXPECT_FALSE(replies.Complete(static_cast<uint16_t>(id + 1), BytesReply({})));
  EXPECT_TRUE(replies.Complete(id, BytesReply({})));
  EXPECT_FALSE(replies.Complete(id, BytesReply({})));  // Only once.
}

// A slot destroyed without Wait() (the request could not be sent) unlinks
// itself.
TEST(PendingRepliesTest, SlotDestroyedUnwaitedUnlinks) {
  PendingReplies replies;
  uint16_t id;
  {
    Slot slot;
    ASSERT_OK_AND_ASSIGN(id, replies.Register(&slot));
  }
  EXPECT_EQ(replies.in_flight(), 0u);
  EXPECT_FALSE(replies.Complete(id, BytesReply({})));
}

// Deadline and reply race: whichever wins, the outcomes agree. Wait() is OK
// exactly when Complete() returned true; a lost race never frees a slot
// Complete() is writing (ASan), nor drops a delivered reply.
TEST(PendingRepliesTest, TimeoutRacingCompleteAgree) {
  constexpr int kRounds = 3000;
  PendingReplies replies;
  IdChannel channel;
  std::vector<char> completed(kRounds);
  std::thread io([&] {
    for (int i = 0; i < kRounds; ++i) {
      const uint16_t id = channel.Pop();
      completed[i] = replies.Complete(id, BytesReply({static_cast<uint8_t>(i)}));
    }
  });
  std::vector<char> delivered(kRounds);
  for (int i = 0; i < kRounds; ++i) {
    Slot slot;
    ASSERT_OK_AND_ASSIGN(uint16_t id, replies.Register(&slot));
    channel.Push(id);
    absl::StatusOr<Reply> reply =
        replies.Wait(&slot, absl::Now() + absl::Microseconds(i % 40));
    if (reply.ok()) {
      ASSERT_EQ(reply->bytes, (std::vector<uint8_t>{static_cast<uint8_t>(i)}));
    } else {
      ASSERT_THAT(reply, StatusIs(absl::StatusCode::kDeadlineExceeded));
    }
    delivered[i] = reply.ok();
  }
  io.join();
  int timeouts = 0;
  for (int i = 0; i < kRounds; ++i) {
    EXPECT_EQ(delivered[i], completed[i]) << "round " << i;
    timeouts += !delivered[i];
  }
  EXPECT_EQ(replies.in_flight(), 0u);
  RecordProperty("timeouts", timeouts);
}

// FailAll() wakes every waiter at once with its status, long before their
// 10 s deadlines (they would otherwise report DeadlineExceeded).
TEST(PendingRepliesTest, FailAllWakesEveryWaiter) {
  constexpr int kWaiters = 8;
  PendingReplies replies;
  absl::BlockingCounter registered(kWaiters);
  std::vector<absl::StatusOr<Reply>> results(kWaiters);
  std::vector<std::thread> waiters;
  for (int w = 0; w < kWaiters; ++w) {
    waiters.emplace_back([&, w] {
      Slot slot;
      absl::StatusOr<uint16_t> id = replies.Register(&slot);
      registered.DecrementCount();
      if (!id.ok()) {
        results[w] = id.status();
        return;
      }
      results[w] = replies.Wait(&slot, Later());
    });
  }
  registered.Wait();
  EXPECT_EQ(replies.in_flight(), size_t{kWaiters});
  replies.FailAll(absl::UnavailableError("client disconnected"));
  for (std::thread& waiter : waiters) waiter.join();
  for (const absl::StatusOr<Reply>& result : results) {
    EXPECT_THAT(result, StatusIs(absl::StatusCode::kUnavailable));
  }
  EXPECT_EQ(replies.in_flight(), 0u);
}

// After FailAll(), Register() fails with its status until Reset().
TEST(PendingRepliesTest, RegisterFailsAfterFailAllUntilReset) {
  PendingReplies replies;
  replies.FailAll(absl::UnavailableError("client disconnected"));
  {
    Slot slot;
    EXPECT_THAT(replies.Register(&slot),
                StatusIs(absl::StatusCode::kUnavailable));
    EXPECT_EQ(replies.in_flight(), 0u);
  }
  replies.Reset();
  Slot slot;
  ASSERT_OK_AND_ASSIGN(uint16_t id, replies.Register(&slot));
  EXPECT_TRUE(replies.Complete(id, BytesReply({1})));
  EXPECT_THAT(replies.Wait(&slot, Later()), IsOk());
}

// Wrap-around: with IDs 5..10 held in flight, 200 000 allocations (three
// laps of the ID space) never hand one of them out, and do reuse the rest.
TEST(PendingRepliesTest, WrapAroundSkipsInFlightIds) {
  PendingReplies replies;
  std::vector<std::unique_ptr<Slot>> held;
  for (int i = 0; i <= 10; ++i) {
    held.push_back(std::make_unique<Slot>());
    ASSERT_OK_AND_ASSIGN(uint16_t id, replies.Register(held.back().get()));
    ASSERT_EQ(id, i);  // Fresh table: IDs start at 0, in order.
  }
  held.erase(held.begin(), held.begin() + 5);  // Frees 0..4.
  ASSERT_EQ(replies.in_flight(), 6u);

  std::vector<bool> seen(65536, false);
  for (int i = 0; i < 200000; ++i) {
    Slot slot;
    ASSERT_OK_AND_ASSIGN(uint16_t id, replies.Register(&slot));
    ASSERT_FALSE(id >= 5 && id <= 10) << "handed out in-flight ID " << id;
    seen[id] = true;
  }
  int distinct = 0;
  for (bool s : seen) distinct += s;
  EXPECT_EQ(distinct, 65536 - 6);
  for (const auto& slot : held) {
    EXPECT_TRUE(replies.Complete(slot->id(), BytesReply({})));
  }
}

// With all 65536 IDs in flight Register() fails with ResourceExhausted;
// freeing one makes exactly that ID available.
TEST(PendingRepliesTest, AllIdsInFlightIsResourceExhausted) {
  PendingReplies replies;
  std::vector<std::unique_ptr<Slot>> slots;
  for (int i = 0; i < 65536; ++i) {
    slots.push_back(std::make_unique<Slot>());
    ASSERT_THAT(replies.Register(slots.back().get()), IsOk());
  }
  {
    Slot extra;
    EXPECT_THAT(replies.Register(&extra),
                StatusIs(absl::StatusCode::kResourceExhausted));
  }
  const uint16_t freed = slots[1234]->id();
  slots[1234].reset();
  Slot again;
  ASSERT_OK_AND_ASSIGN(uint16_t id, replies.Register(&again));
  EXPECT_EQ(id, freed);
  replies.FailAll(absl::UnavailableError("done"));  // Releases the rest.
}

// 8 waiter threads x 2000 requests, all completed by one IO thread: every
// waiter gets its own reply.
TEST(PendingRepliesTest, ConcurrentStress) {
  constexpr int kThreads = 8;
  constexpr int kCalls = 2000;
  PendingReplies replies;
  IdChannel channel;
  std::thread io([&] {
    for (int i = 0; i < kThreads * kCalls; ++i) {
      const uint16_t id = channel.Pop();
      const bool known = replies.Complete(
          id, BytesReply({static_cast<uint8_t>(id), static_cast<uint8_t>(id >> 8)}));
      EXPECT_TRUE(known) << "id " << id;
    }
  });
  std::vector<std::thread> waiters;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    waiters.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        Slot slot;
        absl::StatusOr<uint16_t> id = replies.Register(&slot);
        if (!id.ok()) {
          ++failures[t];
          channel.Push(0);  // Keep the IO thread's count right.
          continue;
        }
        channel.Push(*id);
        absl::StatusOr<Reply> reply = replies.Wait(&slot, Later());
        const std::vector<uint8_t> expected = {static_cast<uint8_t>(*id),
                                               static_cast<uint8_t>(*id >> 8)};
        if (!reply.ok() || reply->bytes != expected) ++failures[t];
      }
    });
  }
  for (std::thread& waiter : waiters) waiter.join();
  io.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
  EXPECT_EQ(replies.in_flight(), 0u);
}

// Waiting() is true only for the registration that still waits: not after
// a timeout, a completion or a failure, and not for an earlier
// registration whose ID was reissued.
TEST(PendingRepliesTest, WaitingNamesOneRegistration) {
  PendingReplies replies;
  uint16_t timed_out_id;
  uint64_t timed_out_ticket;
  {
    Slot slot;
    ASSERT_OK_AND_ASSIGN(timed_out_id, replies.Register(&slot));
    timed_out_ticket = slot.ticket();
    EXPECT_TRUE(replies.Waiting(timed_out_id, timed_out_ticket));
    EXPECT_THAT(replies.Wait(&slot, absl::Now()), StatusIs(absl::StatusCode::kDeadlineExceeded));
    EXPECT_FALSE(replies.Waiting(timed_out_id, timed_out_ticket));
  }
  // Go round the ID space until the same ID comes back.
  for (int i = 0; i < 65535; ++i) {
    Slot other;
    ASSERT_OK(replies.Register(&other).status());
  }
  Slot again;
  ASSERT_OK_AND_ASSIGN(uint16_t id, replies.Register(&again));
  ASSERT_EQ(id, timed_out_id);
  EXPECT_TRUE(replies.Waiting(id, again.ticket()));
  EXPECT_FALSE(replies.Waiting(id, timed_out_ticket));
  ASSERT_TRUE(replies.Complete(id, Reply{}));
  EXPECT_FALSE(replies.Waiting(id, again.ticket()));
  ASSERT_OK(replies.Wait(&again, absl::Now()).status());

  Slot failed;
  ASSERT_OK_AND_ASSIGN(uint16_t failed_id, replies.Register(&failed));
  replies.FailAll(absl::UnavailableError("gone"));
  EXPECT_FALSE(replies.Waiting(failed_id, failed.ticket()));
  EXPECT_THAT(replies.Wait(&failed, absl::Now()).status(),
              StatusIs(absl::StatusCode::kUnavailable));
}

}  // namespace
}  // namespace vfu
