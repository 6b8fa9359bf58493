// Prints the DMA throughput figures (see dma_throughput.h).
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "tools/bench/dma_throughput.h"

ABSL_FLAG(double, pass_seconds, 0.3, "seconds per measured pass");
ABSL_FLAG(int, rounds, 5, "passes per figure; the median ratio is reported");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<std::vector<vfu::bench::DmaThroughputRow>> rows =
      vfu::bench::MeasureDmaThroughput({.pass_seconds = absl::GetFlag(FLAGS_pass_seconds),
                                        .rounds = absl::GetFlag(FLAGS_rounds)});
  if (!rows.ok()) {
    std::fprintf(stderr, "dma_throughput_bench: %s\n", rows.status().ToString().c_str());
    return 1;
  }
  std::fputs(vfu::bench::FormatDmaThroughput(*rows).c_str(), stdout);
  return 0;
}
