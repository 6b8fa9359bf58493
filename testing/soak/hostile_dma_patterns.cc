// Hostile clients around DMA, against the DMA engine:
//
//   mid_dma_close    starts a copy from fd-less memory, answers some or none
//                    of the server's DMA_READs, and closes; the channel must
//                    settle (done or failed) for the next client
//   pinned_close     starts a long copy between fd-backed mappings (the
//                    device holds them while it copies), sometimes unmaps
//                    the source meanwhile, and closes; the channel must
//                    settle, and a copy reported done must be right
//   truncated_memfd  DMA_MAPs a memfd, truncates it to 0 bytes, then has
//                    the engine copy from (or to) it; the job must fail
//                    (ERROR) and the server live and disconnect this client
//                    (its memory faulted)
//   sparse_maps      DMA_MAPs many sparse memfds of 1-64 GiB (some twice), copies
//                    from one (zeros), then unmaps them or just leaves; the
//                    server's RSS must not follow the mapped sizes
#include "testing/soak/hostile_dma_patterns.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "devices/dma_engine/dma_engine_registers.h"
#include "testing/soak/session_helpers.h"
#include "vfu/device/pci_device_spec.h"

namespace vfu::soak {
namespace {

namespace de = devices::dma_engine;
constexpr uint32_t kReadWrite = wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite;

absl::Status ProgramCopy(Client& client, uint32_t channel, uint64_t source,
                         uint64_t destination, uint32_t length, bool posted) {
  if (absl::Status s = Write64(client, 0, de::ChannelRegister(channel, de::kRegSourceLo), source, posted);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = Write64(client, 0, de::ChannelRegister(channel, de::kRegDestinationLo),
                               destination, posted);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = Write32(client, 0, de::ChannelRegister(channel, de::kRegLength), length, posted);
      !s.ok()) {
    return s;
  }
  return Write32(client, 0, de::ChannelRegister(channel, de::kRegDoorbell), de::kDoorbellStart,
                 posted);
}

// Connects a fresh client and reads the channel's STATUS until it is no
// longer busy (each read a round trip; the call timeout bounds it): the
// final STATUS, or nullopt after recording why not.
std::optional<uint32_t> SettledStatus(SessionContext& context, PatternStats& stats,
                                      uint32_t channel) {
  absl::StatusOr<std::unique_ptr<Client>> client = ConnectClient(context, stats, absl::Seconds(30));
  if (!client.ok()) {
    stats.Fail("reconnect after closing mid-DMA: ", client.status().ToString());
    return std::nullopt;
  }
  const absl::Time deadline = context.CallDeadline();
  while (true) {
    absl::StatusOr<uint32_t> status =
        Read32(**client, 0, de::ChannelRegister(channel, de::kRegStatus));
    if (!status.ok()) {
      stats.Fail("STATUS: ", status.status().ToString());
      return std::nullopt;
    }
    if (*status != de::kStatusBusy) return *status;
    if (absl::Now() >= deadline) {
      stats.Fail("channel ", channel, " still busy ", absl::FormatDuration(context.scale.call_timeout),
                 " after its client closed");
      return std::nullopt;
    }
  }
}

// Word i of a cheap, seeded fill.
uint64_t FillWord(uint64_t seed, uint64_t i) { return (i + 1) * 0x9e3779b97f4a7c15ull ^ seed; }

class MidDmaClose : public Pattern {
 public:
  std::string_view name() const override { return "mid_dma_close"; }
  DeviceKind device() const override { return DeviceKind::kDmaEngine; }
  bool hostile() const override { return true; }

