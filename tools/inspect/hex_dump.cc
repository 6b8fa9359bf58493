#include "tools/inspect/hex_dump.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace vfu::inspect {
namespace {

constexpr size_t kBytesPerLine = 16;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string HexDump(absl::Span<const uint8_t> bytes, uint64_t base) {
  std::string out;
  for (size_t line = 0; line < bytes.size(); line += kBytesPerLine) {
    const absl::Span<const uint8_t> chunk = bytes.subspan(line, kBytesPerLine);
    absl::StrAppendFormat(&out, "%08x: ", base + line);
    for (size_t i = 0; i < kBytesPerLine; ++i) {
      if (i < chunk.size()) {
        absl::StrAppendFormat(&out, "%02x ", chunk[i]);
      } else {
        out += "   ";
      }
    }
    out += '|';
    for (uint8_t b : chunk) out += (b >= 0x20 && b < 0x7f) ? static_cast<char>(b) : '.';
    out += "|\n";
  }
  return out;
}

std::string HexBytes(absl::Span<const uint8_t> bytes, size_t max) {
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < max; ++i) {
    if (i != 0) out += ' ';
    absl::StrAppendFormat(&out, "%02x", bytes[i]);
  }
  if (bytes.size() > max) out += " ...";
  return out;
}

absl::StatusOr<std::vector<uint8_t>> ParseHexBytes(std::string_view text) {
  if (absl::StartsWithIgnoreCase(text, "0x")) text.remove_prefix(2);
  std::vector<uint8_t> out;
  int high = -1;
  for (char c : text) {
    if (c == ' ' || c == ':' || c == '\t') {
      if (high >= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("hex bytes: a separator splits a byte in \"", text, "\""));
      }
      continue;
    }
    const int v = HexValue(c);
    if (v < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("hex bytes: '", std::string(1, c), "' is not a hex digit"));
    }
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<uint8_t>(high << 4 | v));
      high = -1;
    }
  }
  if (high >= 0) {
    return absl::InvalidArgumentError("hex bytes: odd number of hex digits");
  }
  if (out.empty()) return absl::InvalidArgumentError("hex bytes: no bytes given");
  return out;
}

}  // namespace vfu::inspect
