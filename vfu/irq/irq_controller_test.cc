#include "vfu/irq/irq_controller.h"

#include <fcntl.h>
#include <linux/vfio.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/base/unique_fd.h"
#include "vfu/wire/errno_status.h"
#include "vfu/wire/irq.h"

namespace vfu {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::vfu::testing::IsOk;
using ::vfu::testing::StatusIs;
using Change = IrqController::Change;

constexpr uint32_t kIntx = VFIO_PCI_INTX_IRQ_INDEX;
constexpr uint32_t kMsi = VFIO_PCI_MSI_IRQ_INDEX;
constexpr uint32_t kMsix = VFIO_PCI_MSIX_IRQ_INDEX;
constexpr uint32_t kErr = VFIO_PCI_ERR_IRQ_INDEX;
constexpr uint32_t kReq = VFIO_PCI_REQ_IRQ_INDEX;

constexpr uint32_t kNone = VFIO_IRQ_SET_DATA_NONE;
constexpr uint32_t kBool = VFIO_IRQ_SET_DATA_BOOL;
constexpr uint32_t kEventfd = VFIO_IRQ_SET_DATA_EVENTFD;
constexpr uint32_t kMask = VFIO_IRQ_SET_ACTION_MASK;
constexpr uint32_t kUnmask = VFIO_IRQ_SET_ACTION_UNMASK;
constexpr uint32_t kTrigger = VFIO_IRQ_SET_ACTION_TRIGGER;

UniqueFd MakeEventfd() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  EXPECT_TRUE(fd.valid()) << "eventfd: errno " << errno;
  return fd;
}

// The eventfd's counter (read and reset); 0 when nothing was written.
uint64_t ReadCount(int fd) {
  uint64_t count = 0;
  if (::read(fd, &count, sizeof(count)) != sizeof(count)) {
    EXPECT_EQ(errno, EAGAIN);
    return 0;
  }
  return count;
}

bool IsOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

wire::SetIrqsRequest Request(uint32_t flags, uint32_t index, uint32_t start, uint32_t count,
                             absl::Span<const uint8_t> data = {}) {
  wire::SetIrqsRequest r;
  r.flags = flags;
  r.index = index;
  r.start = start;
  r.count = count;
  r.data = data;
  r.argsz = static_cast<uint32_t>(wire::kSetIrqsFixedSize + data.size());
  return r;
}

struct Event {
  uint32_t index;
  uint32_t start;
  uint32_t count;
  Change change;
  friend bool operator==(const Event&, const Event&) = default;
};

void PrintTo(const Event& e, std::ostream* os) {
  *os << "{" << e.index << ", " << e.start << ", " << e.count << ", "
      << static_cast<int>(e.change) << "}";
}

// Per vector: enabled, masked, pending. What "nothing changed" compares.
using Snapshot = std::vector<std::tuple<uint32_t, uint32_t, bool, bool, bool>>;

class IrqControllerTest : public ::testing::Test {
 protected:
  // INTx 1, MSI 4, MSI-X 8, ERR 1, REQ 1.
  explicit IrqControllerTest(bool auto_mask_intx = false)
      : irqs_({1, 4, 8, 1, 1}, auto_mask_intx) {
    irqs_.set_listener([this](uint32_t index, uint32_t start, uint32_t count, Change change) {
      events_.push_back(Event{index, start, count, change});
    });
  }

  // As the server does it: the request goes through the wire codec first
  // and reaches the controller only if the decoder accepts it. The fds are
  // taken either way.
  absl::Status SetIrqsFromWire(const wire::SetIrqsRequest& request, std::vector<UniqueFd>& fds) {
    std::vector<uint8_t> bytes;
    wire::EncodeSetIrqsRequest(request, bytes);
    absl::StatusOr<wire::SetIrqsRequest> decoded = wire::DecodeSetIrqsRequest(bytes, fds.size());
    if (!decoded.ok()) {
      fds.clear();
      return decoded.status();
    }
    return irqs_.SetIrqs(*decoded, fds);
  }

  // Installs fresh eventfds on [start, start + count) of `index`; the test
  // keeps a duplicate of each in observers_[{index, vector}].
  void Enable(uint32_t index, uint32_t start, uint32_t count) {
    std::vector<UniqueFd> fds;
    for (uint32_t i = 0; i < count; ++i) {
      fds.push_back(MakeEventfd());
      Observe(index, start + i, fds.back().get());
    }
    ASSERT_OK(irqs_.SetIrqs(Request(kEventfd | kTrigger, index, start, count), fds));
    EXPECT_THAT(fds, IsEmpty());
  }

  void Observe(uint32_t index, uint32_t vector, int fd) {
    observers_[{index, vector}] = DuplicateFd(fd);
  }

  // Interrupts delivered to a vector's eventfd since the last call.
  uint64_t Delivered(uint32_t index, uint32_t vector) {
    return ReadCount(observers_.at({index, vector}).get());
  }

  absl::Status Simple(uint32_t flags, uint32_t index, uint32_t start, uint32_t count) {
    std::vector<UniqueFd> none;
    return irqs_.SetIrqs(Request(flags, index, start, count), none);
  }

  Snapshot Take() const {
    Snapshot s;
    for (uint32_t index = 0; index < IrqController::kNumIndexes; ++index) {
      for (uint32_t v = 0; v < irqs_.vectors(index); ++v) {
        s.emplace_back(index, v, irqs_.IsEnabled(index, v), irqs_.IsMasked(index, v),
                       irqs_.IsPending(index, v));
      }
    }
    return s;
  }

  IrqController irqs_;
  std::vector<Event> events_;
  std::map<std::pair<uint32_t, uint32_t>, UniqueFd> observers_;
};

