// DmaEngineTest: a DmaEngineDevice served by a real Server and driven by the
// client library, all in one process, for the end-to-end tests of the
// device; plus client memory of both kinds (a shared memfd, fd-less
// buffers) and eventfd helpers for its completion interrupts.
#ifndef VFU_DEVICES_DMA_ENGINE_DMA_ENGINE_TEST_FIXTURE_H_
#define VFU_DEVICES_DMA_ENGINE_DMA_ENGINE_TEST_FIXTURE_H_

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "devices/dma_engine/dma_engine_device.h"
#include "devices/dma_engine/dma_engine_registers.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "vfu/client/client.h"
#include "vfu/vfu.h"

namespace vfu::devices {

// How long a test waits for something that should come: an interrupt, a
// status change. It only bounds a broken device; nothing sleeps for it.
inline constexpr int kWaitTimeoutMs = 20000;

// The server's deadline for a DMA message. The default (5 s, QEMU's) would
// end a job on its own when a loaded machine keeps the client from
// answering that long, or while a test holds the answers on purpose
// (Client::HoldServerCommands): tests must decide how jobs end. It only
// bounds a broken test; the client's departure fails DMA at once.
inline constexpr absl::Duration kDmaTimeout = absl::Minutes(5);

// A fresh non-blocking eventfd, or an invalid one (the test then fails).
inline UniqueFd NewEventfd() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  EXPECT_TRUE(fd.valid()) << "eventfd: " << std::strerror(errno);
  return fd;
}

// Waits up to `timeout_ms` for `fd` to be signalled and consumes it: the
// counter (how many raises it collected), or nullopt if none came.
inline std::optional<uint64_t> ReadEventfd(const UniqueFd& fd, int timeout_ms) {
  pollfd p = {.fd = fd.get(), .events = POLLIN, .revents = 0};
  if (::poll(&p, 1, timeout_ms) != 1) return std::nullopt;
  uint64_t count = 0;
  if (::read(fd.get(), &count, sizeof count) != sizeof count) return std::nullopt;
  return count;
}

// Byte `i` of the test pattern number `seed`: different seeds, and
// different offsets within one, give different bytes.
inline uint8_t PatternByte(uint32_t seed, uint64_t i) {
  const uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t{seed} << 40);
  return static_cast<uint8_t>((x >> 29) ^ (x >> 47) ^ i);
}

inline void FillPattern(absl::Span<uint8_t> bytes, uint32_t seed) {
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = PatternByte(seed, i);
}

// The offset of the first byte from `start` on that differs from pattern
// `seed`, or -1.
inline int64_t FirstPatternMismatch(absl::Span<const uint8_t> bytes, uint32_t seed,
                                    uint64_t start = 0) {
  for (size_t i = start; i < bytes.size(); ++i) {
    if (bytes[i] != PatternByte(seed, i)) return static_cast<int64_t>(i);
  }
  return -1;
}

// A memfd this process maps too: what a VMM shares as guest RAM.
class SharedMemory {
 public:
  explicit SharedMemory(uint64_t size) : size_(size) {
    fd_.reset(::memfd_create("dma-engine-test", MFD_CLOEXEC));
    if (!fd_ || ::ftruncate(fd_.get(), static_cast<off_t>(size)) != 0) {
      ADD_FAILURE() << "memfd: " << std::strerror(errno);
      return;
    }
    void* memory = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
    if (memory == MAP_FAILED) {
      ADD_FAILURE() << "mmap: " << std::strerror(errno);
      return;
    }
    memory_ = static_cast<uint8_t*>(memory);
  }
  ~SharedMemory() {
    if (memory_ != nullptr) ::munmap(memory_, size_);
  }
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;

  absl::Span<uint8_t> bytes() { return absl::MakeSpan(memory_, memory_ ? size_ : 0); }
  absl::Span<uint8_t> bytes(uint64_t offset, uint64_t length) {
    return bytes().subspan(offset, length);
  }
  // A duplicate of the memfd for DMA_MAP, which consumes it.
  UniqueFd Share() const { return DuplicateFd(fd_.get()); }
  uint64_t size() const { return size_; }

