// IrqController under concurrent use: device threads raising and masking
// while the command strand replaces eventfds and toggles VFIO masks. Run
// under ThreadSanitizer too; the counts below catch lost and doubled
// interrupts, and writes through closed fd numbers (all fds are created
// before the threads start, so such a write fails with EBADF instead of
// hitting a reused number, and Trigger reports it as kInternal).
#include <fcntl.h>
#include <linux/vfio.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <cerrno>
#include <cstdint>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/base/unique_fd.h"
#include "vfu/irq/irq_controller.h"
#include "vfu/wire/irq.h"

namespace vfu {
namespace {

constexpr uint32_t kMsix = VFIO_PCI_MSIX_IRQ_INDEX;
constexpr uint32_t kVectors = 8;

UniqueFd MakeEventfd() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  EXPECT_TRUE(fd.valid()) << "eventfd: errno " << errno;
  return fd;
}

uint64_t ReadCount(int fd) {
  uint64_t count = 0;
  if (::read(fd, &count, sizeof(count)) != sizeof(count)) {
    EXPECT_EQ(errno, EAGAIN);
    return 0;
  }
  return count;
}

bool IsOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

absl::Status Simple(IrqController& irqs, uint32_t flags, uint32_t start, uint32_t count) {
  wire::SetIrqsRequest r;
  r.flags = flags;
  r.index = kMsix;
  r.start = start;
  r.count = count;
  std::vector<UniqueFd> none;
  return irqs.SetIrqs(r, none);
}

// Eventfds made up front, with a duplicate of each kept to count what
// reached it after the controller has closed its copy.
struct EventfdPool {
  explicit EventfdPool(int n) {
    for (int i = 0; i < n; ++i) {
      fds.push_back(MakeEventfd());
      numbers.push_back(fds.back().get());
      observers.push_back(DuplicateFd(fds.back().get()));
    }
  }
  // Installs the next `count` fds on [start, start + count).
  void Install(IrqController& irqs, uint32_t start, uint32_t count) {
    std::vector<UniqueFd> batch;
    for (uint32_t i = 0; i < count; ++i) batch.push_back(std::move(fds[next++]));
    wire::SetIrqsRequest r;
    r.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
    r.index = kMsix;
    r.start = start;
    r.count = count;
    EXPECT_OK(irqs.SetIrqs(r, batch));
  }
  bool exhausted(uint32_t count) const { return next + count > fds.size(); }
  uint64_t TotalDelivered() const {
    uint64_t total = 0;
    for (const UniqueFd& o : observers) total += ReadCount(o.get());
    return total;
  }