  void RunSession(SessionContext& context, PatternStats& stats) override {
    const uint32_t channel = static_cast<uint32_t>(context.Uniform(0, de::kNumChannels - 1));
    {
      // Declared before the client, which serves DMA from them until it is
      // destroyed.
      std::vector<uint8_t> source(context.scale.max_copy_bytes), destination(source.size());
      absl::StatusOr<std::unique_ptr<Client>> connected =
          ConnectClient(context, stats, absl::Seconds(30));
      if (!connected.ok()) return stats.Fail("connect: ", connected.status().ToString());
      Client& client = **connected;
      if (absl::Status s = client.DmaMapMemory(1ull << 32, absl::MakeSpan(source)); !s.ok()) {
        return stats.Fail("DMA_MAP: ", s.ToString());
      }
      if (absl::Status s = client.DmaMapMemory(2ull << 32, absl::MakeSpan(destination)); !s.ok()) {
        return stats.Fail("DMA_MAP: ", s.ToString());
      }
      // Not posted: the doorbell's reply proves the job started (the client
      // serves the first DMA_READs while it waits for that reply).
      if (absl::Status s = ProgramCopy(client, channel, 1ull << 32, 2ull << 32,
                                       static_cast<uint32_t>(source.size()), /*posted=*/false);
          !s.ok()) {
        return stats.Fail("program: ", s.ToString());
      }
      ++stats.operations;
      // Serve the server's DMA for a random while (possibly not at all), so
      // that the close lands at a random point of the copy. This chooses
      // where the fault hits; it synchronizes nothing.
      const absl::Duration serve = absl::Milliseconds(context.Uniform(0, 20));
      if (serve > absl::ZeroDuration()) (void)client.Poll(serve);
    }
    if (std::optional<uint32_t> status = SettledStatus(context, stats, channel)) {
      if (*status != de::kStatusDone && *status != de::kStatusError) {
        stats.Fail("channel settled in status ", *status, " after its client closed mid-DMA");
      }
    }
  }
};

class PinnedClose : public Pattern {
 public:
  std::string_view name() const override { return "pinned_close"; }
  DeviceKind device() const override { return DeviceKind::kDmaEngine; }
  bool hostile() const override { return true; }

  void RunSession(SessionContext& context, PatternStats& stats) override {
    const uint32_t channel = static_cast<uint32_t>(context.Uniform(0, de::kNumChannels - 1));
    const uint64_t size = context.scale.client_memory_bytes;
    absl::StatusOr<std::unique_ptr<SharedMemory>> source = SharedMemory::Create(size);
    absl::StatusOr<std::unique_ptr<SharedMemory>> destination = SharedMemory::Create(size);
    if (!source.ok() || !destination.ok()) return stats.Fail("memfd");
    const uint64_t seed = (*context.rng)();
    absl::Span<uint8_t> src = (*source)->bytes();
    for (uint64_t i = 0; i + 8 <= size; i += 8) {
      const uint64_t word = FillWord(seed, i / 8);
      std::memcpy(src.data() + i, &word, 8);
    }
    {
      absl::StatusOr<std::unique_ptr<Client>> connected =
          ConnectClient(context, stats, absl::Seconds(30));
      if (!connected.ok()) return stats.Fail("connect: ", connected.status().ToString());
      Client& client = **connected;
      if (absl::Status s = client.DmaMap(1ull << 32, size, kReadWrite, (*source)->Share()); !s.ok()) {
        return stats.Fail("DMA_MAP: ", s.ToString());
      }
      if (absl::Status s = client.DmaMap(2ull << 32, size, kReadWrite, (*destination)->Share());
          !s.ok()) {
        return stats.Fail("DMA_MAP: ", s.ToString());
      }
      if (absl::Status s = ProgramCopy(client, channel, 1ull << 32, 2ull << 32,
                                       static_cast<uint32_t>(size), /*posted=*/false);
          !s.ok()) {
        return stats.Fail("program: ", s.ToString());
      }
      ++stats.operations;
      if (context.Uniform(0, 1) == 0) {
        // Withdraw the source under the running copy: the unmap waits for
        // the chunk in flight; the job then fails or has finished.
        if (absl::Status s = client.DmaUnmap(1ull << 32, size); !s.ok()) {
          return stats.Fail("DMA_UNMAP under a running copy: ", s.ToString());
        }
      }
    }
    std::optional<uint32_t> status = SettledStatus(context, stats, channel);
    if (status == de::kStatusDone) {
      if (int64_t at = FirstDifference((*destination)->bytes(), src); at >= 0) {
        return stats.Fail("a copy reported done differs at byte ", at);
      }
      stats.bytes_verified += size;
    } else if (status.has_value() && *status != de::kStatusError) {
      stats.Fail("channel settled in status ", *status);
    }
  }
};

class TruncatedMemfd : public Pattern {
 public:
  std::string_view name() const override { return "truncated_memfd"; }
  DeviceKind device() const override { return DeviceKind::kDmaEngine; }
  bool hostile() const override { return true; }

