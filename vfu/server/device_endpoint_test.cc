// DeviceEndpoint: clients come one after another without ever being
// refused, and a failing accept backs off instead of spinning.
#include "vfu/server/device_endpoint.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/base/log.h"
#include "vfu/client/client.h"
#include "vfu/device/pci_device.h"
#include "vfu/server/server.h"
#include "vfu/server/server_test_util.h"
#include "vfu/wire/device_info.h"

namespace vfu {
namespace {

using ::vfu::testing::IsOk;
using ::vfu::testing::ReadMessages;
using ::vfu::testing::StatusIs;

class DeviceEndpointTest : public testing::ServerFixture {};

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// Sanitized builds run each cycle several times slower; fewer cycles keep
// the test well under two minutes and still show a refusal race.
constexpr int kReconnectCycles = 2000;
#else
constexpr int kReconnectCycles = 10000;
#endif

// Back-to-back connect / VERSION / close against one device: every client
// is served on its first attempt, however soon after the previous one it
// comes (the previous connection may still be tearing down).
TEST_F(DeviceEndpointTest, BackToBackReconnectsAreNeverRefused) {
  StartServer();
  for (int i = 0; i < kReconnectCycles; ++i) {
    // A refused client fails at once; the deadline only bounds a slow one.
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(Path(0), PatientClient());
    ASSERT_THAT(client, IsOk()) << "cycle " << i;
  }
  EXPECT_EQ(devices_[0]->attaches(), kReconnectCycles);
}

// A PCI device with INTx, for clients that install interrupt eventfds.
class IntxDevice : public PciDevice {
 public:
  IntxDevice() : PciDevice(Spec()) {}

 private:
  static PciDeviceSpec Spec() {
    PciDeviceSpec spec;
    spec.identity = {.vendor_id = 0x1d0f, .device_id = 0x7777, .class_code = 0x058000};
    spec.bars[0] = {.size = 4096, .backed_by_memory = true};
    spec.interrupts = {.intx = true};
    return spec;
  }
};

// Shared memory a client maps with an fd.
struct SharedPage {
  SharedPage() {
    fd = UniqueFd(::memfd_create("page", MFD_CLOEXEC));
    EXPECT_EQ(::ftruncate(fd.get(), 4096), 0);
    void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    EXPECT_NE(p, MAP_FAILED);
    bytes = static_cast<uint8_t*>(p);
  }
  ~SharedPage() { ::munmap(bytes, 4096); }
  UniqueFd fd;
  uint8_t* bytes;
};

// The next client is served at once after one that leaves with memory
// mapped (with and without an fd), an interrupt eventfd installed and a
// DMA_READ of a device thread waiting for it: the waiter fails fast, the
// eventfd is released, the memory unmapped (the next client can map the
// same range), and the departed client's DMA handle stays revoked.
TEST(DeviceEndpointDetachTest, ReconnectRightAfterAClientWithMapsIrqsAndDmaInFlight) {
  testing::ScopedTempDir dir;
  const std::string path = dir.File("intx.sock");
  IntxDevice device;
  ServerOptions options;
  options.runtime.dma_timeout = absl::Minutes(1);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Server> server, Server::Create(options));
  ASSERT_OK(server->AddDevice(path, device));
  ASSERT_OK(server->Start());

  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> first, Client::Connect(path));
  SharedPage page;
  ASSERT_OK(first->DmaMap(0x100000, 4096, wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite,
                          DuplicateFd(page.fd.get())));
  std::vector<uint8_t> registered(4096, 0x5a);
  // Fd-less: reached by DMA_READ, which this client never answers (it
  // serves DMA only inside its own calls).
  ASSERT_OK(first->DmaMapMemory(0x200000, absl::MakeSpan(registered)));
  UniqueFd irq(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  std::vector<UniqueFd> irq_fds;
  irq_fds.push_back(DuplicateFd(irq.get()));
  ASSERT_OK(first->SetIrqEventfds(kIntxIrq, 0, std::move(irq_fds)));
  ASSERT_OK(device.TriggerIrq(kIntxIrq, 0));
  uint64_t count = 0;
  ASSERT_EQ(::read(irq.get(), &count, sizeof count), (ssize_t)sizeof count);
  EXPECT_EQ(count, 1u);

  std::shared_ptr<DeviceContext> handle = device.dma();
  absl::Status in_flight_status;
  absl::Notification started;
  std::thread device_thread([&] {
    std::vector<uint8_t> out(8);
    started.Notify();
    in_flight_status = handle->DmaRead(0x200000, absl::MakeSpan(out));
  });
  started.WaitForNotification();
  const absl::Time left = absl::Now();
  first.reset();

  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> second,
                       Client::Connect(path, ClientOptions{.timeout = absl::Seconds(60)}));
  device_thread.join();
  EXPECT_LT(absl::Now() - left, absl::Seconds(30));  // not the 1-minute DMA timeout
  EXPECT_THAT(in_flight_status, StatusIs(absl::StatusCode::kUnavailable));
  std::vector<uint8_t> out(8);
  EXPECT_THAT(handle->DmaRead(0x100000, absl::MakeSpan(out)),
              StatusIs(absl::StatusCode::kUnavailable));
  // The first client's eventfd is gone: nothing reaches it any more.
  EXPECT_FALSE(device.TriggerIrq(kIntxIrq, 0).ok());
  EXPECT_EQ(::read(irq.get(), &count, sizeof count), -1);
  EXPECT_EQ(errno, EAGAIN);
  // Its mappings are gone too: the same range maps again.
  EXPECT_OK(second->DmaMap(0x100000, 4096, wire::kDmaMapFlagRead, DuplicateFd(page.fd.get())));
  EXPECT_THAT(second->GetDeviceInfo(), IsOk());
  server->Stop();
}

