// The two ends of a stream together: what the saver writes, the loader
// accepts and restores; what another device, version or a damaged stream
// carries, the loader refuses with a message that says why.
#include <cstring>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/device/migration_loader.h"
#include "vfu/device/migration_saver.h"
#include "vfu/device/migration_stream.h"

namespace vfu {
namespace {

using ::testing::HasSubstr;
using ::vfu::testing::IsOk;
using ::vfu::testing::StatusIs;

constexpr uint64_t kPage = 4096;
constexpr uint64_t kRegionSize = 64 * kPage;

proto::MigrationStreamHeader Header() {
  proto::MigrationStreamHeader h;
  h.set_format_version(kMigrationFormatVersion);
  h.set_vendor_id(0xf00d);
  h.set_device_id(1);
  h.set_class_code(0x088000);
  h.set_device_type("test");
  h.set_device_version(2);
  h.set_config_space_size(256);
  h.set_msix_vectors(2);
  proto::MigrationRegionLayout* region = h.add_memory_regions();
  region->set_index(2);
  region->set_size(kRegionSize);
  return h;
}

class SaverLoaderTest : public ::testing::Test {
 protected:
  SaverLoaderTest() : memory_(kRegionSize, 0) {
    for (size_t i = 0; i < memory_.size(); ++i) memory_[i] = static_cast<uint8_t>(i * 7);
  }

  MigrationSaver::Sources Sources() {
    MigrationSaver::Sources s;
    s.header = Header();
    s.regions = {{.index = 2, .memory = memory_}};
    s.framework_state = [] {
      proto::MigrationFrameworkState f;
      f.set_config_space(std::string(256, '\x11'));
      f.set_msix_table(std::string(32, '\x22'));
      f.set_msix_table_written(true);
      proto::MigrationPendingIrq* irq = f.add_pending();
      irq->set_index(2);
      irq->set_vector(1);
      return f;
    };
    s.device_state = [this](bool final, std::string& out) {
      if (final) {
        out = "final-state";
      } else if (precopy_piece_) {
        out = "precopy-piece";
        precopy_piece_ = false;
      }
      return absl::OkStatus();
    };
    s.device_pending = [] { return uint64_t{0}; };
    return s;
  }

  // Reads until a short read, in pieces of `piece` bytes.
  std::string ReadRound(MigrationSaver& saver, size_t piece) {
    std::string out;
    std::vector<uint8_t> buffer(piece);
    while (true) {
      absl::StatusOr<size_t> n = saver.Read(absl::MakeSpan(buffer));
      EXPECT_THAT(n.status(), IsOk());
      if (!n.ok()) return out;
      out.append(reinterpret_cast<const char*>(buffer.data()), *n);
      if (*n < piece) return out;
    }
  }

  MigrationLoader::Expectation Expect() {
    return {.header = Header(), .irq_vectors = {0, 0, 2}};
  }

  static absl::Span<const uint8_t> Bytes(const std::string& s) {
    return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }

  std::vector<uint8_t> memory_;
  bool precopy_piece_ = true;
};

// Pre-copy sends everything once, then only what changed; stop-copy sends
// the rest; the loader ends up with the memory as it was at stop-copy.
TEST_F(SaverLoaderTest, PreCopyRoundsSendChangedPagesAndLoadRestoresThem) {
  MigrationSaver saver(Sources());
  saver.BeginPreCopy();
  const std::string round1 = ReadRound(saver, 100000);
  EXPECT_GT(round1.size(), kRegionSize);
  EXPECT_EQ(saver.region_bytes_sent(), kRegionSize);

  memory_[3 * kPage + 1] ^= 0xff;
  EXPECT_EQ(saver.Estimate(), kPage);
  const std::string round2 = ReadRound(saver, 777);
  EXPECT_EQ(saver.region_bytes_sent(), kRegionSize + kPage);
  EXPECT_LT(round2.size(), 2 * kPage);

  // Nothing changed: an empty round.
  EXPECT_EQ(ReadRound(saver, 4096), "");

  memory_[60 * kPage] ^= 0xff;
  saver.BeginStopCopy();
  const std::string rest = ReadRound(saver, 65536);
  EXPECT_EQ(saver.region_bytes_sent(), kRegionSize + 2 * kPage);
  EXPECT_EQ(saver.rounds(), 4u);

  MigrationLoader loader(Expect());
  loader.Write(Bytes(round1));
  loader.Write(Bytes(round2));
  loader.Write(Bytes(rest));
  ASSERT_OK_AND_ASSIGN(MigrationLoader::Loaded loaded, loader.Finish());
  ASSERT_EQ(loaded.regions.size(), 1u);
  const MigrationLoader::StagedRegion& staged = loaded.regions.at(2);
  EXPECT_EQ(staged.pages_present, kRegionSize / kPage);
  ASSERT_EQ(staged.bytes.size(), memory_.size());
  EXPECT_EQ(std::memcmp(staged.bytes.data(), memory_.data(), memory_.size()), 0);
  EXPECT_EQ(loaded.device_pieces, (std::vector<std::string>{"precopy-piece", "final-state"}));
  EXPECT_EQ(loaded.framework.pending_size(), 1);
  EXPECT_TRUE(loaded.framework.msix_table_written());
}

// STOP -> STOP_COPY with no pre-copy: the whole state in one go.
TEST_F(SaverLoaderTest, StopCopyAloneCarriesEverything) {
  MigrationSaver saver(Sources());
  saver.BeginStopCopy();
  const std::string stream = ReadRound(saver, 1 << 20);
  MigrationLoader loader(Expect());
  loader.Write(Bytes(stream));
  ASSERT_OK_AND_ASSIGN(MigrationLoader::Loaded loaded, loader.Finish());
  EXPECT_EQ(loaded.regions.at(2).pages_present, kRegionSize / kPage);
  EXPECT_EQ(loaded.device_pieces.back(), "final-state");
}

class RefusalTest : public SaverLoaderTest {
 protected:
  std::string Stream(proto::MigrationStreamHeader header) {
    MigrationSaver::Sources s = Sources();
    s.header = std::move(header);
    MigrationSaver saver(std::move(s));
    saver.BeginStopCopy();
    return ReadRound(saver, 1 << 20);
  }
  absl::Status Load(const std::string& stream) {
    MigrationLoader loader(Expect());
    loader.Write(Bytes(stream));
    return loader.Finish().status();
  }
};

TEST_F(RefusalTest, AnotherDeviceTypeIsRefused) {
  proto::MigrationStreamHeader h = Header();
  h.set_device_type("gpio");
  const absl::Status status = Load(Stream(h));
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(status.message(), HasSubstr("from device \"gpio\""));
}

TEST_F(RefusalTest, AnotherFormatVersionIsRefused) {
  proto::MigrationStreamHeader h = Header();
  h.set_format_version(kMigrationFormatVersion + 1);
  EXPECT_THAT(Load(Stream(h)).message(), HasSubstr("format version"));
}

TEST_F(RefusalTest, NewerDeviceVersionIsRefusedOlderAccepted) {
  proto::MigrationStreamHeader h = Header();
  h.set_device_version(3);
  EXPECT_THAT(Load(Stream(h)).message(), HasSubstr("newer"));
  h.set_device_version(1);
  EXPECT_THAT(Load(Stream(h)), IsOk());
}

TEST_F(RefusalTest, TruncatedStreamIsRefused) {
  const std::string stream = Stream(Header());
  // Cut inside the last frame, and cut exactly before the end frame.
  EXPECT_THAT(Load(stream.substr(0, stream.size() - 3)).message(), HasSubstr("truncated"));
  auto chunks = DecodeMigrationFrames(Bytes(stream));
  ASSERT_TRUE(chunks.ok());
  std::string without_end;
  for (size_t i = 0; i + 1 < chunks->size(); ++i) AppendMigrationFrame((*chunks)[i], without_end);
  EXPECT_THAT(Load(without_end).message(), HasSubstr("truncated"));
}

TEST_F(RefusalTest, CorruptedByteIsRefused) {
  std::string stream = Stream(Header());
  stream[stream.size() / 2] ^= 0x40;
  EXPECT_THAT(Load(stream).message(), HasSubstr("corrupted"));
}

// Well-framed chunks with lying contents: each is caught by its check.
TEST_F(RefusalTest, ChunksThatDoNotFitThisDeviceAreRefused) {
  auto with = [&](auto mutate) {
    auto chunks = DecodeMigrationFrames(Bytes(Stream(Header())));
    EXPECT_TRUE(chunks.ok());
    mutate(*chunks);
    std::string out;
    for (const auto& c : *chunks) AppendMigrationFrame(c, out);
    return Load(out);
  };
  auto find = [](std::vector<proto::MigrationChunk>& chunks, proto::MigrationChunk::KindCase k)
      -> proto::MigrationChunk& {
    for (auto& c : chunks) {
      if (c.kind_case() == k) return c;
    }
    ADD_FAILURE() << "no chunk of kind " << k;
    return chunks.front();
  };
  EXPECT_THAT(with([&](auto& c) {
                find(c, proto::MigrationChunk::kRegionPages).mutable_region_pages()->set_region(3);
              }).message(),
              HasSubstr("region 3"));
  EXPECT_THAT(with([&](auto& c) {
                find(c, proto::MigrationChunk::kRegionPages).mutable_region_pages()->set_offset(
                    kRegionSize - kPage);
              }).message(),
              HasSubstr("do not fit"));
  EXPECT_THAT(with([&](auto& c) {
                find(c, proto::MigrationChunk::kFrameworkState)
                    .mutable_framework_state()
                    ->mutable_pending(0)
                    ->set_vector(2);
              }).message(),
              HasSubstr("pending interrupt"));
  EXPECT_THAT(with([&](auto& c) {
                find(c, proto::MigrationChunk::kFrameworkState)
                    .mutable_framework_state()
                    ->set_config_space("short");
              }).message(),
              HasSubstr("config space"));
  EXPECT_THAT(with([&](auto& c) { c.erase(c.begin()); }).message(), HasSubstr("header"));
  EXPECT_THAT(with([&](auto& c) { c.push_back(c.front()); }).message(), HasSubstr("after the end"));
  EXPECT_THAT(with([&](auto& c) {
                find(c, proto::MigrationChunk::kEnd).mutable_end()->set_chunks(1);
              }).message(),
              HasSubstr("counts 1"));
}

}  // namespace
}  // namespace vfu