// ---- Assignment, replacement, de-assignment ----

// EVENTFD|TRIGGER with count fds enables exactly [start, start + count),
// takes the fds and tells the listener once for the run.
TEST_F(IrqControllerTest, EventfdsEnableTheirVectors) {
  Enable(kMsix, 2, 3);
  for (uint32_t v = 0; v < 8; ++v) EXPECT_EQ(irqs_.IsEnabled(kMsix, v), v >= 2 && v < 5) << v;
  EXPECT_THAT(events_, ElementsAre(Event{kMsix, 2, 3, Change::kEnabled}));
}

// Trigger writes 1 per call to the vector's eventfd and nowhere else.
TEST_F(IrqControllerTest, TriggerWritesToTheVectorsEventfd) {
  Enable(kMsix, 0, 2);
  EXPECT_OK(irqs_.Trigger(kMsix, 1));
  EXPECT_OK(irqs_.Trigger(kMsix, 1));
  EXPECT_EQ(Delivered(kMsix, 1), 2u);
  EXPECT_EQ(Delivered(kMsix, 0), 0u);
}

// Counts: every eventfd signal is raised, a raise merged into one already
// pending is coalesced, and pending shows vectors waiting for an unmask.
TEST_F(IrqControllerTest, CountsRaisedCoalescedAndPending) {
  Enable(kMsix, 0, 3);
  EXPECT_OK(irqs_.Trigger(kMsix, 0));
  EXPECT_OK(irqs_.Trigger(kMsix, 0));
  ASSERT_OK(Simple(kNone | kMask, kMsix, 1, 2));
  for (int i = 0; i < 3; ++i) EXPECT_OK(irqs_.Trigger(kMsix, 1));  // one pending, two merged
  EXPECT_OK(irqs_.Trigger(kMsix, 2));                               // pending
  IrqController::Counts counts = irqs_.counts();
  EXPECT_EQ(counts.raised, 2u);
  EXPECT_EQ(counts.coalesced, 2u);
  EXPECT_EQ(counts.pending, 2u);

  ASSERT_OK(Simple(kNone | kUnmask, kMsix, 1, 1));  // delivers vector 1's
  counts = irqs_.counts();
  EXPECT_EQ(counts.raised, 3u);
  EXPECT_EQ(counts.coalesced, 2u);
  EXPECT_EQ(counts.pending, 1u);
  EXPECT_EQ(Delivered(kMsix, 0), 2u);
  EXPECT_EQ(Delivered(kMsix, 1), 1u);
  EXPECT_EQ(Delivered(kMsix, 2), 0u);
  // A vector with no eventfd raises nothing and counts nothing.
  EXPECT_FALSE(irqs_.Trigger(kMsi, 0).ok());
  EXPECT_EQ(irqs_.counts().raised, 3u);
}

// A new eventfd replaces the old one, which is closed; the vector stays
// enabled, so the listener hears nothing.
TEST_F(IrqControllerTest, ReplacementClosesPreviousEventfd) {
  std::vector<UniqueFd> fds;
  fds.push_back(MakeEventfd());
  const int first = fds.back().get();
  ASSERT_OK(irqs_.SetIrqs(Request(kEventfd | kTrigger, kMsix, 0, 1), fds));
  events_.clear();

  fds.push_back(MakeEventfd());
  Observe(kMsix, 0, fds.back().get());
  ASSERT_OK(irqs_.SetIrqs(Request(kEventfd | kTrigger, kMsix, 0, 1), fds));
  EXPECT_FALSE(IsOpen(first));
  EXPECT_OK(irqs_.Trigger(kMsix, 0));
  EXPECT_EQ(Delivered(kMsix, 0), 1u);
  EXPECT_THAT(events_, IsEmpty());
}

