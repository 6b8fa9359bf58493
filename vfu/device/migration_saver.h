// MigrationSaver: the source side of a migration stream
// (proto/migration_stream.proto): produces the bytes MIG_DATA_READ returns,
// a frame at a time, from the device's memory-backed regions, the
// framework's state and the device author's own bytes.
//
//   MigrationSaver saver(std::move(sources));
//   saver.BeginPreCopy();                    // RUNNING -> PRE_COPY
//   saver.Read(out);  ...                    // rounds: a short read ends one
//   saver.BeginStopCopy();                   // PRE_COPY -> STOP_COPY
//   saver.Read(out);  ...                    // a short read ends the stream
//
// Pre-copy: a round opens with the first read after the previous round's
// short read. It sends the pages that changed since they were last sent
// (RegionDirtyTracker; round 1 sends them all), then asks the device for a
// pre-copy piece, and ends with a short read. Stop-copy (entered from
// PRE_COPY, or straight from STOP) sends what is still dirty, the
// framework state, the device's final state and the end chunk.
//
// Memory: at most one frame is buffered (region pages go out in runs of
// kMaxPagesPerChunk bytes), plus the trackers' shadows of the regions.
// Thread-compatible: the device's command strand drives it.
#ifndef VFU_DEVICE_MIGRATION_SAVER_H_
#define VFU_DEVICE_MIGRATION_SAVER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "proto/migration_stream.pb.h"
#include "vfu/device/region_dirty_tracker.h"

namespace vfu {

class MigrationSaver {
 public:
  // Region bytes per MigrationRegionPages chunk.
  static constexpr size_t kMaxPagesPerChunk = 1 << 20;

  struct Region {
    uint32_t index = 0;
    absl::Span<const uint8_t> memory;  // outlives the saver
  };
  struct Sources {
    proto::MigrationStreamHeader header;
    std::vector<Region> regions;
    // The framework's state, captured in stop-copy.
    std::function<proto::MigrationFrameworkState()> framework_state;
    // Appends the device's bytes; `final` in stop-copy.
    std::function<absl::Status(bool final, std::string& out)> device_state;
    // The device's estimate of its next pre-copy piece.
    std::function<uint64_t()> device_pending;
  };

  explicit MigrationSaver(Sources sources);

  void BeginPreCopy();
  void BeginStopCopy();

  // Fills the front of `out`; fewer bytes than out.size() end the round
  // (pre-copy) or the stream (stop-copy). The device's SaveState error as
  // it is.
  absl::StatusOr<size_t> Read(absl::Span<uint8_t> out);

  // Bytes still to come now: what is buffered, dirty pages, the device's
  // pending estimate (and, in stop-copy, nothing more is known ahead).
  // Compares every page with its shadow: about 5 ms per 64 MiB of regions.
  uint64_t Estimate() const;

  // Figures for progress reports.
  uint32_t rounds() const { return round_; }
  uint64_t bytes_read() const { return bytes_read_; }
  uint64_t region_bytes_sent() const { return region_bytes_sent_; }
  uint64_t device_bytes_sent() const { return device_bytes_sent_; }

 private:
  enum class Step { kPages, kFramework, kDeviceFinal, kEnd, kDone };

  // Appends the next frame to out_; false when the round or stream is over.
  absl::StatusOr<bool> Produce();
  // The next run of dirty pages of this round into out_; false if none.
  bool NextPages();
  void OpenRound();
  void Append(const proto::MigrationChunk& chunk);

  Sources sources_;
  std::vector<std::unique_ptr<RegionDirtyTracker>> trackers_;  // one per region
  bool stop_copy_ = false;
  bool header_sent_ = false;
  bool round_open_ = false;
  bool device_piece_done_ = false;
  Step step_ = Step::kPages;
  uint32_t round_ = 0;
  size_t region_cursor_ = 0;  // index into trackers_
  uint64_t page_cursor_ = 0;  // offset inside that region
  uint64_t chunks_ = 0;
  uint32_t precopy_rounds_ = 0;

  std::string out_;
  size_t out_pos_ = 0;
  uint64_t bytes_read_ = 0;
  uint64_t region_bytes_sent_ = 0;
  uint64_t device_bytes_sent_ = 0;
};

}  // namespace vfu

#endif  // VFU_DEVICE_MIGRATION_SAVER_H_
