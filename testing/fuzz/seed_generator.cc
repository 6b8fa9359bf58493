// Writes the seed corpora of the fuzz targets in this directory, built with
// our own encoders: valid messages plus the malformed inputs of PROTOCOL.md
// section 10 (file names say which row). Each file is in the input format
// its fuzzer's header comment describes (usually a selector byte, then a
// payload or a stream).
//
// Regenerate after changing a fuzzer's input format or adding seeds:
//
//   bazel run //testing/fuzz:seed_generator
//
// which rewrites testing/fuzz/corpus/<name>/ in the workspace (pass another
// corpus root as the only argument to write elsewhere). Every directory it
// knows is emptied first, so this file is the only source of the seeds:
// regression inputs found by fuzzing go here too (see Regression()).
#include <linux/vfio.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "vfu/wire/capabilities.h"
#include "vfu/wire/constants.h"
#include "vfu/wire/device_feature.h"
#include "vfu/wire/device_info.h"
#include "vfu/wire/dma_map.h"
#include "vfu/wire/dma_transfer.h"
#include "vfu/wire/dma_unmap.h"
#include "devices/nvme/nvme_defs.h"
#include "vfu/wire/header.h"
#include "vfu/wire/irq.h"
#include "vfu/wire/migration_data.h"
#include "testing/fuzz/migration_fuzz_device.h"
#include "vfu/device/migration_stream.h"
#include "vfu/wire/region_access.h"
#include "vfu/wire/region_info.h"
#include "vfu/wire/region_io_fds.h"
#include "vfu/wire/version.h"

namespace vfu::fuzz {
namespace {

using Bytes = std::vector<uint8_t>;
using wire::Command;

// ------------------------------------------------------------------ helpers

// Little-endian field writer for hand-made (often malformed) payloads.
class Builder {
 public:
  Builder& U8(uint8_t v) { return Raw(&v, 1); }
  Builder& U16(uint16_t v) { return Raw(&v, 2); }
  Builder& U32(uint32_t v) { return Raw(&v, 4); }
  Builder& U64(uint64_t v) { return Raw(&v, 8); }
  Builder& Add(const Bytes& b) {
    bytes_.insert(bytes_.end(), b.begin(), b.end());
    return *this;
  }
  Builder& Text(std::string_view s) { return Raw(s.data(), s.size()); }
  Builder& Fill(size_t n, uint8_t v) {
    bytes_.insert(bytes_.end(), n, v);
    return *this;
  }
  Bytes Done() const { return bytes_; }

 private:
  Builder& Raw(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    bytes_.insert(bytes_.end(), b, b + n);
    return *this;
  }
  Bytes bytes_;
};

Bytes Cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// A selector byte followed by `payload`.
Bytes Sel(uint8_t selector, const Bytes& payload) { return Cat({{selector}, payload}); }

// A whole message: header (msg_size computed) and payload.
Bytes Msg(uint16_t id, uint16_t command, const Bytes& payload, uint32_t flags = 0) {
  Bytes m = wire::StartMessage(payload.size());
  m.insert(m.end(), payload.begin(), payload.end());
  wire::Header h{.msg_id = id, .command = command, .flags = flags};
  wire::FinishMessage(h, m);
  return m;
}

Bytes Msg(uint16_t id, Command command, const Bytes& payload, uint32_t flags = 0) {
  return Msg(id, static_cast<uint16_t>(command), payload, flags);
}

// A bare header with an arbitrary msg_size (possibly a lie).
Bytes RawHeader(uint16_t id, uint16_t command, uint32_t msg_size, uint32_t flags = 0) {
  return Builder().U16(id).U16(command).U32(msg_size).U32(flags).U32(0).Done();
}

Bytes VersionPayload(uint16_t major, uint16_t minor, std::string_view json) {
  Bytes p;
  wire::EncodeVersionWithJson(major, minor, json, p);
  return p;
}

constexpr std::string_view kQemuJson =
    R"({"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576,"pgsizes":4096,)"
    R"("max_dma_maps":65535,"write_multiple":true,)"
    R"("migration":{"pgsize":4096,"max_bitmap_size":268435456}}})";
constexpr std::string_view kLvuReplyJson =
    R"({"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576,)"
    R"("migration":{"pgsize":4096}}})";

Bytes ReadReq(uint32_t region, uint64_t offset, uint32_t count) {
  Bytes p;
  wire::EncodeRegionReadRequest({.offset = offset, .region = region, .count = count}, p);
  return p;
}

Bytes WriteReq(uint32_t region, uint64_t offset, const Bytes& data) {
  Bytes p;
  wire::EncodeRegionWriteRequest({.offset = offset, .region = region, .data = data}, p);
  return p;
}

Bytes RegionInfoReq(uint32_t argsz, uint32_t index) {
  Bytes p;
  wire::EncodeRegionInfoRequest({.argsz = argsz, .index = index}, p);
  return p;
}

Bytes IrqInfoReq(uint32_t argsz, uint32_t index) {
  Bytes p;
  wire::EncodeIrqInfoRequest({.argsz = argsz, .index = index}, p);
  return p;
}

Bytes GetInfoReq(uint32_t argsz = wire::kDeviceInfoSize) {
  Bytes p;
  wire::EncodeDeviceGetInfoRequest({.argsz = argsz}, p);
  return p;
}

Bytes SetIrqs(uint32_t argsz, uint32_t flags, uint32_t index, uint32_t start, uint32_t count,
              const Bytes& data = {}) {
  Bytes p;
  wire::EncodeSetIrqsRequest({.argsz = argsz,
                              .flags = flags,
                              .index = index,
                              .start = start,
                              .count = count,
                              .data = data},
                             p);
  return p;
}

// The message_assembler input for `stream` cut at `cuts` (piece lengths,
// each <= 255; the rest goes in 255-byte pieces), with per-piece control
// bytes (the last one repeats).
Bytes Pieces(uint8_t limit_selector, const Bytes& stream, const std::vector<size_t>& cuts,
             const std::vector<uint8_t>& controls) {
  Bytes out = {limit_selector};
  size_t at = 0, i = 0;
  while (at < stream.size() || i < cuts.size()) {
    const size_t len = std::min<size_t>(i < cuts.size() ? cuts[i] : 255, stream.size() - at);
    const uint8_t control = controls.empty() ? 0 : controls[std::min(i, controls.size() - 1)];
    out.push_back(static_cast<uint8_t>(len));
    out.push_back(control);
    out.insert(out.end(), stream.begin() + at, stream.begin() + at + len);
    at += len;
    ++i;
  }
  return out;
}

// ------------------------------------------------------------------ corpora

using Corpus = std::map<std::string, Bytes>;

Corpus FrameSplitterSeeds() {
  const Bytes get_info = Msg(1, Command::kDeviceGetInfo, GetInfoReq());
  const Bytes version = Msg(0, Command::kVersion, VersionPayload(0, 0, kQemuJson));
  const Bytes read = Msg(2, Command::kRegionRead, ReadReq(0, 0, 4));
  const Bytes reset = Msg(3, Command::kDeviceReset, {});
  const Bytes big_write = Msg(4, Command::kRegionWrite, WriteReq(0, 0, Bytes(100, 0xab)));
  Corpus c;
  c["one_message_default_limit"] = Sel(6, get_info);
  c["version_then_read_limit_4096"] = Sel(4, Cat({version, read}));
  c["oversized_then_small_limit_64"] = Sel(3, Cat({big_write, reset}));
  c["partial_header"] = Sel(5, Bytes(get_info.begin(), get_info.begin() + 10));
  c["partial_body"] = Sel(5, Bytes(version.begin(), version.begin() + 40));
  c["row1_msg_size_0"] = Sel(6, Cat({reset, RawHeader(9, 13, 0)}));
  c["row1_msg_size_15"] = Sel(6, RawHeader(9, 13, 15));
  c["row2_msg_size_max"] = Sel(6, Cat({RawHeader(9, 10, 0xffffffff), Bytes(32, 0)}));
  c["row2_just_above_lvu_limit"] = Sel(6, RawHeader(9, 10, 1048608 + 1));
  c["raw_limit_16_header_only_messages"] =
      Sel(7, Cat({Builder().U32(16).Done(), reset, reset, reset}));
  c["limit_0"] = Sel(0, Cat({reset, get_info}));
  c["limit_15"] = Sel(1, reset);
  c["limit_16"] = Sel(2, Cat({reset, Msg(5, Command::kDeviceReset, {1})}));
  c["exactly_at_limit_needs_body"] = Sel(6, RawHeader(1, 10, 1048608));
  c["row7_reply_and_bad_type"] =
      Sel(6, Cat({Msg(1, Command::kDmaRead, Bytes(16, 0), wire::kTypeReply | wire::kFlagError),
                  Msg(2, Command::kDeviceReset, {}, 2 | wire::kFlagNoReply)}));
  return c;
}