 private:
  uint64_t size_;
  UniqueFd fd_;
  uint8_t* memory_ = nullptr;
};

// The device with one test seam: a function told of every region write
// once the device has applied it (on the worker thread that ran it), so a
// test can act at an exact point of the device's command stream, e.g.
// release held DMA once an ABORT has arrived.
class ObservedDmaEngineDevice : public DmaEngineDevice {
 public:
  using WriteObserver = std::function<void(uint64_t offset, absl::Span<const uint8_t> data)>;

  void SetWriteObserver(WriteObserver observer) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    observer_ = std::move(observer);
  }

  absl::Status OnRegionWrite(uint32_t region, uint64_t offset,
                             absl::Span<const uint8_t> data) override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::Status status = DmaEngineDevice::OnRegionWrite(region, offset, data);
    WriteObserver observer;
    {
      absl::MutexLock lock(&mu_);
      observer = observer_;
    }
    if (observer) observer(offset, data);
    return status;
  }

 private:
  absl::Mutex mu_;
  WriteObserver observer_ ABSL_GUARDED_BY(mu_);
};

class DmaEngineTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kReadWrite = wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite;

  void SetUp() override {
    ServerOptions options;
    options.runtime.dma_timeout = kDmaTimeout;
    ASSERT_OK_AND_ASSIGN(server_, Server::Create(std::move(options)));
    ASSERT_OK(server_->AddDevice(socket_path(), device_));
    ASSERT_OK(server_->Start());
    ASSERT_OK_AND_ASSIGN(client_, Client::Connect(socket_path(), PatientClientOptions()));
  }
  void TearDown() override {
    client_.reset();
    if (server_ != nullptr) server_->Stop();
  }

  std::string socket_path() const { return dir_.File("dma.sock"); }

  // The fixture's clients wait for a reply as long as any test waits (the
  // default, 5 s, is a speed assumption on a loaded machine).
  static ClientOptions PatientClientOptions() {
    ClientOptions options;
    options.timeout = absl::Milliseconds(kWaitTimeoutMs);
    return options;
  }

  // Replaces the client. The server refuses a new client until it has
  // noticed that the old one left (and the device has let go of it), so
  // this retries while refused, for as long as that may take.
  void Reconnect() {
    client_.reset();
    const absl::Time deadline = absl::Now() + absl::Milliseconds(kWaitTimeoutMs);
    absl::Status last;
    do {
      absl::StatusOr<std::unique_ptr<Client>> client =
          Client::Connect(socket_path(), PatientClientOptions());
      if (client.ok()) {
        client_ = *std::move(client);
        return;
      }
      last = client.status();
      std::this_thread::yield();
    } while (absl::Now() < deadline);
    FAIL() << "the server kept refusing a new client: " << last;
  }

  // Waits until the client has received `count` commands from the server
  // in all (e.g. DMA_READs it holds: each job that sent one is waiting for
  // its answer). Each Poll() reads what came; nothing sleeps.
  void AwaitServerCommands(uint64_t count) {
    const absl::Time deadline = absl::Now() + absl::Milliseconds(kWaitTimeoutMs);
    while (client_->stats().server_commands_received < count && absl::Now() < deadline) {
      ASSERT_OK(client_->Poll(absl::Milliseconds(kWaitTimeoutMs)));
    }
    ASSERT_GE(client_->stats().server_commands_received, count);
  }

  // fd-less client memory, owned by the fixture so that it outlives the
  // client (which serves DMA from it until destroyed).
  absl::Span<uint8_t> NewBuffer(uint64_t size) {
    buffers_.emplace_back(size);
    return absl::MakeSpan(buffers_.back());
  }

  // Maps `memory` (fd-less, served by messages) at `iova`.
  void MapBuffer(uint64_t iova, absl::Span<uint8_t> memory) {
    ASSERT_OK(client_->DmaMapMemory(iova, memory));
  }
  // Maps all of `memory` (fd-backed) at `iova`.
  void MapShared(uint64_t iova, const SharedMemory& memory) {
    ASSERT_OK(client_->DmaMap(iova, memory.size(), kReadWrite, memory.Share()));
  }

  uint32_t Read32(uint64_t offset) {
    absl::StatusOr<std::vector<uint8_t>> bytes = client_->RegionRead(kBar0Region, offset, 4);
    EXPECT_OK(bytes);
    uint32_t value = 0;
    if (bytes.ok() && bytes->size() == 4) std::memcpy(&value, bytes->data(), 4);
    return value;
  }
  template <typename T>
  void Write(uint64_t offset, T value, bool posted = false) {
    uint8_t bytes[sizeof value];
    std::memcpy(bytes, &value, sizeof value);
    EXPECT_OK(client_->RegionWrite(kBar0Region, offset, bytes, posted));
  }

  uint32_t ReadChannel(uint32_t channel, uint64_t reg) {
    return Read32(dma_engine::ChannelRegister(channel, reg));
  }
  uint32_t Status(uint32_t channel) { return ReadChannel(channel, dma_engine::kRegStatus); }
  uint32_t Error(uint32_t channel) { return ReadChannel(channel, dma_engine::kRegError); }
  uint32_t Progress(uint32_t channel) { return ReadChannel(channel, dma_engine::kRegProgress); }

  // Writes SOURCE, DESTINATION and LENGTH of `channel`.
  void Program(uint32_t channel, uint64_t source, uint64_t destination, uint32_t length,
               bool posted = false) {
    Write<uint64_t>(dma_engine::ChannelRegister(channel, dma_engine::kRegSourceLo), source, posted);
    Write<uint64_t>(dma_engine::ChannelRegister(channel, dma_engine::kRegDestinationLo),
                    destination, posted);
    Write<uint32_t>(dma_engine::ChannelRegister(channel, dma_engine::kRegLength), length, posted);
  }
  void Ring(uint32_t channel, uint32_t bits = dma_engine::kDoorbellStart, bool posted = false) {
    Write<uint32_t>(dma_engine::ChannelRegister(channel, dma_engine::kRegDoorbell), bits, posted);
  }

  // Installs a new eventfd as the trigger of MSI-X vector `channel`;
  // returns the test's end of it.
  UniqueFd WatchChannel(uint32_t channel) {
    UniqueFd fd = NewEventfd();
    std::vector<UniqueFd> fds;
    fds.push_back(DuplicateFd(fd.get()));
    EXPECT_OK(client_->SetIrqEventfds(kMsixIrq, channel, std::move(fds)));
    return fd;
  }

  // Waits for the completion interrupt on `irq`, then returns the
  // channel's STATUS. Reading STATUS through the client also orders this
  // thread after the serving thread's writes into fd-less memory.
  uint32_t WaitForJob(uint32_t channel, const UniqueFd& irq) {
    EXPECT_TRUE(ReadEventfd(irq, kWaitTimeoutMs).has_value())
        << "no completion interrupt on channel " << channel;
    return Status(channel);
  }

  // Programs `channel`, rings it and waits for its interrupt: the STATUS.
  uint32_t Copy(uint32_t channel, const UniqueFd& irq, uint64_t source, uint64_t destination,
                uint32_t length) {
    Program(channel, source, destination, length);
    Ring(channel);
    return WaitForJob(channel, irq);
  }

  // Reads STATUS until the channel is no longer busy (each read is a round
  // trip to the device; nothing sleeps): the final STATUS, or busy after
  // the timeout.
  uint32_t WaitWhileBusy(uint32_t channel) {
    const absl::Time deadline = absl::Now() + absl::Milliseconds(kWaitTimeoutMs);
    uint32_t status;
    while ((status = Status(channel)) == dma_engine::kStatusBusy && absl::Now() < deadline) {
    }
    return status;
  }

  testing::ScopedTempDir dir_;
  ObservedDmaEngineDevice device_;
  std::unique_ptr<Server> server_;
  // Before client_: destroyed after it.
  std::vector<std::vector<uint8_t>> buffers_;
  std::unique_ptr<Client> client_;
};

}  // namespace vfu::devices

#endif  // VFU_DEVICES_DMA_ENGINE_DMA_ENGINE_TEST_FIXTURE_H_
