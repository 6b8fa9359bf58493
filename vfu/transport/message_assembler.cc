#include "vfu/transport/message_assembler.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "vfu/base/check.h"
#include "vfu/base/log.h"
#include "vfu/transport/message_buffer_pool.h"
#include "vfu/wire/frame_splitter.h"
#include "vfu/wire/header.h"

namespace vfu {

MessageAssembler::MessageAssembler(size_t max_message_size, size_t direct_threshold)
    : max_message_size_(max_message_size), direct_threshold_(direct_threshold) {}

MessageAssembler::Space MessageAssembler::ReceiveSpace(size_t min_size) {
  Space space;
  if (!body_.empty()) space.first = absl::MakeSpan(body_).subspan(body_filled_);
  size_t want = std::max(kMinReceiveSize, min_size - std::min(min_size, space.first.size()));
  // A message too small to be received in place is received whole.
  if (body_.empty()) want = std::max(want, wanted_);
  if (buffer_.size() - data_end_ < want) {
    Compact();
    if (buffer_.size() - data_end_ < want) buffer_.resize(data_end_ + want);
  }
  space.second = absl::MakeSpan(buffer_).subspan(data_end_);
  return space;
}

void MessageAssembler::Compact() {
  if (data_begin_ == 0) return;
  std::memmove(buffer_.data(), buffer_.data() + data_begin_, data_end_ - data_begin_);
  data_end_ -= data_begin_;
  data_begin_ = 0;
}

void MessageAssembler::Commit(size_t size, std::vector<UniqueFd> fds, bool fds_truncated) {
  const size_t body_room = body_.size() - body_filled_;
  VFU_CHECK(size <= body_room + (buffer_.size() - data_end_),
            "commit beyond the receive space");
  if (!fds.empty() || fds_truncated) {
    fd_batches_.push_back(
        FdBatch{stream_end_, stream_end_ + size, std::move(fds), fds_truncated});
  }
  const size_t into_body = std::min(size, body_room);
  body_filled_ += into_body;
  data_end_ += size - into_body;
  stream_end_ += size;
}

void MessageAssembler::Append(absl::Span<const uint8_t> bytes, std::vector<UniqueFd> fds,
                              bool fds_truncated) {
  Space space = ReceiveSpace(bytes.size());
  const size_t first = std::min(bytes.size(), space.first.size());
  if (first > 0) std::memcpy(space.first.data(), bytes.data(), first);
  if (bytes.size() > first) {
    std::memcpy(space.second.data(), bytes.data() + first, bytes.size() - first);
  }
  Commit(bytes.size(), std::move(fds), fds_truncated);
}

void MessageAssembler::ClaimFds(uint64_t start, uint64_t size, InboundMessage& message) {
  const uint64_t end = start + size;
  while (!fd_batches_.empty()) {
    FdBatch& batch = fd_batches_.front();
    if (batch.range_end <= start) {
      // The receive that brought these fds held no message start: the
      // peer attached them to the middle of a message.
      VFU_LOG(kWarning, "closing ", batch.fds.size(),
              " fds received in the middle of a message");
      fd_batches_.pop_front();
      continue;
    }
    // Owned by this message if it starts inside the batch's range and no
    // later message does.
    if (batch.range_begin <= start && start < batch.range_end && end >= batch.range_end) {
      for (UniqueFd& fd : batch.fds) message.fds.push_back(std::move(fd));
      message.fds_truncated |= batch.truncated;
      fd_batches_.pop_front();
      continue;
    }
    break;
  }
}

void MessageAssembler::StartInPlace(size_t have, size_t size) {
  // Possibly a recycled buffer holding an earlier message's bytes: all of
  // them are overwritten before the message is delivered.
  body_ = MessageBufferPool::Instance().Take(size);
  std::memcpy(body_.data(), buffer_.data() + data_begin_, have);
  body_filled_ = have;
  data_begin_ = data_end_ = 0;
}

bool MessageAssembler::TakeInPlace(std::vector<InboundMessage>& out) {
  const size_t size = body_.size();
  InboundMessage message;
  message.header = wire::DecodeHeader(body_);
  if (size > max_message_size_) {
    // The limit dropped below the message's size: refuse it, as SplitFrame
    // would now, and skip what is still to come.
    message.oversized = true;
    ClaimFds(stream_offset_, size, message);
    stream_offset_ += body_filled_;
    discard_remaining_ = size - body_filled_;
    MessageBufferPool::Instance().Recycle(std::move(body_));
    body_.clear();
    body_filled_ = 0;
    out.push_back(std::move(message));
    return true;
  }
  if (body_filled_ < size) {
    wanted_ = size - body_filled_;
    return false;
  }
  message.bytes = std::move(body_);
  body_.clear();
  body_filled_ = 0;
  ClaimFds(stream_offset_, size, message);
  stream_offset_ += size;
  out.push_back(std::move(message));
  return true;
}

absl::Status MessageAssembler::TakeMessages(std::vector<InboundMessage>& out) {
  while (true) {
    if (discard_remaining_ > 0) {
      size_t skip = static_cast<size_t>(
          std::min<uint64_t>(discard_remaining_, data_end_ - data_begin_));
      data_begin_ += skip;
      stream_offset_ += skip;
      discard_remaining_ -= skip;
      if (discard_remaining_ > 0) {
        wanted_ = static_cast<size_t>(std::min<uint64_t>(discard_remaining_, kMinReceiveSize));
        break;
      }
    }
    if (!body_.empty()) {
      if (!TakeInPlace(out)) return absl::OkStatus();
      continue;
    }
    absl::Span<const uint8_t> data =
        absl::MakeConstSpan(buffer_).subspan(data_begin_, data_end_ - data_begin_);
    wire::FrameSplit frame = wire::SplitFrame(data, max_message_size_);
    switch (frame.status) {
      case wire::FrameStatus::kNeedMore:
        wanted_ = data.empty() ? 0 : frame.size;
        if (data.size() >= wire::kHeaderSize && data.size() + frame.size > direct_threshold_) {
          // The header is in and the size within the limit: allocate the
          // message now and receive the rest in place.
          StartInPlace(data.size(), data.size() + frame.size);
        }
        if (data_begin_ == data_end_) data_begin_ = data_end_ = 0;
        return absl::OkStatus();
      case wire::FrameStatus::kCorrupt:
        wanted_ = 0;
        return absl::DataLossError(frame.reason);
      case wire::FrameStatus::kOversized: {
        InboundMessage message;
        message.header = wire::DecodeHeader(data);
        message.oversized = true;
        ClaimFds(stream_offset_, frame.size, message);
        discard_remaining_ = frame.size;
        out.push_back(std::move(message));
        continue;
      }
      case wire::FrameStatus::kComplete: {
        InboundMessage message;
        message.header = wire::DecodeHeader(data);
        message.bytes.assign(data.begin(), data.begin() + frame.size);
        ClaimFds(stream_offset_, frame.size, message);
        data_begin_ += frame.size;
        stream_offset_ += frame.size;
        out.push_back(std::move(message));
        continue;
      }
    }
  }
  if (data_begin_ == data_end_) data_begin_ = data_end_ = 0;
  return absl::OkStatus();
}

}  // namespace vfu
