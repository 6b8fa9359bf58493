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

size_t MessageAssembler::Space::size() const {
  size_t total = 0;
  for (size_t i = 0; i < num_parts; ++i) total += parts[i].size();
  return total;
}

void MessageAssembler::Space::Scatter(absl::Span<const uint8_t> bytes) const {
  for (size_t i = 0; i < num_parts && !bytes.empty(); ++i) {
    const size_t n = std::min(bytes.size(), parts[i].size());
    std::memcpy(parts[i].data(), bytes.data(), n);
    bytes.remove_prefix(n);
  }
  VFU_CHECK(bytes.empty(), "scattering beyond the receive space");
}

void MessageAssembler::AddInPlaceParts(size_t from, bool with_sink, Space& space) {
  if (sink_ == nullptr) {
    space.Add(absl::MakeSpan(body_).subspan(from));
    return;
  }
  const size_t sink_begin = sink_->data_offset();
  const size_t sink_end = sink_begin + sink_->data().size();
  if (from < sink_begin) space.Add(absl::MakeSpan(body_).subspan(from, sink_begin - from));
  if (from < sink_end) {
    // Without the lock the space stops before the sink's part.
    if (!with_sink) return;
    space.Add(sink_->data().subspan(std::max(from, sink_begin) - sink_begin));
  }
  // body_ holds the bytes after the sink's part from sink_begin on.
  space.Add(absl::MakeSpan(body_).subspan(sink_begin + (std::max(from, sink_end) - sink_end)));
}

MessageAssembler::Space MessageAssembler::ReceiveSpace(size_t min_size)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  VFU_CHECK(!sink_locked_, "ReceiveSpace() twice without Commit()");
  Space space;
  if (sink_ != nullptr && in_place_received_ < sink_->data_offset() + sink_->data().size()) {
    if (sink_->BeginWrite()) {
      sink_locked_ = true;
    } else {
      AbandonSink();
    }
  }
  // Here a sink is locked or its part already received: the in-place
  // parts cover the rest of the message, as far as body_ is allocated.
  if (in_place_size_ != 0) {
    GrowBody(std::max(kMinReceiveSize, min_size));
    AddInPlaceParts(in_place_received_, sink_locked_, space);
    if (!BodyComplete()) {
      // Bytes after the message may not arrive before the message's own.
      space_size_ = space.size();
      return space;
    }
  }
  const size_t in_place = space.size();
  size_t want = std::max(kMinReceiveSize, min_size - std::min(min_size, in_place));
  // A message too small to be received in place is received whole.
  if (in_place_size_ == 0) want = std::max(want, wanted_);
  if (buffer_.size() - data_end_ < want) {
    Compact();
    if (buffer_.size() - data_end_ < want) buffer_.resize(data_end_ + want);
  }
  space.Add(absl::MakeSpan(buffer_).subspan(data_end_));
  space_size_ = space.size();
  return space;
}

bool MessageAssembler::BodyComplete() const {
  return sink_ != nullptr || body_.size() == in_place_size_;
}

void MessageAssembler::GrowBody(size_t min_room) {
  if (BodyComplete() || body_.size() - in_place_received_ >= min_room) return;
  const size_t new_size =
      std::min(in_place_size_, std::max(2 * body_.size(), in_place_received_ + min_room));
  std::vector<uint8_t> grown = MessageBufferPool::Instance().Take(new_size);
  std::memcpy(grown.data(), body_.data(), in_place_received_);
  MessageBufferPool::Instance().Recycle(std::exchange(body_, std::move(grown)));
}

void MessageAssembler::ReleaseReceiveSpace() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (sink_locked_) {
    sink_locked_ = false;
    sink_->EndWrite();
  }
}

void MessageAssembler::Compact() {
  if (data_begin_ == 0) return;
  std::memmove(buffer_.data(), buffer_.data() + data_begin_, data_end_ - data_begin_);
  data_end_ -= data_begin_;
  data_begin_ = 0;
}

void MessageAssembler::Commit(size_t size, std::vector<UniqueFd> fds, bool fds_truncated) {
  VFU_CHECK(size <= space_size_, "commit beyond the receive space");
  space_size_ = 0;
  const size_t in_place_room = in_place_size_ - in_place_received_;
  ReleaseReceiveSpace();
  if (fds.size() > max_fds_) {
    // More than any message may carry: keep what a message may have, so
    // the owner fails with EINVAL like one the kernel truncated.
    fds.resize(max_fds_);
    fds_truncated = true;
  }
  held_fds_ += fds.size();
  if (!fds.empty() || fds_truncated) {
    fd_batches_.push_back(
        FdBatch{stream_end_, stream_end_ + size, std::move(fds), fds_truncated});
  }
  const size_t into_message = std::min(size, in_place_room);
  in_place_received_ += into_message;
  data_end_ += size - into_message;
  stream_end_ += size;
}

void MessageAssembler::Append(absl::Span<const uint8_t> bytes, std::vector<UniqueFd> fds,
                              bool fds_truncated) {
  const Space space = ReceiveSpace(bytes.size());
  space.Scatter(bytes);
  Commit(bytes.size(), std::move(fds), fds_truncated);
}

void MessageAssembler::DropFdBatch(const char* why) {
  FdBatch& batch = fd_batches_.front();
  if (!batch.fds.empty()) {
    VFU_LOG_RATE_LIMITED(kWarning, "closing ", batch.fds.size(), " fds ", why);
  }
  held_fds_ -= batch.fds.size();
  fd_batches_.pop_front();
}

