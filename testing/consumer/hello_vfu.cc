// A program outside the vfu repository: it serves a one-BAR device with
// vfu::Server and queries it with vfu::Client, both through vfu's public
// targets.
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "vfu/client/client.h"
#include "vfu/vfu.h"

namespace {

class OneBarDevice : public vfu::Device {
 public:
  vfu::RegionDescription DescribeRegion(uint32_t index) const override {
    if (index == 0) return {.size = 4096, .readable = true, .writable = true};
    return {};
  }
};

int Run() {
  char dir[] = "/tmp/hello-vfu-XXXXXX";
  if (::mkdtemp(dir) == nullptr) return 1;
  const std::string path = std::string(dir) + "/device.sock";

  OneBarDevice device;
  auto server = vfu::Server::Create();
  if (!server.ok()) return 1;
  if (!(*server)->AddDevice(path, device).ok() || !(*server)->Start().ok()) return 1;

  int rc = 1;
  {
    auto client = vfu::Client::Connect(path);
    if (client.ok()) {
      auto region = (*client)->GetRegionInfo(0);
      if (region.ok() && region->info.size == 4096) {
        std::printf("round trip ok: DEVICE_GET_REGION_INFO\n");
        rc = 0;
      } else {
        std::fprintf(stderr, "GET_REGION_INFO failed\n");
      }
    } else {
      std::fprintf(stderr, "connect failed: %s\n", client.status().ToString().c_str());
    }
  }
  (*server)->Stop();
  ::rmdir(dir);
  return rc;
}

}  // namespace

int main() { return Run(); }