  void RunSession(SessionContext& context, PatternStats& stats) override {
    constexpr uint64_t kSize = 1 << 20;
    constexpr uint64_t kFileIova = 1ull << 32, kPlainIova = 2ull << 32;
    // Declared before the client: memory the client serves must outlive it
    // (a copy may still be in flight when a failed check returns early).
    std::vector<uint8_t> plain(kSize);
    absl::StatusOr<std::unique_ptr<Client>> connected =
        ConnectClient(context, stats, absl::Seconds(30));
    if (!connected.ok()) return stats.Fail("connect: ", connected.status().ToString());
    Client& client = **connected;
    // Not mapped here: touching it after the truncation would fault us.
    absl::StatusOr<std::unique_ptr<SharedMemory>> file = SharedMemory::Create(kSize, false);
    if (!file.ok()) return stats.Fail("memfd: ", file.status().ToString());
    if (absl::Status s = client.DmaMap(kFileIova, kSize, kReadWrite, (*file)->Share()); !s.ok()) {
      return stats.Fail("DMA_MAP: ", s.ToString());
    }
    if (absl::Status s = client.DmaMapMemory(kPlainIova, absl::MakeSpan(plain)); !s.ok()) {
      return stats.Fail("DMA_MAP: ", s.ToString());
    }
    const uint32_t channel = static_cast<uint32_t>(context.Uniform(0, de::kNumChannels - 1));
    UniqueFd irq = NewEventfd();
    std::vector<UniqueFd> fds;
    fds.push_back(DuplicateFd(irq.get()));
    if (absl::Status s = client.SetIrqEventfds(kMsixIrq, channel, std::move(fds)); !s.ok()) {
      return stats.Fail("SET_IRQS: ", s.ToString());
    }
    if (absl::Status s = client.StartServingThread(); !s.ok()) return stats.Fail("serving thread");
    if (::ftruncate((*file)->fd(), 0) != 0) return stats.Fail("ftruncate");
    const bool file_is_source = context.Uniform(0, 1) == 0;
    const uint32_t length = static_cast<uint32_t>(context.Uniform(1, kSize));
    ++stats.operations;
    if (absl::Status s = ProgramCopy(client, channel, file_is_source ? kFileIova : kPlainIova,
                                     file_is_source ? kPlainIova : kFileIova, length, false);
        !s.ok()) {
      // The job may fault, and the server disconnect us, before the reply
      // to the doorbell write has left.
      if (s.code() != absl::StatusCode::kUnavailable) stats.Fail("program: ", s.ToString());
      client.StopServingThread();
      return;
    }
    // The job fails on the lost pages and the server disconnects us (our
    // memory faulted). Its completion interrupt may or may not get out
    // before the detach releases our eventfds, so the end is seen through
    // STATUS, read again at each interrupt or every 50 ms, until it leaves
    // BUSY or the connection is gone.
    const absl::Time deadline = context.CallDeadline();
    while (true) {
      absl::StatusOr<uint32_t> status =
          Read32(client, 0, de::ChannelRegister(channel, de::kRegStatus));
      if (!status.ok() && status.status().code() == absl::StatusCode::kUnavailable) break;
      if (!status.ok()) return stats.Fail("STATUS: ", status.status().ToString());
      if (*status != de::kStatusBusy) {
        if (*status != de::kStatusError) {
          stats.Fail("a copy ", file_is_source ? "from" : "to",
                     " a truncated memfd ended in status ", *status);
        }
        break;
      }
      if (absl::Now() >= deadline) {
        return stats.Fail("a copy ", file_is_source ? "from" : "to",
                          " a truncated memfd still busy after ",
                          absl::FormatDuration(context.scale.call_timeout),
                          context.server->Alive() ? "" : " (server died)");
      }
      ReadEventfd(irq, std::min(deadline, absl::Now() + absl::Milliseconds(50)));
    }
    client.StopServingThread();
  }
};

class SparseMaps : public Pattern {
 public:
  std::string_view name() const override { return "sparse_maps"; }
  DeviceKind device() const override { return DeviceKind::kDmaEngine; }
  bool hostile() const override { return true; }