Corpus MessageAssemblerSeeds() {
  const Bytes get_info = Msg(1, Command::kDeviceGetInfo, GetInfoReq());
  const Bytes map = Msg(2, Command::kDmaMap, [] {
    Bytes p;
    wire::EncodeDmaMapRequest({.flags = 3, .addr = 0x10000, .size = 0x1000}, p);
    return p;
  }());
  const Bytes set_irqs =
      Msg(3, Command::kDeviceSetIrqs,
          SetIrqs(20, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, 4, 0, 2));
  const Bytes write = Msg(4, Command::kRegionWrite, WriteReq(0, 8, Bytes(40, 0x11)));
  const Bytes reset = Msg(5, Command::kDeviceReset, {});
  const Bytes three = Cat({get_info, write, reset});
  // Control bits: 0-1 fds, 2 truncated, 3 take, 4 ReceiveSpace/Commit,
  // 5 change the limit.
  Corpus c;
  c["three_messages_one_piece"] = Pieces(6, three, {255}, {8});
  c["one_byte_at_a_time"] = Pieces(6, Cat({get_info, reset}), std::vector<size_t>(48, 1), {8});
  c["header_split_fd_with_first_piece"] =
      Pieces(6, Cat({map, reset}), {5, 11, 20, 255}, {1 | 8, 8, 8, 8});
  c["two_fds_in_piece_with_previous_tail"] =
      Pieces(6, Cat({get_info, set_irqs}), {20, 255}, {8, 2 | 8});
  c["fds_mid_message_are_closed"] = Pieces(6, Cat({write, reset}), {20, 20, 255}, {8, 3 | 8, 8});
  c["row15_truncated_fds"] = Pieces(6, Cat({set_irqs, reset}), {255}, {1 | 4 | 8});
  c["oversized_body_skipped_limit_40"] =
      Pieces(4, Cat({write, get_info}), {10, 10, 30, 255}, {1 | 8, 2, 8, 8});
  c["row1_corrupt_after_valid"] =
      Pieces(6, Cat({get_info, RawHeader(7, 13, 8), reset}), {255}, {8});
  c["receive_space_commit"] = Pieces(6, three, {7, 30, 255}, {16 | 8, 16 | 1, 16 | 8});
  c["empty_piece_with_fds"] = Pieces(6, three, {0, 32, 0, 255}, {3, 8, 2 | 8, 8});
  c["limit_0_all_oversized"] = Pieces(0, three, {255}, {1 | 8});
  c["long_message_many_pieces"] =
      Pieces(6, Cat({Msg(6, Command::kRegionWrite, WriteReq(0, 0, Bytes(1000, 0x5a))), reset}), {},
             {8, 0, 1, 8});
  c["exact_limit_16"] = Pieces(2, Cat({reset, reset, get_info}), {16, 16, 255}, {8});
  // Bit 5: switch the limit to bits 6-7's (16, 64, 4096, 64 KiB + 64).
  c["limit_raised_after_version"] =
      Pieces(5, Cat({get_info, write, reset}), {32, 255}, {8, 32 | 2 << 6 | 8});
  c["limit_lowered_with_bytes_buffered"] =
      Pieces(6, Cat({get_info, write, reset}), {40, 255}, {0, 1 | 32 | 1 << 6 | 8});
  // Selector bit 3: messages above 32 bytes are received in place.
  const Bytes long_write = Msg(6, Command::kRegionWrite, WriteReq(0, 0, Bytes(1000, 0x5a)));
  c["in_place_many_pieces"] = Pieces(6 | 8, Cat({get_info, long_write, reset}),
                                     {7, 30, 100, 255, 1, 255}, {8, 1 | 16 | 8, 16, 8, 16 | 8, 8});
  // The piece that completes the long message starts the next one, whose
  // fds it carries.
  c["in_place_spill_with_next_fds"] =
      Pieces(6 | 8, Cat({long_write, set_irqs, reset}), {200, 255, 255, 255, 100, 255},
             {16 | 8, 16, 16, 8, 2 | 16 | 8, 8});
  c["in_place_limit_lowered_mid_body"] =
      Pieces(6 | 8, Cat({long_write, reset}), {40, 100, 255}, {8, 16 | 32 | 1 << 6 | 8, 8});
  return c;
}

Corpus CapabilitiesSeeds() {
  auto text = [](std::string_view s) { return Bytes(s.begin(), s.end()); };
  Corpus c;
  c["empty_capabilities"] = text(R"({"capabilities":{}})");
  c["empty_object"] = text("{}");
  c["qemu_proposal"] = text(kQemuJson);
  c["lvu_reply"] = text(kLvuReplyJson);
  c["twin_socket_reply"] =
      text(R"({"capabilities":{"max_msg_fds":1,"twin_socket":{"supported":true,"fd_index":0}}})");
  wire::Capabilities all;
  all.max_msg_fds = 1024;
  all.max_data_xfer_size = wire::kMaxDataXferSizeLimit;
  all.max_dma_maps = std::numeric_limits<uint32_t>::max();
  all.pgsizes = std::numeric_limits<uint64_t>::max();
  all.twin_socket = {.supported = true, .fd_index = std::numeric_limits<uint32_t>::max()};
  all.write_multiple = true;
  all.migration = wire::MigrationCapability{.pgsize = 1ull << 63, .max_bitmap_size = 0};
  c["all_members_at_limits"] = text(SerializeCapabilities(all, wire::CapabilityMembers::All()));
  c["row10_number_as_string"] = text(R"({"capabilities":{"max_msg_fds":"8"}})");
  c["row10_number_as_float"] = text(R"({"capabilities":{"max_data_xfer_size":1048576.0}})");
  c["row10_bool_as_number"] = text(R"({"capabilities":{"write_multiple":1}})");
  c["row10_capabilities_not_object"] = text(R"({"capabilities":[1,2]})");
  c["row10_top_level_array"] = text("[{}]");
  c["row10_unparsable"] = text(R"({"capabilities":{"max_msg_fds":8,})");
  c["row12_max_msg_fds_negative"] = text(R"({"capabilities":{"max_msg_fds":-1}})");
  c["row12_max_msg_fds_1025"] = text(R"({"capabilities":{"max_msg_fds":1025}})");
  c["max_data_xfer_size_0"] = text(R"({"capabilities":{"max_data_xfer_size":0}})");
  c["pgsizes_0"] = text(R"({"capabilities":{"pgsizes":0}})");
  c["migration_pgsize_not_power_of_two"] = text(R"({"capabilities":{"migration":{"pgsize":3}}})");
  c["integer_beyond_u64"] = text(R"({"capabilities":{"pgsizes":18446744073709551616}})");
  c["fd_index_beyond_u32"] =
      text(R"({"capabilities":{"twin_socket":{"supported":true,"fd_index":4294967296}}})");
  c["unknown_members_nested"] =
      text(R"({"x":[1,{"y":null}],"capabilities":{"future":{"a":[true]},"max_msg_fds":4}})");
  c["duplicate_keys_last_wins"] = text(R"({"capabilities":{"max_msg_fds":1,"max_msg_fds":9}})");
  c["unicode_escaped_key"] = text(R"({"capabilities":{"max_msg\u005ffds":2}})");
  c["whitespace_everywhere"] =
      text(" {\n\t\"capabilities\" : { \"write_multiple\" : false } }\r\n");
  c["deep_nesting"] = text(std::string(500, '[') + std::string(500, ']'));
  return c;
}

Corpus VersionSeeds() {
  // Selector: 0-1 fds, 2 policy write_multiple, 3 twin, 4-5 migration
  // (1: 4096, 2: 65536), 6 minor 0, 7 4 KiB max_data_xfer_size.
  Corpus c;
  c["qemu_proposal"] = Sel(0, VersionPayload(0, 0, kQemuJson));
  c["qemu_proposal_server_migrates"] = Sel(0x10 | 0x04, VersionPayload(0, 0, kQemuJson));
  c["lvu_reply"] = Sel(0, VersionPayload(0, 2, kLvuReplyJson));
  c["no_json"] = Sel(0, VersionPayload(0, 2, ""));
  c["empty_capabilities"] = Sel(0x40, VersionPayload(0, 5, R"({"capabilities":{}})"));
  c["twin_offered_and_granted"] =
      Sel(0x08, VersionPayload(0, 2, R"({"capabilities":{"twin_socket":{"supported":true}}})"));
  c["twin_reply_with_fd"] = Sel(
      0x08 | 1,
      VersionPayload(0, 2, R"({"capabilities":{"twin_socket":{"supported":true,"fd_index":0}}})"));
  c["row10_payload_3_bytes"] = Sel(0, {0, 0, 0});
  c["row10_json_without_nul"] = Sel(0, Builder().U16(0).U16(2).Text("{}").Done());
  c["row10_nul_inside_json"] =
      Sel(0, Builder().U16(0).U16(2).Text("{}").U8(0).Text("{}").U8(0).Done());
  c["row10_lone_nul"] = Sel(0, Builder().U16(0).U16(2).U8(0).Done());
  c["row10_bad_json"] = Sel(0, VersionPayload(0, 2, R"({"capabilities":{"max_msg_fds":"8"}})"));
  c["row11_major_1"] = Sel(0, VersionPayload(1, 0, "{}"));
  c["row12_migration_pgsize_mismatch"] =
      Sel(0x20, VersionPayload(0, 2, R"({"capabilities":{"migration":{"pgsize":4096}}})"));
  c["row13_version_with_fd"] = Sel(1, VersionPayload(0, 0, kQemuJson));
  c["reply_with_two_fds"] = Sel(2, VersionPayload(0, 0, "{}"));
  c["small_server_limits"] = Sel(0x80 | 0x40, VersionPayload(0, 0, kQemuJson));
  return c;
}

