// Micro-benchmarks of the DMA path (Google Benchmark):
//
//   bazel run -c opt //vfu/dma:dma_bench
//
// - BM_MemcpyWrite / BM_MemcpyRead vs BM_DmaMemoryWrite / BM_DmaMemoryRead:
//   the same copy between a heap buffer and a memfd mapping, done with plain
//   memcpy and through DmaMemory; the ratio is the cost of translation and
//   references (and, with logging on, dirty marking).
// - BM_Translate: Translate + release of a 64-byte range at a random one of
//   10 000 mappings, from one thread and from two at once.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "vfu/base/check.h"
#include "vfu/base/unique_fd.h"
#include "vfu/dma/dma_map_table.h"
#include "vfu/dma/dma_memory.h"
#include "vfu/wire/dma_map.h"

namespace vfu {
namespace {

constexpr uint32_t kReadWrite = wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite;
constexpr uint64_t kBase = 0x100000000;
constexpr uint64_t kPage = 4096;

UniqueFd MemFd(size_t size) {
  UniqueFd fd(::memfd_create("vfu-dma-bench", MFD_CLOEXEC));
  VFU_CHECK(fd.valid(), "memfd_create failed");
  VFU_CHECK(::ftruncate(fd.get(), static_cast<off_t>(size)) == 0, "ftruncate failed");
  return fd;
}

class NoMessages : public MessageDmaPath {
 public:
  absl::Status Read(uint64_t, absl::Span<uint8_t>) override {
    return absl::InternalError("unused");
  }
  absl::Status Write(uint64_t, absl::Span<const uint8_t>) override {
    return absl::InternalError("unused");
  }
};

// One fd-backed mapping of `size` bytes at kBase, pages already touched.
struct MappedMemory {
  explicit MappedMemory(size_t size) : dma(table, messages) {
    UniqueFd fd = MemFd(size);
    auto range = table.Map(
        wire::DmaMapRequest{.flags = kReadWrite, .offset = 0, .addr = kBase, .size = size},
        std::move(fd));
    VFU_CHECK(range.ok(), "DMA_MAP failed");
    std::vector<uint8_t> zeros(size, 0);
    VFU_CHECK(dma.Write(kBase, zeros).ok(), "warm-up write failed");
  }
  DmaMapTable table;
  NoMessages messages;
  DmaMemory dma;
};

// The floor: memcpy between the same kinds of buffers DmaMemory copies
// between, a heap vector and a MAP_SHARED memfd mapping (page-aligned, so
// source/destination offsets match the DmaMemory case).
struct PlainMapping {
  explicit PlainMapping(size_t size) : size(size) {
    UniqueFd fd = MemFd(size);
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    VFU_CHECK(p != MAP_FAILED, "mmap failed");
    data = static_cast<uint8_t*>(p);
    std::memset(data, 0, size);
  }
  ~PlainMapping() { ::munmap(data, size); }
  size_t size;
  uint8_t* data;
};

void BM_MemcpyWrite(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  PlainMapping memory(size);
  std::vector<uint8_t> src(size, 0x5a);
  for (auto _ : state) {
    std::memcpy(memory.data, src.data(), size);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * size);
}
BENCHMARK(BM_MemcpyWrite)->Arg(4 << 10)->Arg(64 << 10)->Arg(1 << 20);

void BM_MemcpyRead(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  PlainMapping memory(size);
  std::vector<uint8_t> dst(size, 0);
  for (auto _ : state) {
    std::memcpy(dst.data(), memory.data, size);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * size);
}
BENCHMARK(BM_MemcpyRead)->Arg(4 << 10)->Arg(64 << 10)->Arg(1 << 20);

void BM_DmaMemoryWrite(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  MappedMemory memory(size);
  std::vector<uint8_t> src(size, 0x5a);
  for (auto _ : state) {
    absl::Status s = memory.dma.Write(kBase, src);
    benchmark::DoNotOptimize(s);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * size);
}
BENCHMARK(BM_DmaMemoryWrite)->Arg(4 << 10)->Arg(64 << 10)->Arg(1 << 20);

void BM_DmaMemoryRead(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  MappedMemory memory(size);
  std::vector<uint8_t> dst(size, 0);
  for (auto _ : state) {
    absl::Status s = memory.dma.Read(kBase, absl::MakeSpan(dst));
    benchmark::DoNotOptimize(s);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * size);
}
BENCHMARK(BM_DmaMemoryRead)->Arg(4 << 10)->Arg(64 << 10)->Arg(1 << 20);

// Same write with dirty logging on: adds the per-page atomic OR.
void BM_DmaMemoryWriteLogging(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  MappedMemory memory(size);
  VFU_CHECK(
      memory.table.StartLogging(wire::DmaLoggingControl{.page_size = kPage, .ranges = {}}).ok(),
      "logging start failed");
  std::vector<uint8_t> src(size, 0x5a);
  for (auto _ : state) {
    absl::Status s = memory.dma.Write(kBase, src);
    benchmark::DoNotOptimize(s);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * size);
}
BENCHMARK(BM_DmaMemoryWriteLogging)->Arg(4 << 10)->Arg(64 << 10)->Arg(1 << 20);

// 10 000 one-page mappings of one memfd, with a gap after each so none
// merge: what a vIOMMU client leaves behind.
constexpr int kMappings = 10000;

DmaMapTable& ManyMappings() {
  static DmaMapTable* table = [] {
    auto* t = new DmaMapTable();
    UniqueFd fd = MemFd(kMappings * kPage);
    for (int i = 0; i < kMappings; ++i) {
      UniqueFd dup = DuplicateFd(fd.get());
      auto range = t->Map(wire::DmaMapRequest{.flags = kReadWrite,
                                              .offset = i * kPage,
                                              .addr = kBase + 2 * i * kPage,
                                              .size = kPage},
                          std::move(dup));
      VFU_CHECK(range.ok(), "DMA_MAP failed");
    }
    return t;
  }();
  return *table;
}

void BM_Translate(benchmark::State& state) {
  DmaMapTable& table = ManyMappings();
  std::mt19937_64 rng(state.thread_index() + 1);
  std::vector<uint64_t> iovas(4096);
  for (uint64_t& iova : iovas) iova = kBase + 2 * (rng() % kMappings) * kPage + 64;
  size_t i = 0;
  for (auto _ : state) {
    auto list = table.Translate(iovas[i++ & 4095], 64, DmaDirection::kRead);
    benchmark::DoNotOptimize(list);
  }
}
BENCHMARK(BM_Translate)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace vfu

BENCHMARK_MAIN();
