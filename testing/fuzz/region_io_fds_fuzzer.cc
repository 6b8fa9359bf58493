// Fuzzes DEVICE_GET_REGION_IO_FDS: the codec (vfu/wire/region_io_fds.h),
// request decoder and client-side reply decoder on the same payload, and
// the reply encoder on the entries the reply decoder accepts; and the
// server's handling of the payload as a request (the engine's decode and
// validation, vfu/engine/session_region_io_fds.cc) with a PciDevice that
// has doorbells: 3 in region 0, 1 in region 2, none elsewhere, for a client
// that accepts 2 fds per message.
//
// Input: one selector byte, then the payload. Selector bits 0-2: number of
// fds that came with the message (0..7); bits 3-7: the request argsz the
// entries are re-encoded for (16 + 24 * n).
//
// Checks:
//  - a rejection carries EINVAL;
//  - a decoded request has 16 <= argsz <= 1 MiB, flags 0 and count 0, and
//    re-encodes to the payload's first 16 bytes exactly;
//  - a decoded reply has flags 0, known entry types (shadow only in 48-byte
//    entries) and fd indexes below the number of fds; a header-only reply
//    has no entries and a payload of exactly 16 bytes;
//  - reply round trip: the entries re-encode (48-byte layout) to a complete
//    reply of RegionIoFdsReplyFullSize() bytes that decodes to the same
//    entries, index and count;
//  - truncation: for a smaller request argsz the reply is the 16-byte
//    header alone, and no reply exceeds the request argsz;
//  - server: the payload is accepted exactly when the request decoder
//    accepts it, the region exists and has doorbells; then the reply is
//    the header alone with the full argsz and no fds when argsz is too
//    small, E2BIG when the region has more fds than the client accepts,
//    else the complete reply with one eventfd per entry, the entries being
//    the device's doorbells. Errors are EINVAL otherwise; every fd sent
//    with the command is closed.
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/statusor.h"
#include "testing/fuzz/fuzz_util.h"
#include "testing/local_dma_context.h"
#include "vfu/base/unique_fd.h"
#include "vfu/device/pci_device.h"
#include "vfu/engine/session.h"
#include "vfu/irq/eventfd_slot.h"
#include "vfu/transport/message.h"
#include "vfu/wire/constants.h"
#include "vfu/wire/header.h"
#include "vfu/wire/region_io_fds.h"
#include "vfu/wire/version.h"