Bytes DmaMapPayload(uint32_t argsz, uint32_t flags, uint64_t offset, uint64_t addr, uint64_t size) {
  Bytes p;
  wire::EncodeDmaMapRequest(
      {.argsz = argsz, .flags = flags, .offset = offset, .addr = addr, .size = size}, p);
  return p;
}

Corpus DmaMapSeeds() {
  constexpr uint32_t kRw = wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite;
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  Corpus c;
  c["rw_no_fd"] = Sel(0, DmaMapPayload(32, kRw, 0, 0x100000, 0x10000));
  c["rw_with_fd_and_offset"] = Sel(1, DmaMapPayload(32, kRw, 0x2000, 0xfee00000, 0x1000));
  c["read_only"] = Sel(0, DmaMapPayload(32, wire::kDmaMapFlagRead, 0, 0, 4096));
  c["row4_payload_31"] = Sel(0, Bytes(31, 0x20));
  c["row5_argsz_31"] = Sel(0, DmaMapPayload(31, kRw, 0, 0, 4096));
  c["row24_lvu_mmap_flag"] = Sel(1, DmaMapPayload(32, kRw | 4, 0, 0, 4096));
  c["row25_size_0"] = Sel(0, DmaMapPayload(32, kRw, 0, 0x1000, 0));
  c["row25_addr_wraps"] = Sel(0, DmaMapPayload(32, kRw, 0, kMax - 0xfff, 0x2000));
  c["file_offset_wraps"] = Sel(1, DmaMapPayload(32, kRw, kMax, 0, 2));
  c["two_fds"] = Sel(2, DmaMapPayload(32, kRw, 0, 0, 4096));
  c["argsz_64_trailing_bytes"] =
      Sel(0, Cat({DmaMapPayload(64, kRw, 0, 0x4000, 0x4000), Bytes(32, 0xee)}));
  c["range_ends_at_top"] = Sel(0, DmaMapPayload(32, kRw, 0, kMax - 0xfff, 0x1000));
  return c;
}

Bytes UnmapPayload(uint32_t argsz, uint32_t flags, uint64_t addr, uint64_t size,
                   std::optional<wire::DmaUnmapBitmap> bitmap = std::nullopt) {
  Bytes p;
  wire::EncodeDmaUnmapRequest(
      {.argsz = argsz, .flags = flags, .addr = addr, .size = size, .bitmap = bitmap}, p);
  return p;
}

Corpus DmaUnmapSeeds() {
  constexpr uint32_t kBitmap = wire::kDmaUnmapFlagGetDirtyBitmap;
  constexpr uint32_t kAll = wire::kDmaUnmapFlagAll;
  Corpus c;
  c["plain"] = Sel(0, UnmapPayload(24, 0, 0x100000, 0x10000));
  c["unmap_all"] = Sel(0, UnmapPayload(24, kAll, 0, 0));
  c["bitmap_1mib_at_4k"] =
      Sel(0, UnmapPayload(72, kBitmap, 0x100000, 1 << 20, wire::DmaUnmapBitmap{4096, 32}));
  c["bitmap_one_page"] = Sel(0, UnmapPayload(48, kBitmap, 0, 4096, wire::DmaUnmapBitmap{4096, 8}));
  c["row4_payload_23"] = Sel(0, Bytes(23, 0));
  c["row4_bitmap_payload_39"] =
      Sel(0, Builder().U32(72).U32(kBitmap).U64(0).U64(4096).Fill(15, 0).Done());
  c["row5_argsz_23"] = Sel(0, UnmapPayload(23, 0, 0, 4096));
  c["row5_argsz_cannot_hold_bitmap"] =
      Sel(0, UnmapPayload(40, kBitmap, 0, 1 << 20, wire::DmaUnmapBitmap{4096, 32}));
  c["row6_argsz_above_1mib"] = Sel(0, UnmapPayload((1 << 20) + 1, 0, 0, 4096));
  c["row28_all_with_range"] = Sel(0, UnmapPayload(24, kAll, 0x1000, 0x1000));
  c["row28_all_with_bitmap"] =
      Sel(0, UnmapPayload(72, kAll | kBitmap, 0, 0, wire::DmaUnmapBitmap{4096, 0}));
  c["row28_unknown_flag"] = Sel(0, UnmapPayload(24, 4, 0, 4096));
  c["row29_pgsize_not_power_of_two"] =
      Sel(0, UnmapPayload(72, kBitmap, 0, 1 << 20, wire::DmaUnmapBitmap{3, 32}));
  c["row29_wrong_bitmap_size"] =
      Sel(0, UnmapPayload(72, kBitmap, 0, 1 << 20, wire::DmaUnmapBitmap{4096, 24}));
  c["bitmap_huge_size_wraps"] =
      Sel(0, UnmapPayload(1 << 20, kBitmap, 0, 1 << 20, wire::DmaUnmapBitmap{4096, ~uint64_t{0}}));
  c["with_fds_ignored"] = Sel(3, UnmapPayload(24, 0, 0, 4096));
  Bytes reply;
  const Bytes bitmap(8, 0x81);
  wire::EncodeDmaUnmapReply({.argsz = 48,
                             .flags = kBitmap,
                             .addr = 0,
                             .size = 4096,
                             .bitmap_pgsize = 4096,
                             .dirty_bitmap = bitmap},
                            reply);
  c["reply_with_bitmap"] = Sel(0, reply);
  c["reply_bitmap_size_lies"] =
      Sel(0, Builder().U32(48).U32(kBitmap).U64(0).U64(4096).U64(4096).U64(16).Fill(8, 0).Done());
  return c;
}

Corpus DeviceInfoSeeds() {
  const Bytes request = GetInfoReq();
  Bytes reply;
  wire::EncodeDeviceGetInfoReply({.argsz = 16,
                                  .flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET,
                                  .num_regions = 9,
                                  .num_irqs = 5},
                                 reply);
  Corpus c;
  c["qemu_request"] = Sel(0, request);
  c["reply"] = Sel(0, reply);
  c["kernel_struct_argsz_20"] = Sel(0, Cat({GetInfoReq(20), Bytes(4, 0)}));
  c["row4_payload_15"] = Sel(0, Bytes(request.begin(), request.begin() + 15));
  c["row5_argsz_15"] = Sel(0, GetInfoReq(15));
  c["row16_with_fds"] = Sel(2, GetInfoReq());
  c["argsz_max"] = Sel(0, GetInfoReq(0xffffffff));
  return c;
}

