// region_reader SOCKET COUNT: connects to a vfio-user device, reads 4 bytes
// of region 0 COUNT times, and disconnects: a known command sequence
// (VERSION, then COUNT REGION_READs) for control-plane tests in other
// languages and for vfuctl's.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "vfu/client/client.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: region_reader SOCKET COUNT\n");
    return 2;
  }
  const int count = std::atoi(argv[2]);
  absl::StatusOr<std::unique_ptr<vfu::Client>> client =
      vfu::Client::Connect(argv[1], vfu::ClientOptions{.timeout = absl::Seconds(60)});
  if (!client.ok()) {
    std::fprintf(stderr, "region_reader: %s\n", client.status().ToString().c_str());
    return 1;
  }
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<std::vector<uint8_t>> bytes = (*client)->RegionRead(0, 0, 4);
    if (!bytes.ok()) {
      std::fprintf(stderr, "region_reader: %s\n", bytes.status().ToString().c_str());
      return 1;
    }
  }
  return 0;
}
