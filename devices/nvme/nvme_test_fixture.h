// NvmeTest: an NvmeController over image files in a temporary directory,
// served by a real Server in this process and driven through the client
// library by NvmeDriver, for the end-to-end tests of the controller.
#ifndef VFU_DEVICES_NVME_NVME_TEST_FIXTURE_H_
#define VFU_DEVICES_NVME_NVME_TEST_FIXTURE_H_

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "devices/nvme/nvme_controller.h"
#include "devices/nvme/nvme_defs.h"
#include "devices/nvme/nvme_driver.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "vfu/client/client.h"
#include "vfu/vfu.h"

namespace vfu::nvme {

// Bounds a broken controller; nothing sleeps for it.
inline constexpr absl::Duration kTestTimeout = absl::Seconds(20);

// Byte `i` of pattern `seed`.
inline uint8_t PatternByte(uint32_t seed, uint64_t i) {
  const uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t{seed} << 40);
  return static_cast<uint8_t>((x >> 29) ^ (x >> 47) ^ i);
}
inline void FillPattern(uint8_t* bytes, uint64_t n, uint32_t seed) {
  for (uint64_t i = 0; i < n; ++i) bytes[i] = PatternByte(seed, i);
}
inline bool MatchesPattern(const uint8_t* bytes, uint64_t n, uint32_t seed) {
  for (uint64_t i = 0; i < n; ++i) {
    if (bytes[i] != PatternByte(seed, i)) return false;
  }
  return true;
}

struct NvmeTestConfig {
  uint32_t lba_size = 512;
  uint32_t namespaces = 1;
  uint64_t namespace_bytes = 8ull << 20;
  uint32_t io_threads = 2;
  NvmeDriverOptions driver;
};

class NvmeTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(NvmeTestConfig{}); }
  void TearDown() override { Stop(); }

  // (Re)starts everything with `config`: fresh image files (zero-filled,
  // plus a guard file after each, which no write may touch), controller,
  // server, client and driver (attached, not enabled).
  void Start(const NvmeTestConfig& config) {
    Stop();
    config_ = config;
    std::vector<std::string> paths;
    for (uint32_t i = 0; i < config.namespaces; ++i) {
      const std::string path = dir_.File("ns" + std::to_string(i + 1) + ".img");
      UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
      ASSERT_TRUE(fd.valid()) << std::strerror(errno);
      ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(config.namespace_bytes)), 0);
      paths.push_back(path);
    }
    ASSERT_OK_AND_ASSIGN(controller_,
                         NvmeController::Create(paths, config.lba_size, config.io_threads));
    ServerOptions options;
    options.runtime.dma_timeout = absl::Minutes(5);
    ASSERT_OK_AND_ASSIGN(server_, Server::Create(std::move(options)));
    ASSERT_OK(server_->AddDevice(socket_path(), *controller_));
    ASSERT_OK(server_->Start());
    Connect();
  }

  void Connect() {
    const absl::Time deadline = absl::Now() + kTestTimeout;
    absl::Status last;
    do {
      ClientOptions options;
      options.timeout = kTestTimeout;
      absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(socket_path(), options);
      if (client.ok()) {
        client_ = *std::move(client);
        break;
      }
      last = client.status();
      std::this_thread::yield();
    } while (absl::Now() < deadline);
    ASSERT_NE(client_, nullptr) << last;
    NvmeDriverOptions driver_options = config_.driver;
    driver_options.timeout = kTestTimeout;
    ASSERT_OK_AND_ASSIGN(driver_, NvmeDriver::Attach(*client_, driver_options));
  }

  // Drops driver and client (the controller sees a detach), then connects
  // again.
  void Reconnect() {
    driver_.reset();
    client_.reset();
    Connect();
  }

  void Stop() {
    driver_.reset();
    client_.reset();
    if (server_ != nullptr) server_->Stop();
    server_.reset();
    controller_.reset();
  }

  std::string socket_path() const { return dir_.File("nvme.sock"); }
  std::string namespace_path(uint32_t nsid) const {
    return dir_.File("ns" + std::to_string(nsid) + ".img");
  }

  // Enables the controller and creates I/O queue pairs 1..count.
  void EnableWithQueues(uint32_t count, uint32_t entries = 64) {
    ASSERT_OK(driver_->Enable());
    for (uint32_t q = 1; q <= count; ++q) {
      ASSERT_OK(driver_->CreateIoQueuePair(static_cast<uint16_t>(q), entries));
    }
  }

  // Runs an admin command; its completion status.
  uint16_t AdminStatus(SubmissionEntry sqe, uint32_t* dw0 = nullptr) {
    absl::StatusOr<Completion> done = driver_->Run(0, sqe);
    EXPECT_OK(done);
    if (!done.ok()) return 0xffff;
    if (dw0 != nullptr) *dw0 = done->dw0;
    return done->status;
  }
  uint16_t IoStatus(uint16_t qid, SubmissionEntry sqe) {
    absl::StatusOr<Completion> done = driver_->Run(qid, sqe);
    EXPECT_OK(done);
    return done.ok() ? done->status : 0xffff;
  }

  // The bytes of namespace `nsid`'s file at `offset`.
  std::vector<uint8_t> FileBytes(uint32_t nsid, uint64_t offset, uint64_t length) {
    std::vector<uint8_t> bytes(length);
    UniqueFd fd(::open(namespace_path(nsid).c_str(), O_RDONLY | O_CLOEXEC));
    EXPECT_TRUE(fd.valid());
    EXPECT_EQ(::pread(fd.get(), bytes.data(), length, static_cast<off_t>(offset)),
              static_cast<ssize_t>(length));
    return bytes;
  }
  void WriteFileBytes(uint32_t nsid, uint64_t offset, absl::Span<const uint8_t> bytes) {
    UniqueFd fd(::open(namespace_path(nsid).c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(::pwrite(fd.get(), bytes.data(), bytes.size(), static_cast<off_t>(offset)),
              static_cast<ssize_t>(bytes.size()));
  }
  uint64_t FileSize(uint32_t nsid) {
    struct stat st;
    EXPECT_EQ(::stat(namespace_path(nsid).c_str(), &st), 0);
    return static_cast<uint64_t>(st.st_size);
  }

  uint32_t Csts() {
    absl::StatusOr<uint32_t> csts = driver_->Read32(kRegCsts);
    EXPECT_OK(csts);
    return csts.ok() ? *csts : 0;
  }

  testing::ScopedTempDir dir_;
  NvmeTestConfig config_;
  std::unique_ptr<NvmeController> controller_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<NvmeDriver> driver_;
};

}  // namespace vfu::nvme

#endif  // VFU_DEVICES_NVME_NVME_TEST_FIXTURE_H_