Corpus RegionInfoSeeds() {
  // Selector: 0-1 fds, 2-7 re-encode argsz = 32 + 8n.
  wire::RegionInfoReply full{
      .flags =
          VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP,
      .index = 2,
      .size = 0x4000,
      .offset = 0x20000,
      .sparse_mmap = std::vector<wire::SparseMmapArea>{{0, 0x1000}, {0x3000, 0x1000}},
      .type = wire::RegionType{.type = 1, .subtype = 5},
      .msix_mappable = true,
  };
  Bytes complete, truncated, sparse_only;
  (void)wire::EncodeRegionInfoReply(full, 0xffffffff, complete);
  (void)wire::EncodeRegionInfoReply(full, 32, truncated);
  wire::RegionInfoReply empty_sparse{.flags = VFIO_REGION_INFO_FLAG_READ,
                                     .index = 0,
                                     .size = 4096,
                                     .sparse_mmap = std::vector<wire::SparseMmapArea>{}};
  (void)wire::EncodeRegionInfoReply(empty_sparse, 0xffffffff, sparse_only);
  constexpr uint32_t kRwCaps = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_CAPS;
  auto fixed = [](uint32_t argsz, uint32_t flags, uint32_t cap_offset) {
    return Builder().U32(argsz).U32(flags).U32(7).U32(cap_offset).U64(256).U64(0).Done();
  };
  auto cap = [](uint16_t id, uint32_t next) { return Builder().U16(id).U16(1).U32(next).Done(); };
  Corpus c;
  c["qemu_request"] = Sel(0, RegionInfoReq(32, 7));
  c["complete_reply_all_caps"] = Sel(1 | (16 << 2), complete);
  c["truncated_reply"] = Sel(0, truncated);
  c["sparse_mmap_no_areas"] = Sel(0, sparse_only);
  c["row4_payload_31"] = Sel(0, Bytes(31, 0));
  c["row5_argsz_31"] = Sel(0, RegionInfoReq(31, 0));
  c["row20_index_huge"] = Sel(0, RegionInfoReq(32, 0xffffffff));
  c["caps_without_offset"] = Sel(0, fixed(48, kRwCaps, 0));
  c["cap_inside_fixed_part"] = Sel(0, Cat({fixed(48, kRwCaps, 16), cap(3, 0), Bytes(8, 0)}));
  c["cap_past_argsz"] = Sel(0, Cat({fixed(36, kRwCaps, 32), cap(3, 0)}));
  c["next_goes_backwards"] = Sel(0, Cat({fixed(48, kRwCaps, 40), Bytes(8, 0), cap(3, 32)}));
  c["duplicate_type"] =
      Sel(0, Cat({fixed(64, kRwCaps, 32), cap(2, 48), Bytes(8, 1), cap(2, 0), Bytes(8, 2)}));
  c["sparse_nr_areas_too_big"] = Sel(
      0, Cat({fixed(64, kRwCaps, 32), cap(1, 0), Builder().U32(1000).U32(0).Done(), Bytes(16, 0)}));
  c["unknown_cap_skipped_unaligned"] = Sel(0, Cat({fixed(60, kRwCaps, 33), Bytes(1, 0), cap(77, 45),
                                                   Bytes(4, 0), cap(3, 0), Bytes(7, 0)}));
  c["overlapping_caps"] = Sel(0, Cat({fixed(48, kRwCaps, 32), cap(2, 36), Bytes(8, 0)}));
  c["reply_with_two_fds"] = Sel(2, complete);
  c["caps_clear_garbage_after"] = Sel(0, Cat({fixed(32, 3, 99), Bytes(40, 0xff)}));
  return c;
}

Corpus RegionIoFdsSeeds() {
  // Selector: 0-2 fds, 3-7 re-encode argsz = 16 + 24n.
  auto request = [](uint32_t argsz, uint32_t flags, uint32_t index, uint32_t count) {
    Bytes p;
    wire::EncodeRegionIoFdsRequest({.argsz = argsz, .flags = flags, .index = index, .count = count},
                                   p);
    return p;
  };
  const std::vector<wire::IoFdEntry> entries = {
      {.offset = 0x10,
       .size = 4,
       .fd_index = 0,
       .type = wire::IoFdType::kIoeventfd,
       .datamatch = 7},
      {.offset = 0x20, .size = 0, .fd_index = 1, .type = wire::IoFdType::kIoregionfd},
      {.offset = 0x30,
       .size = 8,
       .fd_index = 0,
       .type = wire::IoFdType::kShadowIoeventfd,
       .shadow_mem_fd_index = 1,
       .shadow_offset = 0x1000}};
  Bytes complete, header_only;
  (void)wire::EncodeRegionIoFdsReply(0, entries, 0xffffffff, complete);
  (void)wire::EncodeRegionIoFdsReply(0, entries, 16, header_only);
  auto spec_entry = [](uint32_t fd_index, uint32_t type) {
    return Builder().U64(0x40).U64(4).U32(fd_index).U32(type).U32(0).U32(0).U64(9).Done();
  };
  auto reply_header = [](uint32_t argsz, uint32_t count) {
    return Builder().U32(argsz).U32(0).U32(1).U32(count).Done();
  };
  Corpus c;
  c["request"] = Sel(0, request(16, 0, 0, 0));
  c["request_argsz_1mib"] = Sel(0, request(1 << 20, 0, 2, 0));
  c["row6_argsz_above_1mib"] = Sel(0, request((1 << 20) + 1, 0, 0, 0));
  c["row21_flags_set"] = Sel(0, request(16, 1, 0, 0));
  c["row21_count_set"] = Sel(0, request(16, 0, 0, 1));
  c["row4_payload_15"] = Sel(0, Bytes(15, 0));
  c["complete_reply_lvu_layout"] = Sel(2 | (4 << 3), complete);
  c["header_only_reply"] = Sel(0, header_only);
  c["spec_layout_40_byte_entries"] =
      Sel(2, Cat({reply_header(96, 2), spec_entry(0, 0), spec_entry(1, 1)}));
  c["shadow_in_40_byte_entry"] = Sel(2, Cat({reply_header(56, 1), spec_entry(0, 2)}));
  c["fd_index_out_of_range"] = Sel(1, Cat({reply_header(56, 1), spec_entry(1, 0)}));
  c["unknown_type"] = Sel(1, Cat({reply_header(56, 1), spec_entry(0, 3)}));
  c["stride_44"] = Sel(1, Cat({reply_header(60, 1), spec_entry(0, 0), Bytes(4, 0)}));
  c["payload_shorter_than_argsz"] = Sel(1, Cat({reply_header(96, 2), spec_entry(0, 0)}));
  c["count_huge_header_only"] = Sel(0, reply_header(16 + 40 * 100, 0xffffffff));
  return c;
}

Corpus IrqSeeds() {
  // Input: fds byte, vectors byte (255 = UINT32_MAX), payload.
  auto in = [](uint8_t fds, uint8_t vectors, const Bytes& payload) {
    return Cat({{fds, vectors}, payload});
  };
  constexpr uint32_t kEventfdTrigger = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
  constexpr uint32_t kNoneTrigger = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
  constexpr uint32_t kBoolTrigger = VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER;
  Corpus c;
  c["irq_info_msix"] = in(0, 0, IrqInfoReq(16, VFIO_PCI_MSIX_IRQ_INDEX));
  c["irq_info_argsz_15"] = in(0, 0, IrqInfoReq(15, 0));
  c["eventfds_for_two_vectors"] =
      in(2, 4, SetIrqs(20, kEventfdTrigger, VFIO_PCI_MSIX_IRQ_INDEX, 1, 2));
  c["eventfd_deassign"] = in(0, 4, SetIrqs(20, kEventfdTrigger, VFIO_PCI_MSI_IRQ_INDEX, 0, 4));
  c["disable_whole_index"] = in(0, 0, SetIrqs(20, kNoneTrigger, VFIO_PCI_INTX_IRQ_INDEX, 0, 0));
  c["bool_data"] = in(0, 8, SetIrqs(23, kBoolTrigger, VFIO_PCI_MSIX_IRQ_INDEX, 5, 3, {1, 0, 1}));
  c["unmask_intx"] =
      in(0, 1, SetIrqs(20, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0, 0, 1));
  c["row22_bool_payload_mismatch"] =
      in(0, 8, Builder().Add(SetIrqs(22, kBoolTrigger, 2, 0, 3)).U8(1).U8(1).Done());
  c["row22_two_data_types"] =
      in(0, 1, SetIrqs(20, kEventfdTrigger | VFIO_IRQ_SET_DATA_BOOL, 0, 0, 1));
  c["row22_no_action"] = in(0, 1, SetIrqs(20, VFIO_IRQ_SET_DATA_NONE, 0, 0, 1));
  c["row22_index_5"] = in(0, 1, SetIrqs(20, kNoneTrigger, 5, 0, 1));
  c["row22_start_plus_count_overflows"] = in(0, 255, SetIrqs(20, kNoneTrigger, 2, 0xffffffff, 1));
  c["row22_err_with_mask"] = in(
      0, 1,
      SetIrqs(20, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, VFIO_PCI_ERR_IRQ_INDEX, 0, 1));
  c["row22_req_count_2"] = in(0, 1, SetIrqs(20, kNoneTrigger, VFIO_PCI_REQ_IRQ_INDEX, 0, 2));
  c["row22_fds_without_eventfd"] = in(1, 1, SetIrqs(20, kNoneTrigger, 0, 0, 1));
  c["row22_fd_count_mismatch"] = in(3, 8, SetIrqs(20, kEventfdTrigger, 2, 0, 2));
  c["row22_count_0_start_1"] = in(0, 8, SetIrqs(20, kNoneTrigger, 2, 1, 0));
  c["row22_start_at_vector_count"] = in(0, 4, SetIrqs(20, kNoneTrigger, 2, 4, 1));
  c["row22_range_past_vectors"] = in(0, 4, SetIrqs(20, kNoneTrigger, 2, 3, 2));
  c["row22_argsz_19"] = in(0, 1, SetIrqs(19, kNoneTrigger, 0, 0, 1));
  return c;
}

