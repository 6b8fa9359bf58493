// Fuzzes MessageAssembler (vfu/transport/message_assembler.h): a stream cut
// into pieces chosen by the input, some pieces carrying eventfds, fed
// through both Append() and ReceiveSpace()/Commit(), with TakeMessages()
// after the pieces the input picks and once at the end.
//
// Input: one selector byte (bits 0-2 the size limit; bit 3 receives every
// message above 32 bytes in place instead of only those above 64 KiB; bits
// 4-5 the fd limit: none, 1, 2 or 4), then
// pieces, each
//   length u8 (0..255), control u8, then `length` stream bytes.
// Control bits: 0-1 number of eventfds with the piece (at most 64 per run),
// 2 MSG_CTRUNC reported, 3 TakeMessages() after the piece, 4 receive via
// ReceiveSpace()/Commit() instead of Append(), 5 change the limit (as
// after negotiation) to the one bits 6-7 pick (16, 64, 4096, 64 KiB + 64)
// before that TakeMessages().
//
// Checks against a model that frames the stream with SplitFrame() at each
// TakeMessages(), from where the last one stopped, under the limit then:
//  - the delivered messages are exactly the model's, in order: a complete
//    message's bytes are its stream bytes and its size is its header's
//    msg_size; an oversized one has no bytes and msg_size above the limit;
//  - DataLoss exactly when the model meets msg_size < 16;
//  - consumed + buffered bytes == bytes received, so nothing is consumed
//    twice or beyond the input; bytes_wanted() names the missing bytes;
//  - each piece's fds (and its truncation flag) go to the last message that
//    starts inside that piece, or to nobody; every delivered fd is open; a
//    piece with more fds than the fd limit brings only the limit's worth,
//    marked truncated;
//  - after a TakeMessages() that succeeds at most the fd limit's worth of
//    fds is held; a DataLoss the model does not expect is the fd limit's,
//    and leaves no fd held;
//  - no fd is leaked once the assembler and the messages are gone.
#include <fcntl.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "testing/fuzz/fuzz_util.h"
#include "vfu/base/unique_fd.h"
#include "vfu/transport/message.h"
#include "vfu/transport/message_assembler.h"
#include "vfu/wire/constants.h"
#include "vfu/wire/frame_splitter.h"
#include "vfu/wire/header.h"

namespace vfu::fuzz {
namespace {

using wire::kHeaderSize;

constexpr size_t kMaxFdsPerRun = 64;

struct Piece {
  uint64_t begin;
  uint64_t end;
  size_t num_fds;
  bool truncated;
};

// One message as the model frames the stream.
struct ModelMessage {
  uint64_t offset;
  uint64_t size;  // msg_size
  bool oversized;
  size_t limit;  // in force when it was framed
};

// The assembler's contract, replayed on the bytes received so far.
struct Model {
  std::vector<ModelMessage> messages;
  // Start of the next message; beyond the bytes received while the body of
  // an oversized message is still to be skipped.
  uint64_t next = 0;
  bool corrupt = false;

  // What TakeMessages() must deliver now, with `limit` in force.
  void Take(absl::Span<const uint8_t> stream, size_t limit) {
    while (!corrupt && next < stream.size()) {
      const wire::FrameSplit split = wire::SplitFrame(stream.subspan(next), limit);
      if (split.status == wire::FrameStatus::kNeedMore) return;
      if (split.status == wire::FrameStatus::kCorrupt) {
        corrupt = true;
        return;
      }
      messages.push_back({next, split.size, split.status == wire::FrameStatus::kOversized, limit});
      next += split.size;
    }
  }
};

size_t ChooseLimit(uint8_t selector) {
  static constexpr size_t kLimits[] = {0, 15, 16, 17, 40, 64, 4096, 64 * 1024 + 64};
  return kLimits[selector % (sizeof kLimits / sizeof kLimits[0])];
}

size_t ChooseFdLimit(uint8_t selector) {
  static constexpr size_t kLimits[] = {SIZE_MAX, 1, 2, 4};
  return kLimits[(selector >> 4) & 3];
}

size_t ChangedLimit(uint8_t control) {
  static constexpr size_t kLimits[] = {16, 64, 4096, 64 * 1024 + 64};
  return kLimits[control >> 6];
}

// Bytes the delivered messages account for, kept up to date incrementally
// (a run may take thousands of pieces).
class Accounting {
 public:
  // Checks consumed + buffered == received after a TakeMessages().
  void Check(const MessageAssembler& assembler, const std::vector<InboundMessage>& out,
             uint64_t received) {
    for (; counted_ < out.size(); ++counted_) {
      const InboundMessage& m = out[counted_];
      delivered_ += m.oversized ? m.header.msg_size : m.bytes.size();
    }
    VFU_FUZZ_CHECK(assembler.discarding_bytes() <= delivered_, "discarding ",
                   assembler.discarding_bytes(), " of ", delivered_, " bytes delivered");
    const uint64_t consumed = delivered_ - assembler.discarding_bytes();
    VFU_FUZZ_CHECK(consumed + assembler.buffered_bytes() == received, "consumed ", consumed,
                   " + buffered ", assembler.buffered_bytes(), " != received ", received);
  }