  void RunSession(SessionContext& context, PatternStats& stats) override {
    const ProcessFigures before = context.server->Figures();
    // The copy's destination, declared before the client that serves it.
    std::vector<uint8_t> plain(64 * 1024, 0xaa);
    absl::StatusOr<std::unique_ptr<Client>> connected =
        ConnectClient(context, stats, absl::Seconds(30));
    if (!connected.ok()) return stats.Fail("connect: ", connected.status().ToString());
    Client& client = **connected;
    // 1 GiB to 64 GiB each, nearly all holes.
    const uint64_t sparse = 1ull << context.Uniform(30, 36);
    const int maps = static_cast<int>(context.Uniform(8, 128));
    std::vector<std::unique_ptr<SharedMemory>> files;
    int mapped = 0;
    for (int i = 0; i < maps; ++i) {
      // Every fourth map shares the previous file again, at another IOVA.
      if (files.empty() || i % 4 != 0) {
        absl::StatusOr<std::unique_ptr<SharedMemory>> file = SharedMemory::Create(sparse, false);
        if (!file.ok()) return stats.Fail("memfd: ", file.status().ToString());
        files.push_back(*std::move(file));
      }
      ++stats.operations;
      absl::Status s = client.DmaMap(uint64_t(i + 1) << 40, sparse, kReadWrite, files.back()->Share());
      // A server may refuse a map (too many, no room): with an errno.
      if (s.ok()) {
        ++mapped;
      } else if (absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)) {
        return stats.Fail("DMA_MAP of a sparse memfd: ", s.ToString());
      }
    }
    if (mapped > 0) {
      // A copy out of the first sparse file: its holes read as zeros.
      UniqueFd irq = NewEventfd();
      std::vector<UniqueFd> fds;
      fds.push_back(DuplicateFd(irq.get()));
      if (!client.DmaMapMemory(0x1000, absl::MakeSpan(plain)).ok() ||
          !client.SetIrqEventfds(kMsixIrq, 0, std::move(fds)).ok() ||
          !client.StartServingThread().ok()) {
        return stats.Fail("setting up the copy failed");
      }
      if (absl::Status s = ProgramCopy(client, 0, (1ull << 40) + context.Uniform(0, sparse - plain.size()),
                                       0x1000, static_cast<uint32_t>(plain.size()), false);
          !s.ok()) {
        return stats.Fail("program: ", s.ToString());
      }
      if (!ReadEventfd(irq, context.CallDeadline()).has_value()) {
        return stats.Fail("no completion interrupt for a copy from a sparse mapping");
      }
      absl::StatusOr<uint32_t> status = Read32(client, 0, de::ChannelRegister(0, de::kRegStatus));
      if (!status.ok() || *status != de::kStatusDone) {
        return stats.Fail("a copy from a sparse mapping did not finish");
      }
      client.StopServingThread();
      if (std::any_of(plain.begin(), plain.end(), [](uint8_t b) { return b != 0; })) {
        return stats.Fail("a copy from a sparse memfd's hole brought non-zero bytes");
      }
      stats.bytes_verified += plain.size();
    }
    NoteServerGrowth(context, before, stats);
    const int64_t rss_growth_kb =
        static_cast<int64_t>(context.server->Figures().rss_kb) - static_cast<int64_t>(before.rss_kb);
    // The whole server's RSS, while other patterns run (a sanitizer's own
    // growth is tens of MiB a second): judged against what a server that
    // touched its mappings would hold, a quarter of one sparse file.
    if (rss_growth_kb > static_cast<int64_t>(std::max<uint64_t>(256 << 10, (sparse >> 10) / 4))) {
      stats.Fail("server RSS grew by ", rss_growth_kb, " KiB with ", mapped, " sparse mappings of ",
                 sparse >> 30, " GiB");
    }
    if (context.Uniform(0, 1) == 0) {
      if (absl::Status s = client.DmaUnmapAll(); !s.ok()) return stats.Fail("DMA_UNMAP ALL: ", s.ToString());
    }
  }
};

}  // namespace

std::vector<std::unique_ptr<Pattern>> HostileDmaPatterns() {
  std::vector<std::unique_ptr<Pattern>> patterns;
  patterns.push_back(std::make_unique<MidDmaClose>());
  patterns.push_back(std::make_unique<PinnedClose>());
  patterns.push_back(std::make_unique<TruncatedMemfd>());
  patterns.push_back(std::make_unique<SparseMaps>());
  return patterns;
}

}  // namespace vfu::soak