Corpus RegionAccessSeeds() {
  // Selector: 0-2 limit (0,1,8,16,4096,1M,64M,max), 3-5 region size
  // (0,1,8,256,4096,2^32,2^63,max), 6-7 fds.
  auto sel = [](uint8_t limit, uint8_t region, uint8_t fds = 0) {
    return static_cast<uint8_t>(limit | region << 3 | fds << 6);
  };
  Bytes read_reply, write_reply, multi, multi_reply;
  const Bytes four = {1, 2, 3, 4};
  wire::EncodeRegionReadReply({.offset = 0x10, .region = 0, .count = 4}, four, read_reply);
  wire::EncodeRegionWriteReply({.offset = 0x10, .region = 0, .count = 4}, write_reply);
  const Bytes two = {9, 8};
  const Bytes eight = {1, 2, 3, 4, 5, 6, 7, 8};
  wire::EncodeRegionWriteMultiRequest(
      std::vector<wire::RegionWriteMultiEntry>{{.offset = 0, .region = 0, .data = two},
                                               {.offset = 8, .region = 1, .data = eight}},
      multi);
  wire::EncodeRegionWriteMultiReply(2, multi_reply);
  Corpus c;
  c["read_request"] = Sel(sel(4, 4), ReadReq(0, 0x10, 4));
  c["read_request_count_0_at_end"] = Sel(sel(4, 4), ReadReq(0, 4096, 0));
  c["write_request"] = Sel(sel(5, 4, 1), WriteReq(0, 0x10, four));
  c["read_reply"] = Sel(sel(4, 3), read_reply);
  c["write_reply"] = Sel(sel(4, 3), write_reply);
  c["write_multi"] = Sel(sel(4, 4), multi);
  c["write_multi_reply"] = Sel(0, multi_reply);
  c["row4_payload_15"] = Sel(sel(4, 4), Bytes(15, 0));
  c["row17_write_payload_mismatch"] =
      Sel(sel(4, 4), Builder().U64(0).U32(0).U32(8).Fill(4, 0xaa).Done());
  c["row17_offset_plus_count_overflows"] =
      Sel(sel(7, 7), ReadReq(0, std::numeric_limits<uint64_t>::max() - 1, 4));
  c["row17_past_region_end"] = Sel(sel(4, 3), ReadReq(0, 255, 2));
  c["row18_read_count_above_limit"] = Sel(sel(2, 4), ReadReq(0, 0, 9));
  c["row18_write_count_above_limit"] = Sel(sel(1, 4), WriteReq(0, 0, four));
  c["row35_multi_count_9"] = Sel(0, Builder().U64(1).U64(0).U32(0).U32(9).Fill(8, 0).Done());
  c["row35_multi_count_0"] = Sel(0, Builder().U64(1).U64(0).U32(0).U32(0).Fill(8, 0).Done());
  c["row35_multi_wr_cnt_huge"] =
      Sel(0, Builder().U64(0x0aaaaaaaaaaaaaabull).U64(0).U32(0).U32(1).Fill(8, 0).Done());
  c["multi_empty_batch"] = Sel(0, Builder().U64(0).Done());
  return c;
}

Corpus DmaTransferSeeds() {
  // Selector: bit 0 layout (1 = QEMU), bits 1-3 limit (0,1,16,4096,1M,64M,
  // 2^32-1,max).
  using wire::DmaTransferLayout;
  auto sel = [](bool qemu, uint8_t limit) { return static_cast<uint8_t>(qemu | limit << 1); };
  const Bytes data = {0xde, 0xad, 0xbe, 0xef, 1, 2};
  Corpus c;
  for (const bool qemu : {false, true}) {
    const DmaTransferLayout layout = qemu ? DmaTransferLayout::kQemu : DmaTransferLayout::kSpec;
    const std::string tag = qemu ? "qemu_" : "spec_";
    Bytes read_req, read_reply, write_req, write_reply;
    wire::EncodeDmaReadRequest({.address = 0x1000, .count = 6}, layout, read_req);
    wire::EncodeDmaReadReply({.address = 0x1000, .data = data}, layout, read_reply);
    wire::EncodeDmaWriteRequest({.address = 0x2000, .data = data}, layout, write_req);
    wire::EncodeDmaWriteReply({.address = 0x2000, .count = 6, .echoed = !qemu}, layout,
                              write_reply);
    c[tag + "read_request"] = Sel(sel(qemu, 4), read_req);
    c[tag + "read_reply"] = Sel(sel(qemu, 3), read_reply);
    c[tag + "write_request"] = Sel(sel(qemu, 4), write_req);
    c[tag + "write_reply"] = Sel(sel(qemu, 4), write_reply);
    c[tag + "row36_short_read_reply"] =
        Sel(sel(qemu, 4), Bytes(read_reply.begin(), read_reply.end() - 3));
    c[tag + "row36_long_read_reply"] = Sel(sel(qemu, 4), Cat({read_reply, {0}}));
    c[tag + "count_above_limit"] = Sel(sel(qemu, 1), read_req);
  }
  c["spec_count_beyond_u32"] = Sel(sel(false, 7), Builder().U64(0).U64(0x100000000ull).Done());
  c["spec_write_reply_short"] = Sel(sel(false, 4), Bytes(8, 0));
  c["qemu_padding_not_zero"] =
      Sel(sel(true, 4), Builder().U64(0x3000).U32(2).U8(7).U8(7).Fill(4, 0xff).Done());
  return c;
}

Bytes Feature(uint32_t argsz, uint32_t flags, const Bytes& data = {}) {
  return Builder().U32(argsz).U32(flags).Add(data).Done();
}

Corpus DeviceFeatureSeeds() {
  using wire::DeviceFeature;
  using wire::DeviceFeatureFlags;
  constexpr uint32_t kGet = wire::kDeviceFeatureGet;
  constexpr uint32_t kSet = wire::kDeviceFeatureSet;
  constexpr uint32_t kProbe = wire::kDeviceFeatureProbe;
  Bytes start;
  wire::EncodeDeviceFeatureRequest(
      {.argsz = 48,
       .flags = DeviceFeatureFlags(DeviceFeature::kDmaLoggingStart, kSet),
       .data = wire::DmaLoggingControl{.page_size = 4096,
                                       .ranges = {{0x100000, 0x10000}, {0x800000, 0x1000}}}},
      start);
  Bytes report_get, mig_reply, report_reply;
  wire::EncodeDeviceFeatureRequest(
      {.argsz = 64,
       .flags = DeviceFeatureFlags(DeviceFeature::kDmaLoggingReport, kGet),
       .data =
           wire::DmaLoggingReport{.iova = 0, .length = 1 << 20, .page_size = 4096, .bitmap = {}}},
      report_get);
  wire::EncodeDeviceFeatureGetReply(
      {.flags = DeviceFeatureFlags(DeviceFeature::kMigration, kGet),
       .data = wire::FeatureMigration{.flags = wire::kMigrationStopCopy | wire::kMigrationPreCopy}},
      mig_reply);
  const Bytes bitmap(32, 0x0f);
  wire::EncodeDeviceFeatureGetReply(
      {.flags = DeviceFeatureFlags(DeviceFeature::kDmaLoggingReport, kGet),
       .data =
           wire::DmaLoggingReport{
               .iova = 0, .length = 1 << 20, .page_size = 4096, .bitmap = bitmap}},
      report_reply);
  const Bytes stop_state = Builder().U32(VFIO_DEVICE_STATE_STOP).U32(0).Done();
  Corpus c;
  c["probe_migration"] = Feature(8, DeviceFeatureFlags(DeviceFeature::kMigration, kProbe | kGet));
  c["get_migration"] = Feature(16, DeviceFeatureFlags(DeviceFeature::kMigration, kGet));
  c["get_mig_state"] = Feature(16, DeviceFeatureFlags(DeviceFeature::kMigDeviceState, kGet));
  c["set_mig_state_stop"] =
      Feature(16, DeviceFeatureFlags(DeviceFeature::kMigDeviceState, kSet), stop_state);
  c["probe_get_set_mig_state"] =
      Feature(8, DeviceFeatureFlags(DeviceFeature::kMigDeviceState, kProbe | kGet | kSet));
  c["logging_start_two_ranges"] = start;
  c["logging_stop"] = Feature(8, DeviceFeatureFlags(DeviceFeature::kDmaLoggingStop, kSet));
  c["logging_report_get"] = report_get;
  c["get_reply_migration"] = mig_reply;
  c["get_reply_report_with_bitmap"] = report_reply;
  c["row4_payload_7"] = Bytes(7, 0);
  c["row4_set_state_short_data"] =
      Feature(16, DeviceFeatureFlags(DeviceFeature::kMigDeviceState, kSet), Bytes(4, 0));
  c["row5_get_argsz_too_small"] = Feature(15, DeviceFeatureFlags(DeviceFeature::kMigration, kGet));
  c["row5_report_argsz_too_small"] =
      Cat({Builder().U32(40).Done(), Bytes(report_get.begin() + 4, report_get.end())});
  c["row29_report_pgsize_3"] =
      Feature(64, DeviceFeatureFlags(DeviceFeature::kDmaLoggingReport, kGet),
              Builder().U64(0).U64(1 << 20).U64(3).Done());
  c["row30_get_and_set_without_probe"] =
      Feature(16, DeviceFeatureFlags(DeviceFeature::kMigDeviceState, kGet | kSet), stop_state);
  c["row30_unknown_feature_3"] = Feature(16, 3 | kGet);
  c["row30_no_operation"] = Feature(16, DeviceFeatureFlags(DeviceFeature::kMigration, 0));
  c["row30_set_of_get_only"] = Feature(16, DeviceFeatureFlags(DeviceFeature::kMigration, kSet));
  c["row30_unknown_flag_bit"] =
      Feature(16, DeviceFeatureFlags(DeviceFeature::kMigration, kGet) | (1u << 19));
  c["row32_logging_page_size_0"] =
      Feature(24, DeviceFeatureFlags(DeviceFeature::kDmaLoggingStart, kSet),
              Builder().U64(0).U32(0).U32(0).Done());
  c["logging_start_num_ranges_lies"] =
      Feature(40, DeviceFeatureFlags(DeviceFeature::kDmaLoggingStart, kSet),
              Builder().U64(4096).U32(0xffffffff).U32(0).U64(0).U64(4096).Done());
  c["set_state_error"] = Feature(16, DeviceFeatureFlags(DeviceFeature::kMigDeviceState, kSet),
                                 Builder().U32(VFIO_DEVICE_STATE_ERROR).U32(0).Done());
  return c;
}

