// Migration tests: a source's stream that reaches the destination damaged.
#ifndef VFU_TESTING_CORRUPTED_MIGRATION_H_
#define VFU_TESTING_CORRUPTED_MIGRATION_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "vfu/client/client.h"
#include "vfu/client/migration.h"

namespace vfu::testing {

// Saves `source` (stop-copy only; it ends in STOP) into `destination`,
// which must be RESUMING, with one bit of the stream flipped in transit.
// FailedPrecondition when the stream was too short to damage.
inline absl::Status CopyMigrationWithOneBitFlipped(Client& source, Client& destination) {
  // Past the first frame's length and CRC: inside a chunk the CRC covers.
  constexpr size_t kDamagedByte = 40;
  MigrationOptions options;
  options.precopy = false;
  bool flipped = false;
  absl::Status saved =
      SaveMigration(source, options, [&](absl::Span<const uint8_t> bytes) {
        std::vector<uint8_t> copy(bytes.begin(), bytes.end());
        if (!flipped && copy.size() > kDamagedByte) {
          copy[kDamagedByte] ^= 0x20;
          flipped = true;
        }
        return WriteMigrationData(destination, copy);
      }).status();
  if (!saved.ok()) return saved;
  if (!flipped) return absl::FailedPreconditionError("the stream was too short to damage");
  return absl::OkStatus();
}

}  // namespace vfu::testing

#endif  // VFU_TESTING_CORRUPTED_MIGRATION_H_
