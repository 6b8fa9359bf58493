// SpareBuffers: a small, bounded stack of byte buffers that one thread's
// message path passes around instead of allocating a buffer per message.
//
// A poll-mode driver owns one and lends it to its MessageAssembler (which
// takes buffers for received messages), its Session (which takes buffers
// for replies and gives back the bytes of commands it has run) and its
// MessageWriter (which gives back the bytes of sent messages). A message
// then costs no allocation once the stack has warmed up.
//
//   std::vector<uint8_t> bytes = spares.Take();  // empty, capacity kept
//   ... fill, send ...
//   spares.Give(std::move(bytes));
//
// Bound: at most kMaxBuffers buffers of at most kMaxCapacity bytes each
// (256 KiB); others are freed. Buffers below kMinCapacity are freed too,
// and Take() allocates kMinCapacity, so every buffer kept fits a small
// message without growing.
//
// Thread-compatible: one thread at a time (it is unsynchronized on purpose:
// the threaded runtime does not use it).
#ifndef VFU_TRANSPORT_SPARE_BUFFERS_H_
#define VFU_TRANSPORT_SPARE_BUFFERS_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace vfu {

class SpareBuffers {
 public:
  static constexpr size_t kMaxBuffers = 64;
  static constexpr size_t kMinCapacity = 256;
  static constexpr size_t kMaxCapacity = 4096;

  SpareBuffers() { buffers_.reserve(kMaxBuffers); }
  SpareBuffers(const SpareBuffers&) = delete;
  SpareBuffers& operator=(const SpareBuffers&) = delete;

  // An empty buffer with room for at least kMinCapacity bytes.
  std::vector<uint8_t> Take() {
    if (buffers_.empty()) {
      std::vector<uint8_t> fresh;
      fresh.reserve(kMinCapacity);
      return fresh;
    }
    std::vector<uint8_t> buffer = std::move(buffers_.back());
    buffers_.pop_back();
    return buffer;
  }

  // Keeps `buffer` (emptied) for a later Take(), within the bounds above.
  void Give(std::vector<uint8_t> buffer) {
    const size_t capacity = buffer.capacity();
    if (buffers_.size() >= kMaxBuffers || capacity < kMinCapacity || capacity > kMaxCapacity) {
      return;
    }
    buffer.clear();
    buffers_.push_back(std::move(buffer));
  }

  size_t size() const { return buffers_.size(); }

 private:
  std::vector<std::vector<uint8_t>> buffers_;
};

}  // namespace vfu

#endif  // VFU_TRANSPORT_SPARE_BUFFERS_H_
