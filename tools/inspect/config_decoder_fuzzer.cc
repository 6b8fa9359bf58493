// Fuzzes the config-space decoder (config_decoder.h) with the whole input
// as a config space image, then the listing, the consistency checks and the
// spec conversion on the result, as `inspect` runs them on a foreign device.
//
// Checks:
//  - an image under 64 bytes is InvalidArgument; any other decodes;
//  - every capability found lies inside its area ([0x40, 0x100) or
//    [0x100, end)), dword aligned, at most once: the walk cannot loop or
//    read out of bounds however the pointers are set;
//  - the header layout decides the BAR count;
//  - payloads stay within the image;
//  - formatting the listing and the spec never fails once decoded.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "testing/fuzz/fuzz_util.h"
#include "tools/inspect/config_decoder.h"
#include "tools/inspect/listing.h"
#include "tools/inspect/spec_from_device.h"
#include "tools/inspect/test_snapshot.h"

namespace vfu::fuzz {
namespace {

using inspect::ConfigSpaceInfo;

void CheckChains(const ConfigSpaceInfo& info) {
  const uint32_t standard_end = std::min(info.size, inspect::kConventionalConfigSize);
  std::set<uint32_t> seen;
  for (const inspect::Capability& cap : info.capabilities) {
    VFU_FUZZ_CHECK(cap.offset >= inspect::kConfigHeaderSize && uint32_t{cap.offset} + 2 <= standard_end,
                   "capability at 0x", absl::Hex(cap.offset));
    VFU_FUZZ_CHECK(cap.offset % 4 == 0, "unaligned capability at 0x", absl::Hex(cap.offset));
    VFU_FUZZ_CHECK(seen.insert(cap.offset).second, "capability 0x", absl::Hex(cap.offset),
                   " listed twice");
    VFU_FUZZ_CHECK(cap.raw.size() <= inspect::kMaxRawCapabilityBytes &&
                       uint32_t{cap.offset} + cap.raw.size() <= standard_end,
                   "raw bytes of 0x", absl::Hex(cap.offset));
    if (const auto* vendor = std::get_if<inspect::VendorCapability>(&cap.body)) {
      VFU_FUZZ_CHECK(uint32_t{cap.offset} + 3 + vendor->payload.size() <= standard_end,
                     "vendor payload past the area");
    }
  }
  seen.clear();
  for (const inspect::ExtendedCapability& cap : info.extended_capabilities) {
    VFU_FUZZ_CHECK(cap.offset >= inspect::kConventionalConfigSize && uint32_t{cap.offset} + 4 <= info.size,
                   "extended capability at 0x", absl::Hex(cap.offset));
    VFU_FUZZ_CHECK(cap.offset % 4 == 0, "unaligned extended capability");
    VFU_FUZZ_CHECK(seen.insert(cap.offset).second, "extended capability listed twice");
    if (const auto* vsec = std::get_if<inspect::VendorExtendedCapability>(&cap.body)) {
      VFU_FUZZ_CHECK(uint32_t{cap.offset} + 8 + vsec->payload.size() <= info.size, "VSEC payload past end");
    }
  }
}

void Run(InputReader& in) {
  const absl::Span<const uint8_t> image = in.Rest();
  const absl::StatusOr<ConfigSpaceInfo> info = inspect::DecodeConfigSpace(image);
  if (image.size() < inspect::kConfigHeaderSize) {
    VFU_FUZZ_CHECK(absl::IsInvalidArgument(info.status()), "short image: ",
                   info.status().ToString());
    return;
  }
  VFU_FUZZ_CHECK(info.ok(), info.status().ToString());
  VFU_FUZZ_CHECK(info->size == std::min<size_t>(image.size(), inspect::kExpressConfigSize),
                 "size ", info->size);
  const size_t bars = info->header_type == 0 ? 6 : info->header_type == 1 ? 2 : 0;
  VFU_FUZZ_CHECK(info->bars.size() == bars, info->bars.size(), " BARs for header type ",
                 info->header_type);
  CheckChains(*info);

  inspect::DeviceSnapshot device = inspect::testing::TestSnapshot();
  device.config.assign(image.begin(), image.end());
  const std::string listing = inspect::FormatListing(device);
  VFU_FUZZ_CHECK(!listing.empty(), "empty listing");
  const absl::StatusOr<inspect::SpecResult> spec = inspect::SpecFromDevice(device);
  VFU_FUZZ_CHECK(spec.ok(), spec.status().ToString());
  VFU_FUZZ_CHECK(!inspect::FormatSpecText(device, *spec).empty(), "empty spec text");
}

}  // namespace
}  // namespace vfu::fuzz

VFU_FUZZ_ENTRY_POINT(vfu::fuzz::Run)
