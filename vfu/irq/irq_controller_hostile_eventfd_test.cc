// IrqController against a client that plays with the eventfds it passed
// to DEVICE_SET_IRQS: blocking ones, full ones, O_NONBLOCK cleared again
// after SET_IRQS, drained while the device triggers. No raise may block
// the device thread, and no wake-up may be lost while the counter has room.
#include <fcntl.h>
#include <linux/vfio.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/base/hang_rescue.h"
#include "vfu/base/unique_fd.h"
#include "vfu/irq/irq_controller.h"
#include "vfu/wire/irq.h"

namespace vfu {
namespace {

using ::vfu::testing::IsOk;

constexpr uint32_t kMsix = VFIO_PCI_MSIX_IRQ_INDEX;
constexpr uint64_t kFullCount = 0xfffffffffffffffe;  // an eventfd's maximum

wire::SetIrqsRequest Request(uint32_t flags, uint32_t start, uint32_t count) {
  wire::SetIrqsRequest r;
  r.flags = flags;
  r.index = kMsix;
  r.start = start;
  r.count = count;
  return r;
}

// Installs `fd` as the trigger (or notifier, with `action`) of MSI-X 0.
void Install(IrqController& irqs, UniqueFd fd, uint32_t action = VFIO_IRQ_SET_ACTION_TRIGGER) {
  std::vector<UniqueFd> fds;
  fds.push_back(std::move(fd));
  ASSERT_THAT(irqs.SetIrqs(Request(VFIO_IRQ_SET_DATA_EVENTFD | action, 0, 1), fds), IsOk());
}

// A blocking eventfd, as a hostile client passes it; `client` keeps the
// client's own descriptor of it (the same open file description).
UniqueFd MakeBlockingEventfd(UniqueFd& client) {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC));
  EXPECT_TRUE(fd.valid()) << "eventfd: errno " << errno;
  client = DuplicateFd(fd.get());
  return fd;
}

void ClearNonBlocking(int fd) {
  ASSERT_EQ(::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK), 0);
}

void Fill(int fd) { ASSERT_EQ(::write(fd, &kFullCount, sizeof(kFullCount)), 8); }

// Reads a counter known to be non-zero (so it does not block).
uint64_t ReadNonZero(int fd) {
  uint64_t count = 0;
  EXPECT_EQ(::read(fd, &count, sizeof(count)), 8);
  return count;
}

// The client passes a blocking eventfd it has already filled: the raise
// returns at once and is coalesced into the wake-up the client has not
// read yet (nothing is added to the counter), and counted so. Once the
// client has read, a raise is written and counted as raised.
TEST(IrqControllerHostileEventfdTest, TriggerOnFullBlockingEventfdIsCoalesced) {
  IrqController irqs({0, 0, 1, 0, 0});
  UniqueFd client;
  UniqueFd fd = MakeBlockingEventfd(client);
  Fill(client.get());
  Install(irqs, std::move(fd));
  HangRescue rescue([&client] { ReadNonZero(client.get()); });
  EXPECT_THAT(irqs.Trigger(kMsix, 0), IsOk());
  ASSERT_TRUE(rescue.Finish()) << "Trigger blocked until the test drained the eventfd";
  IrqController::Counts counts = irqs.counts();
  EXPECT_EQ(counts.raised, 0u);
  EXPECT_EQ(counts.coalesced, 1u);
  EXPECT_EQ(counts.pending, 0u);
  EXPECT_EQ(ReadNonZero(client.get()), kFullCount);

  EXPECT_THAT(irqs.Trigger(kMsix, 0), IsOk());
  counts = irqs.counts();
  EXPECT_EQ(counts.raised, 1u);
  EXPECT_EQ(counts.coalesced, 1u);
  EXPECT_EQ(ReadNonZero(client.get()), 1u);
}

// SET_IRQS made the eventfd non-blocking; the client clears the flag again
// and fills the counter. The raise blocks only until the guarded-write
// watchdog interrupts it, and is coalesced.
TEST(IrqControllerHostileEventfdTest, TriggerAfterClientClearsNonBlockingReturns) {
  IrqController irqs({0, 0, 1, 0, 0});
  UniqueFd client;
  Install(irqs, MakeBlockingEventfd(client));
  EXPECT_NE(::fcntl(client.get(), F_GETFL) & O_NONBLOCK, 0) << "SET_IRQS left it blocking";
  ClearNonBlocking(client.get());
  Fill(client.get());
  HangRescue rescue([&client] { ReadNonZero(client.get()); });
  EXPECT_THAT(irqs.Trigger(kMsix, 0), IsOk());
  EXPECT_THAT(irqs.Trigger(kMsix, 0), IsOk());
  ASSERT_TRUE(rescue.Finish()) << "Trigger blocked until the test drained the eventfd";
  EXPECT_EQ(irqs.counts().raised, 0u);
  EXPECT_EQ(irqs.counts().coalesced, 2u);
  EXPECT_EQ(ReadNonZero(client.get()), kFullCount);
}

// The same for the MASK notifier the device model writes on a mask change.
TEST(IrqControllerHostileEventfdTest, MaskNotifierOnBlockedEventfdReturns) {
  IrqController irqs({0, 0, 1, 0, 0});
  Install(irqs, UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)));
  UniqueFd client;
  Install(irqs, MakeBlockingEventfd(client), VFIO_IRQ_SET_ACTION_MASK);
  ClearNonBlocking(client.get());
  Fill(client.get());
  HangRescue rescue([&client] { ReadNonZero(client.get()); });
  irqs.SetDeviceMask(kMsix, 0, true);
  ASSERT_TRUE(rescue.Finish()) << "SetDeviceMask blocked until the test drained the eventfd";
  EXPECT_TRUE(irqs.IsMasked(kMsix, 0));
}

// A client that drains its (blocking) eventfd while the device raises
// loses no wake-up: first a raise on the full counter is coalesced (the
// client then reads exactly the value it wrote), then, with room in the
// counter, every raise adds exactly 1 however the client's reads interleave.
TEST(IrqControllerHostileEventfdTest, ConcurrentDrainLosesNoWakeup) {
  IrqController irqs({0, 0, 1, 0, 0});
  UniqueFd client;
  Install(irqs, MakeBlockingEventfd(client));
  ClearNonBlocking(client.get());
  Fill(client.get());
  {
    HangRescue rescue([&client] { ReadNonZero(client.get()); });
    EXPECT_THAT(irqs.Trigger(kMsix, 0), IsOk());
    ASSERT_TRUE(rescue.Finish()) << "Trigger blocked until the test drained the eventfd";
  }
  EXPECT_EQ(ReadNonZero(client.get()), kFullCount);

  constexpr uint64_t kRaises = 2000;
  std::thread device([&irqs] {
    for (uint64_t i = 0; i < kRaises; ++i) EXPECT_THAT(irqs.Trigger(kMsix, 0), IsOk());
  });
  // Only this thread reads, so a read after POLLIN does not block. The
  // deadline is a failure bound only.
  uint64_t seen = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (seen < kRaises && absl::Now() < deadline) {
    pollfd p = {.fd = client.get(), .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, 100) == 1) seen += ReadNonZero(client.get());
  }
  device.join();
  EXPECT_EQ(seen, kRaises);
  pollfd p = {.fd = client.get(), .events = POLLIN, .revents = 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0) << "more wake-ups than raises";
}

}  // namespace
}  // namespace vfu
