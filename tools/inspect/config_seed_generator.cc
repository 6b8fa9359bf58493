// Writes the seed corpus of config_decoder_fuzzer: well-formed images with
// every capability kind, and each kind of malformed chain the decoder must
// survive. Regenerate with
//   bazel run //tools/inspect:config_seed_generator -- $PWD/tools/inspect/corpus/config_decoder
#include <linux/pci_regs.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "tools/inspect/config_image.h"
#include "tools/inspect/test_snapshot.h"

namespace {

using vfu::inspect::testing::Concat;
using vfu::inspect::testing::ConfigImage;
using vfu::inspect::testing::Le16;
using vfu::inspect::testing::Le32;
using vfu::inspect::testing::TestConfigImage;

void Write(const std::string& dir, const std::string& name, const std::vector<uint8_t>& bytes) {
  std::ofstream out(dir + "/" + name, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

ConfigImage Conventional() {
  ConfigImage image(256);
  image.Identity(0x1234, 0x0001, 0x050000, 1)
      .Set32(PCI_BASE_ADDRESS_0, 0xfe000000)
      .AddCapability(0x40, PCI_CAP_ID_PM, Concat({Le16(3), Le16(0)}))
      .AddCapability(0x48, PCI_CAP_ID_MSI, Concat({Le16(1 << 1), Le32(0), Le16(0)}))
      .AddCapability(0x54, PCI_CAP_ID_VNDR, {6, 1, 2, 3});
  return image;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: config_seed_generator DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  Write(dir, "express_everything", TestConfigImage().bytes());
  Write(dir, "conventional", Conventional().bytes());

  ConfigImage loop = Conventional();
  loop.Set8(0x55, 0x40);
  Write(dir, "standard_loop", loop.bytes());

  ConfigImage into_header = Conventional();
  into_header.Set8(0x49, 0x10);
  Write(dir, "pointer_into_header", into_header.bytes());

  std::vector<uint8_t> cut = Conventional().bytes();
  cut.resize(0x50);
  Write(dir, "cut_inside_chain", cut);

  ConfigImage ext_loop = TestConfigImage();
  ext_loop.Set32(0x11c, 0x2a | 1 << 16 | 0x100u << 20);
  Write(dir, "extended_loop", ext_loop.bytes());

  ConfigImage ext_below = TestConfigImage();
  ext_below.Set32(0x100, 0x3 | 1 << 16 | 0x80u << 20);
  Write(dir, "extended_pointer_below_area", ext_below.bytes());

  ConfigImage bridge = Conventional();
  bridge.Set8(PCI_HEADER_TYPE, PCI_HEADER_TYPE_BRIDGE);
  Write(dir, "bridge_header", bridge.bytes());

  Write(dir, "all_ones", std::vector<uint8_t>(4096, 0xff));
  Write(dir, "header_only", std::vector<uint8_t>(64, 0));
  return 0;
}
