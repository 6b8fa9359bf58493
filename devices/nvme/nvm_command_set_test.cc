// NVM commands end to end, on both memory paths (shared memfd: zero copy;
// fd-less memory: DMA messages): data lands at the right file offset and
// reads back, PRP lists and offsets, range and namespace checks, Flush,
// Write Zeroes, Dataset Management.
#include <cstring>

#include "devices/nvme/nvme_test_fixture.h"

namespace vfu::nvme {
namespace {

struct Params {
  bool shared_memory;
  uint32_t lba_size;
};

class NvmCommandSetTest : public NvmeTest, public ::testing::WithParamInterface<Params> {
 protected:
  void SetUp() override {
    NvmeTestConfig config;
    config.namespaces = 2;
    config.lba_size = GetParam().lba_size;
    config.driver.shared_memory = GetParam().shared_memory;
    Start(config);
    EnableWithQueues(1);
  }
  uint32_t lba() const { return GetParam().lba_size; }
  uint64_t blocks() const { return config_.namespace_bytes / lba(); }

  void ExpectTransfersCounted() {
    if (GetParam().shared_memory) {
      EXPECT_GT(controller_->zero_copy_transfers(), 0u);
      EXPECT_EQ(controller_->bounced_transfers(), 0u);
    } else {
      EXPECT_EQ(controller_->zero_copy_transfers(), 0u);
      EXPECT_GT(controller_->bounced_transfers(), 0u);
    }
  }
};

TEST_P(NvmCommandSetTest, WriteLandsAtItsOffsetAndReadsBack) {
  const uint64_t bytes = 8192;
  const uint32_t count = static_cast<uint32_t>(bytes / lba());
  const uint64_t out = driver_->Allocate(bytes);
  FillPattern(driver_->Host(out), bytes, 1);
  ASSERT_EQ(IoStatus(1, driver_->WriteCommand(1, 3, count, out, bytes)), kSuccess);
  std::vector<uint8_t> file = FileBytes(1, 3 * lba(), bytes);
  EXPECT_TRUE(MatchesPattern(file.data(), bytes, 1));
  // Namespace 2 is another file, untouched.
  std::vector<uint8_t> other = FileBytes(2, 3 * lba(), bytes);
  EXPECT_EQ(other, std::vector<uint8_t>(bytes, 0));
  const uint64_t in = driver_->Allocate(bytes);
  ASSERT_EQ(IoStatus(1, driver_->ReadCommand(1, 3, count, in, bytes)), kSuccess);
  EXPECT_TRUE(MatchesPattern(driver_->Host(in), bytes, 1));
  ExpectTransfersCounted();
}

TEST_P(NvmCommandSetTest, LargeTransferThroughAPrpListOfScatteredPages) {
  // 128 KiB in 32 pages placed in reverse order: the device must follow
  // the list, not assume contiguity.
  const uint64_t bytes = 128 * 1024;
  const uint64_t region = driver_->Allocate(bytes);
  std::vector<uint64_t> pages;
  for (int i = 31; i >= 0; --i) pages.push_back(region + i * 4096);
  std::vector<uint8_t> expected(bytes);
  FillPattern(expected.data(), bytes, 2);
  for (int i = 0; i < 32; ++i) std::memcpy(driver_->Host(pages[i]), &expected[i * 4096], 4096);
  const uint64_t list = driver_->Allocate(4096);
  auto* entries = reinterpret_cast<uint64_t*>(driver_->Host(list));
  for (int i = 1; i < 32; ++i) entries[i - 1] = pages[i];
  SubmissionEntry write = driver_->WriteCommand(1, 0, static_cast<uint32_t>(bytes / lba()), 0, 0);
  write.prp1 = pages[0];
  write.prp2 = list;
  ASSERT_EQ(IoStatus(1, write), kSuccess);
  EXPECT_EQ(FileBytes(1, 0, bytes), expected);
  // Read it back into one contiguous buffer.
  const uint64_t in = driver_->Allocate(bytes);
  ASSERT_EQ(IoStatus(1, driver_->ReadCommand(1, 0, static_cast<uint32_t>(bytes / lba()), in,
                                             bytes)),
            kSuccess);
  EXPECT_EQ(std::vector<uint8_t>(driver_->Host(in), driver_->Host(in) + bytes), expected);
}

TEST_P(NvmCommandSetTest, Prp1WithAnOffsetCrossesIntoPrp2) {
  const uint64_t bytes = 4096;
  const uint64_t region = driver_->Allocate(3 * 4096);
  const uint64_t start = region + 4096 - 512;  // 512 bytes, then the next page
  FillPattern(driver_->Host(start), bytes, 3);
  ASSERT_EQ(IoStatus(1, driver_->WriteCommand(1, 8 * (4096 / lba()), bytes / lba(), start, bytes)),
            kSuccess);
  std::vector<uint8_t> file = FileBytes(1, 8 * 4096, bytes);
  EXPECT_TRUE(MatchesPattern(file.data(), bytes, 3));
}

TEST_P(NvmCommandSetTest, MisalignedPrpsAreRefusedAndWriteNothing) {
  const uint64_t region = driver_->Allocate(4 * 4096);
  FillPattern(driver_->Host(region), 4 * 4096, 4);
  SubmissionEntry write = driver_->WriteCommand(1, 0, 8192 / lba(), region, 8192);
  write.prp2 += 8;
  EXPECT_EQ(IoStatus(1, write), kInvalidPrpOffset);
  EXPECT_EQ(FileBytes(1, 0, 8192), std::vector<uint8_t>(8192, 0));
}

TEST_P(NvmCommandSetTest, UnmappedDataIsDataTransferError) {
  SubmissionEntry read = driver_->ReadCommand(1, 0, 4096 / lba(), 0x10000, 4096);
  EXPECT_EQ(IoStatus(1, read), kDataTransferError);
  SubmissionEntry write = driver_->WriteCommand(1, 0, 4096 / lba(), 0x10000, 4096);
  EXPECT_EQ(IoStatus(1, write), kDataTransferError);
  EXPECT_EQ(FileBytes(1, 0, 4096), std::vector<uint8_t>(4096, 0));
}

TEST_P(NvmCommandSetTest, LbaRangeIsChecked) {
  const uint64_t buffer = driver_->Allocate(8192);
  EXPECT_EQ(IoStatus(1, driver_->ReadCommand(1, blocks() - 1, 1, buffer, lba())), kSuccess);
  EXPECT_EQ(IoStatus(1, driver_->ReadCommand(1, blocks() - 1, 2, buffer, 2 * lba())),
            kLbaOutOfRange);
  EXPECT_EQ(IoStatus(1, driver_->WriteCommand(1, blocks(), 1, buffer, lba())), kLbaOutOfRange);
  // Near 2^64: no wrap-around into range.
  EXPECT_EQ(IoStatus(1, driver_->WriteCommand(1, ~uint64_t{0}, 2, buffer, 2 * lba())),
            kLbaOutOfRange);
  EXPECT_EQ(FileSize(1), config_.namespace_bytes) << "nothing written past the end";
}

TEST_P(NvmCommandSetTest, TransferPastMdtsIsInvalidField) {
  const uint64_t blocks_over = kMaxTransferBytes / lba() + 1;
  if (blocks_over > 0x10000) GTEST_SKIP() << "NLB cannot express it";
  SubmissionEntry read = driver_->ReadCommand(1, 0, static_cast<uint32_t>(blocks_over), 0, 0);
  read.prp1 = driver_->Allocate(4096);
  EXPECT_EQ(IoStatus(1, read), kInvalidField);
}

TEST_P(NvmCommandSetTest, BadNamespaceAndOpcode) {
  const uint64_t buffer = driver_->Allocate(4096);
  EXPECT_EQ(IoStatus(1, driver_->ReadCommand(0, 0, 1, buffer, lba())), kInvalidNamespace);
  EXPECT_EQ(IoStatus(1, driver_->ReadCommand(3, 0, 1, buffer, lba())), kInvalidNamespace);
  SubmissionEntry unknown = {};
  unknown.opcode = 0x7e;
  unknown.nsid = 1;
  EXPECT_EQ(IoStatus(1, unknown), kInvalidOpcode);
  SubmissionEntry sgl = driver_->ReadCommand(1, 0, 1, buffer, lba());
  sgl.flags = 1 << 6;
  EXPECT_EQ(IoStatus(1, sgl), kInvalidField);
}

TEST_P(NvmCommandSetTest, FlushOneOrAllNamespaces) {
  SubmissionEntry flush = {};
  flush.opcode = kNvmFlush;
  flush.nsid = 2;
  EXPECT_EQ(IoStatus(1, flush), kSuccess);
  flush.nsid = 0xffffffff;
  EXPECT_EQ(IoStatus(1, flush), kSuccess);
  flush.nsid = 9;
  EXPECT_EQ(IoStatus(1, flush), kInvalidNamespace);
}

TEST_P(NvmCommandSetTest, WriteZeroesClearsOnlyItsRange) {
  std::vector<uint8_t> ones(3 * 4096, 0xff);
  WriteFileBytes(1, 0, ones);
  SubmissionEntry zeroes = {};
  zeroes.opcode = kNvmWriteZeroes;
  zeroes.nsid = 1;
  zeroes.cdw10 = 4096 / lba();         // SLBA: the second 4 KiB
  zeroes.cdw12 = 4096 / lba() - 1;     // one 4 KiB worth
  ASSERT_EQ(IoStatus(1, zeroes), kSuccess);
  std::vector<uint8_t> file = FileBytes(1, 0, 3 * 4096);
  EXPECT_EQ(std::vector<uint8_t>(file.begin(), file.begin() + 4096), std::vector<uint8_t>(4096, 0xff));
  EXPECT_EQ(std::vector<uint8_t>(file.begin() + 4096, file.begin() + 8192),
            std::vector<uint8_t>(4096, 0));
  EXPECT_EQ(std::vector<uint8_t>(file.begin() + 8192, file.end()), std::vector<uint8_t>(4096, 0xff));
  zeroes.cdw10 = static_cast<uint32_t>(blocks());
  zeroes.cdw12 = 0;
  EXPECT_EQ(IoStatus(1, zeroes), kLbaOutOfRange);
}

TEST_P(NvmCommandSetTest, DeallocatePunchesHolesThatReadZero) {
  std::vector<uint8_t> ones(64 * 1024, 0xff);
  WriteFileBytes(1, 0, ones);
  const uint64_t ranges = driver_->Allocate(4096);
  struct Range {
    uint32_t attributes;
    uint32_t length;
    uint64_t slba;
  } list[2] = {{0, static_cast<uint32_t>(4096 / lba()), 0},
               {0, static_cast<uint32_t>(8192 / lba()), 32768 / lba()}};
  std::memcpy(driver_->Host(ranges), list, sizeof list);
  SubmissionEntry dsm = {};
  dsm.opcode = kNvmDatasetManagement;
  dsm.nsid = 1;
  dsm.prp1 = ranges;
  dsm.cdw10 = 1;  // two ranges
  dsm.cdw11 = kDsmDeallocate;
  ASSERT_EQ(IoStatus(1, dsm), kSuccess);
  std::vector<uint8_t> file = FileBytes(1, 0, 64 * 1024);
  for (uint64_t i = 0; i < file.size(); ++i) {
    const bool hole = i < 4096 || (i >= 32768 && i < 32768 + 8192);
    ASSERT_EQ(file[i], hole ? 0 : 0xff) << "byte " << i;
  }
  // A range past the end fails the whole command before anything happens.
  list[1].slba = blocks() - 1;
  std::memcpy(driver_->Host(ranges), list, sizeof list);
  WriteFileBytes(1, 0, ones);
  EXPECT_EQ(IoStatus(1, dsm), kLbaOutOfRange);
  EXPECT_EQ(FileBytes(1, 0, 4096), std::vector<uint8_t>(4096, 0xff));
}

TEST_P(NvmCommandSetTest, WriteWithCacheDisabledAndFuaComplete) {
  SubmissionEntry off = {};
  off.opcode = kAdminSetFeatures;
  off.cdw10 = kFeatVolatileWriteCache;
  ASSERT_EQ(AdminStatus(off), kSuccess);
  const uint64_t buffer = driver_->Allocate(4096);
  FillPattern(driver_->Host(buffer), 4096, 5);
  SubmissionEntry write = driver_->WriteCommand(1, 0, 4096 / lba(), buffer, 4096);
  ASSERT_EQ(IoStatus(1, write), kSuccess);
  write.cdw12 |= kRwFua;
  ASSERT_EQ(IoStatus(1, write), kSuccess);
  std::vector<uint8_t> file = FileBytes(1, 0, 4096);
  EXPECT_TRUE(MatchesPattern(file.data(), 4096, 5));
}

INSTANTIATE_TEST_SUITE_P(MemoryAndLbaSize, NvmCommandSetTest,
                         ::testing::Values(Params{true, 512}, Params{false, 512},
                                           Params{true, 4096}, Params{false, 4096}),
                         [](const ::testing::TestParamInfo<Params>& info) {
                           return std::string(info.param.shared_memory ? "Shared" : "Messages") +
                                  std::to_string(info.param.lba_size);
                         });

}  // namespace
}  // namespace vfu::nvme