Corpus MigrationDataSeeds() {
  // Selector: limit (0, 1, 8, 4096, 1M, 64M, 2^32-1, max).
  Bytes read_req, read_reply, write_req;
  const Bytes chunk(24, 0x3c);
  wire::EncodeMigDataReadRequest({.argsz = 8 + 4096, .size = 4096}, read_req);
  wire::EncodeMigDataReadReply({.data = chunk}, read_reply);
  wire::EncodeMigDataWriteRequest({.argsz = 32, .data = chunk}, write_req);
  Corpus c;
  c["read_request"] = Sel(4, read_req);
  c["read_reply"] = Sel(3, read_reply);
  c["write_request"] = Sel(4, write_req);
  c["empty_read_reply_end_of_stream"] = Sel(3, Builder().U32(8).U32(0).Done());
  c["row4_payload_7"] = Sel(4, Bytes(7, 0));
  c["row33_size_above_limit"] = Sel(2, read_req);
  c["row33_write_short"] = Sel(4, Bytes(write_req.begin(), write_req.end() - 1));
  c["write_long"] = Sel(4, Cat({write_req, {0}}));
  c["row5_argsz_below_8_plus_size"] = Sel(4, Builder().U32(100).U32(4096).Done());
  c["argsz_near_u32_max_no_wrap"] = Sel(7, Builder().U32(0xffffffff).U32(0xfffffffc).Done());
  c["read_reply_argsz_lies"] = Sel(3, Builder().U32(9).U32(0).Done());
  return c;
}

