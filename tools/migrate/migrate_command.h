// The migrate tool's commands, apart from flag parsing so tests can run
// them: migrate a device between two servers, save its state to a file,
// load a file into a device, print a saved state as text.
#ifndef VFU_TOOLS_MIGRATE_MIGRATE_COMMAND_H_
#define VFU_TOOLS_MIGRATE_MIGRATE_COMMAND_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "vfu/client/client.h"
#include "vfu/client/migration.h"

namespace vfu::migrate {

struct MigrateCommand {
  std::string from;        // source socket
  std::string to;          // destination socket
  std::string save_file;   // with `from`: the stream goes here
  std::string load_file;   // with `to`: the stream comes from here
  std::string print_file;  // alone: print this saved stream
  MigrationOptions migration;
  ClientOptions client;
};

// Checks the combination of arguments: --from with --to or --save; --to
// with --from or --load; --print alone. InvalidArgument saying what is
// wrong.
absl::Status ValidateCommand(const MigrateCommand& command);

// Runs it, writing progress and figures (or the text proto) to `out`.
absl::Status RunCommand(const MigrateCommand& command, std::ostream& out);

// A saved stream as text: one vfu.proto.MigrationChunk text proto per
// chunk, region page data and device bytes summarized by size and a
// checksum, and a summary line. InvalidArgument for a stream that does not
// decode (what decoded is printed first).
absl::Status PrintStream(absl::Span<const uint8_t> stream, std::ostream& out);

// One line of MigrationProgress, for the tool and the README.
std::string FormatProgress(const MigrationProgress& progress);
// The figures of a finished migration, several lines.
std::string FormatReport(const MigrationReport& report);

}  // namespace vfu::migrate

#endif  // VFU_TOOLS_MIGRATE_MIGRATE_COMMAND_H_
