// A file-backed namespace on its own: what Open accepts, the LBA range
// check, vectored I/O, zeroing and deallocation, the counters.
#include "devices/nvme/nvme_namespace.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"

namespace vfu::nvme {
namespace {

class NamespaceTest : public ::testing::Test {
 protected:
  std::string MakeFile(uint64_t size, uint8_t fill = 0) {
    const std::string path = dir_.File("ns" + std::to_string(files_++) + ".img");
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    EXPECT_TRUE(fd.valid());
    std::vector<uint8_t> bytes(size, fill);
    EXPECT_EQ(::pwrite(fd.get(), bytes.data(), size, 0), static_cast<ssize_t>(size));
    return path;
  }
  std::vector<uint8_t> Read(const std::string& path, uint64_t offset, uint64_t n) {
    std::vector<uint8_t> bytes(n);
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    EXPECT_EQ(::pread(fd.get(), bytes.data(), n, static_cast<off_t>(offset)),
              static_cast<ssize_t>(n));
    return bytes;
  }
  testing::ScopedTempDir dir_;
  int files_ = 0;
};

TEST_F(NamespaceTest, OpenRefusesOddLbaSizesMissingAndTinyFiles) {
  EXPECT_THAT(NvmeNamespace::Open(MakeFile(8192), 1024).status(),
              testing::StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(NvmeNamespace::Open(dir_.File("missing.img"), 512).status(),
              testing::StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(NvmeNamespace::Open(MakeFile(4095), 4096).status(),
              testing::StatusIs(absl::StatusCode::kInvalidArgument));
  // A directory cannot even be opened for writing (EISDIR).
  EXPECT_THAT(NvmeNamespace::Open(dir_.path(), 512).status(),
              testing::StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(NamespaceTest, SizeIsWholeLbasOnly) {
  ASSERT_OK_AND_ASSIGN(auto ns, NvmeNamespace::Open(MakeFile(3 * 4096 + 100), 4096));
  EXPECT_EQ(ns->num_lbas(), 3u);
  EXPECT_EQ(ns->lba_shift(), 12u);
  EXPECT_TRUE(ns->InRange(0, 3));
  EXPECT_TRUE(ns->InRange(2, 1));
  EXPECT_FALSE(ns->InRange(2, 2));
  EXPECT_FALSE(ns->InRange(3, 1));
  EXPECT_FALSE(ns->InRange(~uint64_t{0}, 2)) << "no wrap-around";
  EXPECT_FALSE(ns->InRange(0, 4));
}

TEST_F(NamespaceTest, VectoredWriteAndReadRoundTrip) {
  const std::string path = MakeFile(8192);
  ASSERT_OK_AND_ASSIGN(auto ns, NvmeNamespace::Open(path, 512));
  std::vector<uint8_t> a(1000, 1), b(24, 2);
  struct iovec out[2] = {{a.data(), a.size()}, {b.data(), b.size()}};
  ASSERT_OK(ns->WriteV(out, 2, 512));
  std::vector<uint8_t> back(1024);
  struct iovec in = {back.data(), back.size()};
  ASSERT_OK(ns->ReadV(&in, 1, 512));
  EXPECT_EQ(std::vector<uint8_t>(back.begin(), back.begin() + 1000), a);
  EXPECT_EQ(std::vector<uint8_t>(back.begin() + 1000, back.end()), b);
  EXPECT_EQ(ns->bytes_written(), 1024u);
  EXPECT_EQ(ns->bytes_read(), 1024u);
  EXPECT_EQ(ns->write_commands(), 1u);
  ASSERT_OK(ns->Flush());
}

TEST_F(NamespaceTest, WriteZeroesAndDeallocateTouchOnlyTheirBlocks) {
  const std::string path = MakeFile(16 * 4096, 0xee);
  ASSERT_OK_AND_ASSIGN(auto ns, NvmeNamespace::Open(path, 4096));
  ASSERT_OK(ns->WriteZeroes(1, 2));
  ASSERT_OK(ns->Deallocate(8, 3));
  std::vector<uint8_t> file = Read(path, 0, 16 * 4096);
  for (uint64_t block = 0; block < 16; ++block) {
    const bool cleared = (block >= 1 && block < 3) || (block >= 8 && block < 11);
    for (uint64_t i = 0; i < 4096; ++i) {
      ASSERT_EQ(file[block * 4096 + i], cleared ? 0 : 0xee) << "block " << block;
    }
  }
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 16 * 4096) << "size kept";
}

}  // namespace
}  // namespace vfu::nvme
