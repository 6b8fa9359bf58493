// Byte-granular access to a file of 32-bit little-endian registers: any
// access size and alignment becomes whole-register reads, and writes with a
// mask of the bytes the access covers (one register at a time, in address
// order).
#ifndef VFU_DEVICES_COMMON_REGISTER_BYTES_H_
#define VFU_DEVICES_COMMON_REGISTER_BYTES_H_

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"

namespace vfu::devices {

// `read(reg)` returns the register at 4-byte aligned offset `reg`.
template <typename ReadRegister>
void ReadRegisterBytes(uint64_t offset, absl::Span<uint8_t> out, ReadRegister read) {
  for (size_t i = 0; i < out.size(); ++i) {
    const uint64_t byte = offset + i;
    out[i] = static_cast<uint8_t>(read(byte & ~uint64_t{3}) >> (8 * (byte & 3)));
  }
}

// `write(reg, value, mask)` stores the bytes of `value` selected by `mask`.
template <typename WriteRegister>
void WriteRegisterBytes(uint64_t offset, absl::Span<const uint8_t> data, WriteRegister write) {
  size_t i = 0;
  while (i < data.size()) {
    const uint64_t reg = (offset + i) & ~uint64_t{3};
    uint32_t value = 0;
    uint32_t mask = 0;
    for (; i < data.size() && ((offset + i) & ~uint64_t{3}) == reg; ++i) {
      const uint32_t shift = 8 * ((offset + i) & 3);
      value |= uint32_t{data[i]} << shift;
      mask |= 0xffu << shift;
    }
    write(reg, value, mask);
  }
}

}  // namespace vfu::devices

#endif  // VFU_DEVICES_COMMON_REGISTER_BYTES_H_
