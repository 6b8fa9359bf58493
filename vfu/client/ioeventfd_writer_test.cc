// Our client rings a device's doorbells as QEMU with KVM does: through the
// ioeventfds from DEVICE_GET_REGION_IO_FDS where a store matches one, as
// REGION_WRITEs otherwise; the device, waiting on its own thread, sees the
// same doorbell rings either way.
#include "vfu/client/ioeventfd_writer.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "vfu/client/client.h"
#include "vfu/vfu.h"

namespace vfu {
namespace {

constexpr absl::Duration kWait = absl::Seconds(10);

PciDeviceSpec Spec() {
  PciDeviceSpec spec;
  spec.identity = {.vendor_id = 0x1d0f, .device_id = 0x0003, .class_code = 0xff0000};
  spec.bars[0] = {.size = 0x2000};
  spec.ioeventfds = {{.region = 0, .offset = 0x1000, .size = 4},  // SQ 0 tail
                     {.region = 0, .offset = 0x1004, .size = 4},  // CQ 0 head
                     {.region = 0, .offset = 0x1008, .size = 2, .datamatch = 0x1}};
  return spec;
}

class DoorbellDevice : public PciDevice {
 public:
  DoorbellDevice() : PciDevice(Spec()) {}
  absl::Status OnRegionWrite(uint32_t, uint64_t offset, absl::Span<const uint8_t>) override {
    absl::MutexLock lock(&mu_);
    trapped_.push_back(offset);
    return absl::OkStatus();
  }
  std::vector<uint64_t> trapped() {
    absl::MutexLock lock(&mu_);
    return trapped_;
  }

 private:
  absl::Mutex mu_;
  std::vector<uint64_t> trapped_ ABSL_GUARDED_BY(mu_);
};

class IoeventfdWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(server_, Server::Create());
    ASSERT_OK(server_->AddDevice(dir_.File("dev.sock"), device_));
    ASSERT_OK(server_->Start());
    ASSERT_OK_AND_ASSIGN(client_, Client::Connect(dir_.File("dev.sock")));
  }
  void TearDown() override {
    client_.reset();
    if (server_ != nullptr) server_->Stop();
  }

  // Waits for the next rings, as a device thread does.
  std::vector<size_t> NextRings() {
    absl::StatusOr<PciDevice::DoorbellWait> wait =
        device_.WaitForIoeventfds(all_, /*wake_fd=*/-1, kWait);
    EXPECT_OK(wait);
    return wait.ok() ? wait->rung : std::vector<size_t>{};
  }

  testing::ScopedTempDir dir_;
  DoorbellDevice device_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<Client> client_;
  const std::vector<size_t> all_ = {0, 1, 2};
};

TEST_F(IoeventfdWriterTest, MatchingStoresGoThroughTheEventfds) {
  ASSERT_OK_AND_ASSIGN(IoeventfdWriter writer, IoeventfdWriter::Create(*client_, 0));
  ASSERT_EQ(writer.entries().size(), 3u);
  const uint8_t tail[4] = {5, 0, 0, 0};
  ASSERT_OK_AND_ASSIGN(IoeventfdWriter::Path path, writer.Write(0x1004, tail));
  EXPECT_EQ(path, IoeventfdWriter::Path::kEventfd);
  EXPECT_EQ(NextRings(), std::vector<size_t>{1});

  const uint8_t one[2] = {1, 0};
  ASSERT_OK_AND_ASSIGN(path, writer.Write(0x1008, one));
  EXPECT_EQ(path, IoeventfdWriter::Path::kEventfd);
  EXPECT_EQ(NextRings(), std::vector<size_t>{2});
  EXPECT_TRUE(device_.trapped().empty());
}

// What KVM would not match exits to the VMM: a REGION_WRITE the device's
// OnRegionWrite gets.
TEST_F(IoeventfdWriterTest, OtherStoresAreTrapped) {
  ASSERT_OK_AND_ASSIGN(IoeventfdWriter writer, IoeventfdWriter::Create(*client_, 0));
  const uint8_t two[2] = {2, 0};
  ASSERT_OK_AND_ASSIGN(IoeventfdWriter::Path path, writer.Write(0x1008, two));
  EXPECT_EQ(path, IoeventfdWriter::Path::kRegionWrite);
  const uint8_t half[2] = {1, 0};
  ASSERT_OK_AND_ASSIGN(path, writer.Write(0x1000, half));
  EXPECT_EQ(path, IoeventfdWriter::Path::kRegionWrite);
  EXPECT_EQ(device_.trapped(), (std::vector<uint64_t>{0x1008, 0x1000}));
  absl::StatusOr<PciDevice::DoorbellWait> wait =
      device_.WaitForIoeventfds(all_, -1, absl::ZeroDuration());
  ASSERT_OK(wait);
  EXPECT_TRUE(wait->rung.empty());
}

// A VMM that did not register the fds (QEMU's fallback) sends the doorbell
// store as a REGION_WRITE: the device sees the same ring.
TEST_F(IoeventfdWriterTest, UnregisteredDoorbellStoreRingsTheSameDoorbell) {
  const uint8_t tail[4] = {9, 0, 0, 0};
  ASSERT_OK(client_->RegionWrite(0, 0x1000, tail));
  EXPECT_EQ(NextRings(), std::vector<size_t>{0});
  EXPECT_TRUE(device_.trapped().empty());
}

// A device thread blocked on its doorbells and a stop eventfd, across many
// rings from the client: none lost, stop wakes it.
TEST_F(IoeventfdWriterTest, DeviceThreadSeesEveryRing) {
  ASSERT_OK_AND_ASSIGN(IoeventfdWriter writer, IoeventfdWriter::Create(*client_, 0));
  UniqueFd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  absl::Mutex mu;
  int rings = 0;  // guarded by mu
  std::thread device_thread([&] {
    while (true) {
      absl::StatusOr<PciDevice::DoorbellWait> wait =
          device_.WaitForIoeventfds({0}, stop.get(), absl::InfiniteDuration());
      if (!wait.ok() || wait->wake_fd_ready) return;
      absl::MutexLock lock(&mu);
      rings += static_cast<int>(wait->rung.size());
    }
  });
  constexpr int kRings = 50;
  const uint8_t tail[4] = {1, 0, 0, 0};
  for (int i = 0; i < kRings; ++i) {
    ASSERT_OK(writer.Write(0x1000, tail).status());
    // Rings coalesce in the counter; wait for each so the count is exact.
    absl::MutexLock lock(&mu);
    EXPECT_TRUE(mu.AwaitWithTimeout(
        absl::Condition(+[](int* r) { return *r > 0; }, &rings), kWait));
    rings = 0;
  }
  const uint64_t one = 1;
  ASSERT_EQ(::write(stop.get(), &one, sizeof one), static_cast<ssize_t>(sizeof one));
  device_thread.join();
}

}  // namespace
}  // namespace vfu
