// inspect: connects to any vfio-user socket and shows the device behind it
// (see UsageText() in command.cc).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "tools/inspect/command.h"
#include "vfu/client/client.h"

ABSL_FLAG(bool, spec, false, "print the device as a vfu.proto.DeviceSpec text proto");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(5), "deadline of each request");

int main(int argc, char** argv) {
  // Abseil's own --help exits with status 1 and lists every linked flag;
  // ours is the command's usage and a success.
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0 ||
        (i == 1 && std::strcmp(argv[i], "help") == 0)) {
      std::fputs(vfu::inspect::UsageText().c_str(), stdout);
      return 0;
    }
  }
  absl::SetProgramUsageMessage("shows a vfio-user device; run with --help");
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  const std::vector<std::string> args(positional.begin() + 1, positional.end());

  absl::StatusOr<vfu::inspect::Command> command =
      vfu::inspect::ParseCommand(args, absl::GetFlag(FLAGS_spec));
  if (!command.ok()) {
    std::fprintf(stderr, "inspect: %s\nRun 'inspect --help' for usage.\n",
                 std::string(command.status().message()).c_str());
    return 2;
  }
  const absl::Duration timeout = absl::GetFlag(FLAGS_timeout);
  if (timeout <= absl::ZeroDuration()) {
    std::fprintf(stderr, "inspect: --timeout must be positive\n");
    return 2;
  }
  vfu::ClientOptions options;
  options.timeout = timeout;
  absl::StatusOr<std::string> output = vfu::inspect::RunCommand(*command, options);
  if (!output.ok()) {
    std::fprintf(stderr, "inspect: %s\n", output.status().ToString().c_str());
    return 1;
  }
  std::fputs(output->c_str(), stdout);
  return 0;
}
