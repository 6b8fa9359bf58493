// Micro-benchmarks of the wire codec: decode + encode of the messages on
// the hot path, in ns per message (Google Benchmark).
//
//   bazel run -c opt //tools/bench:codec_bench
//
// Each iteration decodes a request payload the way the protocol engine does
// and encodes the reply into a reused buffer, so the figure is the codec's
// share of handling one message.
#include <cstdint>
#include <vector>

#include "benchmark/benchmark.h"
#include "vfu/wire/dma_map.h"
#include "vfu/wire/frame_splitter.h"
#include "vfu/wire/header.h"
#include "vfu/wire/region_access.h"

namespace vfu::wire {
namespace {

std::vector<uint8_t> Framed(Command command, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> m = StartMessage(payload.size());
  m.insert(m.end(), payload.begin(), payload.end());
  FinishMessage(CommandHeader(1, command), m);
  return m;
}

// REGION_READ of `count` bytes: split, decode header and request, encode
// the reply with its data.
void BM_RegionRead(benchmark::State& state) {
  const uint32_t count = static_cast<uint32_t>(state.range(0));
  std::vector<uint8_t> payload;
  EncodeRegionReadRequest({.offset = 0x100, .region = 0, .count = count}, payload);
  const std::vector<uint8_t> message = Framed(Command::kRegionRead, payload);
  const std::vector<uint8_t> data(count, 0x5a);
  std::vector<uint8_t> reply;
  reply.reserve(kHeaderSize + kRegionAccessPrefixSize + count);
  for (auto _ : state) {
    FrameSplit split = SplitFrame(message, 1 << 21);
    Header header = DecodeHeader(message);
    auto request = DecodeRegionReadRequest(
        absl::MakeConstSpan(message).subspan(kHeaderSize, split.size - kHeaderSize), 0, 1 << 20);
    reply.resize(kHeaderSize);
    EncodeRegionReadReply(*request, data, reply);
    FinishMessage(ReplyHeader(header), reply);
    benchmark::DoNotOptimize(reply.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RegionRead)->Arg(4)->Arg(4096);

// REGION_WRITE of `count` bytes: split, decode (data stays a view), encode
// the 16-byte reply.
void BM_RegionWrite(benchmark::State& state) {
  const std::vector<uint8_t> data(static_cast<size_t>(state.range(0)), 0xa5);
  std::vector<uint8_t> payload;
  EncodeRegionWriteRequest({.offset = 0x100, .region = 0, .data = data}, payload);
  const std::vector<uint8_t> message = Framed(Command::kRegionWrite, payload);
  std::vector<uint8_t> reply;
  reply.reserve(kHeaderSize + kRegionAccessPrefixSize);
  for (auto _ : state) {
    FrameSplit split = SplitFrame(message, 1 << 21);
    Header header = DecodeHeader(message);
    auto request = DecodeRegionWriteRequest(
        absl::MakeConstSpan(message).subspan(kHeaderSize, split.size - kHeaderSize), 0, 1 << 20);
    benchmark::DoNotOptimize(request->data.data());
    reply.resize(kHeaderSize);
    EncodeRegionWriteReply({.offset = request->offset,
                            .region = request->region,
                            .count = static_cast<uint32_t>(request->data.size())},
                           reply);
    FinishMessage(ReplyHeader(header), reply);
    benchmark::DoNotOptimize(reply.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RegionWrite)->Arg(4)->Arg(4096);

// DMA_MAP: decode the 32-byte request, encode the header-only reply.
void BM_DmaMap(benchmark::State& state) {
  std::vector<uint8_t> payload;
  EncodeDmaMapRequest({.argsz = 32, .flags = 3, .offset = 0, .addr = 1 << 20, .size = 1 << 21},
                      payload);
  const std::vector<uint8_t> message = Framed(Command::kDmaMap, payload);
  std::vector<uint8_t> reply;
  reply.reserve(kHeaderSize);
  for (auto _ : state) {
    Header header = DecodeHeader(message);
    auto request = DecodeDmaMapRequest(absl::MakeConstSpan(message).subspan(kHeaderSize), 1);
    benchmark::DoNotOptimize(request->addr);
    reply.resize(kHeaderSize);
    FinishMessage(ReplyHeader(header), reply);
    benchmark::DoNotOptimize(reply.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DmaMap);

}  // namespace
}  // namespace vfu::wire

BENCHMARK_MAIN();
