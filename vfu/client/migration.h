// Driving a live migration (VFIO migration v2 over vfio-user) from the
// client side: the typed DEVICE_FEATURE / MIG_DATA commands, and the whole
// sequence between a source and a destination server.
//
//   MigrationOptions options;
//   options.dirty_log_ranges = {{.iova = 0, .length = ram_size}};
//   VFU_ASSIGN_OR_RETURN(MigrationReport report,
//                        Migrate(*source_client, *destination_client, options));
//
// Migrate(): the destination goes to RESUMING; the source to PRE_COPY and
// pre-copy rounds are read (each to a short read) and written to the
// destination until the source's estimate (MIG_DATA_SIZE) falls below
// `stop_copy_threshold` or `max_precopy_rounds` ran; then the source goes
// to STOP_COPY and the rest is read to the end; the destination goes to STOP
// (where it judges the stream) and RUNNING; the source stays STOP. Dirty
// logging of client memory the device writes (DMA_LOGGING_START over
// `dirty_log_ranges`) runs on the source from before PRE_COPY to after
// STOP_COPY; each round's report goes to `on_dirty_pages` (a VMM copies
// those pages of guest memory; with memory shared by both servers there is
// nothing to copy). If anything fails before the destination accepted the
// stream, the source is put back to RUNNING (its device resumes, jobs in
// flight included) and the destination is reset (DEVICE_RESET), so neither
// keeps half a migration; the error is returned.
//
// SaveMigration() / LoadMigration(): the two halves alone, to or from bytes
// (tools/migrate --save / --load).
//
// Thread-compatible: one thread drives a migration; the clients may be used
// by others meanwhile (the device gates what its state allows).
#ifndef VFU_CLIENT_MIGRATION_H_
#define VFU_CLIENT_MIGRATION_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "vfu/client/client.h"
#include "vfu/device/migration_state.h"
#include "vfu/wire/device_feature.h"

namespace vfu {

// ---- Typed commands ----

// DEVICE_FEATURE MIGRATION (GET): wire::kMigrationStopCopy | kMigrationPreCopy.
absl::StatusOr<uint64_t> GetMigrationFlags(Client& client);
// MIG_DEVICE_STATE GET / SET.
absl::StatusOr<MigrationState> GetMigrationState(Client& client);
absl::Status SetMigrationState(Client& client, MigrationState state);
// MIG_DATA_SIZE (GET): the device's estimate of the pre-copy bytes left.
absl::StatusOr<uint64_t> GetMigrationDataSize(Client& client);
// MIG_DATA_READ of up to `size` bytes (at most the server's
// max_data_xfer_size): fewer means the end of the round or stream.
absl::StatusOr<std::vector<uint8_t>> ReadMigrationData(Client& client, uint32_t size);
// MIG_DATA_WRITE, split at the server's max_data_xfer_size.
absl::Status WriteMigrationData(Client& client, absl::Span<const uint8_t> data);
// DMA_LOGGING_START / STOP / REPORT.
absl::Status StartDirtyLogging(Client& client, uint64_t page_size,
                               std::vector<wire::DmaLoggingRange> ranges);
absl::Status StopDirtyLogging(Client& client);
// The bitmap of pages written in [iova, iova + length) since the last
// report (bit n: page n), which the report clears.
absl::StatusOr<std::vector<uint8_t>> ReportDirtyPages(Client& client, uint64_t iova,
                                                      uint64_t length, uint64_t page_size);

// ---- The whole migration ----

struct MigrationProgress {
  enum class Phase { kPreCopy, kStopCopy, kResumed };
  Phase phase = Phase::kPreCopy;
  uint32_t round = 0;        // 1, 2, ...; stop-copy counts as one more
  uint64_t round_bytes = 0;  // stream bytes of this round
  uint64_t total_bytes = 0;  // stream bytes so far
  uint64_t estimate = 0;     // MIG_DATA_SIZE after the round (pre-copy)
  uint64_t dirty_pages = 0;  // client pages the device dirtied in the round
};

struct MigrationOptions {
  // Pre-copy ends after this many rounds, or earlier once the source's
  // estimate is at most `stop_copy_threshold` bytes.
  uint32_t max_precopy_rounds = 8;
  uint64_t stop_copy_threshold = 64 * 1024;
  // Bytes asked per MIG_DATA_READ (capped by the server's limit).
  uint32_t read_size = 1 << 20;
  // Skip pre-copy: RUNNING -> STOP -> STOP_COPY.
  bool precopy = true;
  // Client memory to log on the source (empty: no dirty logging).
  std::vector<wire::DmaLoggingRange> dirty_log_ranges;
  uint64_t dirty_page_size = 4096;
  // Called after every round and at the end; may be empty.
  std::function<void(const MigrationProgress&)> on_progress;
  // Called with each logged range's report after every round; may be empty.
  std::function<void(const wire::DmaLoggingRange& range, absl::Span<const uint8_t> bitmap)>
      on_dirty_pages;
};

struct MigrationReport {
  uint64_t stream_bytes = 0;
  uint32_t precopy_rounds = 0;
  uint64_t precopy_bytes = 0;
  uint64_t stop_copy_bytes = 0;
  // From SET STOP_COPY on the source to the last stream byte read.
  absl::Duration stop_copy_time;
  // From SET STOP_COPY on the source to the destination RUNNING: the time
  // the device ran nowhere.
  absl::Duration downtime;
  // Of which the destination's RESUMING -> STOP (checking and restoring
  // the stream) and STOP -> RUNNING.
  absl::Duration restore_time;
  absl::Duration total_time;
  // What the stream carried (its chunks, decoded on the way through).
  uint64_t region_bytes = 0;        // memory-backed region pages
  uint64_t device_state_bytes = 0;  // the device's own state
  uint64_t dirty_pages = 0;         // client pages reported dirty
};

// Source to destination, as above.
absl::StatusOr<MigrationReport> Migrate(Client& source, Client& destination,
                                        const MigrationOptions& options);

// Source only: the stream goes to `sink` as it is read. The source ends in
// STOP; on failure it is put back to RUNNING.
absl::StatusOr<MigrationReport> SaveMigration(
    Client& source, const MigrationOptions& options,
    const std::function<absl::Status(absl::Span<const uint8_t>)>& sink);

// Destination only: RESUMING, write `stream`, STOP (the device judges it),
// RUNNING. On failure the destination is reset (DEVICE_RESET).
absl::Status LoadMigration(Client& destination, absl::Span<const uint8_t> stream);

}  // namespace vfu

#endif  // VFU_CLIENT_MIGRATION_H_