namespace vfu::fuzz {
namespace {

using wire::IoFdEntry;
using wire::IoFdType;
using wire::RegionIoFdsReply;
using wire::RegionIoFdsReplyKind;
using wire::RegionIoFdsRequest;

void CheckRequest(absl::Span<const uint8_t> payload, size_t num_fds) {
  const absl::StatusOr<RegionIoFdsRequest> r = wire::DecodeRegionIoFdsRequest(payload, num_fds);
  if (!r.ok()) {
    VFU_FUZZ_CHECK(Errno(r.status()) == EINVAL, r.status().ToString());
    return;
  }
  VFU_FUZZ_CHECK(r->argsz >= wire::kRegionIoFdsHeaderSize &&
                     r->argsz <= wire::kRegionIoFdsMaxArgsz && r->flags == 0 && r->count == 0,
                 "request argsz ", r->argsz, " flags ", r->flags, " count ", r->count, " accepted");
  std::vector<uint8_t> out;
  wire::EncodeRegionIoFdsRequest(*r, out);
  VFU_FUZZ_CHECK(out.size() == wire::kRegionIoFdsHeaderSize &&
                     std::equal(out.begin(), out.end(), payload.begin()),
                 "request re-encoded as ", Hex(out));
  const absl::StatusOr<RegionIoFdsRequest> back = wire::DecodeRegionIoFdsRequest(out, num_fds);
  VFU_FUZZ_CHECK(back.ok() && *back == *r, "request round trip differs");
}

// Encodes `entries` for `request_argsz`, checks size and kind, and returns
// the decoded encoding.
RegionIoFdsReply EncodeAndDecode(uint32_t index, const std::vector<IoFdEntry>& entries,
                                 uint32_t request_argsz, size_t num_fds) {
  const uint64_t full = wire::RegionIoFdsReplyFullSize(entries.size());
  std::vector<uint8_t> out;
  const RegionIoFdsReplyKind kind =
      wire::EncodeRegionIoFdsReply(index, entries, request_argsz, out);
  VFU_FUZZ_CHECK(out.size() <= request_argsz, "reply of ", out.size(),
                 " bytes exceeds the request argsz ", request_argsz);
  if (full <= request_argsz) {
    VFU_FUZZ_CHECK(kind == RegionIoFdsReplyKind::kComplete && out.size() == full,
                   "complete reply of ", out.size(), " bytes, full size ", full);
  } else {
    VFU_FUZZ_CHECK(
        kind == RegionIoFdsReplyKind::kHeaderOnly && out.size() == wire::kRegionIoFdsHeaderSize,
        "header-only reply of ", out.size(), " bytes");
  }
  const absl::StatusOr<RegionIoFdsReply> back = wire::DecodeRegionIoFdsReply(out, num_fds);
  VFU_FUZZ_CHECK(back.ok(), "own reply rejected: ", back.status().ToString(), " ", Hex(out));
  VFU_FUZZ_CHECK(back->argsz == full && back->flags == 0 && back->index == index &&
                     back->count == entries.size(),
                 "reply header argsz ", back->argsz, " index ", back->index, " count ",
                 back->count);
  if (kind == RegionIoFdsReplyKind::kHeaderOnly && !entries.empty()) {
    VFU_FUZZ_CHECK(back->header_only() && back->entries.empty(), "truncated reply has entries");
  }
  return *back;
}

void CheckReply(absl::Span<const uint8_t> payload, size_t num_fds, uint32_t request_argsz) {
  const absl::StatusOr<RegionIoFdsReply> r = wire::DecodeRegionIoFdsReply(payload, num_fds);
  if (!r.ok()) {
    VFU_FUZZ_CHECK(Errno(r.status()) == EINVAL, r.status().ToString());
    return;
  }
  VFU_FUZZ_CHECK(r->argsz >= wire::kRegionIoFdsHeaderSize && r->flags == 0, "reply argsz ",
                 r->argsz, " flags ", r->flags, " accepted");
  if (r->header_only()) {
    VFU_FUZZ_CHECK(
        r->entries.empty() && r->count > 0 && payload.size() == wire::kRegionIoFdsHeaderSize,
        "header-only reply with ", r->entries.size(), " of ", r->count, " entries");
    const uint64_t stride = (r->argsz - wire::kRegionIoFdsHeaderSize) / r->count;
    VFU_FUZZ_CHECK(stride * r->count == r->argsz - wire::kRegionIoFdsHeaderSize &&
                       (stride == wire::kIoFdEntrySpecSize || stride == wire::kIoFdEntryLvuSize),
                   "header-only reply with argsz ", r->argsz, " count ", r->count);
    return;
  }
  VFU_FUZZ_CHECK(payload.size() >= r->argsz || r->count == 0, "payload shorter than argsz");
  for (const IoFdEntry& e : r->entries) {
    VFU_FUZZ_CHECK(e.type == IoFdType::kIoeventfd || e.type == IoFdType::kIoregionfd ||
                       e.type == IoFdType::kShadowIoeventfd,
                   "unknown type ", static_cast<uint32_t>(e.type));
    VFU_FUZZ_CHECK(e.fd_index < num_fds, "fd_index ", e.fd_index, " of ", num_fds, " fds");
    if (e.type == IoFdType::kShadowIoeventfd) {
      VFU_FUZZ_CHECK(e.shadow_mem_fd_index < num_fds, "shadow fd index ", e.shadow_mem_fd_index);
      VFU_FUZZ_CHECK(
          r->argsz - wire::kRegionIoFdsHeaderSize == wire::kIoFdEntryLvuSize * uint64_t{r->count},
          "shadow ioeventfd in a 40-byte entry");
    } else if (r->argsz - wire::kRegionIoFdsHeaderSize ==
               wire::kIoFdEntrySpecSize * uint64_t{r->count}) {
      VFU_FUZZ_CHECK(e.shadow_mem_fd_index == 0 && e.shadow_offset == 0,
                     "40-byte entry with shadow fields");
    }
  }

  const RegionIoFdsReply complete =
      EncodeAndDecode(r->index, r->entries, std::numeric_limits<uint32_t>::max(), num_fds);
  VFU_FUZZ_CHECK(complete.entries == r->entries, "entries round trip differs");
  const RegionIoFdsReply sized = EncodeAndDecode(r->index, r->entries, request_argsz, num_fds);
  if (wire::RegionIoFdsReplyFullSize(r->entries.size()) <= request_argsz) {
    VFU_FUZZ_CHECK(sized.entries == r->entries, "entries round trip for argsz ", request_argsz,
                   " differs");
  }
}

// What the server's device offers.
constexpr uint32_t kMaxFdsToClient = 2;

PciDeviceSpec DoorbellSpec() {
  PciDeviceSpec spec;
  spec.identity = {.vendor_id = 0x1d0f, .device_id = 0x0004, .class_code = 0xff0000};
  spec.bars[0] = {.size = 0x1000};
  spec.bars[2] = {.size = 0x1000};
  spec.ioeventfds = {{.region = 0, .offset = 0x0, .size = 4},
                     {.region = 0, .offset = 0x8, .size = 8, .datamatch = 3},
                     {.region = 0, .offset = 0x10, .size = 2},
                     {.region = 2, .offset = 0x20, .size = 1}};
  return spec;
}

size_t DoorbellsIn(uint32_t region) { return region == 0 ? 3 : region == 2 ? 1 : 0; }

// One device and one negotiated session for the whole run: the command
// changes nothing, so inputs cannot affect each other through them.
struct Server {
  Server()
      : device(DoorbellSpec()),
        session(device, context, context.table(), SessionOptions{}, "fuzz") {
    std::vector<uint8_t> payload;
    wire::EncodeVersionWithJson(0, 2, R"({"capabilities":{"max_msg_fds":2}})", payload);
    const Session::Result r = session.Handle(Command(1, wire::Command::kVersion, payload, {}));
    VFU_FUZZ_CHECK(r.negotiated.has_value(), "negotiation failed");
    session.Attach();
  }

