#include "vfu/transport/message_buffer_pool.h"

#include <utility>

namespace vfu {

MessageBufferPool& MessageBufferPool::Instance() {
  static MessageBufferPool* const pool = new MessageBufferPool();
  return *pool;
}

std::vector<uint8_t> MessageBufferPool::Take(size_t size) {
  std::vector<uint8_t> buffer;
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < free_.size(); ++i) {
      const size_t capacity = free_[i].capacity();
      if (capacity < size || capacity / 2 > size) continue;
      buffer = std::move(free_[i]);
      free_[i] = std::move(free_.back());
      free_.pop_back();
      free_bytes_ -= capacity;
      break;
    }
  }
  // Shrinking keeps the old bytes; only growth past the old size zero-fills.
  buffer.resize(size);
  return buffer;
}

void MessageBufferPool::Recycle(std::vector<uint8_t> buffer) {
  const size_t capacity = buffer.capacity();
  if (capacity < kMinCapacity || capacity > kMaxBytes) return;
  absl::MutexLock lock(&mu_);
  if (free_.size() >= kMaxBuffers || free_bytes_ + capacity > kMaxBytes) return;
  free_bytes_ += capacity;
  free_.push_back(std::move(buffer));
}

size_t MessageBufferPool::size() const {
  absl::MutexLock lock(&mu_);
  return free_.size();
}

}  // namespace vfu
