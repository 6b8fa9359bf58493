// migrate_demo_device: serves, at each SOCKET, a device made to show what a
// live migration costs: BAR2 of --memory_mib MiB of memory-backed region
// (pre-copied by the framework), --state_kib KiB of device state of its own
// (sent in stop-copy), and a thread that keeps writing --dirty_kib_per_ms
// KiB of that memory per millisecond while the device runs, as a device
// filling a frame buffer would. Until SIGINT or SIGTERM.
//
//   bazel run //tools/migrate:migrate_demo_device -- /tmp/a.sock
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "vfu/vfu.h"

ABSL_FLAG(uint32_t, memory_mib, 64, "MiB of memory-backed BAR2");
ABSL_FLAG(uint32_t, state_kib, 4, "KiB of device state of its own");
ABSL_FLAG(uint32_t, dirty_kib_per_ms, 0, "KiB of BAR2 written per millisecond while running");

namespace {

constexpr uint64_t kPage = 4096;

vfu::PciDeviceSpec DemoSpec(uint64_t memory_bytes) {
  vfu::PciDeviceSpec spec;
  spec.identity = {.vendor_id = 0xf00d, .device_id = 0x00de, .class_code = 0xff0000};
  spec.bars[0] = {.size = 4096};
  spec.bars[2] = {.size = memory_bytes,
                  .backed_by_memory = true,
                  .mmap_areas = {{.offset = 0, .size = memory_bytes}}};
  spec.migration = vfu::MigrationSpec{.device_type = "vfu-migrate-demo"};
  return spec;
}

class DemoDevice : public vfu::PciDevice {
 public:
  DemoDevice(uint64_t memory_bytes, uint64_t state_bytes, uint64_t dirty_per_ms)
      : PciDevice(DemoSpec(memory_bytes)), state_(state_bytes, 'a'), dirty_per_ms_(dirty_per_ms) {
    for (size_t i = 0; i < state_.size(); ++i) state_[i] = static_cast<char>('a' + i % 26);
    writer_ = std::thread([this] { Write(); });
  }
  ~DemoDevice() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    writer_.join();
  }

  absl::Status OnRegionRead(uint32_t, uint64_t, absl::Span<uint8_t> out) override {
    std::memset(out.data(), 0, out.size());
    return absl::OkStatus();
  }
  absl::Status OnRegionWrite(uint32_t, uint64_t, absl::Span<const uint8_t>) override {
    return absl::OkStatus();
  }
  absl::Status OnMigrationStateChange(vfu::MigrationState, vfu::MigrationState to) override {
    // Takes mu_, which the writer holds for a whole burst: on return it is
    // between bursts and stays there while stopped.
    absl::MutexLock lock(&mu_);
    stopped_ = to != vfu::MigrationState::kRunning && to != vfu::MigrationState::kPreCopy;
    return absl::OkStatus();
  }
  absl::Status SaveState(SavePhase phase, std::string& out) override {
    if (phase == SavePhase::kStopCopy) out = state_;
    return absl::OkStatus();
  }
  absl::Status LoadState(absl::Span<const std::string> pieces) override {
    if (pieces.size() != 1 || pieces[0].size() != state_.size()) {
      return absl::InvalidArgumentError("demo device: state of another size");
    }
    state_ = pieces[0];
    return absl::OkStatus();
  }

 private:
  // Each millisecond, writes dirty_per_ms_ bytes of BAR2, page by page,
  // moving on through the BAR.
  void Write() {
    absl::Span<uint8_t> memory = region_memory(2);
    uint64_t page = 0;
    uint64_t round = 0;
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
        if (!stopped_ && dirty_per_ms_ != 0 && !memory.empty()) {
          for (uint64_t done = 0; done < dirty_per_ms_; done += kPage) {
            const uint64_t offset = (page % (memory.size() / kPage)) * kPage;
            memory[offset] = static_cast<uint8_t>(++round);
            ++page;
          }
        }
      }
      absl::SleepFor(absl::Milliseconds(1));  // the write rate, not synchronization
    }
  }

  std::string state_;  // hooks only
  const uint64_t dirty_per_ms_;
  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread writer_;
};

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "migrate_demo_device [--memory_mib=64] [--state_kib=4] [--dirty_kib_per_ms=0] SOCKET...");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) {
    std::fprintf(stderr, "usage: migrate_demo_device [flags] SOCKET...\n");
    return 2;
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  std::vector<std::unique_ptr<DemoDevice>> devices;
  absl::StatusOr<std::unique_ptr<vfu::Server>> server = vfu::Server::Create();
  absl::Status status = server.status();
  for (size_t i = 1; status.ok() && i < args.size(); ++i) {
    devices.push_back(std::make_unique<DemoDevice>(
        uint64_t{absl::GetFlag(FLAGS_memory_mib)} << 20,
        uint64_t{absl::GetFlag(FLAGS_state_kib)} << 10,
        uint64_t{absl::GetFlag(FLAGS_dirty_kib_per_ms)} << 10));
    status = (*server)->AddDevice(args[i], *devices.back());
  }
  if (status.ok()) status = (*server)->Start();
  if (!status.ok()) {
    std::fprintf(stderr, "migrate_demo_device: %s\n", status.ToString().c_str());
    return 1;
  }
  std::printf("serving\n");
  std::fflush(stdout);
  int signal = 0;
  sigwait(&stop, &signal);
  (*server)->Stop();
  return 0;
}
