// Hex text in and out: the dump `inspect read` prints and the byte strings
// `inspect write` accepts.
#ifndef VFU_TOOLS_INSPECT_HEX_DUMP_H_
#define VFU_TOOLS_INSPECT_HEX_DUMP_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace vfu::inspect {

// Sixteen bytes a line, each line "OFFSET: xx xx ... |ascii|\n" with
// OFFSET = `base` + position in hex. Empty for no bytes.
std::string HexDump(absl::Span<const uint8_t> bytes, uint64_t base);

// Bytes separated by spaces ("xx xx ..."), at most `max` of them followed
// by "..." when there are more.
std::string HexBytes(absl::Span<const uint8_t> bytes, size_t max = SIZE_MAX);

// Parses hex digit pairs ("deadbeef", "de ad be ef", "de:ad:be:ef"; an
// optional leading "0x"). InvalidArgument for another character, an odd
// number of digits, or no bytes at all.
absl::StatusOr<std::vector<uint8_t>> ParseHexBytes(std::string_view text);

}  // namespace vfu::inspect

#endif  // VFU_TOOLS_INSPECT_HEX_DUMP_H_
