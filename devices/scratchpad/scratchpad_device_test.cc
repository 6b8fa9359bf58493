#include "devices/scratchpad/scratchpad_device.h"

#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "vfu/client/client.h"

namespace vfu::devices {
namespace {

using ::vfu::testing::ScopedTempDir;

class ScratchpadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(server_, Server::Create());
    ASSERT_OK(server_->AddDevice(dir_.File("s.sock"), device_));
    ASSERT_OK(server_->Start());
    ASSERT_OK_AND_ASSIGN(client_, Client::Connect(dir_.File("s.sock")));
  }
  void TearDown() override {
    client_.reset();
    server_->Stop();
  }

  template <typename T>
  absl::Status WriteRegister(uint64_t offset, T value) {
    std::vector<uint8_t> bytes(sizeof value);
    std::memcpy(bytes.data(), &value, sizeof value);
    return client_->RegionWrite(0, offset, bytes);
  }

  uint32_t Status() {
    absl::StatusOr<std::vector<uint8_t>> b = client_->RegionRead(0, ScratchpadDevice::kRegStatus, 4);
    EXPECT_TRUE(b.ok());
    uint32_t v = 0;
    if (b.ok()) std::memcpy(&v, b->data(), 4);
    return v;
  }

  // Rings the doorbell, then serves the device's DMA until it reports done.
  uint32_t RunCopy(uint64_t source, uint32_t length) {
    EXPECT_OK(WriteRegister<uint64_t>(ScratchpadDevice::kRegSource, source));
    EXPECT_OK(WriteRegister<uint32_t>(ScratchpadDevice::kRegLength, length));
    EXPECT_OK(WriteRegister<uint32_t>(ScratchpadDevice::kRegDoorbell, 1));
    uint32_t status;
    while ((status = Status()) == ScratchpadDevice::kBusy) {
      EXPECT_OK(client_->Poll(absl::Milliseconds(10)));
    }
    return status;
  }

  ScopedTempDir dir_;
  ScratchpadDevice device_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<Client> client_;
};

// Scratch memory keeps what the client writes.
TEST_F(ScratchpadTest, ScratchMemoryRoundTrip) {
  std::string text = "hello, vfio-user";
  ASSERT_OK(client_->RegionWrite(0, 0x10, std::vector<uint8_t>(text.begin(), text.end())));
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> back, client_->RegionRead(0, 0x10, text.size()));
  EXPECT_EQ(std::string(back.begin(), back.end()), text);
}

// The doorbell copies client memory into BAR0 through DMA_READ messages.
TEST_F(ScratchpadTest, DoorbellCopiesClientMemory) {
  std::vector<uint8_t> guest(4096);
  for (size_t i = 0; i < guest.size(); ++i) guest[i] = static_cast<uint8_t>(i * 3 + 1);
  ASSERT_OK(client_->DmaMapMemory(0x100000, absl::MakeSpan(guest)));
  EXPECT_EQ(RunCopy(0x100000 + 100, 300), ScratchpadDevice::kDone);
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> copied, client_->RegionRead(0, 0, 300));
  EXPECT_EQ(0, std::memcmp(copied.data(), guest.data() + 100, 300));
}

// DMA outside the client's memory fails the job; the device reports it.
TEST_F(ScratchpadTest, DmaOutsideClientMemoryFails) {
  EXPECT_EQ(RunCopy(0xdead0000, 16), ScratchpadDevice::kFailed);
}

// The status register cannot be written by the client.
TEST_F(ScratchpadTest, StatusIsReadOnly) {
  EXPECT_FALSE(WriteRegister<uint32_t>(ScratchpadDevice::kRegStatus, 7).ok());
}

}  // namespace
}  // namespace vfu::devices
