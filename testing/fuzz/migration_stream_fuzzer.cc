// Fuzzes the migration stream decoder (vfu/device/migration_stream.h) and
// its loading into a device (MigrationLoader, PciDevice's restore): the
// input is what a hostile client could MIG_DATA_WRITE.
//
// Input: one selector byte, then the stream. Selector bits 0-6 (mod 5): the
// size of the pieces the stream is written in (1, 7, 64, 4096 or all at
// once). Bit 7: the rest is records of {u16 length, payload}, each framed
// here with a correct length and CRC, so mutations reach the chunks'
// contents instead of dying at the CRC.
//
// Checks:
//  - the frame reader fed in pieces yields the same chunks as one decode of
//    the whole input, or both fail;
//  - loading into MigrationFuzzDevice (RUNNING -> STOP -> RESUMING, the
//    pieces, RESUMING -> STOP) succeeds or fails with EINVAL, never crashes;
//  - a stream it accepts leaves a device that saves a stream another
//    device accepts too, with the same config space, region memory and
//    device state.
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "testing/fuzz/fuzz_util.h"
#include "testing/fuzz/migration_fuzz_device.h"
#include "vfu/device/migration_stream.h"

namespace vfu::fuzz {
namespace {

using S = MigrationState;

absl::Status Load(PciDevice& device, absl::Span<const uint8_t> stream, size_t piece) {
  VFU_FUZZ_CHECK(device.OnMigrationArc(S::kRunning, S::kStop).ok() &&
                     device.OnMigrationArc(S::kStop, S::kResuming).ok(),
                 "cannot enter RESUMING");
  while (!stream.empty()) {
    const absl::Span<const uint8_t> part = stream.subspan(0, piece);
    VFU_FUZZ_CHECK(device.WriteMigrationData(part).ok(), "a write was refused");
    stream.remove_prefix(part.size());
  }
  return device.OnMigrationArc(S::kResuming, S::kStop);
}

std::vector<uint8_t> Config(PciDevice& device) {
  std::vector<uint8_t> config(4096);
  VFU_FUZZ_CHECK(device.ReadRegion(kConfigRegion, 0, absl::MakeSpan(config)).ok(),
                 "config read failed");
  return config;
}

// Frames each {u16 length, payload} record of `in` (a payload that does not
// parse as a chunk is framed as it is, and refused later).
std::vector<uint8_t> Frame(InputReader& in) {
  std::string framed;
  while (!in.empty()) {
    const uint16_t length = in.U16();
    const absl::Span<const uint8_t> payload = in.Take(length);
    proto::MigrationChunk chunk;
    if (chunk.ParseFromArray(payload.data(), static_cast<int>(payload.size())) &&
        chunk.kind_case() != proto::MigrationChunk::KIND_NOT_SET) {
      AppendMigrationFrame(chunk, framed);
    }
  }
  return std::vector<uint8_t>(framed.begin(), framed.end());
}

void Run(InputReader& in) {
  static constexpr size_t kPieces[] = {1, 7, 64, 4096, SIZE_MAX};
  const uint8_t selector = in.U8();
  const size_t piece = kPieces[(selector & 0x7f) % 5];
  std::vector<uint8_t> framed;
  if ((selector & 0x80) != 0) framed = Frame(in);
  const absl::Span<const uint8_t> stream =
      (selector & 0x80) != 0 ? absl::Span<const uint8_t>(framed) : in.Rest();

  // Framing: pieces and whole agree.
  const absl::StatusOr<std::vector<proto::MigrationChunk>> whole = DecodeMigrationFrames(stream);
  MigrationFrameReader reader;
  std::vector<proto::MigrationChunk> chunks;
  absl::Status fed;
  for (absl::Span<const uint8_t> rest = stream; !rest.empty() && fed.ok();) {
    const absl::Span<const uint8_t> part = rest.subspan(0, piece);
    fed = reader.Feed(part, [&](proto::MigrationChunk c) {
      chunks.push_back(std::move(c));
      return absl::OkStatus();
    });
    rest.remove_prefix(part.size());
  }
  const bool pieces_ok = fed.ok() && reader.at_frame_boundary();
  VFU_FUZZ_CHECK(pieces_ok == whole.ok(), "pieces ", pieces_ok, " whole ", whole.ok());
  if (whole.ok()) {
    VFU_FUZZ_CHECK(chunks.size() == whole->size(), "chunk counts differ");
    for (size_t i = 0; i < chunks.size(); ++i) {
      VFU_FUZZ_CHECK(chunks[i].SerializeAsString() == (*whole)[i].SerializeAsString(),
                     "chunk ", i, " differs");
    }
  }

  MigrationFuzzDevice device;
  const absl::Status loaded = Load(device, stream, piece);
  if (!loaded.ok()) {
    VFU_FUZZ_CHECK(Errno(loaded) == EINVAL, loaded.ToString());
    return;
  }
  VFU_FUZZ_CHECK(whole.ok(), "a stream that does not decode was accepted");
  // What it accepted, it can pass on.
  const std::vector<uint8_t> again = SaveWholeStream(device);
  MigrationFuzzDevice next;
  const absl::Status reloaded = Load(next, again, SIZE_MAX);
  VFU_FUZZ_CHECK(reloaded.ok(), "its own stream refused: ", reloaded.ToString());
  VFU_FUZZ_CHECK(Config(next) == Config(device), "config space differs after a second hop");
  VFU_FUZZ_CHECK(next.state == device.state, "device state differs after a second hop");
  const absl::Span<uint8_t> a = device.region_memory(2);
  const absl::Span<uint8_t> b = next.region_memory(2);
  VFU_FUZZ_CHECK(a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0,
                 "region memory differs after a second hop");
}

}  // namespace
}  // namespace vfu::fuzz

VFU_FUZZ_ENTRY_POINT(vfu::fuzz::Run)