// EVENTFD with no fds de-assigns: eventfds closed, vectors disabled,
// Trigger refuses them.
TEST_F(IrqControllerTest, EventfdWithoutFdsDeassigns) {
  std::vector<UniqueFd> fds;
  fds.push_back(MakeEventfd());
  fds.push_back(MakeEventfd());
  const int a = fds[0].get();
  const int b = fds[1].get();
  ASSERT_OK(irqs_.SetIrqs(Request(kEventfd | kTrigger, kMsi, 1, 2), fds));
  events_.clear();

  ASSERT_OK(Simple(kEventfd | kTrigger, kMsi, 1, 2));
  EXPECT_FALSE(IsOpen(a));
  EXPECT_FALSE(IsOpen(b));
  EXPECT_FALSE(irqs_.IsEnabled(kMsi, 1));
  EXPECT_FALSE(irqs_.IsEnabled(kMsi, 2));
  EXPECT_THAT(irqs_.Trigger(kMsi, 1), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(events_, ElementsAre(Event{kMsi, 1, 2, Change::kDisabled}));
}

// De-assigning a range with start > 0 touches that range only (lvu's
// irqs_disable loops to `count` instead of `start + count`).
TEST_F(IrqControllerTest, PartialDeassignTouchesOnlyItsRange) {
  Enable(kMsix, 0, 8);
  events_.clear();
  ASSERT_OK(Simple(kEventfd | kTrigger, kMsix, 4, 2));
  for (uint32_t v = 0; v < 8; ++v) EXPECT_EQ(irqs_.IsEnabled(kMsix, v), v < 4 || v >= 6) << v;
  EXPECT_THAT(events_, ElementsAre(Event{kMsix, 4, 2, Change::kDisabled}));
}

// Only vectors that had an eventfd are reported as disabled, in runs.
TEST_F(IrqControllerTest, ListenerReportsRunsOfRealChanges) {
  Enable(kMsix, 1, 1);
  Enable(kMsix, 3, 2);
  events_.clear();
  ASSERT_OK(Simple(kEventfd | kTrigger, kMsix, 0, 8));
  EXPECT_THAT(events_, ElementsAre(Event{kMsix, 1, 1, Change::kDisabled},
                                   Event{kMsix, 3, 2, Change::kDisabled}));
}

// TRIGGER|NONE with count 0 disables the whole index: every eventfd
// closed (notifiers too), VFIO masks and pending bits cleared; other
// indexes and device masks untouched.
TEST_F(IrqControllerTest, CountZeroDisablesWholeIndex) {
  Enable(kMsix, 0, 8);
  Enable(kMsi, 0, 1);
  std::vector<UniqueFd> fds;
  fds.push_back(MakeEventfd());
  const int notifier = fds.back().get();
  ASSERT_OK(irqs_.SetIrqs(Request(kEventfd | kMask, kMsix, 5, 1), fds));
  ASSERT_OK(Simple(kNone | kMask, kMsix, 2, 2));
  irqs_.SetDeviceMask(kMsix, 7, true);
  ASSERT_OK(irqs_.Trigger(kMsix, 2));
  ASSERT_TRUE(irqs_.IsPending(kMsix, 2));
  events_.clear();

  ASSERT_OK(Simple(kNone | kTrigger, kMsix, 0, 0));
  for (uint32_t v = 0; v < 8; ++v) {
    EXPECT_FALSE(irqs_.IsEnabled(kMsix, v)) << v;
    EXPECT_FALSE(irqs_.IsPending(kMsix, v)) << v;
    EXPECT_EQ(irqs_.IsMasked(kMsix, v), v == 7) << v;  // the device mask stays
  }
  EXPECT_FALSE(IsOpen(notifier));
  EXPECT_TRUE(irqs_.IsEnabled(kMsi, 0));
  EXPECT_THAT(events_, ElementsAre(Event{kMsix, 0, 8, Change::kDisabled},
                                   Event{kMsix, 2, 2, Change::kUnmasked}));
  // Nothing was delivered on the way out (the pending one had nowhere to go).
  EXPECT_EQ(Delivered(kMsix, 2), 0u);
}

// The trigger eventfds of a disabled index are closed, seen from the fd side.
TEST_F(IrqControllerTest, CountZeroClosesTriggerEventfds) {
  std::vector<UniqueFd> fds;
  fds.push_back(MakeEventfd());
  fds.push_back(MakeEventfd());
  const int a = fds[0].get();
  const int b = fds[1].get();
  ASSERT_OK(irqs_.SetIrqs(Request(kEventfd | kTrigger, kMsi, 0, 2), fds));
  ASSERT_OK(Simple(kNone | kTrigger, kMsi, 0, 0));
  EXPECT_FALSE(IsOpen(a));
  EXPECT_FALSE(IsOpen(b));
}

// Disabling an index the device does not have is accepted as a no-op
// (PROTOCOL.md 4.7; lvu fails it).
TEST(IrqControllerNoVectorsTest, CountZeroOnEmptyIndexIsNoOp) {
  IrqController irqs({1, 0, 0, 0, 0});
  std::vector<UniqueFd> none;
  EXPECT_OK(irqs.SetIrqs(Request(kNone | kTrigger, kMsi, 0, 0), none));
  EXPECT_OK(irqs.SetIrqs(Request(kNone | kTrigger, kReq, 0, 0), none));
}

// Any vector of an index without vectors is out of range: EINVAL.
TEST(IrqControllerNoVectorsTest, VectorOnEmptyIndexRejected) {
  IrqController irqs({1, 0, 0, 0, 0});
  std::vector<UniqueFd> fds;
  fds.push_back(MakeEventfd());
  const int number = fds.back().get();
  absl::Status status = irqs.SetIrqs(Request(kEventfd | kTrigger, kMsi, 0, 1), fds);
  EXPECT_EQ(wire::ReplyErrno(status), EINVAL);
  EXPECT_FALSE(IsOpen(number));
  EXPECT_THAT(irqs.Trigger(kMsi, 0), StatusIs(absl::StatusCode::kOutOfRange));
}

// De-assigning a vector drops its pending bit: there is nowhere to deliver
// it, and a new eventfd must not receive a stale interrupt.
TEST_F(IrqControllerTest, DeassignDropsPending) {
  Enable(kMsix, 0, 1);
  ASSERT_OK(Simple(kNone | kMask, kMsix, 0, 1));
  ASSERT_OK(irqs_.Trigger(kMsix, 0));
  ASSERT_TRUE(irqs_.IsPending(kMsix, 0));
  ASSERT_OK(Simple(kEventfd | kTrigger, kMsix, 0, 1));
  EXPECT_FALSE(irqs_.IsPending(kMsix, 0));
  Enable(kMsix, 0, 1);
  ASSERT_OK(Simple(kNone | kUnmask, kMsix, 0, 1));
  EXPECT_EQ(Delivered(kMsix, 0), 0u);
}

// A pending interrupt survives an eventfd replacement and goes to the new one.
TEST_F(IrqControllerTest, PendingSurvivesReplacement) {
  Enable(kMsix, 0, 1);
  ASSERT_OK(Simple(kNone | kMask, kMsix, 0, 1));
  ASSERT_OK(irqs_.Trigger(kMsix, 0));
  Enable(kMsix, 0, 1);
  EXPECT_TRUE(irqs_.IsPending(kMsix, 0));
  ASSERT_OK(Simple(kNone | kUnmask, kMsix, 0, 1));
  EXPECT_EQ(Delivered(kMsix, 0), 1u);
}

// ---- Trigger errors ----

TEST_F(IrqControllerTest, TriggerWithoutEventfdFails) {
  EXPECT_THAT(irqs_.Trigger(kMsix, 0), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_FALSE(irqs_.IsPending(kMsix, 0));
}

TEST_F(IrqControllerTest, TriggerOnUnknownIndexOrVectorFails) {
  EXPECT_THAT(irqs_.Trigger(5, 0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(irqs_.Trigger(kMsix, 8), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(irqs_.Trigger(kErr, 1), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_FALSE(irqs_.IsEnabled(9, 0));
  EXPECT_FALSE(irqs_.IsMasked(kMsix, 100));
  EXPECT_FALSE(irqs_.IsPending(kMsix, 100));
  irqs_.SetDeviceMask(kMsix, 100, true);  // ignored, must not crash
}

// ---- Masks ----

// While VFIO-masked a trigger only sets the pending bit; more triggers
// coalesce; the unmask delivers exactly one interrupt.
TEST_F(IrqControllerTest, VfioMaskHoldsInterruptUntilUnmask) {
  Enable(kIntx, 0, 1);
  ASSERT_OK(Simple(kNone | kMask, kIntx, 0, 1));
  EXPECT_TRUE(irqs_.IsMasked(kIntx, 0));
  EXPECT_OK(irqs_.Trigger(kIntx, 0));
  EXPECT_OK(irqs_.Trigger(kIntx, 0));
  EXPECT_TRUE(irqs_.IsPending(kIntx, 0));
  EXPECT_EQ(Delivered(kIntx, 0), 0u);

  ASSERT_OK(Simple(kNone | kUnmask, kIntx, 0, 1));
  EXPECT_EQ(Delivered(kIntx, 0), 1u);
  EXPECT_FALSE(irqs_.IsPending(kIntx, 0));
  EXPECT_FALSE(irqs_.IsMasked(kIntx, 0));
  // A second unmask has nothing left to deliver.
  ASSERT_OK(Simple(kNone | kUnmask, kIntx, 0, 1));
  EXPECT_EQ(Delivered(kIntx, 0), 0u);
  EXPECT_OK(irqs_.Trigger(kIntx, 0));
  EXPECT_EQ(Delivered(kIntx, 0), 1u);
}

// Unmasking a vector with nothing pending delivers nothing.
TEST_F(IrqControllerTest, UnmaskWithoutPendingDeliversNothing) {
  Enable(kMsix, 0, 1);
  ASSERT_OK(Simple(kNone | kMask, kMsix, 0, 1));
  ASSERT_OK(Simple(kNone | kUnmask, kMsix, 0, 1));
  EXPECT_EQ(Delivered(kMsix, 0), 0u);
}

// MASK|BOOL masks only the vectors whose byte is non-zero, and the
// listener hears each run; UNMASK|BOOL likewise.
TEST_F(IrqControllerTest, BoolMaskSelectsVectors) {
  const uint8_t mask[] = {1, 0, 2};
  std::vector<UniqueFd> none;
  ASSERT_OK(irqs_.SetIrqs(Request(kBool | kMask, kMsix, 1, 3, mask), none));
  for (uint32_t v = 0; v < 8; ++v) EXPECT_EQ(irqs_.IsMasked(kMsix, v), v == 1 || v == 3) << v;
  const uint8_t unmask[] = {0, 0, 1};
  ASSERT_OK(irqs_.SetIrqs(Request(kBool | kUnmask, kMsix, 1, 3, unmask), none));
  EXPECT_TRUE(irqs_.IsMasked(kMsix, 1));
  EXPECT_FALSE(irqs_.IsMasked(kMsix, 3));
  EXPECT_THAT(events_, ElementsAre(Event{kMsix, 1, 1, Change::kMasked},
                                   Event{kMsix, 3, 1, Change::kMasked},
                                   Event{kMsix, 3, 1, Change::kUnmasked}));
}

// Masking an already masked vector is no change: not reported.
TEST_F(IrqControllerTest, RepeatedMaskIsNotReported) {
  ASSERT_OK(Simple(kNone | kMask, kMsi, 0, 2));
  ASSERT_OK(Simple(kNone | kMask, kMsi, 0, 3));
  EXPECT_THAT(events_, ElementsAre(Event{kMsi, 0, 2, Change::kMasked},
                                   Event{kMsi, 2, 1, Change::kMasked}));
}

// The device mask holds interrupts the same way, and clearing it delivers.
TEST_F(IrqControllerTest, DeviceMaskHoldsInterruptUntilCleared) {
  Enable(kMsix, 4, 1);
  irqs_.SetDeviceMask(kMsix, 4, true);
  EXPECT_TRUE(irqs_.IsMasked(kMsix, 4));
  EXPECT_OK(irqs_.Trigger(kMsix, 4));
  EXPECT_TRUE(irqs_.IsPending(kMsix, 4));
  EXPECT_EQ(Delivered(kMsix, 4), 0u);
  irqs_.SetDeviceMask(kMsix, 4, false);
  EXPECT_EQ(Delivered(kMsix, 4), 1u);
  EXPECT_FALSE(irqs_.IsPending(kMsix, 4));
  irqs_.SetDeviceMask(kMsix, 4, false);
  EXPECT_EQ(Delivered(kMsix, 4), 0u);
  // The device mask is not something SetIrqs changed: no listener call.
  EXPECT_THAT(events_, ElementsAre(Event{kMsix, 4, 1, Change::kEnabled}));
}

// With both masks set, clearing one delivers nothing; clearing the last one
// delivers once, whichever order.
TEST_F(IrqControllerTest, BothMasksMustClear) {
  Enable(kMsix, 0, 2);
  for (uint32_t v : {0u, 1u}) {
    ASSERT_OK(Simple(kNone | kMask, kMsix, v, 1));
    irqs_.SetDeviceMask(kMsix, v, true);
    ASSERT_OK(irqs_.Trigger(kMsix, v));
  }
  ASSERT_OK(Simple(kNone | kUnmask, kMsix, 0, 1));
  irqs_.SetDeviceMask(kMsix, 1, false);
  EXPECT_EQ(Delivered(kMsix, 0), 0u);
  EXPECT_EQ(Delivered(kMsix, 1), 0u);
  EXPECT_TRUE(irqs_.IsMasked(kMsix, 0));
  EXPECT_TRUE(irqs_.IsPending(kMsix, 1));
  irqs_.SetDeviceMask(kMsix, 0, false);
  ASSERT_OK(Simple(kNone | kUnmask, kMsix, 1, 1));
  EXPECT_EQ(Delivered(kMsix, 0), 1u);
  EXPECT_EQ(Delivered(kMsix, 1), 1u);
}

// MASK|EVENTFD and UNMASK|EVENTFD install notifiers written when the device
// mask is set / cleared (PROTOCOL.md 4.7); the VFIO mask does not write
// them; 0 fds de-assign (and close) them.
TEST_F(IrqControllerTest, MaskNotifiersFollowDeviceMask) {
  std::vector<UniqueFd> fds;
  fds.push_back(MakeEventfd());
  UniqueFd on_mask = DuplicateFd(fds.back().get());
  const int on_mask_number = fds.back().get();
  ASSERT_OK(irqs_.SetIrqs(Request(kEventfd | kMask, kMsix, 3, 1), fds));
  fds.push_back(MakeEventfd());
  UniqueFd on_unmask = DuplicateFd(fds.back().get());
  ASSERT_OK(irqs_.SetIrqs(Request(kEventfd | kUnmask, kMsix, 3, 1), fds));
  EXPECT_FALSE(irqs_.IsEnabled(kMsix, 3));  // notifiers do not enable

  irqs_.SetDeviceMask(kMsix, 3, true);
  irqs_.SetDeviceMask(kMsix, 3, true);  // no change, no second write
  EXPECT_EQ(ReadCount(on_mask.get()), 1u);
  EXPECT_EQ(ReadCount(on_unmask.get()), 0u);
  irqs_.SetDeviceMask(kMsix, 3, false);
  EXPECT_EQ(ReadCount(on_mask.get()), 0u);
  EXPECT_EQ(ReadCount(on_unmask.get()), 1u);

  ASSERT_OK(Simple(kNone | kMask, kMsix, 3, 1));
  ASSERT_OK(Simple(kNone | kUnmask, kMsix, 3, 1));
  EXPECT_EQ(ReadCount(on_mask.get()), 0u);
  EXPECT_EQ(ReadCount(on_unmask.get()), 0u);

  ASSERT_OK(Simple(kEventfd | kMask, kMsix, 3, 1));
  EXPECT_FALSE(IsOpen(on_mask_number));
  irqs_.SetDeviceMask(kMsix, 3, true);
  EXPECT_EQ(ReadCount(on_mask.get()), 0u);
}

// ---- Loopback ----

// TRIGGER|NONE raises every vector of the range that has an eventfd and
// skips the ones without, as VFIO does.
TEST_F(IrqControllerTest, LoopbackNoneRaisesVectors) {
  Enable(kMsix, 0, 1);
  Enable(kMsix, 2, 1);
  ASSERT_OK(Simple(kNone | kTrigger, kMsix, 0, 3));
  EXPECT_EQ(Delivered(kMsix, 0), 1u);
  EXPECT_EQ(Delivered(kMsix, 2), 1u);
  EXPECT_FALSE(irqs_.IsPending(kMsix, 1));
}

// TRIGGER|BOOL raises only the vectors whose byte is non-zero.
TEST_F(IrqControllerTest, LoopbackBoolRaisesSelectedVectors) {
  Enable(kMsi, 0, 4);
  const uint8_t which[] = {0, 1, 7, 0};
  std::vector<UniqueFd> none;
  ASSERT_OK(irqs_.SetIrqs(Request(kBool | kTrigger, kMsi, 0, 4, which), none));
  EXPECT_EQ(Delivered(kMsi, 0), 0u);
  EXPECT_EQ(Delivered(kMsi, 1), 1u);
  EXPECT_EQ(Delivered(kMsi, 2), 1u);
  EXPECT_EQ(Delivered(kMsi, 3), 0u);
}

// Loopback respects masks like any trigger.
TEST_F(IrqControllerTest, LoopbackWhileMaskedSetsPending) {
  Enable(kIntx, 0, 1);
  ASSERT_OK(Simple(kNone | kMask, kIntx, 0, 1));
  ASSERT_OK(Simple(kNone | kTrigger, kIntx, 0, 1));
  EXPECT_TRUE(irqs_.IsPending(kIntx, 0));
  EXPECT_EQ(Delivered(kIntx, 0), 0u);
  ASSERT_OK(Simple(kNone | kUnmask, kIntx, 0, 1));
  EXPECT_EQ(Delivered(kIntx, 0), 1u);
}

// ERR and REQ take an eventfd and a loopback trigger of their one vector.
// ---- VFIO INTx: auto-masking and levels ----

class IrqControllerAutoMaskTest : public IrqControllerTest {
 protected:
  IrqControllerAutoMaskTest() : IrqControllerTest(/*auto_mask_intx=*/true) {}
};

// Each INTx delivery masks the line; the client's unmask (its EOI)
// delivers what was raised meanwhile, once, and masks again.
TEST_F(IrqControllerAutoMaskTest, IntxMasksItselfUntilTheClientUnmasks) {
  Enable(kIntx, 0, 1);
  EXPECT_FALSE(irqs_.IsAsserted(kIntx, 0));
  ASSERT_OK(irqs_.Trigger(kIntx, 0));
  EXPECT_EQ(Delivered(kIntx, 0), 1u);
  EXPECT_TRUE(irqs_.IsMasked(kIntx, 0));
  EXPECT_TRUE(irqs_.IsAsserted(kIntx, 0)) << "in service until the unmask";

  ASSERT_OK(irqs_.Trigger(kIntx, 0));
  ASSERT_OK(irqs_.Trigger(kIntx, 0));
  EXPECT_EQ(Delivered(kIntx, 0), 0u);
  EXPECT_TRUE(irqs_.IsPending(kIntx, 0));

  ASSERT_OK(Simple(kNone | kUnmask, kIntx, 0, 1));
  EXPECT_EQ(Delivered(kIntx, 0), 1u) << "the pending raises, coalesced";
  EXPECT_TRUE(irqs_.IsMasked(kIntx, 0)) << "that delivery masked the line again";
  EXPECT_FALSE(irqs_.IsPending(kIntx, 0));

  ASSERT_OK(Simple(kNone | kUnmask, kIntx, 0, 1));
  EXPECT_EQ(Delivered(kIntx, 0), 0u);
  EXPECT_FALSE(irqs_.IsMasked(kIntx, 0));
  EXPECT_FALSE(irqs_.IsAsserted(kIntx, 0));
}

TEST_F(IrqControllerAutoMaskTest, OnlyIntxAutoMasks) {
  Enable(kMsi, 0, 1);
  ASSERT_OK(irqs_.Trigger(kMsi, 0));
  ASSERT_OK(irqs_.Trigger(kMsi, 0));
  EXPECT_EQ(Delivered(kMsi, 0), 2u);
  EXPECT_FALSE(irqs_.IsMasked(kMsi, 0));
}

// Without auto-masking (the default) INTx is an ordinary vector.
TEST_F(IrqControllerTest, IntxDoesNotAutoMaskUnlessAsked) {
  Enable(kIntx, 0, 1);
  ASSERT_OK(irqs_.Trigger(kIntx, 0));
  ASSERT_OK(irqs_.Trigger(kIntx, 0));
  EXPECT_EQ(Delivered(kIntx, 0), 2u);
}

// A level fires when it rises and at every unmask while it stays up;
// lowering it drops what was pending.
TEST_F(IrqControllerAutoMaskTest, LevelRedeliversAtEachUnmaskWhileUp) {
  Enable(kIntx, 0, 1);
  ASSERT_OK(irqs_.SetLevel(kIntx, 0, true));
  EXPECT_EQ(Delivered(kIntx, 0), 1u);
  ASSERT_OK(irqs_.SetLevel(kIntx, 0, true));
  EXPECT_EQ(Delivered(kIntx, 0), 0u) << "no edge: already up";

  ASSERT_OK(Simple(kNone | kUnmask, kIntx, 0, 1));
  EXPECT_EQ(Delivered(kIntx, 0), 1u) << "still asserted at the EOI";
  EXPECT_TRUE(irqs_.IsAsserted(kIntx, 0));

  ASSERT_OK(irqs_.Trigger(kIntx, 0));  // an edge while masked: pending
  ASSERT_OK(irqs_.SetLevel(kIntx, 0, false));
  EXPECT_FALSE(irqs_.IsPending(kIntx, 0));
  EXPECT_FALSE(irqs_.IsAsserted(kIntx, 0));
  ASSERT_OK(Simple(kNone | kUnmask, kIntx, 0, 1));
  EXPECT_EQ(Delivered(kIntx, 0), 0u) << "the line went low before the EOI";
}

TEST_F(IrqControllerAutoMaskTest, LevelUpFiresOnANewEventfdAndOutlivesTheClient) {
  ASSERT_OK(irqs_.SetLevel(kIntx, 0, true));
  EXPECT_TRUE(irqs_.IsAsserted(kIntx, 0));
  Enable(kIntx, 0, 1);
  EXPECT_EQ(Delivered(kIntx, 0), 1u);

  irqs_.ReleaseClientResources();
  Enable(kIntx, 0, 1);
  EXPECT_EQ(Delivered(kIntx, 0), 1u) << "the next client sees the line up too";
}

TEST_F(IrqControllerAutoMaskTest, DeviceMaskHoldsTheLevel) {
  Enable(kIntx, 0, 1);
  irqs_.SetDeviceMask(kIntx, 0, true);
  ASSERT_OK(irqs_.SetLevel(kIntx, 0, true));
  EXPECT_EQ(Delivered(kIntx, 0), 0u);
  irqs_.SetDeviceMask(kIntx, 0, false);
  EXPECT_EQ(Delivered(kIntx, 0), 1u);
  EXPECT_TRUE(irqs_.IsMasked(kIntx, 0));
}

TEST_F(IrqControllerTest, AnyEnabledFollowsTriggerEventfds) {
  EXPECT_FALSE(irqs_.AnyEnabled(kMsix));
  Enable(kMsix, 3, 2);
  EXPECT_TRUE(irqs_.AnyEnabled(kMsix));
  EXPECT_FALSE(irqs_.AnyEnabled(kMsi));
  std::vector<UniqueFd> none;
  ASSERT_OK(irqs_.SetIrqs(Request(kEventfd | kTrigger, kMsix, 3, 1), none));
  EXPECT_TRUE(irqs_.AnyEnabled(kMsix));
  ASSERT_OK(Simple(kNone | kTrigger, kMsix, 0, 0));
  EXPECT_FALSE(irqs_.AnyEnabled(kMsix));
  Enable(kMsix, 0, 1);
  irqs_.ReleaseClientResources();
  EXPECT_FALSE(irqs_.AnyEnabled(kMsix));
}

TEST_F(IrqControllerTest, ErrAndReqTrigger) {
  Enable(kErr, 0, 1);
  Enable(kReq, 0, 1);
  EXPECT_OK(irqs_.Trigger(kReq, 0));
  ASSERT_OK(Simple(kNone | kTrigger, kErr, 0, 1));
  EXPECT_EQ(Delivered(kErr, 0), 1u);
  EXPECT_EQ(Delivered(kReq, 0), 1u);
}

// ---- Client release ----

// Every eventfd is closed, VFIO masks and pending bits go; the device mask
// stays; the listener is not called.
TEST_F(IrqControllerTest, ReleaseClientResourcesClosesEverything) {
  std::vector<int> numbers;
  std::vector<UniqueFd> fds;
  for (int i = 0; i < 3; ++i) {
    fds.push_back(MakeEventfd());
    numbers.push_back(fds.back().get());
  }
  ASSERT_OK(irqs_.SetIrqs(Request(kEventfd | kTrigger, kMsix, 0, 3), fds));
  fds.push_back(MakeEventfd());
  numbers.push_back(fds.back().get());
  ASSERT_OK(irqs_.SetIrqs(Request(kEventfd | kTrigger, kIntx, 0, 1), fds));
  fds.push_back(MakeEventfd());
  numbers.push_back(fds.back().get());
  ASSERT_OK(irqs_.SetIrqs(Request(kEventfd | kUnmask, kMsix, 5, 1), fds));
  ASSERT_OK(Simple(kNone | kMask, kMsix, 0, 1));
  ASSERT_OK(irqs_.Trigger(kMsix, 0));
  irqs_.SetDeviceMask(kMsix, 1, true);
  events_.clear();

  irqs_.ReleaseClientResources();
  for (int number : numbers) EXPECT_FALSE(IsOpen(number)) << number;
  for (uint32_t v = 0; v < 8; ++v) {
    EXPECT_FALSE(irqs_.IsEnabled(kMsix, v)) << v;
    EXPECT_FALSE(irqs_.IsPending(kMsix, v)) << v;
    EXPECT_EQ(irqs_.IsMasked(kMsix, v), v == 1) << v;
  }
  EXPECT_FALSE(irqs_.IsEnabled(kIntx, 0));
  EXPECT_THAT(events_, IsEmpty());
}

// ---- Rejected requests: EINVAL, nothing changed, fds closed ----

// A baseline of every kind of state, so "nothing changed" means something.
class IrqControllerRejectTest : public IrqControllerTest {
 protected:
  void SetUp() override {
    Enable(kIntx, 0, 1);
    Enable(kMsix, 0, 4);
    Enable(kErr, 0, 1);
    ASSERT_OK(Simple(kNone | kMask, kMsix, 1, 1));
    ASSERT_OK(Simple(kNone | kMask, kMsix, 2, 1));
    ASSERT_OK(irqs_.Trigger(kMsix, 2));
    irqs_.SetDeviceMask(kMsix, 6, true);
    before_ = Take();
    events_.clear();
  }

  // Checks `status` is an EINVAL reply and that nothing moved: same state,
  // no listener call, the installed eventfds still the ones in use, every
  // fd handed in closed.
  void ExpectRejected(const absl::Status& status, const std::vector<int>& passed_fds) {
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_EQ(wire::ReplyErrno(status), EINVAL);
    EXPECT_EQ(Take(), before_);
    EXPECT_THAT(events_, IsEmpty());
    for (int fd : passed_fds) EXPECT_FALSE(IsOpen(fd)) << fd;
    for (uint32_t v : {0u, 3u}) {
      EXPECT_OK(irqs_.Trigger(kMsix, v));
      EXPECT_EQ(Delivered(kMsix, v), 1u) << v;
    }
  }

  Snapshot before_;
};

struct BadRequest {
  std::string name;
  wire::SetIrqsRequest request;
  std::vector<uint8_t> data;  // BOOL bytes to send
  int fds = 0;                // eventfds to attach
};

void PrintTo(const BadRequest& b, std::ostream* os) { *os << b.name; }

BadRequest Bad(std::string name, wire::SetIrqsRequest request, std::vector<uint8_t> data = {},
               int fds = 0) {
  return BadRequest{std::move(name), request, std::move(data), fds};
}

// Every case of PROTOCOL.md section 10 row 22, sent through the wire codec
// as the server does: EINVAL, nothing changed, fds closed.
class Row22Test : public IrqControllerRejectTest,
                  public ::testing::WithParamInterface<BadRequest> {};

TEST_P(Row22Test, RejectedWithEinvalAndNothingChanged) {
  BadRequest bad = GetParam();
  wire::SetIrqsRequest request = bad.request;
  request.data = bad.data;
  std::vector<UniqueFd> fds;
  std::vector<int> numbers;
  for (int i = 0; i < bad.fds; ++i) {
    fds.push_back(MakeEventfd());
    numbers.push_back(fds.back().get());
  }
  absl::Status status = SetIrqsFromWire(request, fds);
  EXPECT_THAT(fds, IsEmpty());
  ExpectRejected(status, numbers);
}

INSTANTIATE_TEST_SUITE_P(
    AllCases, Row22Test,
    ::testing::Values(
        Bad("index_5", Request(kNone | kTrigger, 5, 0, 1)),
        Bad("index_huge", Request(kNone | kMask, 0xffffffff, 0, 1)),
        Bad("no_action", Request(kNone, kMsix, 0, 1)),
        Bad("two_actions", Request(kNone | kMask | kUnmask, kMsix, 0, 1)),
        Bad("no_data_type", Request(kTrigger, kMsix, 0, 1)),
        Bad("two_data_types", Request(kNone | kBool | kTrigger, kMsix, 0, 1), {1}),
        Bad("unknown_flag", Request(kNone | kMask | 0x40, kMsix, 0, 1)),
        Bad("start_at_count", Request(kNone | kMask, kMsix, 8, 1)),
        Bad("start_past_count", Request(kNone | kMask, kMsix, 100, 1)),
        Bad("end_past_count", Request(kNone | kMask, kMsix, 6, 3)),
        Bad("end_overflows", Request(kNone | kMask, kMsix, 2, 0xffffffff)),
        Bad("start_overflows", Request(kNone | kMask, kMsix, 0xffffffff, 2)),
        Bad("msi_start_at_count", Request(kNone | kMask, kMsi, 4, 1)),
        Bad("eventfd_past_count", Request(kEventfd | kTrigger, kMsix, 7, 2), {}, 2),
        Bad("count0_start1", Request(kNone | kTrigger, kMsix, 1, 0)),
        Bad("count0_mask", Request(kNone | kMask, kMsix, 0, 0)),
        Bad("count0_unmask", Request(kNone | kUnmask, kIntx, 0, 0)),
        Bad("count0_bool", Request(kBool | kTrigger, kMsix, 0, 0)),
        Bad("count0_eventfd", Request(kEventfd | kTrigger, kMsix, 0, 0)),
        Bad("err_mask", Request(kNone | kMask, kErr, 0, 1)),
        Bad("err_unmask_eventfd", Request(kEventfd | kUnmask, kErr, 0, 1), {}, 1),
        Bad("req_unmask", Request(kBool | kUnmask, kReq, 0, 1), {1}),
        Bad("err_count_2", Request(kNone | kTrigger, kErr, 0, 2)),
        Bad("bool_short", Request(kBool | kMask, kMsix, 0, 3), {1, 1}),
        Bad("bool_long", Request(kBool | kMask, kMsix, 0, 3), {1, 1, 1, 1}),
        Bad("bool_none", Request(kBool | kTrigger, kMsix, 0, 1)),
        Bad("fd_with_none", Request(kNone | kTrigger, kMsix, 0, 1), {}, 1),
        Bad("fd_with_bool", Request(kBool | kMask, kMsix, 0, 1), {1}, 1),
        Bad("fewer_fds_than_count", Request(kEventfd | kTrigger, kMsix, 0, 3), {}, 2),
        Bad("more_fds_than_count", Request(kEventfd | kTrigger, kMsix, 0, 1), {}, 2),
        Bad("fds_on_count0", Request(kNone | kTrigger, kMsix, 0, 0), {}, 1)),
    [](const ::testing::TestParamInfo<BadRequest>& info) { return info.param.name; });

// An fd that is not an eventfd is refused (as VFIO refuses it), and the
// eventfds that came with it in the same request are closed too.
TEST_F(IrqControllerRejectTest, NonEventfdRejected) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  UniqueFd read_end(pipe_fds[0]);
  std::vector<UniqueFd> fds;
  fds.push_back(MakeEventfd());
  fds.emplace_back(pipe_fds[1]);
  const std::vector<int> numbers = {fds[0].get(), fds[1].get()};
  absl::Status status = SetIrqsFromWire(Request(kEventfd | kTrigger, kMsix, 4, 2), fds);
  EXPECT_THAT(fds, IsEmpty());
  ExpectRejected(status, numbers);
}

// Loopback on an index without any eventfd: VFIO says "not enabled".
TEST_F(IrqControllerRejectTest, LoopbackOnDisabledIndexRejected) {
  ExpectRejected(Simple(kNone | kTrigger, kMsi, 0, 1), {});
  const uint8_t yes[] = {1};
  std::vector<UniqueFd> none;
  ExpectRejected(irqs_.SetIrqs(Request(kBool | kTrigger, kReq, 0, 1, yes), none), {});
}

// Requests that never came through the decoder: the checks the controller
// relies on itself still refuse them.
TEST_F(IrqControllerRejectTest, UndecodedRequestsRejected) {
  const uint8_t two[] = {1, 1};
  std::vector<UniqueFd> none;
  ExpectRejected(irqs_.SetIrqs(Request(kBool | kMask, kMsix, 0, 3, two), none), {});
  ExpectRejected(irqs_.SetIrqs(Request(kNone | kTrigger, 7, 0, 0), none), {});
  ExpectRejected(irqs_.SetIrqs(Request(kNone | kBool | kMask, kMsix, 0, 2, two), none), {});
  ExpectRejected(irqs_.SetIrqs(Request(kNone | kMask, kErr, 0, 1), none), {});
  ExpectRejected(irqs_.SetIrqs(Request(kNone | kMask, kMsix, 0, 0), none), {});

  std::vector<UniqueFd> fds;
  fds.push_back(MakeEventfd());
  int number = fds.back().get();
  ExpectRejected(irqs_.SetIrqs(Request(kNone | kTrigger, kMsix, 0, 1), fds), {number});
  EXPECT_THAT(fds, IsEmpty());
  fds.push_back(MakeEventfd());
  number = fds.back().get();
  ExpectRejected(irqs_.SetIrqs(Request(kEventfd | kTrigger, kMsix, 0, 2), fds), {number});
  EXPECT_THAT(fds, IsEmpty());
  fds.emplace_back();  // an invalid fd
  ExpectRejected(irqs_.SetIrqs(Request(kEventfd | kTrigger, kMsix, 0, 1), fds), {});
}

}  // namespace
}  // namespace vfu
