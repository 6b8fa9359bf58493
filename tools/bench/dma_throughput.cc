#include "tools/bench/dma_throughput.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "vfu/base/status_macros.h"
#include "vfu/base/unique_fd.h"
#include "vfu/client/client.h"
#include "vfu/vfu.h"

namespace vfu::bench {
namespace {

constexpr uint64_t kMemorySize = 1 << 20;
constexpr uint64_t kMappedIova = 0x100000000;
constexpr uint64_t kMessageIova = 0x200000000;
constexpr uint64_t kTransfers[] = {4096, 64 * 1024, 1 << 20};

// A device with nothing but a BAR: the benchmark drives its DMA directly.
class DmaDevice : public PciDevice {
 public:
  DmaDevice() : PciDevice(Spec()) {}
  void OnDmaMapped(const DmaRange&) override {
    absl::MutexLock lock(&mu_);
    ++maps_;
  }
  // Blocks until the client made both mappings.
  bool WaitForMaps(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto two = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return maps_ >= 2; };
    return mu_.AwaitWithTimeout(absl::Condition(&two), timeout);
  }

 private:
  static PciDeviceSpec Spec() {
    PciDeviceSpec spec;
    spec.identity = {.vendor_id = 0x1d0f, .device_id = 0xbe00, .class_code = 0xff0000};
    spec.bars[0] = {.size = 4096, .backed_by_memory = true};
    return spec;
  }
  absl::Mutex mu_;
  int maps_ ABSL_GUARDED_BY(mu_) = 0;
};

UniqueFd SharedMemory(uint64_t size) {
  UniqueFd fd(::memfd_create("vfu-bench-guest", MFD_CLOEXEC));
  if (fd && ::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return UniqueFd();
  return fd;
}

// The client process: once `server_ready` becomes readable, shares one MiB
// with an fd and one without, then answers the server's DMA_READs until the
// server goes away.
int RunClient(const std::string& path, UniqueFd server_ready) {
  char byte;
  if (::read(server_ready.get(), &byte, 1) != 1) return 1;
  absl::StatusOr<std::unique_ptr<Client>> connected = Client::Connect(path);
  if (!connected.ok()) return 1;
  std::unique_ptr<Client> client = std::move(*connected);
  UniqueFd shared = SharedMemory(kMemorySize);
  std::vector<uint8_t> private_memory(kMemorySize, 0x5a);
  const uint32_t rw = wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite;
  if (!shared || !client->DmaMap(kMappedIova, kMemorySize, rw, UniqueFd(::dup(shared.get()))).ok() ||
      !client->DmaMapMemory(kMessageIova, absl::MakeSpan(private_memory)).ok()) {
    return 2;
  }
  while (client->Poll(absl::Seconds(1)).ok()) {
  }
  return 0;
}

// Marks a raw request as a write: N bytes follow it, answered by 8 bytes.
constexpr uint64_t kRawWrite = uint64_t{1} << 63;

// The raw floor's peer: answers each 8-byte request for N bytes with N
// bytes, and each write of N bytes with an 8-byte acknowledgement.
int RunRawPeer(UniqueFd socket) {
  std::vector<uint8_t> data(kMemorySize, 0x5a);
  while (true) {
    uint64_t want = 0;
    if (::recv(socket.get(), &want, sizeof want, MSG_WAITALL) != sizeof want) return 0;
    if ((want & kRawWrite) != 0) {
      want = std::min<uint64_t>(want & ~kRawWrite, data.size());
      if (::recv(socket.get(), data.data(), want, MSG_WAITALL) != static_cast<ssize_t>(want) ||
          ::send(socket.get(), &want, sizeof want, MSG_NOSIGNAL) != sizeof want) {
        return 0;
      }
      continue;
    }
    want = std::min<uint64_t>(want, data.size());
    for (uint64_t sent = 0; sent < want;) {
      ssize_t n = ::send(socket.get(), data.data() + sent, want - sent, MSG_NOSIGNAL);
      if (n <= 0) return 0;
      sent += n;
    }
  }
}

pid_t Fork(std::function<int()> child) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(child());
  return pid;
}

// Bytes per second of `transfer` for about `seconds`.
template <typename Fn>
absl::StatusOr<double> Rate(uint64_t transfer, double seconds, Fn&& once) {
  const absl::Time start = absl::Now();
  const absl::Time end = start + absl::Seconds(seconds);
  uint64_t bytes = 0;
  do {
    VFU_RETURN_IF_ERROR(once());
    bytes += transfer;
  } while (absl::Now() < end);
  return bytes / absl::ToDoubleSeconds(absl::Now() - start);
}

}  // namespace