Corpus SessionSeeds() {
  // Control: 0 pre-negotiate, 1 offer write_multiple, 2 server
  // write_multiple, 3 256-byte max_data_xfer_size, 4 fds on odd ids,
  // 5 MSG_CTRUNC on ids with bit 1, 6 migration, 7 16-byte BAR0.
  const Bytes version = Msg(1, Command::kVersion, VersionPayload(0, 0, kQemuJson));
  const Bytes get_info = Msg(2, Command::kDeviceGetInfo, GetInfoReq());
  const Bytes write = Msg(4, Command::kRegionWrite, WriteReq(0, 0x10, {1, 2, 3, 4, 5, 6, 7, 8}));
  const Bytes read = Msg(6, Command::kRegionRead, ReadReq(0, 0x0c, 16));
  const Bytes reset = Msg(8, Command::kDeviceReset, {});
  Bytes setup;
  for (uint32_t i = 0; i < wire::kPciNumRegions; ++i) {
    setup = Cat({setup, Msg(100 + i, Command::kDeviceGetRegionInfo, RegionInfoReq(32, i))});
  }
  setup = Cat({setup, Msg(120, Command::kDeviceGetIrqInfo, IrqInfoReq(16, 3)),
               Msg(122, Command::kRegionRead, ReadReq(7, 0, 256))});
  Bytes multi;
  const Bytes two = {0xaa, 0xbb};
  const Bytes eight = {1, 2, 3, 4, 5, 6, 7, 8};
  wire::EncodeRegionWriteMultiRequest(
      std::vector<wire::RegionWriteMultiEntry>{{.offset = 0, .region = 0, .data = two},
                                               {.offset = 4090, .region = 0, .data = eight},
                                               {.offset = 8, .region = 0, .data = two}},
      multi);
  Bytes multi_ok;
  wire::EncodeRegionWriteMultiRequest(
      std::vector<wire::RegionWriteMultiEntry>{{.offset = 0, .region = 0, .data = two},
                                               {.offset = 100, .region = 0, .data = eight}},
      multi_ok);
  constexpr uint32_t kNoReply = wire::kFlagNoReply;
  Corpus c;
  c["qemu_setup_sequence"] = Sel(0, Cat({version, get_info, setup, write, read, reset, read}));
  c["prenegotiated_access"] = Sel(1, Cat({get_info, write, read, reset, read}));
  c["row9_first_not_version"] = Sel(0, Cat({get_info, version}));
  c["row14_second_version"] = Sel(1, Cat({version, get_info}));
  c["row10_bad_json_closes"] = Sel(
      0,
      Cat({Msg(1, Command::kVersion, VersionPayload(0, 0, R"({"capabilities":[]})")), get_info}));
  c["row11_major_1_closes"] =
      Sel(0, Cat({Msg(1, Command::kVersion, VersionPayload(1, 0, "{}")), get_info}));
  c["row13_version_with_fd"] =
      Sel(16, Cat({Msg(3, Command::kVersion, VersionPayload(0, 0, "{}")), get_info}));
  c["write_multi_negotiated"] =
      Sel(1 | 2 | 4, Cat({Msg(9, Command::kRegionWriteMulti, multi_ok),
                          Msg(11, Command::kRegionWriteMulti, multi), read}));
  c["row35_write_multi_not_negotiated"] = Sel(1, Msg(9, Command::kRegionWriteMulti, multi_ok));
  c["posted_writes_then_read"] =
      Sel(1, Cat({Msg(20, Command::kRegionWrite, WriteReq(0, 0x0c, {9, 9, 9, 9}), kNoReply),
                  Msg(21, Command::kRegionWrite, WriteReq(0, 0x18, {7}), kNoReply),
                  Msg(22, Command::kRegionWrite, WriteReq(7, 0, {7}), kNoReply), read}));
  c["row18_small_xfer_limit"] =
      Sel(1 | 8, Cat({Msg(30, Command::kRegionRead, ReadReq(0, 0, 257)),
                      Msg(32, Command::kRegionWrite, WriteReq(0, 0, Bytes(300, 1))), read}));
  // The header alone tells; the body would follow and be skipped.
  c["row2_oversized_header"] = Sel(1, Cat({get_info, RawHeader(33, 10, 0x7fffffff)}));
  c["row2_oversized_before_version"] = Sel(0, RawHeader(1, 1, 0x10000 + 65));
  c["row15_row16_fds"] = Sel(1 | 16 | 32, Cat({Msg(1, Command::kDeviceGetInfo, GetInfoReq()),
                                               Msg(2, Command::kDeviceGetInfo, GetInfoReq()),
                                               Msg(3, Command::kRegionRead, ReadReq(0, 0, 4))}));
  c["row8_unknown_and_unsupported_commands"] =
      Sel(1, Cat({Msg(40, 0, {}), Msg(41, 14, {}), Msg(42, 19, {}),
                  Msg(43, Command::kDmaRead, Builder().U64(0).U64(4).Done()),
                  Msg(44, Command::kDmaMap, DmaMapPayload(32, 3, 0, 0, 4096)),
                  Msg(45, Command::kDeviceSetIrqs,
                      SetIrqs(20, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, 0)),
                  Msg(46, Command::kMigDataRead, Builder().U32(8).U32(0).Done())}));
  c["row17_row19_row20_bad_access"] = Sel(
      1,
      Cat({Msg(50, Command::kRegionRead, ReadReq(0, std::numeric_limits<uint64_t>::max() - 1, 4)),
           Msg(51, Command::kRegionWrite, WriteReq(7, 0, {1})),
           Msg(52, Command::kRegionRead, ReadReq(9, 0, 1)),
           Msg(53, Command::kDeviceGetRegionInfo, RegionInfoReq(32, 9)),
           Msg(54, Command::kDeviceGetIrqInfo, IrqInfoReq(16, 5)),
           Msg(55, Command::kRegionRead, ReadReq(1, 0, 1)), read}));
  c["row7_reply_and_bad_type_dropped"] =
      Sel(1, Cat({Msg(60, Command::kDmaRead, Builder().U64(0).U64(0).Done(), wire::kTypeReply),
                  Msg(61, Command::kDeviceGetInfo, GetInfoReq(), 2), get_info}));
  c["migration_negotiated"] = Sel(0x40, Cat({version, get_info}));
  {
    // Migration with a device that migrates (control bit 6): its stream is
    // BAR0 (4096 bytes; half in PRE_COPY). With bit 6 set, msg_id bit 2
    // makes the device quiesce later and bit 3 makes its quiesce fail:
    // N() ids have neither, D() ids defer, F() ids fail.
    auto N = [](uint16_t n) { return static_cast<uint16_t>(0x1000 + n * 16); };
    auto D = [&N](uint16_t n) { return static_cast<uint16_t>(N(n) | 4); };
    auto F = [&N](uint16_t n) { return static_cast<uint16_t>(N(n) | 8); };
    auto set_state = [](uint16_t id, uint32_t state) {
      Bytes p;
      wire::EncodeDeviceFeatureRequest(
          {.argsz = 16,
           .flags = wire::DeviceFeatureFlags(wire::DeviceFeature::kMigDeviceState,
                                             wire::kDeviceFeatureSet),
           .data = wire::FeatureMigState{.device_state = state}},
          p);
      return Msg(id, Command::kDeviceFeature, p);
    };
    auto get = [](uint16_t id, wire::DeviceFeature feature, uint32_t ops) {
      Bytes p;
      wire::EncodeDeviceFeatureRequest(
          {.argsz = 16, .flags = wire::DeviceFeatureFlags(feature, ops)}, p);
      return Msg(id, Command::kDeviceFeature, p);
    };
    auto mig_read = [](uint16_t id, uint32_t size) {
      Bytes p;
      wire::EncodeMigDataReadRequest({.argsz = 8 + size, .size = size}, p);
      return Msg(id, Command::kMigDataRead, p);
    };
    auto mig_write = [](uint16_t id, const Bytes& data) {
      Bytes p;
      wire::EncodeMigDataWriteRequest(
          {.argsz = static_cast<uint32_t>(8 + data.size()), .data = data}, p);
      return Msg(id, Command::kMigDataWrite, p);
    };
    const Bytes state = get(N(0), wire::DeviceFeature::kMigDeviceState, wire::kDeviceFeatureGet);
    const Bytes data_size = get(N(1), wire::DeviceFeature::kMigDataSize, wire::kDeviceFeatureGet);
    const Bytes bar_write = Msg(N(2), Command::kRegionWrite, WriteReq(0, 0x10, eight));
    const Bytes bar_read = Msg(N(3), Command::kRegionRead, ReadReq(0, 0x0c, 16));
    c["migration_save_pre_copy_then_stop_copy"] = Sel(
        1 | 64,
        Cat({bar_write, get(N(4), wire::DeviceFeature::kMigration, wire::kDeviceFeatureGet),
             set_state(N(5), 6), data_size, mig_read(N(6), 1000), mig_read(N(7), 2000),
             data_size, Msg(N(8), Command::kRegionWrite, WriteReq(0, 0x800, {5, 5, 5, 5})),
             set_state(N(9), 3), state, mig_read(N(10), 1024), mig_read(N(11), 4096),
             mig_read(N(12), 16), set_state(N(13), 1), set_state(N(14), 2), state}));
    c["migration_resume"] = Sel(
        1 | 64, Cat({set_state(N(20), 4), state, mig_write(N(21), Bytes(2048, 0x33)),
                     set_state(N(22), 2), mig_write(N(23), Bytes(2048, 0x44)),
                     mig_write(N(24), Bytes(1, 0x55)), set_state(N(25), 2), state, bar_read}));
    c["migration_state_gating"] = Sel(
        1 | 64,
        Cat({set_state(N(30), 1), get_info, bar_read, bar_write, Msg(N(31), Command::kDeviceReset, {}),
             Msg(N(32), Command::kDmaMap, DmaMapPayload(32, 3, 0, 0x10000, 4096)),
             mig_read(N(33), 8), set_state(N(34), 3), bar_read, mig_read(N(35), 8),
             set_state(N(36), 6), set_state(N(37), 0), set_state(N(38), 5), set_state(N(39), 7),
             set_state(N(40), 8), set_state(N(41), 1), set_state(N(42), 6),
             Msg(N(43), Command::kDeviceReset, {}), state}));
    c["migration_probe_and_unsupported"] = Sel(
        1 | 64,
        Cat({get(N(50), wire::DeviceFeature::kMigDeviceState,
                 wire::kDeviceFeatureProbe | wire::kDeviceFeatureGet | wire::kDeviceFeatureSet),
             get(N(51), wire::DeviceFeature::kMigration,
                 wire::kDeviceFeatureProbe | wire::kDeviceFeatureGet),
             get(N(52), wire::DeviceFeature::kMigDataSize,
                 wire::kDeviceFeatureProbe | wire::kDeviceFeatureGet),
             mig_write(N(53), {1}), mig_read(N(54), 4)}));
    c["quiesce_deferred_and_failed"] = Sel(
        1 | 64,
        Cat({Msg(D(60), Command::kDmaMap, DmaMapPayload(32, 3, 0, 0x10000, 4096)),
             Msg(F(61), Command::kDmaMap, DmaMapPayload(32, 3, 0, 0x20000, 4096)),
             set_state(D(62), 1), set_state(F(63), 2), state, set_state(D(64), 1),
             Msg(D(65), Command::kDmaUnmap, Builder().U32(24).U32(0).U64(0x10000).U64(4096).Done()),
             set_state(N(66), 2), bar_write, Msg(F(67), Command::kDeviceReset, {}), bar_read,
             Msg(D(68) | F(68), Command::kDeviceReset, {}), bar_read,
             Msg(D(69), Command::kDeviceReset, {}), bar_read}));
    c["migration_device_does_not_migrate"] =
        Sel(1, Cat({set_state(N(70), 1), state, data_size, mig_read(N(71), 4),
                    mig_write(N(72), {1}), get_info}));
  }
  c["small_bar_out_of_bounds"] =
      Sel(1 | 128, Cat({Msg(70, Command::kRegionWrite, WriteReq(0, 12, Bytes(8, 3))),
                        Msg(71, Command::kRegionWrite, WriteReq(0, 12, Bytes(4, 3))),
                        Msg(72, Command::kRegionRead, ReadReq(0, 0, 16))}));
  c["row1_corrupt_frame_ends_stream"] = Sel(1, Cat({get_info, RawHeader(80, 4, 4), get_info}));
  c["row3_row4_row5_short_payloads"] =
      Sel(1, Cat({Msg(90, Command::kRegionRead, {}),
                  Msg(91, Command::kDeviceGetRegionInfo, RegionInfoReq(31, 0)),
                  Msg(92, Command::kDeviceGetInfo, Bytes(8, 0)),
                  Msg(93, Command::kDeviceReset, {1, 2, 3}), get_info}));
  c["region_info_argsz_large"] =
      Sel(1, Msg(94, Command::kDeviceGetRegionInfo, RegionInfoReq(4096, 0)));
  c["no_reply_failure_is_silent"] =
      Sel(1, Cat({Msg(95, Command::kRegionRead, ReadReq(3, 0, 4), kNoReply), get_info}));
  return c;
}

