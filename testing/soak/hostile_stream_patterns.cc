// Hostile clients that attack the byte stream, built on RawConnection:
//
//   garbage            random bytes and random headers, with or without a
//                      VERSION first, in random pieces
//   fragmented         valid commands (REGION_WRITE/READ, DMA_MAP with an
//                      fd, DMA_UNMAP) cut at random points, each message's fd
//                      riding on a random piece of that message; every reply
//                      checked
//   stopped_reader     floods 4 KiB REGION_READs and never reads a reply;
//                      the server must disconnect it after its write stall
//   mid_message_close  closes halfway through a message (with or without
//                      its fd)
//   reconnect_storm    connect, VERSION, close, as fast as possible, reading
//                      the reply half of the time
//   fd_drip            a large message's header, then 1-byte sends each
//                      carrying 4 fds; the server must close the connection
//                      before it holds kFdDripLimit of them
//   huge_header        a header announcing a message of up to 4 GiB; the
//                      server must refuse it at once (an EINVAL reply, then
//                      it skips the announced bytes without buffering them,
//                      PROTOCOL.md section 10 row 2) or close the connection,
//                      and its memory must not follow the announced size
#include "testing/soak/hostile_stream_patterns.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "devices/scratchpad/scratchpad_device.h"
#include "testing/soak/raw_connection.h"
#include "testing/soak/session_helpers.h"
#include "vfu/server/runtime_options.h"
#include "vfu/wire/dma_map.h"
#include "vfu/wire/dma_unmap.h"
#include "vfu/wire/region_access.h"

namespace vfu::soak {
namespace {

using devices::ScratchpadDevice;

// Connects (and negotiates VERSION when asked), retrying while the server
// refuses because the previous session's connection is still attached.
absl::StatusOr<RawConnection> ConnectRaw(SessionContext& context, PatternStats& stats,
                                         bool negotiate) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  absl::Status last;
  for (int attempt = 0; attempt < 100000; ++attempt) {
    absl::StatusOr<RawConnection> connection = RawConnection::Connect(context.socket);
    if (connection.ok()) {
      if (!negotiate) return connection;
      last = connection->Negotiate(context.CallDeadline());
      if (last.ok()) return connection;
    } else {
      last = connection.status();
    }
    if (!context.server->Alive()) return absl::UnavailableError("the server process is gone");
    if (absl::Now() >= deadline) break;
    ++stats.retried;
    PaceRetry(attempt);
  }
  return absl::UnavailableError(absl::StrCat("no connection: ", last.ToString()));
}

std::vector<uint8_t> RegionWriteMessage(uint16_t id, uint64_t offset,
                                        absl::Span<const uint8_t> data) {
  std::vector<uint8_t> payload;
  wire::EncodeRegionWriteRequest({.offset = offset, .region = 0, .data = data}, payload);
  return CommandMessage(id, wire::Command::kRegionWrite, payload);
}

std::vector<uint8_t> RegionReadMessage(uint16_t id, uint64_t offset, uint32_t count) {
  std::vector<uint8_t> payload;
  wire::EncodeRegionReadRequest({.offset = offset, .region = 0, .count = count}, payload);
  return CommandMessage(id, wire::Command::kRegionRead, payload);
}

class Garbage : public Pattern {
 public:
  std::string_view name() const override { return "garbage"; }
  DeviceKind device() const override { return DeviceKind::kScratchpad; }
  bool hostile() const override { return true; }

  void RunSession(SessionContext& context, PatternStats& stats) override {
    absl::StatusOr<RawConnection> connection =
        ConnectRaw(context, stats, /*negotiate=*/context.Uniform(0, 1) == 1);
    if (!connection.ok()) return stats.Fail("connect: ", connection.status().ToString());
    std::vector<uint8_t> stream;
    const int messages = static_cast<int>(context.Uniform(1, 32));
    for (int i = 0; i < messages; ++i) {
      ++stats.operations;
      const size_t start = stream.size();
      if (context.Uniform(0, 1) == 0) {
        // Pure noise.
        stream.resize(start + context.Uniform(1, 4096));
        FillRandom(context, absl::MakeSpan(stream).subspan(start));
        continue;
      }
      // A header that frames (so decoders see it), random everything else.
      stream.resize(start + wire::kHeaderSize + context.Uniform(0, 256));
      FillRandom(context, absl::MakeSpan(stream).subspan(start));
      wire::Header header;
      header.msg_id = static_cast<uint16_t>(context.Uniform(0, 0xffff));
      header.command = static_cast<uint16_t>(context.Uniform(0, 17));
      header.msg_size = static_cast<uint32_t>(stream.size() - start);
      header.flags = static_cast<uint32_t>(context.Uniform(0, 0x3f));
      header.error = static_cast<uint32_t>(context.Uniform(0, 1) * context.Uniform(0, 5000));
      wire::EncodeHeader(header, absl::MakeSpan(stream).subspan(start));
    }
    absl::Span<const uint8_t> rest(stream);
    while (!rest.empty()) {
      const size_t piece = std::min<size_t>(rest.size(), context.Uniform(1, 8192));
      // The server may close the connection at any point: that is fine.
      if (!connection->Send(rest.first(piece), {}, context.CallDeadline()).ok()) break;
      rest.remove_prefix(piece);
    }
  }
};

class Fragmented : public Pattern {
 public:
  std::string_view name() const override { return "fragmented"; }
  DeviceKind device() const override { return DeviceKind::kScratchpad; }
  bool hostile() const override { return true; }