  static InboundMessage Command(uint16_t id, wire::Command cmd, absl::Span<const uint8_t> payload,
                                std::vector<UniqueFd> fds) {
    InboundMessage m;
    m.bytes = wire::StartMessage(payload.size());
    m.bytes.insert(m.bytes.end(), payload.begin(), payload.end());
    wire::FinishMessage(wire::CommandHeader(id, cmd, /*no_reply=*/false), m.bytes);
    m.header = wire::DecodeHeader(m.bytes);
    m.fds = std::move(fds);
    return m;
  }

  PciDevice device;
  testing::LocalDmaContext context;
  Session session;
};

void CheckServer(absl::Span<const uint8_t> payload, size_t num_fds) {
  static Server* const server = new Server();
  FdTracker tracker;
  std::vector<UniqueFd> fds;
  for (size_t i = 0; i < num_fds; ++i) fds.emplace_back(tracker.NewEventFd());
  const Session::Result r = server->session.Handle(
      Server::Command(7, wire::Command::kDeviceGetRegionIoFds, payload, std::move(fds)));
  tracker.CheckAllClosed();
  VFU_FUZZ_CHECK(r.reply.has_value() && !r.close_connection, "no reply, or the connection closed");
  const wire::Header h = wire::DecodeHeader(r.reply->bytes);
  VFU_FUZZ_CHECK(h.is_reply() && h.msg_id == 7 && h.msg_size == r.reply->bytes.size(),
                 "malformed reply header");
  const absl::Span<const uint8_t> reply =
      absl::MakeConstSpan(r.reply->bytes).subspan(wire::kHeaderSize);

  // The model.
  const absl::StatusOr<RegionIoFdsRequest> request = wire::DecodeRegionIoFdsRequest(payload, 0);
  const size_t doorbells = request.ok() ? DoorbellsIn(request->index) : 0;
  const bool accepted = request.ok() && request->index < server->device.num_regions() &&
                        doorbells > 0;
  if (!accepted) {
    VFU_FUZZ_CHECK(h.is_error() && h.error == EINVAL && reply.empty() && r.reply->fds.empty(),
                   "expected EINVAL, got error ", h.error, " with ", reply.size(), " bytes");
    return;
  }
  const uint64_t full = wire::RegionIoFdsReplyFullSize(doorbells);
  if (full > request->argsz) {
    VFU_FUZZ_CHECK(!h.is_error() && reply.size() == wire::kRegionIoFdsHeaderSize &&
                       r.reply->fds.empty(),
                   "argsz ", request->argsz, ": expected the header alone");
    const absl::StatusOr<RegionIoFdsReply> decoded = wire::DecodeRegionIoFdsReply(reply, 0);
    VFU_FUZZ_CHECK(decoded.ok() && decoded->argsz == full && decoded->count == doorbells &&
                       decoded->index == request->index,
                   "header-only reply does not say what is needed");
    return;
  }
  if (doorbells > kMaxFdsToClient) {
    VFU_FUZZ_CHECK(h.is_error() && h.error == E2BIG && r.reply->fds.empty(),
                   "expected E2BIG, got error ", h.error);
    return;
  }
  VFU_FUZZ_CHECK(!h.is_error() && reply.size() == full && r.reply->fds.size() == doorbells,
                 "complete reply of ", reply.size(), " bytes with ", r.reply->fds.size(), " fds");
  const absl::StatusOr<RegionIoFdsReply> decoded =
      wire::DecodeRegionIoFdsReply(reply, r.reply->fds.size());
  VFU_FUZZ_CHECK(decoded.ok() && decoded->entries.size() == doorbells, "own reply rejected");
  for (const IoFdEntry& e : decoded->entries) {
    VFU_FUZZ_CHECK(e.type == IoFdType::kIoeventfd && IsEventfd(r.reply->fds[e.fd_index].get()),
                   "entry at ", e.offset, " is not an ioeventfd");
  }
}

void Run(InputReader& in) {
  const uint8_t selector = in.U8();
  const size_t num_fds = selector & 7;
  const uint32_t request_argsz = wire::kRegionIoFdsHeaderSize + 24 * (selector >> 3);
  const absl::Span<const uint8_t> payload = in.Rest();
  CheckRequest(payload, num_fds);
  CheckReply(payload, num_fds, request_argsz);
  CheckServer(payload, num_fds);
}

}  // namespace
}  // namespace vfu::fuzz

VFU_FUZZ_ENTRY_POINT(vfu::fuzz::Run)