Corpus MigrationStreamSeeds() {
  // Selector: piece size (1, 7, 64, 4096, all at once).
  MigrationFuzzDevice source;
  source.state = "seeded";
  const uint8_t command[2] = {0x06, 0x00};  // memory space, bus master
  (void)source.WriteRegion(kConfigRegion, 0x04, command);
  const uint8_t vector_control[4] = {0, 0, 0, 0};  // vector 1 unmasked
  (void)source.WriteRegion(0, 0x1000 + 16 + 12, vector_control);
  absl::Span<uint8_t> memory = source.region_memory(2);
  for (size_t i = 0; i < memory.size(); ++i) memory[i] = static_cast<uint8_t>(i * 13);
  const Bytes stream = SaveWholeStream(source);
  Corpus c;
  c["stream_whole"] = Sel(4, stream);
  c["stream_in_7_byte_pieces"] = Sel(1, stream);
  c["stream_truncated"] = Sel(4, Bytes(stream.begin(), stream.end() - 3));
  Bytes corrupted = stream;
  corrupted[corrupted.size() / 2] ^= 0x10;
  c["stream_corrupted"] = Sel(4, corrupted);
  // Well framed, lying inside: another device type.
  auto chunks = DecodeMigrationFrames(stream);
  if (chunks.ok() && !chunks->empty()) {
    (*chunks)[0].mutable_header()->set_device_type("other");
    std::string reframed;
    for (const auto& chunk : *chunks) AppendMigrationFrame(chunk, reframed);
    c["stream_other_device_type"] = Sel(4, Bytes(reframed.begin(), reframed.end()));
  }
  // The same chunks as {u16 length, payload} records (selector bit 7).
  if (auto whole = DecodeMigrationFrames(stream); whole.ok()) {
    Bytes records;
    for (const auto& chunk : *whole) {
      const std::string payload = chunk.SerializeAsString();
      if (payload.size() > 0xffff) continue;
      records.push_back(static_cast<uint8_t>(payload.size()));
      records.push_back(static_cast<uint8_t>(payload.size() >> 8));
      records.insert(records.end(), payload.begin(), payload.end());
    }
    c["records_framed_by_the_fuzzer"] = Sel(0x80 | 4, records);
  }
  c["length_above_bound"] = Sel(4, Builder().U32(0x7fffffff).U32(0).Done());
  c["empty"] = Sel(4, Bytes());
  return c;
}

// Inputs that once broke an invariant, kept as regression seeds. Each entry:
// corpus name, file name, bytes (see the fuzzer for the format).
struct RegressionSeed {
  const char* corpus;
  const char* name;
  Bytes bytes;
};

// nvme_command: selector, a 64-byte submission entry, client memory at
// 0x100000 (nvme_command_fuzzer.cc).
Bytes NvmeEntry(uint8_t opcode, uint32_t nsid, uint64_t prp1, uint64_t prp2, uint32_t cdw10,
                uint32_t cdw11 = 0, uint32_t cdw12 = 0) {
  nvme::SubmissionEntry sqe = {};
  sqe.opcode = opcode;
  sqe.nsid = nsid;
  sqe.prp1 = prp1;
  sqe.prp2 = prp2;
  sqe.cdw10 = cdw10;
  sqe.cdw11 = cdw11;
  sqe.cdw12 = cdw12;
  const auto* bytes = reinterpret_cast<const uint8_t*>(&sqe);
  return Bytes(bytes, bytes + sizeof sqe);
}

// Memory of `size` bytes with 64-bit `entries` written at `offset`.
Bytes NvmeMemory(size_t size, size_t offset, const std::vector<uint64_t>& entries) {
  Bytes memory(size, 0);
  for (size_t i = 0; i < entries.size(); ++i) {
    std::memcpy(memory.data() + offset + 8 * i, &entries[i], 8);
  }
  return memory;
}

Corpus NvmeCommandSeeds() {
  constexpr uint64_t kBase = 0x100000;
  constexpr uint8_t kAdmin = 1, kNvm = 0, kLba4096 = 8;
  Corpus c;
  c["identify_controller"] =
      Sel(kAdmin, Cat({NvmeEntry(nvme::kAdminIdentify, 0, kBase, 0, 1), Bytes(4096, 0)}));
  c["identify_namespace_crossing_pages"] = Sel(
      kAdmin, Cat({NvmeEntry(nvme::kAdminIdentify, 1, kBase + 0x800, kBase + 0x1000, 0),
                   Bytes(8192, 0)}));
  c["create_cq"] = Sel(kAdmin, NvmeEntry(nvme::kAdminCreateCq, 0, kBase, 0, 1 | (15 << 16),
                                         3 | (1 << 16)));
  c["create_sq_without_cq"] =
      Sel(kAdmin, NvmeEntry(nvme::kAdminCreateSq, 0, kBase, 0, 1 | (15 << 16), 1 | (1 << 16)));
  c["smart_log"] = Sel(kAdmin, Cat({NvmeEntry(nvme::kAdminGetLogPage, 0xffffffff, kBase, 0,
                                              nvme::kLogSmart | (127 << 16)),
                                    Bytes(512, 0)}));
  c["set_number_of_queues"] =
      Sel(kAdmin, NvmeEntry(nvme::kAdminSetFeatures, 0, 0, 0, nvme::kFeatNumberOfQueues, 0x30003));
  c["read_8_blocks"] =
      Sel(kNvm, Cat({NvmeEntry(nvme::kNvmRead, 1, kBase, 0, 0, 0, 7), Bytes(4096, 0)}));
  c["write_4096_lba"] = Sel(kNvm | kLba4096, Cat({NvmeEntry(nvme::kNvmWrite, 1, kBase, 0, 2, 0, 0),
                                                  Bytes(4096, 0x5a)}));
  // 32 KiB: PRP1 page, then a list (at the window's start) of 7 pages.
  c["write_through_prp_list"] =
      Sel(kNvm, Cat({NvmeEntry(nvme::kNvmWrite, 1, kBase + 0x1000, kBase, 0, 0, 63),
                     NvmeMemory(0x9000, 0, {kBase + 0x2000, kBase + 0x3000, kBase + 0x4000,
                                            kBase + 0x5000, kBase + 0x6000, kBase + 0x7000,
                                            kBase + 0x8000})}));
  // The list starts 16 bytes before its page ends: one entry, then a chain.
  c["read_through_chained_list"] =
      Sel(kNvm, Cat({NvmeEntry(nvme::kNvmRead, 1, kBase + 0x2000, kBase + 0xff0, 0, 0, 23),
                     NvmeMemory(0x6000, 0xff0, {kBase + 0x3000, kBase + 0x1000}),
                     Bytes()}));
  c["misaligned_prp2"] =
      Sel(kNvm, Cat({NvmeEntry(nvme::kNvmRead, 1, kBase, kBase + 0x1008, 0, 0, 15),
                     Bytes(0x3000, 0)}));
  c["dsm_deallocate"] =
      Sel(kNvm, Cat({NvmeEntry(nvme::kNvmDatasetManagement, 1, kBase, 0, 0, nvme::kDsmDeallocate),
                     NvmeMemory(16, 0, {uint64_t{8} << 32, 16})}));
  c["write_zeroes_past_end"] =
      Sel(kNvm, NvmeEntry(nvme::kNvmWriteZeroes, 1, 0, 0, 0xfffffff0, 0, 0xffff));
  return c;
}

std::vector<RegressionSeed> Regression() { return {}; }

// ------------------------------------------------------------------ output

void WriteCorpus(const std::filesystem::path& root, const std::string& name, const Corpus& corpus) {
  const std::filesystem::path dir = root / name;
  std::filesystem::create_directories(dir);
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.is_regular_file()) std::filesystem::remove(entry.path());
  }
  for (const auto& [file, bytes] : corpus) {
    std::ofstream out(dir / file, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", (dir / file).c_str());
      std::exit(1);
    }
  }
  std::printf("%-20s %zu seeds\n", name.c_str(), corpus.size());
}

int Main(int argc, char** argv) {
  std::filesystem::path root;
  if (argc > 1) {
    root = argv[1];
  } else if (const char* workspace = std::getenv("BUILD_WORKSPACE_DIRECTORY")) {
    root = std::filesystem::path(workspace) / "testing/fuzz/corpus";
  } else {
    std::fprintf(stderr, "usage: seed_generator [CORPUS_ROOT] (or run it with bazel run)\n");
    return 2;
  }
  std::map<std::string, Corpus> all = {
      {"frame_splitter", FrameSplitterSeeds()},
      {"message_assembler", MessageAssemblerSeeds()},
      {"capabilities", CapabilitiesSeeds()},
      {"version", VersionSeeds()},
      {"dma_map", DmaMapSeeds()},
      {"dma_unmap", DmaUnmapSeeds()},
      {"device_info", DeviceInfoSeeds()},
      {"region_info", RegionInfoSeeds()},
      {"region_io_fds", RegionIoFdsSeeds()},
      {"irq", IrqSeeds()},
      {"region_access", RegionAccessSeeds()},
      {"dma_transfer", DmaTransferSeeds()},
      {"device_feature", DeviceFeatureSeeds()},
      {"migration_data", MigrationDataSeeds()},
      {"migration_stream", MigrationStreamSeeds()},
      {"session", SessionSeeds()},
      {"nvme_command", NvmeCommandSeeds()},
  };
  for (RegressionSeed& seed : Regression()) {
    all[seed.corpus][absl::StrCat("regression_", seed.name)] = std::move(seed.bytes);
  }
  for (const auto& [name, corpus] : all) WriteCorpus(root, name, corpus);
  return 0;
}

}  // namespace
}  // namespace vfu::fuzz

int main(int argc, char** argv) { return vfu::fuzz::Main(argc, argv); }