  void RunSession(SessionContext& context, PatternStats& stats) override {
    absl::StatusOr<RawConnection> connection = ConnectRaw(context, stats, /*negotiate=*/true);
    if (!connection.ok()) return stats.Fail("connect: ", connection.status().ToString());
    absl::StatusOr<std::unique_ptr<SharedMemory>> memory = SharedMemory::Create(64 * 1024);
    if (!memory.ok()) return stats.Fail("memfd: ", memory.status().ToString());

    // The script: messages, and what each reply must carry.
    struct Expected {
      uint16_t id;
      wire::Command command;
      std::vector<uint8_t> read_data;  // REGION_READ only
    };
    struct Message {
      std::vector<uint8_t> bytes;
      bool has_fd = false;
    };
    std::vector<Message> script;
    std::vector<Expected> expected;
    uint16_t id = 1;
    const int rounds = static_cast<int>(context.Uniform(1, 10));
    for (int round = 0; round < rounds; ++round) {
      if (context.Uniform(0, 1) == 0) {
        const uint32_t count = static_cast<uint32_t>(context.Uniform(1, 1024));
        const uint64_t offset = context.Uniform(0, ScratchpadDevice::kScratchSize - count);
        std::vector<uint8_t> data(count);
        FillRandom(context, absl::MakeSpan(data));
        script.push_back({RegionWriteMessage(id, offset, data)});
        expected.push_back({id++, wire::Command::kRegionWrite, {}});
        script.push_back({RegionReadMessage(id, offset, count)});
        expected.push_back({id++, wire::Command::kRegionRead, data});
      } else {
        const uint64_t iova = 0x10000000ull * (round + 1);
        std::vector<uint8_t> payload;
        wire::EncodeDmaMapRequest({.flags = wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite,
                                   .offset = 0,
                                   .addr = iova,
                                   .size = (*memory)->size()},
                                  payload);
        script.push_back({CommandMessage(id, wire::Command::kDmaMap, payload), true});
        expected.push_back({id++, wire::Command::kDmaMap, {}});
        payload.clear();
        wire::EncodeDmaUnmapRequest({.addr = iova, .size = (*memory)->size()}, payload);
        script.push_back({CommandMessage(id, wire::Command::kDmaUnmap, payload)});
        expected.push_back({id++, wire::Command::kDmaUnmap, {}});
      }
    }
    // The stream, cut at random points; each fd goes with a random piece
    // of its message (so it arrives before the message is complete, and in
    // message order).
    std::vector<uint8_t> stream;
    std::vector<std::pair<size_t, size_t>> message_ranges;
    for (const Message& message : script) {
      message_ranges.push_back({stream.size(), stream.size() + message.bytes.size()});
      stream.insert(stream.end(), message.bytes.begin(), message.bytes.end());
    }
    const size_t pieces = context.Uniform(1, std::min<size_t>(stream.size(), 400));
    std::vector<size_t> cuts = {0, stream.size()};
    for (size_t i = 1; i < pieces; ++i) cuts.push_back(context.Uniform(1, stream.size() - 1));
    // A message with an fd starts a piece: fds that came with the tail of
    // the previous message would be that message's (and closed with it).
    for (size_t m = 0; m < script.size(); ++m) {
      if (script[m].has_fd) cuts.push_back(message_ranges[m].first);
    }
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    std::map<size_t, int> fds_per_piece;  // piece index -> fds it carries
    for (size_t m = 0; m < script.size(); ++m) {
      if (!script[m].has_fd) continue;
      // Pieces of [begin, end): from the one starting at `begin` to the one
      // holding `end - 1`.
      const auto [begin, end] = message_ranges[m];
      const size_t first = std::upper_bound(cuts.begin(), cuts.end(), begin) - cuts.begin() - 1;
      const size_t last = std::upper_bound(cuts.begin(), cuts.end(), end - 1) - cuts.begin() - 1;
      ++fds_per_piece[context.Uniform(first, last)];
    }
    const int memfd = (*memory)->fd();
    for (size_t piece = 0; piece + 1 < cuts.size(); ++piece) {
      std::vector<int> fds(fds_per_piece.count(piece) ? fds_per_piece[piece] : 0, memfd);
      absl::Status sent =
          connection->Send(absl::MakeConstSpan(stream).subspan(cuts[piece], cuts[piece + 1] - cuts[piece]),
                           fds, context.CallDeadline());
      if (!sent.ok()) return stats.Fail("send piece ", piece, ": ", sent.ToString());
    }
    for (const Expected& want : expected) {
      absl::StatusOr<RawMessage> reply = connection->ReadMessage(context.CallDeadline());
      if (!reply.ok()) return stats.Fail("reply to message ", want.id, ": ", reply.status().ToString());
      ++stats.operations;
      if (reply->header.msg_id != want.id || reply->header.command != uint16_t(want.command) ||
          !reply->header.is_reply() || reply->header.is_error()) {
        return stats.Fail("reply ", reply->header.msg_id, " cmd ", reply->header.command,
                          " error ", reply->header.error, " where ", want.id, " cmd ",
                          static_cast<int>(want.command), " succeeding was due");
      }
      if (want.command == wire::Command::kRegionRead) {
        absl::StatusOr<wire::RegionAccessData> data =
            wire::DecodeRegionReadReply(reply->payload(), 0);
        if (!data.ok() || FirstDifference(data->data, want.read_data) >= 0) {
          return stats.Fail("REGION_READ ", want.id, " after a fragmented write returned other bytes");
        }
        stats.bytes_verified += want.read_data.size();
      }
    }
  }
};

// Polls `fd` for the peer's hang-up without reading anything.
bool PeerHungUp(int fd, absl::Time deadline) {
  while (true) {
    pollfd p = {.fd = fd, .events = POLLRDHUP, .revents = 0};
    const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    ::poll(&p, 1, static_cast<int>(std::clamp<int64_t>(left, 0, 1000)));
    if ((p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) return true;
    if (left <= 0) return false;
  }
}

// Socket buffers on both sides that hold replies the server has written
// but the client has not read: generous, so that a flood past the server's
// high-water mark plus this really leaves the server holding too much.
constexpr uint64_t kKernelBufferAllowance = 8 << 20;

class StoppedReader : public Pattern {
 public:
  std::string_view name() const override { return "stopped_reader"; }
  DeviceKind device() const override { return DeviceKind::kScratchpad; }
  bool hostile() const override { return true; }

  void RunSession(SessionContext& context, PatternStats& stats) override {
    absl::StatusOr<RawConnection> connection = ConnectRaw(context, stats, /*negotiate=*/true);
    if (!connection.ok()) return stats.Fail("connect: ", connection.status().ToString());
    // Flood until the socket stays full for a while (the server stopped
    // reading us), bounded by count and time. The server gives up on a
    // client only once its unread replies pass the high-water mark, so a
    // pause in its reading before that (a slow server: its command queue
    // is full) is not the end of the flood.
    constexpr uint32_t kReplyBytes = 4000;
    const std::vector<uint8_t> read = RegionReadMessage(0, 0, kReplyBytes);
    const uint64_t enough_sent =
        (RuntimeOptions().outbound_high_water + kKernelBufferAllowance) / kReplyBytes;
    absl::Time last_progress = absl::Now();
    uint32_t sent = 0;
    size_t offset = 0;
    while (sent < context.scale.burst * 10 &&
           (sent < enough_sent || absl::Now() - last_progress < absl::Milliseconds(500)) &&
           absl::Now() < context.session_deadline) {
      absl::StatusOr<size_t> n = connection->TrySend(absl::MakeConstSpan(read).subspan(offset), {});
      if (!n.ok()) return;  // closed on us already: fine
      if (*n == 0) {
        pollfd p = {.fd = connection->fd(), .events = POLLOUT, .revents = 0};
        ::poll(&p, 1, 100);
        continue;
      }
      last_progress = absl::Now();
      offset += *n;
      if (offset == read.size()) {
        offset = 0;
        ++sent;
        ++stats.operations;
      }
    }
    // The server was never owed enough to give up on us (time ran out).
    if (sent < enough_sent) return;
    // Now read nothing: the server must give up on us.
    const absl::Duration bound = context.scale.server_write_stall + absl::Seconds(20);
    if (!PeerHungUp(connection->fd(), absl::Now() + bound)) {
      stats.Fail("a client that reads no replies (", sent, " commands sent) was still connected ",
                 absl::FormatDuration(bound), " after the flood");
    }
  }
};

class MidMessageClose : public Pattern {
 public:
  std::string_view name() const override { return "mid_message_close"; }
  DeviceKind device() const override { return DeviceKind::kScratchpad; }
  bool hostile() const override { return true; }

  void RunSession(SessionContext& context, PatternStats& stats) override {
    absl::StatusOr<RawConnection> connection = ConnectRaw(context, stats, /*negotiate=*/true);
    if (!connection.ok()) return stats.Fail("connect: ", connection.status().ToString());
    absl::StatusOr<std::unique_ptr<SharedMemory>> memory = SharedMemory::Create(4096, false);
    if (!memory.ok()) return stats.Fail("memfd: ", memory.status().ToString());
    std::vector<uint8_t> message;
    std::vector<int> fds;
    if (context.Uniform(0, 1) == 0) {
      std::vector<uint8_t> data(context.Uniform(1, ScratchpadDevice::kScratchSize));
      FillRandom(context, absl::MakeSpan(data));
      message = RegionWriteMessage(1, 0, data);
    } else {
      std::vector<uint8_t> payload;
      wire::EncodeDmaMapRequest(
          {.flags = wire::kDmaMapFlagRead, .offset = 0, .addr = 1 << 20, .size = 4096}, payload);
      message = CommandMessage(1, wire::Command::kDmaMap, payload);
      fds.push_back((*memory)->fd());
    }
    const size_t cut = context.Uniform(1, message.size() - 1);
    ++stats.operations;
    (void)connection->Send(absl::MakeConstSpan(message).first(cut), fds, context.CallDeadline());
  }
};

class ReconnectStorm : public Pattern {
 public:
  std::string_view name() const override { return "reconnect_storm"; }
  DeviceKind device() const override { return DeviceKind::kGpio; }
  bool hostile() const override { return true; }

  void RunSession(SessionContext& context, PatternStats& stats) override {
    std::vector<uint8_t> version_payload;
    wire::EncodeVersionWithJson(0, 0, "", version_payload);
    const std::vector<uint8_t> version = CommandMessage(0, wire::Command::kVersion, version_payload);
    const absl::Time end = std::min(absl::Now() + absl::Seconds(2), context.session_deadline);
    for (uint32_t i = 0; i < context.scale.burst / 4 && absl::Now() < end; ++i) {
      absl::StatusOr<RawConnection> connection = RawConnection::Connect(context.socket);
      if (!connection.ok()) {
        // A non-blocking connect finds the kernel's backlog full: the storm
        // connects faster than the server finishes one client after another
        // (a blocking connect would wait). The kernel's answer, not ours.
        ++stats.retried;
        continue;
      }
      ++stats.operations;
      if (!connection->Send(version, {}, context.CallDeadline()).ok()) continue;
      if (context.Uniform(0, 1) == 0) {
        absl::StatusOr<RawMessage> reply = connection->ReadMessage(context.CallDeadline());
        if (!reply.ok()) {
          // An accepted client waits its turn and is then served: the
          // server never closes it unanswered.
          stats.Fail("no VERSION reply: ", reply.status().ToString());
        } else if (reply->header.is_error()) {
          stats.Fail("VERSION failed with errno ", reply->header.error);
        }
      }
    }
  }
};

class FdDrip : public Pattern {
 public:
  // Fds one unfinished message may bring before the server must have closed
  // the connection: twice the largest max_msg_fds the protocol allows.
  static constexpr uint64_t kFdDripLimit = 2 * wire::kMaxMsgFdsLimit;

  std::string_view name() const override { return "fd_drip"; }
  DeviceKind device() const override { return DeviceKind::kScratchpad; }
  bool hostile() const override { return true; }

  void RunSession(SessionContext& context, PatternStats& stats) override {
    const ProcessFigures before = context.server->Figures();
    absl::StatusOr<RawConnection> connection = ConnectRaw(context, stats, /*negotiate=*/true);
    if (!connection.ok()) return stats.Fail("connect: ", connection.status().ToString());
    UniqueFd eventfd = NewEventfd();
    const int fds[4] = {eventfd.get(), eventfd.get(), eventfd.get(), eventfd.get()};
    uint8_t header[wire::kHeaderSize];
    wire::EncodeHeader(wire::Header{.msg_id = 1,
                                    .command = uint16_t(wire::Command::kRegionWrite),
                                    .msg_size = 64 * 1024},
                       header);
    if (!connection->Send(header, {}, context.CallDeadline()).ok()) return;
    uint64_t fds_sent = 0;
    bool closed = false;
    const uint8_t byte = 0;
    for (uint32_t i = 0; i < context.scale.burst && absl::Now() < context.session_deadline; ++i) {
      absl::Status sent = connection->Send(absl::MakeConstSpan(&byte, 1), fds, context.CallDeadline());
      if (absl::IsUnavailable(sent)) {
        closed = true;
        break;
      }
      if (!sent.ok()) return stats.Fail("1-byte send with fds: ", sent.ToString());
      fds_sent += 4;
      ++stats.operations;
    }
    NoteServerGrowth(context, before, stats);
    if (!closed && fds_sent > kFdDripLimit) {
      stats.Fail("the server took ", fds_sent, " fds with one unfinished message (fd growth ",
                 context.server->Figures().fds - before.fds, ") and kept the connection");
    }
  }
};

class HugeHeader : public Pattern {
 public:
  std::string_view name() const override { return "huge_header"; }
  DeviceKind device() const override { return DeviceKind::kScratchpad; }
  bool hostile() const override { return true; }

  void RunSession(SessionContext& context, PatternStats& stats) override {
    const ProcessFigures before = context.server->Figures();
    absl::StatusOr<RawConnection> connection = ConnectRaw(context, stats, /*negotiate=*/true);
    if (!connection.ok()) return stats.Fail("connect: ", connection.status().ToString());
    // Far past any size the server can accept (the largest transfer the
    // protocol allows is 64 MiB).
    static constexpr uint32_t kSizes[] = {0xffffffffu, 0x80000000u, 0x10000000u};
    const uint32_t size = kSizes[context.Uniform(0, 2)];
    std::vector<uint8_t> start(wire::kHeaderSize + 4096, 0);
    wire::EncodeHeader(wire::Header{.msg_id = 1,
                                    .command = uint16_t(context.Uniform(0, 1) == 0
                                                            ? wire::Command::kRegionWrite
                                                            : wire::Command::kDmaMap),
                                    .msg_size = size},
                       absl::MakeSpan(start));
    ++stats.operations;
    if (!connection->Send(start, {}, context.CallDeadline()).ok()) return;  // closed: fine
    const absl::Duration bound = context.scale.call_timeout;
    absl::StatusOr<RawMessage> reply = connection->ReadMessage(absl::Now() + bound);
    NoteServerGrowth(context, before, stats);
    const int64_t rss_growth_kb = static_cast<int64_t>(context.server->Figures().rss_kb) -
                                  static_cast<int64_t>(before.rss_kb);
    if (reply.ok()) {
      const bool refused = reply->header.is_reply() && reply->header.is_error() &&
                           reply->header.msg_id == 1 && reply->header.error == EINVAL;
      if (!refused) {
        stats.Fail("a header announcing ", size, " bytes: answered with something other than ",
                   "an EINVAL error reply for it");
      }
    } else if (reply.status().code() != absl::StatusCode::kUnavailable) {
      // Unavailable: the server closed the connection, which is fine too.
      stats.Fail("a header announcing ", size, " bytes: neither refused nor closed within ",
                 absl::FormatDuration(bound), " (", reply.status().ToString(), ")");
    }
    // The announced size must not be allocated (the limits allow a few MiB;
    // the whole server's RSS moves with the other patterns, and under a
    // sanitizer by tens of MiB a second, so the bar is half the size).
    if (rss_growth_kb * 1024 > static_cast<int64_t>(size / 2)) {
      stats.Fail("a header announcing ", size, " bytes grew the server by ", rss_growth_kb,
                 " KiB");
    }
  }
};

}  // namespace

std::vector<std::unique_ptr<Pattern>> HostileStreamPatterns() {
  std::vector<std::unique_ptr<Pattern>> patterns;
  patterns.push_back(std::make_unique<Garbage>());
  patterns.push_back(std::make_unique<Fragmented>());
  patterns.push_back(std::make_unique<StoppedReader>());
  patterns.push_back(std::make_unique<MidMessageClose>());
  patterns.push_back(std::make_unique<ReconnectStorm>());
  patterns.push_back(std::make_unique<FdDrip>());
  patterns.push_back(std::make_unique<HugeHeader>());
  return patterns;
}

}  // namespace vfu::soak
