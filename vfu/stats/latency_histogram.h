// LatencyHistogram: counts of durations in power-of-two buckets of
// nanoseconds, cheap enough to record on every command.
//
//   histogram.Record(850);            // bucket 9: [512, 1024) ns
//   LatencyHistogram::Snapshot s = histogram.snapshot();
//
// Bucket i counts durations in [2^i, 2^(i+1)) ns (bucket 0 also counts 0);
// the last bucket is open-ended (about 2 s and more). Fixed size: no
// allocation, ever.
//
// Thread safety: Record() from any number of threads (relaxed atomics: a
// counter is never lost, but a snapshot taken meanwhile may see one bucket
// incremented before `count`). snapshot() from any thread.
#ifndef VFU_STATS_LATENCY_HISTOGRAM_H_
#define VFU_STATS_LATENCY_HISTOGRAM_H_

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace vfu {

class LatencyHistogram {
 public:
  static constexpr size_t kBuckets = 32;

  struct Snapshot {
    std::array<uint64_t, kBuckets> buckets{};
    uint64_t count = 0;
    uint64_t sum_ns = 0;
  };

  static constexpr size_t BucketOf(uint64_t ns) {
    const size_t log2 = ns == 0 ? 0 : static_cast<size_t>(std::bit_width(ns) - 1);
    return log2 < kBuckets ? log2 : kBuckets - 1;
  }

  void Record(uint64_t ns) {
    buckets_[BucketOf(ns)].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(ns, std::memory_order_relaxed);
  }

  Snapshot snapshot() const {
    Snapshot s;
    for (size_t i = 0; i < kBuckets; ++i) s.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
    s.count = count_.load(std::memory_order_relaxed);
    s.sum_ns = sum_ns_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_ns_{0};
};

}  // namespace vfu

#endif  // VFU_STATS_LATENCY_HISTOGRAM_H_
