// migrate: moves a device's state between two vfio-user servers, or saves
// it to / loads it from a file, or prints a saved state:
//
//   migrate --from=SRC.sock --to=DST.sock
//   migrate --from=SRC.sock --save=STATE   then   migrate --to=DST.sock --load=STATE
//   migrate --print=STATE
#include <cstdio>
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "tools/migrate/migrate_command.h"

ABSL_FLAG(std::string, from, "", "source device socket");
ABSL_FLAG(std::string, to, "", "destination device socket");
ABSL_FLAG(std::string, save, "", "with --from: write the state stream to this file");
ABSL_FLAG(std::string, load, "", "with --to: load the state stream from this file");
ABSL_FLAG(std::string, print, "", "print a saved state stream as text");
ABSL_FLAG(uint32_t, rounds, 8, "most pre-copy rounds");
ABSL_FLAG(uint64_t, threshold, 64 * 1024,
          "stop pre-copy once the source estimates at most this many bytes left");
ABSL_FLAG(bool, precopy, true, "pre-copy while the device runs (else stop, then copy)");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(5), "deadline of each request");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "migrate --from=SOCK (--to=SOCK | --save=FILE) | --to=SOCK --load=FILE | --print=FILE");
  absl::ParseCommandLine(argc, argv);
  vfu::migrate::MigrateCommand command;
  command.from = absl::GetFlag(FLAGS_from);
  command.to = absl::GetFlag(FLAGS_to);
  command.save_file = absl::GetFlag(FLAGS_save);
  command.load_file = absl::GetFlag(FLAGS_load);
  command.print_file = absl::GetFlag(FLAGS_print);
  command.migration.max_precopy_rounds = absl::GetFlag(FLAGS_rounds);
  command.migration.stop_copy_threshold = absl::GetFlag(FLAGS_threshold);
  command.migration.precopy = absl::GetFlag(FLAGS_precopy);
  command.client.timeout = absl::GetFlag(FLAGS_timeout);
  if (absl::Status valid = vfu::migrate::ValidateCommand(command); !valid.ok()) {
    std::fprintf(stderr, "migrate: %s\n", std::string(valid.message()).c_str());
    return 2;
  }
  if (absl::Status status = vfu::migrate::RunCommand(command, std::cout); !status.ok()) {
    std::fprintf(stderr, "migrate: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
