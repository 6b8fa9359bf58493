// MigrationLoader: the destination side of a migration stream
// (proto/migration_stream.proto). Takes the MIG_DATA_WRITE bytes in pieces
// of any size, checks every chunk against the device it is for, and stages
// what it carries; Finish() (RESUMING -> STOP) judges the whole stream and
// hands over what to restore. Nothing reaches the device before Finish()
// accepts the stream, so a refused stream leaves the device as it was.
//
// Checked, never trusted: the framing (migration_stream.h); the header
// first, once, with our format version, PCI identity, device type, a device
// version up to ours, config-space size, memory-backed regions and MSI-X
// vector count; region pages inside a memory-backed region, page aligned;
// one framework state with a config image and MSI-X table of our sizes and
// pending interrupts of vectors we have; device pieces within
// kMaxDeviceStateBytes, one final; the end chunk last, counting the chunks
// before it. The first violation is kept and every later byte dropped.
//
// Memory: one frame (16 MiB at most), the staged pages (one buffer the
// size of each memory-backed region some page arrived for: a page sent
// twice replaces its first copy)
// and the device pieces (kMaxDeviceStateBytes).
//
// Thread-compatible: the device's command strand drives it.
#ifndef VFU_DEVICE_MIGRATION_LOADER_H_
#define VFU_DEVICE_MIGRATION_LOADER_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "proto/migration_stream.pb.h"
#include "vfu/device/migration_stream.h"

namespace vfu {

class MigrationLoader {
 public:
  // Most bytes of the device's own state a stream may carry.
  static constexpr uint64_t kMaxDeviceStateBytes = 64u << 20;

  // What this device is: the header it would write itself and its vector
  // counts per IRQ index (INTx, MSI, MSI-X).
  struct Expectation {
    proto::MigrationStreamHeader header;
    std::array<uint32_t, 3> irq_vectors = {};
  };

  // A memory-backed region's pages as the stream left them: `bytes` is the
  // region's size, `present[n]` says whether page n arrived (only those are
  // restored).
  struct StagedRegion {
    std::vector<uint8_t> bytes;
    std::vector<bool> present;
    uint64_t pages_present = 0;
  };
  // What an accepted stream restores.
  struct Loaded {
    // By region index; only regions some page arrived for.
    std::map<uint32_t, StagedRegion> regions;
    proto::MigrationFrameworkState framework;
    std::vector<std::string> device_pieces;  // in order; the last is final
    uint64_t stream_bytes = 0;
  };

  explicit MigrationLoader(Expectation expectation);

  // Takes the next bytes. Never fails: a violation is kept for Finish().
  void Write(absl::Span<const uint8_t> data);

  // The stream is over: InvalidArgument naming the first violation, or the
  // truncation (no end chunk, or a frame cut short); else what to restore.
  // Call once.
  absl::StatusOr<Loaded> Finish();

 private:
  absl::Status Accept(proto::MigrationChunk chunk);
  absl::Status CheckHeader(const proto::MigrationStreamHeader& header) const;
  absl::Status StagePages(const proto::MigrationRegionPages& pages);
  absl::Status CheckFrameworkState(const proto::MigrationFrameworkState& state) const;

  Expectation expectation_;
  std::map<uint32_t, uint64_t> region_sizes_;  // memory-backed regions
  MigrationFrameReader reader_;
  bool header_seen_ = false;
  bool framework_seen_ = false;
  bool final_seen_ = false;
  bool end_seen_ = false;
  uint64_t device_bytes_ = 0;
  Loaded loaded_;
};

}  // namespace vfu

#endif  // VFU_DEVICE_MIGRATION_LOADER_H_
