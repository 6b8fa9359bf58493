#include "vfu/stats/latency_histogram.h"

#include <gtest/gtest.h>

namespace vfu {
namespace {

TEST(LatencyHistogramTest, BucketsArePowersOfTwo) {
  EXPECT_EQ(LatencyHistogram::BucketOf(0), 0u);
  EXPECT_EQ(LatencyHistogram::BucketOf(1), 0u);
  EXPECT_EQ(LatencyHistogram::BucketOf(2), 1u);
  EXPECT_EQ(LatencyHistogram::BucketOf(3), 1u);
  EXPECT_EQ(LatencyHistogram::BucketOf(1023), 9u);
  EXPECT_EQ(LatencyHistogram::BucketOf(1024), 10u);
  EXPECT_EQ(LatencyHistogram::BucketOf(~uint64_t{0}), LatencyHistogram::kBuckets - 1);
}

TEST(LatencyHistogramTest, RecordsCountSumAndBucket) {
  LatencyHistogram h;
  h.Record(850);
  h.Record(900);
  h.Record(5000);
  LatencyHistogram::Snapshot s = h.snapshot();
  EXPECT_EQ(s.count, 3u);
  EXPECT_EQ(s.sum_ns, 6750u);
  EXPECT_EQ(s.buckets[9], 2u);
  EXPECT_EQ(s.buckets[12], 1u);
  uint64_t total = 0;
  for (uint64_t b : s.buckets) total += b;
  EXPECT_EQ(total, 3u);
}

}  // namespace
}  // namespace vfu
