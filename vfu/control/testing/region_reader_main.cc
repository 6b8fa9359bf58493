// region_reader SOCKET COUNT [OFFSET]: connects to a vfio-user device, reads
// 4 bytes of region 0 (at OFFSET, default 0) COUNT times, and disconnects: a
// known command sequence (VERSION, then COUNT REGION_READs) for
// control-plane tests in other languages and for vfuctl's. With OFFSET it
// prints the last value read as a little-endian 32-bit register (0x%08x).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "vfu/client/client.h"

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "usage: region_reader SOCKET COUNT [OFFSET]\n");
    return 2;
  }
  const int count = std::atoi(argv[2]);
  const uint64_t offset = argc == 4 ? std::strtoull(argv[3], nullptr, 0) : 0;
  uint32_t value = 0;
  absl::StatusOr<std::unique_ptr<vfu::Client>> client =
      vfu::Client::Connect(argv[1], vfu::ClientOptions{.timeout = absl::Seconds(60)});
  if (!client.ok()) {
    std::fprintf(stderr, "region_reader: %s\n", client.status().ToString().c_str());
    return 1;
  }
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<std::vector<uint8_t>> bytes = (*client)->RegionRead(0, offset, 4);
    if (!bytes.ok() || bytes->size() != 4) {
      std::fprintf(stderr, "region_reader: %s\n",
                   bytes.ok() ? "short read" : bytes.status().ToString().c_str());
      return 1;
    }
    value = static_cast<uint32_t>((*bytes)[0]) | static_cast<uint32_t>((*bytes)[1]) << 8 |
            static_cast<uint32_t>((*bytes)[2]) << 16 | static_cast<uint32_t>((*bytes)[3]) << 24;
  }
  if (argc == 4) std::printf("0x%08x\n", value);
  return 0;
}