// The lowest fd number not in use.
int LowestFreeFd() {
  const int fd = ::dup(STDERR_FILENO);
  if (fd >= 0) ::close(fd);
  return fd;
}

// accept() failing with EMFILE neither spins the IO thread nor floods the
// log: the listener rests for accept_retry_delay between tries, with one
// log line; once fds are available again the waiting client is served.
TEST_F(DeviceEndpointTest, AcceptOutOfFdsBacksOffAndRecovers) {
  ServerOptions options;
  options.runtime.accept_retry_delay = absl::Milliseconds(50);
  StartServer(options);
  std::atomic<int> accept_lines{0};
  absl::Notification first_failure;
  ScopedLogCapture capture([&](LogLevel, std::string_view text) {
    if (text.find("accept") != std::string_view::npos && accept_lines.fetch_add(1) == 0) {
      first_failure.Notify();
    }
  });
  UniqueFd socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(socket);
  struct rlimit saved;
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  {
    // From here on the process (the server's accept included) gets no new
    // fd: every free number is at or above the limit.
    struct rlimit lowered = saved;
    lowered.rlim_cur = static_cast<rlim_t>(LowestFreeFd());
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
  }
  absl::Cleanup restore = [&saved] { ::setrlimit(RLIMIT_NOFILE, &saved); };
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  const std::string path = Path(0);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(::connect(socket.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0)
      << std::strerror(errno);
  ASSERT_EQ(::fcntl(socket.get(), F_SETFL, O_NONBLOCK), 0);

  ASSERT_TRUE(first_failure.WaitForNotificationWithTimeout(absl::Seconds(30)));
  const uint64_t iterations_before = server_->reactor().loop_iterations();
  // A bounded negative wait: long enough for a spinning listener to show
  // (hundreds of thousands of iterations and log lines), and for about ten
  // retries at 50 ms.
  absl::SleepFor(absl::Milliseconds(500));
  const uint64_t iterations = server_->reactor().loop_iterations() - iterations_before;
  EXPECT_LT(iterations, 1000u);
  // About ten retries, each a (rate-limited) line; a spinning listener
  // makes hundreds of thousands.
  EXPECT_LT(accept_lines.load(), 100);

  std::move(restore).Invoke();
  testing::SendAll(socket.get(), testing::VersionCommand(1));
  std::vector<InboundMessage> replies = ReadMessages(socket.get(), 1);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_TRUE(replies[0].header.is_reply());
  EXPECT_FALSE(replies[0].header.is_error());
}

}  // namespace
}  // namespace vfu
