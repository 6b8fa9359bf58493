#include "vfu/transport/reply_sink.h"

#include "vfu/base/check.h"
#include "vfu/wire/constants.h"

namespace vfu {

ReplySink::ReplySink(size_t message_size, size_t data_offset, absl::Span<uint8_t> data)
    : message_size_(message_size), data_offset_(data_offset), data_(data) {
  VFU_CHECK(data_offset >= wire::kHeaderSize && data_offset <= message_size &&
                data.size() <= message_size - data_offset,
            "reply sink data outside its message");
}

bool ReplySink::BeginWrite() {
  mu_.Lock();
  if (!revoked_) return true;
  mu_.Unlock();
  return false;
}

void ReplySink::EndWrite() { mu_.Unlock(); }

void ReplySink::Revoke() {
  absl::MutexLock lock(&mu_);
  revoked_ = true;
}

}  // namespace vfu
