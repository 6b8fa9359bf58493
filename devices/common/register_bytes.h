// Byte-granular access to a file of 32-bit little-endian registers: an
// access of any size and alignment splits into slices of whole registers,
// in address order. Reads read each register whole; writes store only the
// bytes the access covers (the slice's mask).
//
//   absl::MutexLock lock(&mu_);
//   for (const RegisterSlice& slice : RegisterSlices(offset, out.size())) {
//     slice.Scatter(ReadRegisterLocked(slice.reg), out);
//   }
//   for (const RegisterSlice& slice : RegisterSlices(offset, data.size())) {
//     WriteRegisterLocked(slice.reg, slice.Gather(data), slice.mask());
//   }
//
// The register calls stay in the caller's own body (no callbacks), so the
// thread-safety analysis sees the lock that guards them. Iterating
// allocates nothing; the caller bounds `offset` and `size` to its region.
#ifndef VFU_DEVICES_COMMON_REGISTER_BYTES_H_
#define VFU_DEVICES_COMMON_REGISTER_BYTES_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>

#include "absl/types/span.h"

namespace vfu::devices {

// One register's share of an access: bytes [first, first + size) of the
// access are the register's bytes from bit `shift` up.
struct RegisterSlice {
  uint64_t reg = 0;    // the register's offset (4-byte aligned)
  size_t first = 0;    // index of the slice's first byte in the access
  size_t size = 0;     // 1 to 4
  uint32_t shift = 0;  // 8 * the first byte's place in the register

  // The register bits the slice covers.
  uint32_t mask() const {
    return static_cast<uint32_t>(((uint64_t{1} << (8 * size)) - 1) << shift);
  }
  // Copies the slice's bytes of register value `value` into the access's
  // buffer `out` (at least first + size bytes).
  void Scatter(uint32_t value, absl::Span<uint8_t> out) const {
    for (size_t k = 0; k < size; ++k) {
      out[first + k] = static_cast<uint8_t>(value >> (shift + 8 * k));
    }
  }
  // The slice's bytes of the access's `data`, at their place in the
  // register (the other bits zero).
  uint32_t Gather(absl::Span<const uint8_t> data) const {
    uint32_t value = 0;
    for (size_t k = 0; k < size; ++k) value |= uint32_t{data[first + k]} << (shift + 8 * k);
    return value;
  }
};

// The slices of an access of `size` bytes at `offset`, in address order.
class RegisterSlices {
 public:
  RegisterSlices(uint64_t offset, size_t size) : offset_(offset), size_(size) {}

  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = RegisterSlice;
    using difference_type = std::ptrdiff_t;
    using pointer = const RegisterSlice*;
    using reference = const RegisterSlice&;

    const RegisterSlice& operator*() const { return slice_; }
    const RegisterSlice* operator->() const { return &slice_; }
    Iterator& operator++() {
      MoveTo(slice_.first + slice_.size);
      return *this;
    }
    bool operator==(const Iterator& other) const { return slice_.first == other.slice_.first; }

   private:
    friend class RegisterSlices;
    Iterator(uint64_t offset, size_t size, size_t first) : offset_(offset), size_(size) {
      MoveTo(first);
    }
    void MoveTo(size_t first) {
      slice_.first = std::min(first, size_);
      if (slice_.first == size_) {
        slice_.size = 0;
        return;
      }
      const uint64_t byte = offset_ + slice_.first;
      const size_t in_register = static_cast<size_t>(byte & 3);
      slice_.reg = byte & ~uint64_t{3};
      slice_.shift = static_cast<uint32_t>(8 * in_register);
      slice_.size = std::min<size_t>(4 - in_register, size_ - slice_.first);
    }

    uint64_t offset_;
    size_t size_;
    RegisterSlice slice_;
  };

  Iterator begin() const { return Iterator(offset_, size_, 0); }
  Iterator end() const { return Iterator(offset_, size_, size_); }

 private:
  uint64_t offset_;
  size_t size_;
};

}  // namespace vfu::devices

#endif  // VFU_DEVICES_COMMON_REGISTER_BYTES_H_
