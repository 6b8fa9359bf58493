// MessageBufferPool: a small process-wide cache of large message buffers.
//
// A std::vector<uint8_t> is zero-filled when it grows, which for a large
// message received in place (MessageAssembler) costs about as much as
// copying it. Whoever is done with a large InboundMessage (say, a DMA_READ
// reply once its data is copied out) hands its bytes back with Recycle();
// the next large message then takes that storage with Take(), contents
// unspecified, and overwrites every byte before it is delivered.
//
//   std::vector<uint8_t> body = MessageBufferPool::Instance().Take(size);
//   ... fill all `size` bytes ...
//   MessageBufferPool::Instance().Recycle(std::move(message.bytes));
//
// Bounded: at most kMaxBuffers buffers and kMaxBytes bytes of capacity are
// kept; smaller buffers are not kept at all. Thread-safe.
#ifndef VFU_TRANSPORT_MESSAGE_BUFFER_POOL_H_
#define VFU_TRANSPORT_MESSAGE_BUFFER_POOL_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace vfu {

class MessageBufferPool {
 public:
  // Buffers below this capacity are not worth keeping.
  static constexpr size_t kMinCapacity = 64 * 1024;
  static constexpr size_t kMaxBuffers = 4;
  static constexpr size_t kMaxBytes = 8 << 20;

  static MessageBufferPool& Instance();

  MessageBufferPool() = default;
  MessageBufferPool(const MessageBufferPool&) = delete;
  MessageBufferPool& operator=(const MessageBufferPool&) = delete;

  // A buffer of exactly `size` bytes. A kept buffer whose capacity fits
  // (at least `size`, at most twice it) is reused with its old contents;
  // otherwise a new, zero-filled one is allocated.
  std::vector<uint8_t> Take(size_t size) ABSL_LOCKS_EXCLUDED(mu_);

  // Keeps `buffer` for a later Take(), unless it is small or the pool full.
  void Recycle(std::vector<uint8_t> buffer) ABSL_LOCKS_EXCLUDED(mu_);

  // Buffers kept now.
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  std::vector<std::vector<uint8_t>> free_ ABSL_GUARDED_BY(mu_);
  size_t free_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace vfu

#endif  // VFU_TRANSPORT_MESSAGE_BUFFER_POOL_H_