  std::vector<UniqueFd> fds;
  std::vector<int> numbers;
  std::vector<UniqueFd> observers;
  size_t next = 0;
};

// Results of Trigger() on the device threads.
struct TriggerCounts {
  std::atomic<uint64_t> delivered_or_pending{0};  // OK
  std::atomic<uint64_t> not_enabled{0};           // FailedPrecondition
  std::atomic<uint64_t> other{0};                 // anything else: a bug
};

void TriggerUntil(IrqController& irqs, const std::atomic<bool>& stop, TriggerCounts& counts,
                  uint32_t first_vector) {
  for (uint32_t i = first_vector; !stop.load(std::memory_order_relaxed); ++i) {
    absl::Status status = irqs.Trigger(kMsix, i % kVectors);
    if (status.ok()) {
      counts.delivered_or_pending.fetch_add(1, std::memory_order_relaxed);
    } else if (status.code() == absl::StatusCode::kFailedPrecondition) {
      counts.not_enabled.fetch_add(1, std::memory_order_relaxed);
    } else {
      counts.other.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

// Without masks every successful trigger is one eventfd write, whichever
// eventfd was installed at that instant: the counters of all eventfds
// ever installed add up to the number of successful triggers exactly,
// while the strand keeps replacing, de-assigning and disabling.
TEST(IrqControllerConcurrencyTest, NoTriggerLostAcrossEventfdReplacement) {
  IrqController irqs({0, 0, kVectors, 0, 0});
  EventfdPool pool(40 * kVectors);
  std::atomic<bool> stop{false};
  TriggerCounts counts;
  std::vector<std::thread> devices;
  for (uint32_t t = 0; t < 3; ++t) {
    devices.emplace_back([&, t] { TriggerUntil(irqs, stop, counts, t * 3); });
  }

  for (int round = 0; !pool.exhausted(kVectors); ++round) {
    const uint64_t before = counts.delivered_or_pending.load();
    switch (round % 4) {
      case 0:
        pool.Install(irqs, 0, kVectors);
        break;
      case 1:
        pool.Install(irqs, round % kVectors, 1);
        break;
      case 2:  // de-assign a few, then give them new eventfds
        EXPECT_OK(Simple(irqs, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 2, 3));
        pool.Install(irqs, 2, 3);
        break;
      case 3:  // disable the whole index, then enable it again
        EXPECT_OK(Simple(irqs, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0));
        pool.Install(irqs, 0, kVectors);
        break;
    }
    // Let the device threads land some triggers on this generation.
    while (counts.delivered_or_pending.load() < before + 3) std::this_thread::yield();
  }
  stop.store(true);
  for (std::thread& t : devices) t.join();
  irqs.ReleaseClientResources();

  for (int number : pool.numbers) EXPECT_FALSE(IsOpen(number)) << number;
  EXPECT_EQ(counts.other.load(), 0u);
  EXPECT_EQ(pool.TotalDelivered(), counts.delivered_or_pending.load());
}

// One device thread raises a vector and waits until the interrupt shows
// up on the eventfd before raising again, while the strand toggles the
// VFIO mask and another thread the device mask. Each raise must arrive
// exactly once: immediately, or from whichever unmask clears the last
// mask. A lost interrupt times out the wait; a doubled one shows up as a
// count of 2 or as a leftover at the end.
TEST(IrqControllerConcurrencyTest, EveryRaiseDeliveredOnceAcrossUnmaskRaces) {
  constexpr int kRaises = 1000;
  IrqController irqs({0, 0, kVectors, 0, 0});
  EventfdPool pool(1);
  pool.Install(irqs, 5, 1);
  const int observer = pool.observers[0].get();

  std::atomic<bool> done{false};
  std::atomic<int> lost{0};
  std::atomic<int> doubled{0};
  std::atomic<uint64_t> strand_toggles{0};
  std::atomic<uint64_t> device_toggles{0};
  std::thread raiser([&] {
    // Raise only once both maskers run: on a loaded machine the raises
    // could otherwise all be over before either got a CPU.
    while (strand_toggles.load() == 0 || device_toggles.load() == 0) std::this_thread::yield();
    for (int i = 0; i < kRaises; ++i) {
      EXPECT_OK(irqs.Trigger(kMsix, 5));
      pollfd p{observer, POLLIN, 0};
      // A deadline for failure only; delivery normally takes microseconds.
      if (::poll(&p, 1, 20000) != 1) {
        lost.fetch_add(1);
        break;
      }
      const uint64_t n = ReadCount(observer);
      if (n != 1) doubled.fetch_add(1);
    }
    done.store(true);
  });
  std::thread device_masker([&] {
    while (!done.load()) {
      irqs.SetDeviceMask(kMsix, 5, true);
      irqs.SetDeviceMask(kMsix, 5, false);
      device_toggles.fetch_add(1);
    }
  });
  while (!done.load()) {
    EXPECT_OK(Simple(irqs, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 5, 1));
    EXPECT_OK(Simple(irqs, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 5, 1));
    strand_toggles.fetch_add(1);
  }
  raiser.join();
  device_masker.join();

  EXPECT_EQ(lost.load(), 0);
  EXPECT_EQ(doubled.load(), 0);
  EXPECT_GT(strand_toggles.load(), 0u);
  EXPECT_GT(device_toggles.load(), 0u);
  EXPECT_FALSE(irqs.IsMasked(kMsix, 5));
  EXPECT_FALSE(irqs.IsPending(kMsix, 5));
  EXPECT_EQ(ReadCount(observer), 0u);
}

// The same race in lock-step rounds, so that a raise left pending on an
// unmasked vector (which the free-running test above would only see
// delayed until the next unmask) is caught: in each round one thread
// raises once while two others toggle the VFIO and the device mask, each
// ending unmasked; once all three are done, exactly one interrupt must
// have arrived and nothing may be pending.
TEST(IrqControllerConcurrencyTest, RaiseDuringMaskTogglesIsDeliveredByRoundEnd) {
  constexpr int kRounds = 3000;
  IrqController irqs({0, 0, kVectors, 0, 0});
  EventfdPool pool(1);
  pool.Install(irqs, 2, 1);
  const int observer = pool.observers[0].get();
  std::barrier sync(3);
  // Different spin lengths per thread and round shift the raise across
  // the toggles' windows.
  auto spin = [](int n) {
    for (int i = 0; i < n; ++i) std::this_thread::yield();
  };

  std::thread raiser([&] {
    for (int r = 0; r < kRounds; ++r) {
      sync.arrive_and_wait();
      spin(r % 5);
      EXPECT_OK(irqs.Trigger(kMsix, 2));
      sync.arrive_and_wait();
    }
  });
  std::thread device_masker([&] {
    for (int r = 0; r < kRounds; ++r) {
      sync.arrive_and_wait();
      for (int k = 0; k <= r % 3; ++k) {
        irqs.SetDeviceMask(kMsix, 2, true);
        spin(r % 2);
        irqs.SetDeviceMask(kMsix, 2, false);
      }
      sync.arrive_and_wait();
    }
  });
  int wrong_rounds = 0;
  for (int r = 0; r < kRounds; ++r) {
    sync.arrive_and_wait();
    for (int k = 0; k <= r % 2; ++k) {
      EXPECT_OK(Simple(irqs, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, 2, 1));
      spin(r % 3);
      EXPECT_OK(Simple(irqs, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 2, 1));
    }
    sync.arrive_and_wait();
    // All three are between rounds: the state is quiescent.
    const uint64_t delivered = ReadCount(observer);
    if (delivered != 1 || irqs.IsPending(kMsix, 2) || irqs.IsMasked(kMsix, 2)) {
      if (++wrong_rounds <= 5) {
        ADD_FAILURE() << "round " << r << ": delivered " << delivered << ", pending "
                      << irqs.IsPending(kMsix, 2);
      }
    }
  }
  raiser.join();
  device_masker.join();
  EXPECT_EQ(wrong_rounds, 0);
}

// Many raisers and a device masker against the strand replacing eventfds,
// masking and unmasking, de-assigning, disabling, and finally releasing
// the client. With masks, raises coalesce into pending bits and pending
// bits of de-assigned vectors are dropped, so delivered <= raised (plus
// the strand's loopback raises); what
// must hold is that nothing but OK and FailedPrecondition comes back, that
// every eventfd is closed at the end, and (under TSan) that no fd is used
// while being closed.
TEST(IrqControllerConcurrencyTest, EverythingAtOnce) {
  IrqController irqs({0, 0, kVectors, 0, 0});
  EventfdPool pool(30 * kVectors);
  std::atomic<bool> stop_devices{false};
  std::atomic<bool> stop_masker{false};
  TriggerCounts counts;
  std::vector<std::thread> devices;
  for (uint32_t t = 0; t < 2; ++t) {
    devices.emplace_back([&, t] { TriggerUntil(irqs, stop_devices, counts, t * 5); });
  }
  std::thread masker([&] {
    for (uint32_t i = 0; !stop_masker.load(std::memory_order_relaxed); ++i) {
      irqs.SetDeviceMask(kMsix, i % kVectors, (i / kVectors) % 2 == 0);
      (void)irqs.IsPending(kMsix, (i + 3) % kVectors);
    }
    for (uint32_t v = 0; v < kVectors; ++v) irqs.SetDeviceMask(kMsix, v, false);
  });

  uint64_t rounds = 0;
  for (int round = 0; !pool.exhausted(kVectors); ++round) {
    const uint64_t before = counts.delivered_or_pending.load();
    pool.Install(irqs, 0, kVectors);
    EXPECT_OK(Simple(irqs, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, round % 5, 3));
    EXPECT_OK(Simple(irqs, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, kVectors));
    if (round % 3 == 0) {
      EXPECT_OK(Simple(irqs, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 1, 2));
    }
    EXPECT_OK(Simple(irqs, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0, kVectors));
    if (round % 5 == 4) {
      EXPECT_OK(Simple(irqs, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0));
    }
    // Let the device threads land some raises on this generation (none
    // can while the index is disabled).
    while (irqs.IsEnabled(kMsix, 0) && counts.delivered_or_pending.load() < before + 2) {
      std::this_thread::yield();
    }
    ++rounds;
  }
  stop_masker.store(true);
  masker.join();
  stop_devices.store(true);
  for (std::thread& t : devices) t.join();
  irqs.ReleaseClientResources();

  for (int number : pool.numbers) EXPECT_FALSE(IsOpen(number)) << number;
  EXPECT_EQ(counts.other.load(), 0u);
  // Not "delivered > 0": if the masker happens to hold every device mask
  // through the run and the last round disables the index, every raise
  // legitimately ends as a dropped pending bit.
  EXPECT_GT(counts.delivered_or_pending.load(), 0u);
  const uint64_t delivered = pool.TotalDelivered();
  // Each round's loopback raises each vector at most once more.
  EXPECT_LE(delivered, counts.delivered_or_pending.load() + rounds * kVectors);
  for (uint32_t v = 0; v < kVectors; ++v) {
    EXPECT_FALSE(irqs.IsEnabled(kMsix, v));
    EXPECT_FALSE(irqs.IsMasked(kMsix, v));
    EXPECT_FALSE(irqs.IsPending(kMsix, v));
  }
}

}  // namespace
}  // namespace vfu

namespace vfu {
namespace {

// VFIO INTx under racing raisers: every delivery masks the line, so the
// client (this thread) never finds more than one interrupt per unmask, and
// a raise made before the last unmask is never lost.
TEST(IrqControllerConcurrencyTest, AutoMaskedIntxDeliversOncePerUnmask) {
  constexpr uint32_t kIntx = VFIO_PCI_INTX_IRQ_INDEX;
  IrqController irqs({1, 0, 0, 0, 0}, /*auto_mask_intx=*/true);
  UniqueFd observer = MakeEventfd();
  {
    std::vector<UniqueFd> fds;
    fds.push_back(DuplicateFd(observer.get()));
    wire::SetIrqsRequest r{.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                           .index = kIntx,
                           .start = 0,
                           .count = 1};
    ASSERT_OK(irqs.SetIrqs(r, fds));
  }
  std::atomic<bool> stop{false};
  std::vector<std::thread> raisers;
  for (int t = 0; t < 3; ++t) {
    raisers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) EXPECT_OK(irqs.Trigger(kIntx, 0));
    });
  }
  const wire::SetIrqsRequest unmask{.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
                                    .index = kIntx,
                                    .start = 0,
                                    .count = 1};
  constexpr int kRounds = 2000;
  for (int round = 0; round < kRounds; ++round) {
    pollfd p{.fd = observer.get(), .events = POLLIN};
    ASSERT_EQ(::poll(&p, 1, 10000), 1) << "round " << round << ": no interrupt";
    ASSERT_EQ(ReadCount(observer.get()), 1u) << "round " << round << ": more than one";
    std::vector<UniqueFd> none;
    ASSERT_OK(irqs.SetIrqs(unmask, none));
  }
  stop.store(true);
  for (std::thread& t : raisers) t.join();
  // Raises after the last unmask: at most one delivery.
  EXPECT_LE(ReadCount(observer.get()), 1u);
}

}  // namespace
}  // namespace vfu
