#include "vfu/stats/event_bus.h"

#include <thread>

#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace vfu {
namespace {

ServerEvent Named(std::string device) {
  return ServerEvent{.kind = ServerEvent::Kind::kDeviceReset, .device = std::move(device)};
}

TEST(EventBusTest, DeliversInOrderAfterASequence) {
  EventBus bus;
  bus.Publish(Named("a"));
  bus.Publish(Named("b"));
  bus.Publish(Named("c"));
  EventBus::Batch all = bus.WaitAfter(0, absl::Now());
  ASSERT_EQ(all.events.size(), 3u);
  EXPECT_EQ(all.events[0].device, "a");
  EXPECT_EQ(all.events[0].sequence, 1u);
  EXPECT_EQ(all.events[2].sequence, 3u);
  EXPECT_EQ(all.dropped_before, 0u);
  EventBus::Batch tail = bus.WaitAfter(2, absl::Now());
  ASSERT_EQ(tail.events.size(), 1u);
  EXPECT_EQ(tail.events[0].device, "c");
}

TEST(EventBusTest, DropsTheOldestPastCapacityAndSaysHowMany) {
  EventBus bus(/*capacity=*/2);
  for (const char* d : {"a", "b", "c", "d", "e"}) bus.Publish(Named(d));
  EXPECT_EQ(bus.dropped(), 3u);
  EventBus::Batch batch = bus.WaitAfter(0, absl::Now());
  ASSERT_EQ(batch.events.size(), 2u);
  EXPECT_EQ(batch.events[0].device, "d");
  EXPECT_EQ(batch.dropped_before, 3u);
  // A reader that had seen "b" missed "c" only.
  EXPECT_EQ(bus.WaitAfter(2, absl::Now()).dropped_before, 1u);
}

TEST(EventBusTest, WaitReturnsWhenAnEventArrives) {
  EventBus bus;
  absl::Notification waiting;
  std::thread publisher([&] {
    waiting.WaitForNotification();
    bus.Publish(Named("late"));
  });
  waiting.Notify();
  EventBus::Batch batch = bus.WaitAfter(0, absl::Now() + absl::Seconds(30));
  publisher.join();
  ASSERT_EQ(batch.events.size(), 1u);
  EXPECT_EQ(batch.events[0].device, "late");
}

TEST(EventBusTest, WaitEndsAtTheDeadlineOrOnClose) {
  EventBus bus;
  EXPECT_TRUE(bus.WaitAfter(0, absl::Now() + absl::Milliseconds(20)).events.empty());
  bus.Close();
  const absl::Time start = absl::Now();
  EXPECT_TRUE(bus.WaitAfter(0, absl::Now() + absl::Seconds(30)).events.empty());
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(EventBusTest, RateLimitsProtocolErrors) {
  EventBus bus;
  for (int i = 0; i < 3 * EventBus::kProtocolErrorsPerSecond; ++i) {
    bus.PublishRateLimited(ServerEvent{.kind = ServerEvent::Kind::kProtocolError});
  }
  // All within one second (a slow machine may straddle two windows).
  EXPECT_LE(bus.last_sequence(), 2u * EventBus::kProtocolErrorsPerSecond);
  EXPECT_GE(bus.last_sequence(), uint64_t{EventBus::kProtocolErrorsPerSecond});
  EXPECT_EQ(bus.last_sequence() + bus.rate_limited(), 3u * EventBus::kProtocolErrorsPerSecond);
}

}  // namespace
}  // namespace vfu
