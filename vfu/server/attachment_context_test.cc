// AttachmentContext: a DMA handle reaches the memory of the client it was
// issued for, and nobody else's, however long the device keeps it.
#include "vfu/server/attachment_context.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/client/client.h"
#include "vfu/server/server_test_util.h"

namespace vfu {
namespace {

using ::vfu::testing::IsOk;
using ::vfu::testing::StatusIs;

constexpr uint64_t kIova = 0x100000;
constexpr size_t kSize = 4096;

// A page of shared memory filled with `value`, mapped by `client` at kIova.
class ClientPage {
 public:
  ClientPage(Client& client, uint8_t value) {
    fd_ = UniqueFd(::memfd_create("client-page", MFD_CLOEXEC));
    EXPECT_EQ(::ftruncate(fd_.get(), kSize), 0);
    void* p = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
    EXPECT_NE(p, MAP_FAILED);
    bytes_ = static_cast<uint8_t*>(p);
    std::memset(bytes_, value, kSize);
    EXPECT_OK(client.DmaMap(kIova, kSize, wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite,
                            DuplicateFd(fd_.get())));
  }
  ~ClientPage() { ::munmap(bytes_, kSize); }
  bool AllEqual(uint8_t value) const {
    for (size_t i = 0; i < kSize; ++i) {
      if (bytes_[i] != value) return false;
    }
    return true;
  }

 private:
  UniqueFd fd_;
  uint8_t* bytes_;
};

class AttachmentContextTest : public testing::ServerFixture {};

// A handle kept from the first client fails with Unavailable once that
// client left, also after the next one mapped memory at the same address,
// and after the server is gone; the next client's memory is untouched.
TEST_F(AttachmentContextTest, HandleOfADepartedClientNeverReachesTheNextOne) {
  StartServer();
  std::unique_ptr<Client> first = Connect();
  ASSERT_NE(first, nullptr);
  auto first_page = std::make_unique<ClientPage>(*first, 0xaa);
  std::shared_ptr<DeviceContext> first_handle = devices_[0]->context();
  std::vector<uint8_t> out(64);
  ASSERT_OK(first_handle->DmaRead(kIova, absl::MakeSpan(out)));
  EXPECT_EQ(out, std::vector<uint8_t>(64, 0xaa));
  first.reset();

  std::unique_ptr<Client> second = Connect();  // served once the first is detached
  ASSERT_NE(second, nullptr);
  ClientPage second_page(*second, 0xbb);
  std::fill(out.begin(), out.end(), 0);
  EXPECT_THAT(first_handle->DmaRead(kIova, absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(out, std::vector<uint8_t>(64, 0));
  EXPECT_THAT(first_handle->DmaWrite(kIova, std::vector<uint8_t>(64, 0xcc)),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(first_handle->DmaPin(kIova, 64, DmaDirection::kRead).status(),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(second_page.AllEqual(0xbb));

  std::shared_ptr<DeviceContext> second_handle = devices_[0]->context();
  ASSERT_NE(second_handle, first_handle);
  ASSERT_OK(second_handle->DmaRead(kIova, absl::MakeSpan(out)));
  EXPECT_EQ(out, std::vector<uint8_t>(64, 0xbb));

  // After Stop() and with the server destroyed (run under ASan: nothing
  // freed is touched).
  server_->Stop();
  server_.reset();
  EXPECT_THAT(second_handle->DmaRead(kIova, absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(second_handle->DmaWrite(kIova, out), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(second_page.AllEqual(0xbb));
}

// A device thread copying in a loop through the first client's handle
// while that client leaves and the next maps other memory at the same
// address: every copy that succeeds saw the first client's bytes, and once
// copies fail they fail with Unavailable.
TEST_F(AttachmentContextTest, CopiesRacingTheDetachSeeOnlyTheirClient) {
  StartServer();
  std::unique_ptr<Client> first = Connect();
  ASSERT_NE(first, nullptr);
  ClientPage first_page(*first, 0xaa);
  std::shared_ptr<DeviceContext> handle = devices_[0]->context();

  std::atomic<int> copies{0};
  std::atomic<int> foreign{0};
  absl::Status last;
  absl::Notification copying;
  std::thread device_thread([&] {
    std::vector<uint8_t> out(kSize);
    std::vector<uint8_t> mark(16, 0xaa);
    for (;;) {
      absl::Status status = handle->DmaRead(kIova, absl::MakeSpan(out));
      if (status.ok()) status = handle->DmaWrite(kIova + 64, mark);
      if (!status.ok()) {
        last = status;
        return;
      }
      for (uint8_t b : out) {
        if (b != 0xaa) foreign.fetch_add(1);
      }
      if (copies.fetch_add(1) == 0) copying.Notify();
    }
  });
  copying.WaitForNotification();
  first.reset();
  std::unique_ptr<Client> second = Connect();
  ASSERT_NE(second, nullptr);
  ClientPage second_page(*second, 0xbb);
  device_thread.join();
  EXPECT_THAT(last, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(foreign.load(), 0);
  EXPECT_TRUE(second_page.AllEqual(0xbb));
  EXPECT_GT(copies.load(), 0);
}

}  // namespace
}  // namespace vfu
