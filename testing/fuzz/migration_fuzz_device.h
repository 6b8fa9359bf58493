// The device the migration stream fuzzer loads streams into, and the
// helpers it and the seed generator share: a PciDevice with every part the
// framework migrates (a memory-backed BAR, MSI-X, MSI, INTx, 4 KiB config
// space) and a little state of its own that it validates.
#ifndef VFU_TESTING_FUZZ_MIGRATION_FUZZ_DEVICE_H_
#define VFU_TESTING_FUZZ_MIGRATION_FUZZ_DEVICE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "vfu/device/pci_device.h"

namespace vfu::fuzz {

class MigrationFuzzDevice : public PciDevice {
 public:
  MigrationFuzzDevice() : PciDevice(Spec()) {}

  // Its own state: one piece of at most 64 bytes, ASCII letters only.
  absl::Status SaveState(SavePhase phase, std::string& out) override {
    if (phase == SavePhase::kStopCopy) out = state;
    return absl::OkStatus();
  }
  absl::Status LoadState(absl::Span<const std::string> pieces) override {
    if (pieces.size() != 1 || pieces[0].size() > 64) {
      return absl::InvalidArgumentError("fuzz device: one piece of at most 64 bytes");
    }
    for (char c : pieces[0]) {
      if (c < 'a' || c > 'z') return absl::InvalidArgumentError("fuzz device: letters only");
    }
    state = pieces[0];
    return absl::OkStatus();
  }
  absl::Status OnRegionRead(uint32_t, uint64_t, absl::Span<uint8_t> out) override {
    for (uint8_t& b : out) b = 0;
    return absl::OkStatus();
  }
  absl::Status OnRegionWrite(uint32_t, uint64_t, absl::Span<const uint8_t>) override {
    return absl::OkStatus();
  }

  std::string state = "fuzz";

 private:
  static PciDeviceSpec Spec() {
    PciDeviceSpec spec;
    spec.identity = {.vendor_id = 0xf00d, .device_id = 0x00f2, .class_code = 0xff0000};
    spec.express = true;
    spec.bars[0] = {.size = 0x2000};
    spec.bars[2] = {.size = 4 * 4096, .backed_by_memory = true};
    spec.interrupts = {.intx = true,
                       .msi_vectors = 2,
                       .msix_vectors = 4,
                       .msix_bar = 0,
                       .msix_table_offset = 0x1000,
                       .msix_pba_offset = 0x1800};
    spec.migration = MigrationSpec{.device_type = "fuzz"};
    return spec;
  }
};

// RUNNING -> STOP -> STOP_COPY, the whole stream, STOP_COPY -> STOP.
inline std::vector<uint8_t> SaveWholeStream(PciDevice& device) {
  std::vector<uint8_t> stream;
  if (!device.OnMigrationArc(MigrationState::kRunning, MigrationState::kStop).ok() ||
      !device.OnMigrationArc(MigrationState::kStop, MigrationState::kStopCopy).ok()) {
    return stream;
  }
  std::vector<uint8_t> buffer(65536);
  while (true) {
    absl::StatusOr<size_t> n = device.ReadMigrationData(absl::MakeSpan(buffer));
    if (!n.ok()) break;
    stream.insert(stream.end(), buffer.begin(), buffer.begin() + *n);
    if (*n < buffer.size()) break;
  }
  (void)device.OnMigrationArc(MigrationState::kStopCopy, MigrationState::kStop);
  return stream;
}

}  // namespace vfu::fuzz

#endif  // VFU_TESTING_FUZZ_MIGRATION_FUZZ_DEVICE_H_
