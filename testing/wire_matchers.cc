#include "testing/wire_matchers.h"

#include <cctype>
#include <cstdlib>

#include "vfu/base/check.h"
#include "absl/strings/escaping.h"

namespace vfu::testing {

std::vector<uint8_t> HexBytes(std::string_view hex) {
  std::string digits;
  for (char c : hex) {
    if (c == ' ' || c == '\n' || c == '|' || c == '\t') continue;
    digits.push_back(c);
  }
  VFU_CHECK(digits.size() % 2 == 0, "odd number of hex digits");
  for (char c : digits) VFU_CHECK(std::isxdigit(static_cast<unsigned char>(c)), "bad hex");
  std::string raw = absl::HexStringToBytes(digits);
  return std::vector<uint8_t>(raw.begin(), raw.end());
}

std::string ToHex(const std::vector<uint8_t>& bytes) {
  return absl::BytesToHexString(
      std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace vfu::testing
