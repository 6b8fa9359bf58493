// Little helpers to load and store integers at byte offsets of wire buffers.
//
// The protocol's structures are packed and in host byte order, so fields are
// copied with memcpy (no alignment assumptions, no undefined behaviour).
// Offsets are checked: reading past the span is a bug in the caller, which
// must have validated the payload length first, so it aborts.
#ifndef VFU_WIRE_BYTE_IO_H_
#define VFU_WIRE_BYTE_IO_H_

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "vfu/base/check.h"
#include "absl/types/span.h"

namespace vfu::wire {

template <typename T>
T Load(absl::Span<const uint8_t> bytes, size_t offset) {
  static_assert(std::is_integral_v<T>);
  VFU_CHECK(offset <= bytes.size() && sizeof(T) <= bytes.size() - offset,
                 "wire load past the end of a validated buffer");
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;
}

inline uint16_t LoadU16(absl::Span<const uint8_t> b, size_t off) { return Load<uint16_t>(b, off); }
inline uint32_t LoadU32(absl::Span<const uint8_t> b, size_t off) { return Load<uint32_t>(b, off); }
inline uint64_t LoadU64(absl::Span<const uint8_t> b, size_t off) { return Load<uint64_t>(b, off); }

template <typename T>
void Store(absl::Span<uint8_t> bytes, size_t offset, T value) {
  static_assert(std::is_integral_v<T>);
  VFU_CHECK(offset <= bytes.size() && sizeof(T) <= bytes.size() - offset,
                 "wire store past the end of a buffer");
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

// Appends packed fields to a byte vector.
class ByteWriter {
 public:
  explicit ByteWriter(std::vector<uint8_t>& out) : out_(out) {}

  ByteWriter& U8(uint8_t v) { return Raw(&v, 1); }
  ByteWriter& U16(uint16_t v) { return Raw(&v, sizeof v); }
  ByteWriter& U32(uint32_t v) { return Raw(&v, sizeof v); }
  ByteWriter& U64(uint64_t v) { return Raw(&v, sizeof v); }
  ByteWriter& Bytes(absl::Span<const uint8_t> bytes) { return Raw(bytes.data(), bytes.size()); }
  ByteWriter& Zeros(size_t count) {
    out_.insert(out_.end(), count, 0);
    return *this;
  }

 private:
  ByteWriter& Raw(const void* data, size_t size) {
    const auto* p = static_cast<const uint8_t*>(data);
    out_.insert(out_.end(), p, p + size);
    return *this;
  }

  std::vector<uint8_t>& out_;
};

}  // namespace vfu::wire

#endif  // VFU_WIRE_BYTE_IO_H_