void MessageAssembler::ClaimFds(uint64_t start, uint64_t size, InboundMessage& message) {
  const uint64_t end = start + size;
  while (!fd_batches_.empty()) {
    FdBatch& batch = fd_batches_.front();
    // The receive that brought these fds held no message start (it ended
    // before this message, or lies inside it after its start): the peer
    // attached them to the middle of a message.
    if (batch.range_end <= start || (batch.range_begin > start && batch.range_end <= end)) {
      DropFdBatch("received in the middle of a message");
      continue;
    }
    // Owned by this message if it starts inside the batch's range and no
    // later message does.
    if (batch.range_begin <= start && start < batch.range_end && end >= batch.range_end) {
      held_fds_ -= batch.fds.size();
      for (UniqueFd& fd : batch.fds) message.fds.push_back(std::move(fd));
      message.fds_truncated |= batch.truncated;
      fd_batches_.pop_front();
      continue;
    }
    break;
  }
}

absl::Status MessageAssembler::CheckHeldFds() {
  if (!fds_exceeded_ && held_fds_ <= max_fds_) return absl::OkStatus();
  if (!fds_exceeded_) {
    VFU_LOG_RATE_LIMITED(kWarning, "peer sent ", held_fds_, " fds for one message, more than ",
                         max_fds_, " (max_msg_fds): dropping the stream");
    fds_exceeded_ = true;
  }
  while (!fd_batches_.empty()) {
    held_fds_ -= fd_batches_.front().fds.size();
    fd_batches_.pop_front();
  }
  return absl::DataLossError(
      absl::StrCat("more than ", max_fds_, " fds (max_msg_fds) sent for one message"));
}

void MessageAssembler::StartInPlace(size_t have, size_t size) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  const absl::Span<const uint8_t> received =
      absl::MakeConstSpan(buffer_).subspan(data_begin_, have);
  std::shared_ptr<ReplySink> sink;
  if (sink_lookup_) sink = sink_lookup_(wire::DecodeHeader(received));
  if (sink != nullptr && (sink->message_size() != size || !sink->BeginWrite())) {
    // Another size (an error reply, or a malformed one the decoder will
    // refuse) or a waiter already gone: an ordinary message.
    sink.reset();
  }
  // With a sink body_ holds only the bytes around the sink's part (a reply's
  // header fields); without one it starts small and grows (GrowBody()).
  // Possibly a recycled buffer holding an earlier message's bytes: all of
  // them are overwritten before the message is delivered.
  const size_t body_size = sink != nullptr ? size - sink->data().size()
                                           : std::min(size, std::max(have, kInitialBodySize));
  body_ = MessageBufferPool::Instance().Take(body_size);
  in_place_size_ = size;
  in_place_received_ = have;
  sink_ = std::move(sink);
  Space space;
  AddInPlaceParts(0, /*with_sink=*/true, space);
  space.Scatter(received);
  if (sink_ != nullptr) sink_->EndWrite();
  data_begin_ = data_end_ = 0;
}

void MessageAssembler::EndInPlace() {
  in_place_size_ = 0;
  in_place_received_ = 0;
  body_.clear();
  sink_.reset();
}

void MessageAssembler::AbandonSink() {
  const wire::Header header = wire::DecodeHeader(body_);
  VFU_LOG_RATE_LIMITED(kWarning, "reply id ", header.msg_id,
                       ": its waiter stopped waiting; skipping the ",
                       in_place_size_ - in_place_received_, " bytes still to come");
  InboundMessage dropped;  // Closes any fds that came with it.
  ClaimFds(stream_offset_, in_place_size_, dropped);
  stream_offset_ += in_place_received_;
  discard_remaining_ = in_place_size_ - in_place_received_;
  wanted_ = static_cast<size_t>(std::min<uint64_t>(discard_remaining_, kMinReceiveSize));
  MessageBufferPool::Instance().Recycle(std::move(body_));
  EndInPlace();
}

bool MessageAssembler::TakeInPlace(std::vector<InboundMessage>& out) {
  const size_t size = in_place_size_;
  InboundMessage message;
  message.header = wire::DecodeHeader(body_);
  if (size > max_message_size_) {
    // The limit dropped below the message's size: refuse it, as SplitFrame
    // would now, and skip what is still to come.
    message.oversized = true;
    ClaimFds(stream_offset_, size, message);
    stream_offset_ += in_place_received_;
    discard_remaining_ = size - in_place_received_;
    MessageBufferPool::Instance().Recycle(std::move(body_));
    EndInPlace();
    out.push_back(std::move(message));
    return true;
  }
  if (in_place_received_ < size) {
    wanted_ = size - in_place_received_;
    return false;
  }
  message.sunk_bytes = sink_ != nullptr ? sink_->data().size() : 0;
  message.bytes = std::move(body_);
  EndInPlace();
  ClaimFds(stream_offset_, size, message);
  stream_offset_ += size;
  out.push_back(std::move(message));
  return true;
}

absl::Status MessageAssembler::TakeMessages(std::vector<InboundMessage>& out) {
  if (fds_exceeded_) return CheckHeldFds();
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
    if (in_place_size_ != 0) {
      if (!TakeInPlace(out)) return CheckHeldFds();
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
        return CheckHeldFds();
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
        if (spares_ != nullptr && frame.size <= SpareBuffers::kMaxCapacity) {
          message.bytes = spares_->Take();
        }
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
  return CheckHeldFds();
}

}  // namespace vfu
