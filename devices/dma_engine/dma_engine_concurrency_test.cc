// Every channel busy at once, each driven by its own test thread through
// one shared client: jobs run side by side without mixing their bytes,
// registers or interrupts.
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "devices/dma_engine/dma_engine_test_fixture.h"

namespace vfu::devices::dma_engine {
namespace {

enum class Memory { kFdBacked, kFdLess };

class DmaEngineConcurrencyTest : public DmaEngineTest,
                                 public ::testing::WithParamInterface<Memory> {};

constexpr uint64_t kIova = 0x40000000;
constexpr uint32_t kLength = 512 * 1024;
constexpr int kJobsPerChannel = 6;

// Channel n copies its source slot to its destination slot, again and
// again, each time with a new pattern; all four threads run at once.
TEST_P(DmaEngineConcurrencyTest, AllChannelsAtOnce) {
  // Per channel: source at 2n, destination at 2n + 1 (in kLength slots).
  constexpr uint64_t kSize = 2 * kNumChannels * kLength;
  std::unique_ptr<SharedMemory> shared;
  absl::Span<uint8_t> memory;
  if (GetParam() == Memory::kFdBacked) {
    shared = std::make_unique<SharedMemory>(kSize);
    memory = shared->bytes();
    MapShared(kIova, *shared);
  } else {
    memory = NewBuffer(kSize);
    MapBuffer(kIova, memory);
    ASSERT_OK(client_->StartServingThread());
  }
  std::vector<UniqueFd> irqs;
  for (uint32_t channel = 0; channel < kNumChannels; ++channel) {
    irqs.push_back(WatchChannel(channel));
  }

  std::vector<std::thread> threads;
  for (uint32_t channel = 0; channel < kNumChannels; ++channel) {
    threads.emplace_back([&, channel] {
      const uint64_t source = 2 * channel * kLength;
      const uint64_t destination = source + kLength;
      for (int job = 0; job < kJobsPerChannel; ++job) {
        const uint32_t seed = channel * 100 + job;
        // fd-less memory: the client serves DMA from it on its serving
        // thread, but only within a job, which this thread starts after
        // filling and checks after the interrupt and a STATUS read.
        FillPattern(memory.subspan(source, kLength), seed);
        ASSERT_EQ(Copy(channel, irqs[channel], kIova + source, kIova + destination, kLength),
                  kStatusDone)
            << "channel " << channel << " job " << job;
        ASSERT_EQ(FirstPatternMismatch(memory.subspan(destination, kLength), seed), -1)
            << "channel " << channel << " job " << job;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  for (uint32_t channel = 0; channel < kNumChannels; ++channel) {
    EXPECT_EQ(Progress(channel), kLength);
    EXPECT_FALSE(ReadEventfd(irqs[channel], 0).has_value())
        << "an extra interrupt on channel " << channel;
  }
  EXPECT_EQ(Read32(kRegIrqStatus), (1u << kNumChannels) - 1);
}

INSTANTIATE_TEST_SUITE_P(Memories, DmaEngineConcurrencyTest,
                         ::testing::Values(Memory::kFdBacked, Memory::kFdLess),
                         [](const ::testing::TestParamInfo<Memory>& info) {
                           return std::string(info.param == Memory::kFdBacked ? "FdBacked"
                                                                              : "FdLess");
                         });

}  // namespace
}  // namespace vfu::devices::dma_engine
