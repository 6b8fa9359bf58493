#include "vfu/stats/event_bus.h"

#include <utility>

namespace vfu {

EventBus::EventBus(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

void EventBus::Publish(ServerEvent event) {
  if (event.time == absl::Time()) event.time = absl::Now();
  absl::MutexLock lock(&mu_);
  event.sequence = next_sequence_++;
  if (events_.size() == capacity_) {
    events_.pop_front();
    ++dropped_;
  }
  events_.push_back(std::move(event));
}

void EventBus::PublishRateLimited(ServerEvent event) {
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    if (now - window_start_ >= absl::Seconds(1)) {
      window_start_ = now;
      window_count_ = 0;
    }
    if (window_count_ >= kProtocolErrorsPerSecond) {
      ++rate_limited_;
      return;
    }
    ++window_count_;
  }
  event.time = now;
  Publish(std::move(event));
}

EventBus::Batch EventBus::WaitAfter(uint64_t after, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto ready = [this, after]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closed_ || next_sequence_ - 1 > after;
  };
  mu_.AwaitWithDeadline(absl::Condition(&ready), deadline);
  Batch batch;
  if (events_.empty()) {
    // Everything after `after` (if anything) was dropped.
    if (next_sequence_ - 1 > after) batch.dropped_before = next_sequence_ - 1 - after;
    return batch;
  }
  const uint64_t oldest = events_.front().sequence;
  if (oldest > after + 1) batch.dropped_before = oldest - (after + 1);
  for (const ServerEvent& e : events_) {
    if (e.sequence > after) batch.events.push_back(e);
  }
  return batch;
}

void EventBus::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

uint64_t EventBus::last_sequence() const {
  absl::MutexLock lock(&mu_);
  return next_sequence_ - 1;
}

uint64_t EventBus::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

uint64_t EventBus::rate_limited() const {
  absl::MutexLock lock(&mu_);
  return rate_limited_;
}

}  // namespace vfu
