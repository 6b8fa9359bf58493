// Cost of raising an unmasked MSI-X vector (IrqController::Trigger): one
// eventfd write plus the lease and mask-word bookkeeping around it.
//
//   bazel run -c opt //vfu/irq:irq_trigger_bench
#include <linux/vfio.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "benchmark/benchmark.h"
#include "vfu/base/guarded_write.h"
#include "vfu/base/unique_fd.h"
#include "vfu/irq/irq_controller.h"
#include "vfu/wire/irq.h"

namespace vfu {
namespace {

void BM_TriggerUnmasked(benchmark::State& state) {
  IrqController irqs({0, 0, 1, 0, 0});
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  UniqueFd observer = DuplicateFd(fd.get());
  std::vector<UniqueFd> fds;
  fds.push_back(std::move(fd));
  wire::SetIrqsRequest request;
  request.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
  request.index = VFIO_PCI_MSIX_IRQ_INDEX;
  request.start = 0;
  request.count = 1;
  if (!irqs.SetIrqs(request, fds).ok()) {
    state.SkipWithError("SET_IRQS failed");
    return;
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(irqs.Trigger(VFIO_PCI_MSIX_IRQ_INDEX, 0));
  }
  uint64_t count = 0;
  if (::read(observer.get(), &count, sizeof(count)) != sizeof(count)) count = 0;
  state.counters["delivered"] = static_cast<double>(count);
}
BENCHMARK(BM_TriggerUnmasked);

// A masked vector: no eventfd write, only the pending bit (coalesced).
void BM_TriggerMasked(benchmark::State& state) {
  IrqController irqs({0, 0, 1, 0, 0});
  std::vector<UniqueFd> fds;
  fds.emplace_back(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  wire::SetIrqsRequest request;
  request.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
  request.index = VFIO_PCI_MSIX_IRQ_INDEX;
  request.count = 1;
  if (!irqs.SetIrqs(request, fds).ok()) {
    state.SkipWithError("SET_IRQS failed");
    return;
  }
  irqs.SetDeviceMask(VFIO_PCI_MSIX_IRQ_INDEX, 0, true);
  for (auto _ : state) {
    benchmark::DoNotOptimize(irqs.Trigger(VFIO_PCI_MSIX_IRQ_INDEX, 0));
  }
}
BENCHMARK(BM_TriggerMasked);

// The floor of the unmasked case: the bare eventfd write, and the same
// write as a GuardedWrite (what Notify does), to isolate the guard's cost.
void BM_RawEventfdWrite(benchmark::State& state) {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  const uint64_t one = 1;
  for (auto _ : state) {
    benchmark::DoNotOptimize(::write(fd.get(), &one, sizeof(one)));
  }
}
BENCHMARK(BM_RawEventfdWrite);

void BM_GuardedEventfdWrite(benchmark::State& state) {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  const uint64_t one = 1;
  for (auto _ : state) {
    benchmark::DoNotOptimize(GuardedWrite(fd.get(), &one, sizeof(one)));
  }
}
BENCHMARK(BM_GuardedEventfdWrite);

}  // namespace
}  // namespace vfu

// A server process always has several threads, and glibc's syscall
// wrappers take a shorter path in a single-threaded process; so one idle
// thread runs beside the benchmarks, as the IO thread would.
int main(int argc, char** argv) {
  absl::Notification done;
  std::thread idle([&done] { done.WaitForNotification(); });
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  done.Notify();
  idle.join();
  return 0;
}