 private:
  size_t counted_ = 0;
  uint64_t delivered_ = 0;
};

void Run(InputReader& in) {
  const uint8_t selector = in.U8();
  size_t limit = ChooseLimit(selector);
  const size_t direct_threshold =
      (selector & 8) != 0 ? 32 : MessageAssembler::kDefaultDirectThreshold;
  const size_t fd_limit = ChooseFdLimit(selector);
  FdTracker tracker;
  std::vector<uint8_t> stream;
  std::vector<Piece> pieces;
  std::vector<InboundMessage> out;
  Model model;
  Accounting accounting;
  absl::Status status;
  {
    MessageAssembler assembler(limit, direct_threshold);
    assembler.set_max_fds(fd_limit);
    auto take = [&] {
      status = assembler.TakeMessages(out);
      model.Take(stream, limit);
      accounting.Check(assembler, out, stream.size());
      if (status.ok()) {
        VFU_FUZZ_CHECK(assembler.held_fds() <= fd_limit, "holding ", assembler.held_fds(),
                       " fds, limit ", fd_limit);
      } else if (absl::StrContains(status.message(), "max_msg_fds")) {
        VFU_FUZZ_CHECK(assembler.held_fds() == 0, "a stream failed for its fds holds ",
                       assembler.held_fds(), " fds");
      }
    };
    while (!in.empty() && status.ok()) {
      const size_t length = in.U8();
      const uint8_t control = in.U8();
      absl::Span<const uint8_t> bytes = in.Take(length);
      size_t num_fds = control & 3;
      if (tracker.created() + num_fds > kMaxFdsPerRun) num_fds = 0;
      const bool truncated = (control & 4) != 0;
      std::vector<UniqueFd> fds;
      for (size_t i = 0; i < num_fds; ++i) fds.emplace_back(tracker.NewEventFd());

      // Past the fd limit a piece brings the limit's worth, truncated.
      pieces.push_back({stream.size(), stream.size() + bytes.size(),
                        std::min(num_fds, fd_limit), truncated || num_fds > fd_limit});
      stream.insert(stream.end(), bytes.begin(), bytes.end());
      if (control & 16) {
        // As the kernel scatters a receive: each part full before the next.
        const MessageAssembler::Space space = assembler.ReceiveSpace();
        VFU_FUZZ_CHECK(space.size() >= bytes.size(), "ReceiveSpace() gave ", space.size(),
                       " bytes for a piece of ", bytes.size());
        space.Scatter(bytes);
        assembler.Commit(bytes.size(), std::move(fds), truncated);
      } else {
        assembler.Append(bytes, std::move(fds), truncated);
      }
      if (control & 32) {
        limit = ChangedLimit(control);
        assembler.set_max_message_size(limit);
      }
      if (control & 8) take();
    }
    if (status.ok()) take();

    const bool fds_exceeded =
        !status.ok() && absl::StrContains(status.message(), "max_msg_fds");
    VFU_FUZZ_CHECK(!fds_exceeded || fd_limit != SIZE_MAX, "fd limit hit without one");
    VFU_FUZZ_CHECK(model.corrupt == (!status.ok() && !fds_exceeded), "model corrupt ",
                   model.corrupt, ", assembler says ", status.ToString());
    if (!status.ok()) {
      VFU_FUZZ_CHECK(status.code() == absl::StatusCode::kDataLoss, status.ToString());
    }
    VFU_FUZZ_CHECK(out.size() == model.messages.size(), out.size(),
                   " messages delivered, model has ", model.messages.size());

    // What is left: the tail from where framing stopped, or the body of an
    // oversized message still being skipped.
    if (status.ok() && assembler.discarding_bytes() == 0) {
      VFU_FUZZ_CHECK(model.next <= stream.size(), "model skips ", model.next - stream.size(),
                     " more bytes, the assembler none");
      const uint64_t left = stream.size() - model.next;
      VFU_FUZZ_CHECK(assembler.buffered_bytes() == left, "buffered ", assembler.buffered_bytes(),
                     ", model leaves ", left);
      if (left == 0) {
        VFU_FUZZ_CHECK(assembler.bytes_wanted() == 0, "wants ", assembler.bytes_wanted(),
                       " with nothing buffered");
      } else {
        const wire::FrameSplit split =
            wire::SplitFrame(absl::MakeConstSpan(stream).subspan(model.next), limit);
        VFU_FUZZ_CHECK(
            split.status == wire::FrameStatus::kNeedMore && assembler.bytes_wanted() == split.size,
            "wants ", assembler.bytes_wanted(), ", the tail needs ", split.size);
      }
    } else if (status.ok()) {
      VFU_FUZZ_CHECK(model.next - stream.size() == assembler.discarding_bytes(), "discarding ",
                     assembler.discarding_bytes(), ", model skips ", model.next - stream.size());
      VFU_FUZZ_CHECK(assembler.buffered_bytes() == 0, "buffering while discarding");
      VFU_FUZZ_CHECK(
          assembler.bytes_wanted() > 0 && assembler.bytes_wanted() <= assembler.discarding_bytes(),
          "wants ", assembler.bytes_wanted(), " while discarding ", assembler.discarding_bytes());
    }

    // Message starts, including the one where framing stopped.
    std::vector<uint64_t> starts;
    for (const ModelMessage& m : model.messages) starts.push_back(m.offset);
    if (model.next < stream.size()) starts.push_back(model.next);
    std::vector<size_t> expected_fds(model.messages.size(), 0);
    std::vector<bool> expected_truncated(model.messages.size(), false);
    for (const Piece& p : pieces) {
      if (p.num_fds == 0 && !p.truncated) continue;
      // The last message starting inside the piece owns its fds (starts
      // ascend, so it is the last one before the piece's end).
      const auto after = std::lower_bound(starts.begin(), starts.end(), p.end);
      if (after == starts.begin() || *(after - 1) < p.begin) continue;  // Nobody: closed.
      const size_t owner = static_cast<size_t>(after - starts.begin()) - 1;
      if (owner >= model.messages.size()) continue;  // Not delivered: closed.
      expected_fds[owner] += p.num_fds;
      if (p.truncated) expected_truncated[owner] = true;
    }

    for (size_t i = 0; i < out.size(); ++i) {
      const InboundMessage& m = out[i];
      const ModelMessage& want = model.messages[i];
      VFU_FUZZ_CHECK(m.oversized == want.oversized, "message ", i, " oversized ", m.oversized);
      const absl::Span<const uint8_t> at = absl::MakeConstSpan(stream).subspan(want.offset);
      VFU_FUZZ_CHECK(m.header == wire::DecodeHeader(at), "message ", i,
                     " header differs from its stream bytes");
      VFU_FUZZ_CHECK(m.header.msg_size == want.size, "message ", i, " msg_size ", m.header.msg_size,
                     ", model ", want.size);
      if (m.oversized) {
        VFU_FUZZ_CHECK(m.bytes.empty() && m.header.msg_size > want.limit, "oversized message ", i,
                       " with ", m.bytes.size(), " bytes, msg_size ", m.header.msg_size);
      } else {
        VFU_FUZZ_CHECK(m.bytes.size() == m.header.msg_size && m.bytes.size() >= kHeaderSize &&
                           m.bytes.size() <= want.limit,
                       "message ", i, " of ", m.bytes.size(), " bytes, msg_size ",
                       m.header.msg_size);
        VFU_FUZZ_CHECK(std::equal(m.bytes.begin(), m.bytes.end(), at.begin()), "message ", i,
                       " bytes differ from the stream at ", want.offset);
      }
      VFU_FUZZ_CHECK(m.fds.size() == expected_fds[i] && m.fds_truncated == expected_truncated[i],
                     "message ", i, " at ", want.offset, " got ", m.fds.size(), " fds (truncated ",
                     m.fds_truncated, "), model ", expected_fds[i], " (", expected_truncated[i],
                     ")");
      for (const UniqueFd& fd : m.fds) {
        VFU_FUZZ_CHECK(fd.valid() && ::fcntl(fd.get(), F_GETFD) != -1, "message ", i,
                       " holds a closed fd ", fd.get());
      }
    }
  }
  out.clear();
  tracker.CheckAllClosed();
}

}  // namespace
}  // namespace vfu::fuzz

VFU_FUZZ_ENTRY_POINT(vfu::fuzz::Run)