absl::StatusOr<std::vector<DmaThroughputRow>> MeasureDmaThroughput(
    const DmaThroughputOptions& options) {
  char dir_template[] = "/tmp/vfu-bench-XXXXXX";
  if (::mkdtemp(dir_template) == nullptr) return absl::InternalError("mkdtemp");
  const std::string dir = dir_template;
  const std::string path = dir + "/dma.sock";

  // Both children fork before this process starts any thread.
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    return absl::InternalError("socketpair");
  }
  UniqueFd raw(pair[0]);
  UniqueFd peer_end(pair[1]);
  const pid_t raw_peer = Fork([&] {
    raw.reset();
    return RunRawPeer(std::move(peer_end));
  });
  peer_end.reset();
  int ready_pipe[2];
  if (::pipe2(ready_pipe, O_CLOEXEC) != 0) return absl::InternalError("pipe");
  UniqueFd ready_read(ready_pipe[0]);
  UniqueFd ready_write(ready_pipe[1]);
  const pid_t client = Fork([&] {
    ready_write.reset();
    return RunClient(path, std::move(ready_read));
  });
  ready_read.reset();

  DmaDevice device;
  absl::StatusOr<std::vector<DmaThroughputRow>> result = [&]()
      -> absl::StatusOr<std::vector<DmaThroughputRow>> {
    VFU_ASSIGN_OR_RETURN(std::unique_ptr<Server> server, Server::Create());
    VFU_RETURN_IF_ERROR(server->AddDevice(path, device));
    VFU_RETURN_IF_ERROR(server->Start());
    const char go = 1;
    if (::write(ready_write.get(), &go, 1) != 1) return absl::InternalError("ready pipe");
    if (!device.WaitForMaps(absl::Seconds(10))) {
      return absl::DeadlineExceededError("the client process did not map its memory");
    }
    // Held for the whole run: the handle belongs to this client's attachment.
    const std::shared_ptr<DeviceContext> handle = device.dma();
    DeviceContext& dma = *handle;

    UniqueFd local = SharedMemory(kMemorySize);
    auto* local_memory = static_cast<uint8_t*>(
        ::mmap(nullptr, kMemorySize, PROT_READ | PROT_WRITE, MAP_SHARED, local.get(), 0));
    if (local_memory == MAP_FAILED) return absl::InternalError("mmap");
    std::memset(local_memory, 0x5a, kMemorySize);
    std::vector<uint8_t> buffer(kMemorySize);

    // One pass of the floor: what the same bytes cost without vfu.
    auto raw_once = [&](bool messages, bool write, absl::Span<uint8_t> out) -> absl::Status {
      const uint64_t n = out.size();
      if (!messages) {
        if (write) {
          std::memcpy(local_memory, out.data(), n);
        } else {
          std::memcpy(out.data(), local_memory, n);
        }
        return absl::OkStatus();
      }
      const uint64_t request = write ? n | kRawWrite : n;
      uint64_t ack = 0;
      const bool ok =
          ::send(raw.get(), &request, sizeof request, MSG_NOSIGNAL) == sizeof request &&
          (write ? ::send(raw.get(), out.data(), n, MSG_NOSIGNAL) == static_cast<ssize_t>(n) &&
                       ::recv(raw.get(), &ack, sizeof ack, MSG_WAITALL) == sizeof ack
                 : ::recv(raw.get(), out.data(), n, MSG_WAITALL) == static_cast<ssize_t>(n));
      return ok ? absl::OkStatus() : absl::InternalError("raw peer");
    };

    std::vector<DmaThroughputRow> rows;
    for (const bool write : {false, true}) {
      for (const bool messages : {false, true}) {
        for (const uint64_t transfer : kTransfers) {
          std::vector<double> ratios;
          double value = 0, floor = 0;
          const uint64_t iova = messages ? kMessageIova : kMappedIova;
          const absl::Span<uint8_t> out = absl::MakeSpan(buffer.data(), transfer);
          for (int round = 0; round < options.rounds; ++round) {
            absl::StatusOr<double> vfu_rate = Rate(transfer, options.pass_seconds, [&] {
              return write ? dma.DmaWrite(iova, out) : dma.DmaRead(iova, out);
            });
            if (!vfu_rate.ok()) return vfu_rate.status();
            absl::StatusOr<double> floor_rate = Rate(
                transfer, options.pass_seconds, [&] { return raw_once(messages, write, out); });
            if (!floor_rate.ok()) return floor_rate.status();
            value += *vfu_rate / options.rounds;
            floor += *floor_rate / options.rounds;
            ratios.push_back(*vfu_rate / *floor_rate);
          }
          std::sort(ratios.begin(), ratios.end());
          double target = 0;
          if (!write) target = messages ? (transfer == (1 << 20) ? 0.7 : 0) : 0.9;
          rows.push_back({.path = messages ? "messages" : "mapped",
                          .write = write,
                          .transfer = transfer,
                          .mib_per_s = value / (1 << 20),
                          .floor_mib_per_s = floor / (1 << 20),
                          .ratio = ratios[ratios.size() / 2],
                          .ratio_min = ratios.front(),
                          .ratio_max = ratios.back(),
                          .target = target});
        }
      }
    }
    ::munmap(local_memory, kMemorySize);
    server->Stop();
    return rows;
  }();

  raw.reset();
  ::kill(client, SIGTERM);
  ::waitpid(raw_peer, nullptr, 0);
  ::waitpid(client, nullptr, 0);
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
  return result;
}

std::string FormatDmaThroughput(const std::vector<DmaThroughputRow>& rows) {
  std::string out = absl::StrFormat("%-15s %9s %12s %12s %7s %15s %8s\n", "DMA path", "transfer",
                                    "vfu MiB/s", "floor MiB/s", "ratio", "rounds min-max",
                                    "target");
  for (const DmaThroughputRow& r : rows) {
    const std::string transfer = r.transfer >= (1 << 20) ? absl::StrCat(r.transfer >> 20, " MiB")
                                                         : absl::StrCat(r.transfer >> 10, " KiB");
    const std::string target =
        r.target == 0 ? "-"
                      : absl::StrFormat(">=%.1f %s", r.target, r.ratio >= r.target ? "met" : "MISSED");
    absl::StrAppendFormat(&out, "%-15s %9s %12.0f %12.0f %6.2fx %7.2f-%-7.2f %8s\n",
                          absl::StrCat(r.path, r.write ? " write" : " read"), transfer, r.mib_per_s, r.floor_mib_per_s, r.ratio, r.ratio_min,
                          r.ratio_max, target);
  }
  out +=
      "floors: mapped = memcpy from (into) a shared-memory mapping; messages = raw UNIX-socket\n"
      "request/response of the same size between two processes (a write: the bytes, then an\n"
      "8-byte acknowledgement).\n";
  return out;
}

}  // namespace vfu::bench
