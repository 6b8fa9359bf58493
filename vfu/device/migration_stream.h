// Framing of the migration stream (proto/migration_stream.proto): chunks
// (vfu.proto.MigrationChunk) to bytes with a length and a CRC-32 each, and
// bytes arriving in pieces of any size back to chunks.
//
//   std::string bytes;
//   AppendMigrationFrame(chunk, bytes);            // source
//
//   MigrationFrameReader reader;                   // destination
//   VFU_RETURN_IF_ERROR(reader.Feed(piece, [&](proto::MigrationChunk c) {...}));
//
// The reader holds at most one frame (kMaxMigrationFrameBytes plus its
// header) however the bytes arrive. Pure: no threads, no IO;
// thread-compatible.
#ifndef VFU_DEVICE_MIGRATION_STREAM_H_
#define VFU_DEVICE_MIGRATION_STREAM_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "proto/migration_stream.pb.h"

namespace vfu {

// MigrationStreamHeader::format_version written and accepted.
inline constexpr uint32_t kMigrationFormatVersion = 1;
// Length and CRC-32, both u32 little-endian.
inline constexpr size_t kMigrationFrameHeaderSize = 8;
// Largest payload of one frame; a longer length field is refused before any
// of it is buffered.
inline constexpr uint32_t kMaxMigrationFrameBytes = 16u << 20;

// Appends one frame holding `chunk` to `out`. The chunk must serialize to
// 1 .. kMaxMigrationFrameBytes bytes (the writer's own chunks do; a larger
// one is a caller bug and aborts).
void AppendMigrationFrame(const proto::MigrationChunk& chunk, std::string& out);

// Incremental decoder of a frame sequence.
class MigrationFrameReader {
 public:
  using ChunkSink = std::function<absl::Status(proto::MigrationChunk chunk)>;

  // Consumes all of `data`, handing each completed chunk to `sink` in order.
  // InvalidArgument, naming the frame, for a length of 0 or above
  // kMaxMigrationFrameBytes, a CRC mismatch or a payload that is not a
  // MigrationChunk with one kind set; the first error of `sink` as it is.
  // After any error the reader is failed: every later Feed returns that
  // error and consumes nothing.
  absl::Status Feed(absl::Span<const uint8_t> data, const ChunkSink& sink);

  // No partial frame is buffered (true before the first byte).
  bool at_frame_boundary() const { return buffered_.empty(); }
  // Chunks handed to the sink so far.
  uint64_t chunks() const { return chunks_; }
  const absl::Status& status() const { return status_; }

 private:
  absl::Status DecodeFrame();

  std::vector<uint8_t> buffered_;  // the frame being assembled, header first
  uint64_t chunks_ = 0;
  absl::Status status_;
  const ChunkSink* sink_ = nullptr;  // during Feed only
};

// Decodes a complete stream held in memory (a saved file, a fuzz input).
// The errors of Feed, and InvalidArgument when it ends inside a frame.
absl::StatusOr<std::vector<proto::MigrationChunk>> DecodeMigrationFrames(
    absl::Span<const uint8_t> data);

}  // namespace vfu

#endif  // VFU_DEVICE_MIGRATION_STREAM_H_
