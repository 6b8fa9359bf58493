// ReplySink: memory of a waiting caller into which the transport receives
// the data of one expected reply, so the bytes are never copied again.
//
// A device thread reading client memory through a DMA_READ message waits
// for a reply of a size it knows, whose data it would otherwise copy from
// the received message into its own buffer. It registers a sink with its
// request; when the reply's header arrives with exactly that size, the IO
// thread receives the data straight into the caller's buffer (see
// MessageAssembler) and delivers the rest of the message (header, fields,
// padding) as usual, with InboundMessage::sunk_bytes saying where the data
// went.
//
// The caller's buffer may only be written while the caller waits. Each
// write by the receiving thread happens between BeginWrite() and
// EndWrite(); Revoke(), which the caller calls once it stops waiting
// (reply, timeout or disconnect), blocks while a write is under way and
// makes every later BeginWrite() fail. After Revoke() returns the buffer is
// the caller's alone. A write is one non-blocking recvmsg, so Revoke()
// waits microseconds at most.
//
// Thread-safe.
#ifndef VFU_TRANSPORT_REPLY_SINK_H_
#define VFU_TRANSPORT_REPLY_SINK_H_

#include <cstddef>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace vfu {

class ReplySink {
 public:
  // For a reply of exactly `message_size` bytes (header included) whose
  // bytes [data_offset, data_offset + data.size()) go to `data`. Requires
  // data_offset >= the header size and data_offset + data.size() <=
  // message_size.
  ReplySink(size_t message_size, size_t data_offset, absl::Span<uint8_t> data);

  ReplySink(const ReplySink&) = delete;
  ReplySink& operator=(const ReplySink&) = delete;

  size_t message_size() const { return message_size_; }
  size_t data_offset() const { return data_offset_; }
  absl::Span<uint8_t> data() const { return data_; }

  // Receiving thread: true, with the sink locked, while not revoked; the
  // caller may then write into data() until EndWrite(). False (nothing
  // locked) once revoked.
  bool BeginWrite() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true, mu_);
  void EndWrite() ABSL_UNLOCK_FUNCTION(mu_);

  // Waiting thread: no write into data() happens after this returns.
  // Idempotent.
  void Revoke() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const size_t message_size_;
  const size_t data_offset_;
  const absl::Span<uint8_t> data_;
  absl::Mutex mu_;
  bool revoked_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace vfu

#endif  // VFU_TRANSPORT_REPLY_SINK_H_
