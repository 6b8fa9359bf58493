#include "vfu/transport/message_assembler.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "vfu/base/check.h"
#include "vfu/base/log.h"
#include "vfu/wire/frame_splitter.h"
#include "vfu/wire/header.h"

namespace vfu {
namespace {

// Receives are at least this large, so a stream of small messages is taken
// in few syscalls.
constexpr size_t kMinReceiveSize = 64 * 1024;

}  // namespace

MessageAssembler::MessageAssembler(size_t max_message_size)
    : max_message_size_(max_message_size) {}

absl::Span<uint8_t> MessageAssembler::WritableSpace(size_t min_size) {
  min_size = std::max(min_size, kMinReceiveSize);
  if (buffer_.size() - data_end_ < min_size) {
    Compact();
    if (buffer_.size() - data_end_ < min_size) buffer_.resize(data_end_ + min_size);
  }
  return absl::MakeSpan(buffer_).subspan(data_end_);
}

void MessageAssembler::Compact() {
  if (data_begin_ == 0) return;
  std::memmove(buffer_.data(), buffer_.data() + data_begin_, data_end_ - data_begin_);
  data_end_ -= data_begin_;
  data_begin_ = 0;
}

void MessageAssembler::Commit(size_t size, std::vector<UniqueFd> fds, bool fds_truncated) {
  VFU_CHECK(size <= buffer_.size() - data_end_, "commit beyond the writable space");
  if (!fds.empty() || fds_truncated) {
    fd_batches_.push_back(
        FdBatch{stream_end_, stream_end_ + size, std::move(fds), fds_truncated});
  }
  data_end_ += size;
  stream_end_ += size;
}

void MessageAssembler::Append(absl::Span<const uint8_t> bytes, std::vector<UniqueFd> fds,
                              bool fds_truncated) {
  absl::Span<uint8_t> space = WritableSpace(bytes.size());
  if (!bytes.empty()) std::memcpy(space.data(), bytes.data(), bytes.size());
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
    absl::Span<const uint8_t> data =
        absl::MakeConstSpan(buffer_).subspan(data_begin_, data_end_ - data_begin_);
    wire::FrameSplit frame = wire::SplitFrame(data, max_message_size_);
    switch (frame.status) {
      case wire::FrameStatus::kNeedMore:
        wanted_ = data.empty() ? 0 : frame.size;
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
