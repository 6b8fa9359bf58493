// EventBus: the server's bounded, in-process event buffer, published to by
// the runtime and read by the control plane's event feeds.
//
//   bus.Publish({.kind = ServerEvent::Kind::kDeviceReset, .device = "gpio"});
//   uint64_t after = 0;
//   EventBus::Batch batch = bus.WaitAfter(after, absl::Now() + absl::Seconds(1));
//
// Bound: the most recent `capacity` events (default kDefaultCapacity) are
// kept; publishing into a full buffer drops the oldest and counts it. A
// reader asking for events that were dropped learns how many it missed
// (Batch::dropped_before), so a slow feed never holds memory or blocks the
// runtime: Publish() never waits for readers.
//
// Protocol errors come from clients and could flood the buffer; they go
// through PublishRateLimited(), at most kProtocolErrorsPerSecond per bus
// (the rest are counted in rate_limited()).
//
// Thread safety: every method from any thread.
#ifndef VFU_STATS_EVENT_BUS_H_
#define VFU_STATS_EVENT_BUS_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "vfu/stats/server_event.h"

namespace vfu {

class EventBus {
 public:
  static constexpr size_t kDefaultCapacity = 1024;
  static constexpr int kProtocolErrorsPerSecond = 10;

  explicit EventBus(size_t capacity = kDefaultCapacity);

  // Stamps the event with the next sequence number and the time (unless
  // set), and keeps it, dropping the oldest when full.
  void Publish(ServerEvent event) ABSL_LOCKS_EXCLUDED(mu_);
  // Publish(), unless kProtocolErrorsPerSecond events went through this
  // call in the current second.
  void PublishRateLimited(ServerEvent event) ABSL_LOCKS_EXCLUDED(mu_);

  struct Batch {
    // Events with sequence > the `after` asked for, oldest first.
    std::vector<ServerEvent> events;
    // Events after `after` that were dropped before they could be read.
    uint64_t dropped_before = 0;
  };
  // The buffered events after sequence `after`; waits until there is one
  // or `deadline` passes, or Close() is called (then returns at once).
  Batch WaitAfter(uint64_t after, absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);

  // Wakes every waiter; WaitAfter() no longer waits. For shutdown.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

  uint64_t last_sequence() const ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t dropped() const ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t rate_limited() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t capacity() const { return capacity_; }

 private:
  const size_t capacity_;
  mutable absl::Mutex mu_;
  std::deque<ServerEvent> events_ ABSL_GUARDED_BY(mu_);
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // PublishRateLimited's window.
  absl::Time window_start_ ABSL_GUARDED_BY(mu_);
  int window_count_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t rate_limited_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace vfu

#endif  // VFU_STATS_EVENT_BUS_H_
