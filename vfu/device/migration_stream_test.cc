#include "vfu/device/migration_stream.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"

namespace vfu {
namespace {

using ::testing::HasSubstr;
using ::vfu::testing::IsOk;
using ::vfu::testing::StatusIs;

std::string TwoChunks() {
  proto::MigrationChunk header;
  header.mutable_header()->set_format_version(kMigrationFormatVersion);
  header.mutable_header()->set_device_type("gpio");
  proto::MigrationChunk pages;
  pages.mutable_region_pages()->set_region(2);
  pages.mutable_region_pages()->set_data(std::string(5000, 'x'));
  std::string bytes;
  AppendMigrationFrame(header, bytes);
  AppendMigrationFrame(pages, bytes);
  return bytes;
}

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// Frames come back whole and in order whatever the piece sizes.
TEST(MigrationStreamTest, FramesSurviveAnySplit) {
  const std::string bytes = TwoChunks();
  for (size_t piece : {size_t{1}, size_t{3}, size_t{8}, size_t{4096}, bytes.size()}) {
    MigrationFrameReader reader;
    std::vector<proto::MigrationChunk> chunks;
    for (size_t at = 0; at < bytes.size(); at += piece) {
      ASSERT_THAT(reader.Feed(Bytes(bytes).subspan(at, piece),
                              [&](proto::MigrationChunk c) {
                                chunks.push_back(std::move(c));
                                return absl::OkStatus();
                              }),
                  IsOk());
    }
    EXPECT_TRUE(reader.at_frame_boundary());
    ASSERT_EQ(chunks.size(), 2u) << "piece " << piece;
    EXPECT_EQ(chunks[0].header().device_type(), "gpio");
    EXPECT_EQ(chunks[1].region_pages().data(), std::string(5000, 'x'));
  }
}

// One flipped bit anywhere in a payload fails its CRC.
TEST(MigrationStreamTest, CorruptedPayloadIsRefused) {
  std::string bytes = TwoChunks();
  bytes[bytes.size() - 100] ^= 0x10;
  EXPECT_THAT(DecodeMigrationFrames(Bytes(bytes)).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(DecodeMigrationFrames(Bytes(bytes)).status().message(), HasSubstr("CRC-32"));
}

// A length field beyond the bound is refused before anything is buffered.
TEST(MigrationStreamTest, OversizedLengthIsRefusedAtTheHeader) {
  std::string bytes = "\xff\xff\xff\x7f\0\0\0\0";
  bytes.resize(8);
  MigrationFrameReader reader;
  absl::Status status = reader.Feed(Bytes(bytes), [](proto::MigrationChunk) {
    return absl::OkStatus();
  });
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  // Failed for good.
  EXPECT_THAT(reader.Feed(Bytes(TwoChunks()), [](proto::MigrationChunk) {
    return absl::OkStatus();
  }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(reader.chunks(), 0u);
}

TEST(MigrationStreamTest, TruncatedStreamIsRefused) {
  const std::string bytes = TwoChunks();
  EXPECT_THAT(DecodeMigrationFrames(Bytes(bytes).subspan(0, bytes.size() - 1)).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(auto chunks, DecodeMigrationFrames(Bytes(bytes)));
  EXPECT_EQ(chunks.size(), 2u);
}

// A sink's error stops the reader and is returned as it is.
TEST(MigrationStreamTest, SinkErrorStopsTheReader) {
  MigrationFrameReader reader;
  int calls = 0;
  absl::Status status = reader.Feed(Bytes(TwoChunks()), [&](proto::MigrationChunk) {
    ++calls;
    return absl::FailedPreconditionError("no");
  });
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace vfu
