#include "vfu/device/migration_stream.h"

#include <zlib.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "vfu/base/check.h"

namespace vfu {
namespace {

uint32_t Crc32(const uint8_t* data, size_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib takes uInt lengths; frames are far below 4 GiB.
  return static_cast<uint32_t>(crc32(crc, data, static_cast<uInt>(size)));
}

void PutU32(uint32_t value, uint8_t* out) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<uint8_t>(value >> (8 * i));
}

uint32_t GetU32(const uint8_t* in) {
  return uint32_t{in[0]} | uint32_t{in[1]} << 8 | uint32_t{in[2]} << 16 | uint32_t{in[3]} << 24;
}

}  // namespace

void AppendMigrationFrame(const proto::MigrationChunk& chunk, std::string& out) {
  const size_t size = chunk.ByteSizeLong();
  VFU_CHECK(size > 0 && size <= kMaxMigrationFrameBytes, "migration chunk of bad size");
  const size_t start = out.size();
  out.resize(start + kMigrationFrameHeaderSize + size);
  auto* frame = reinterpret_cast<uint8_t*>(out.data() + start);
  VFU_CHECK(chunk.SerializeToArray(frame + kMigrationFrameHeaderSize, static_cast<int>(size)),
            "migration chunk serialization failed");
  PutU32(static_cast<uint32_t>(size), frame);
  PutU32(Crc32(frame + kMigrationFrameHeaderSize, size), frame + 4);
}

absl::Status MigrationFrameReader::Feed(absl::Span<const uint8_t> data, const ChunkSink& sink) {
  if (!status_.ok()) return status_;
  sink_ = &sink;
  while (!data.empty()) {
    // Header first, then exactly the payload it announces.
    size_t want = kMigrationFrameHeaderSize;
    if (buffered_.size() >= kMigrationFrameHeaderSize) {
      want += GetU32(buffered_.data());
    }
    const size_t take = std::min(want - buffered_.size(), data.size());
    buffered_.insert(buffered_.end(), data.begin(), data.begin() + take);
    data.remove_prefix(take);
    if (buffered_.size() == kMigrationFrameHeaderSize) {
      const uint32_t length = GetU32(buffered_.data());
      if (length == 0 || length > kMaxMigrationFrameBytes) {
        status_ = absl::InvalidArgumentError(absl::StrCat(
            "migration stream: frame ", chunks_ + 1, " announces ", length,
            " bytes (1 to ", kMaxMigrationFrameBytes, " allowed)"));
        break;
      }
      buffered_.reserve(kMigrationFrameHeaderSize + length);
      continue;
    }
    if (buffered_.size() > kMigrationFrameHeaderSize &&
        buffered_.size() == kMigrationFrameHeaderSize + GetU32(buffered_.data())) {
      status_ = DecodeFrame();
      if (!status_.ok()) break;
    }
  }
  sink_ = nullptr;
  if (!status_.ok()) buffered_.clear();
  return status_;
}

absl::Status MigrationFrameReader::DecodeFrame() {
  const uint8_t* payload = buffered_.data() + kMigrationFrameHeaderSize;
  const size_t size = buffered_.size() - kMigrationFrameHeaderSize;
  const uint64_t frame = chunks_ + 1;
  if (Crc32(payload, size) != GetU32(buffered_.data() + 4)) {
    return absl::InvalidArgumentError(
        absl::StrCat("migration stream: frame ", frame, " is corrupted (CRC-32 mismatch)"));
  }
  proto::MigrationChunk chunk;
  if (!chunk.ParseFromArray(payload, static_cast<int>(size)) ||
      chunk.kind_case() == proto::MigrationChunk::KIND_NOT_SET) {
    return absl::InvalidArgumentError(
        absl::StrCat("migration stream: frame ", frame, " holds no migration chunk"));
  }
  buffered_.clear();
  ++chunks_;
  return (*sink_)(std::move(chunk));
}

absl::StatusOr<std::vector<proto::MigrationChunk>> DecodeMigrationFrames(
    absl::Span<const uint8_t> data) {
  std::vector<proto::MigrationChunk> chunks;
  MigrationFrameReader reader;
  absl::Status status = reader.Feed(data, [&](proto::MigrationChunk chunk) {
    chunks.push_back(std::move(chunk));
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  if (!reader.at_frame_boundary()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "migration stream: truncated inside frame ", reader.chunks() + 1));
  }
  return chunks;
}

}  // namespace vfu
