// Fuzzes ParseCapabilities() (vfu/wire/capabilities.h) with the input as
// the JSON text, as a VERSION payload carries it (without its NUL).
//
// Checks:
//  - a rejection carries EINVAL (PROTOCOL.md section 10 rows 10, 12);
//  - what parses is within the documented ranges (max_msg_fds <= 1024,
//    max_data_xfer_size in 1..64 MiB, pgsizes != 0, migration.pgsize a
//    power of two);
//  - SerializeCapabilities(All) is compact, NUL-free JSON that parses back
//    to an equal Capabilities (round trip);
//  - serializing a subset of the members (picked from the input size)
//    parses back to the same values for those members and to the defaults
//    for the others.
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "testing/fuzz/fuzz_util.h"
#include "vfu/wire/capabilities.h"
#include "vfu/wire/constants.h"

namespace vfu::fuzz {
namespace {

using wire::Capabilities;
using wire::CapabilityMembers;

// `caps` with the members not in `members` reset to their defaults, which
// is what an omitted member reads as.
Capabilities OnlyMembers(const Capabilities& caps, const CapabilityMembers& members) {
  Capabilities defaults;
  Capabilities result = caps;
  if (!members.max_msg_fds) result.max_msg_fds = defaults.max_msg_fds;
  if (!members.max_data_xfer_size) result.max_data_xfer_size = defaults.max_data_xfer_size;
  if (!members.max_dma_maps) result.max_dma_maps = defaults.max_dma_maps;
  if (!members.pgsizes) result.pgsizes = defaults.pgsizes;
  if (!members.twin_socket) result.twin_socket = defaults.twin_socket;
  if (!members.write_multiple) result.write_multiple = defaults.write_multiple;
  if (!members.migration) result.migration = defaults.migration;
  return result;
}

void CheckSerialization(const Capabilities& caps, const CapabilityMembers& members) {
  const std::string text = wire::SerializeCapabilities(caps, members);
  VFU_FUZZ_CHECK(text.find('\0') == std::string::npos, "NUL in ", text);
  VFU_FUZZ_CHECK(text.rfind(R"({"capabilities":{)", 0) == 0, "unexpected shape: ", text);
  VFU_FUZZ_CHECK(text.find_first_of(" \t\r\n") == std::string::npos, "whitespace in ", text);
  const absl::StatusOr<Capabilities> back = wire::ParseCapabilities(text);
  VFU_FUZZ_CHECK(back.ok(), "own output rejected: ", back.status().ToString(), " text ", text);
  VFU_FUZZ_CHECK(*back == OnlyMembers(caps, members), "round trip differs: ", text);
}

void Run(absl::Span<const uint8_t> input) {
  const std::string_view json(reinterpret_cast<const char*>(input.data()), input.size());
  const absl::StatusOr<Capabilities> caps = wire::ParseCapabilities(json);
  if (!caps.ok()) {
    VFU_FUZZ_CHECK(Errno(caps.status()) == EINVAL, caps.status().ToString());
    return;
  }
  VFU_FUZZ_CHECK(caps->max_msg_fds <= wire::kMaxMsgFdsLimit, caps->max_msg_fds);
  VFU_FUZZ_CHECK(
      caps->max_data_xfer_size >= 1 && caps->max_data_xfer_size <= wire::kMaxDataXferSizeLimit,
      caps->max_data_xfer_size);
  VFU_FUZZ_CHECK(caps->pgsizes != 0, "pgsizes 0 accepted");
  if (caps->migration.has_value() && caps->migration->pgsize.has_value()) {
    VFU_FUZZ_CHECK(std::has_single_bit(*caps->migration->pgsize), "migration.pgsize ",
                   *caps->migration->pgsize);
  }

  CheckSerialization(*caps, CapabilityMembers::All());
  const size_t bits = input.size();
  CheckSerialization(*caps, CapabilityMembers{.max_msg_fds = (bits & 1) != 0,
                                              .max_data_xfer_size = (bits & 2) != 0,
                                              .max_dma_maps = (bits & 4) != 0,
                                              .pgsizes = (bits & 8) != 0,
                                              .twin_socket = (bits & 16) != 0,
                                              .write_multiple = (bits & 32) != 0,
                                              .migration = (bits & 64) != 0});
}

}  // namespace
}  // namespace vfu::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vfu::fuzz::InputScope scope(data, size);
  vfu::fuzz::Run(absl::MakeConstSpan(data, size));
  return 0;
}
