// The nvme server binary as a user runs it: flags, a namespace that cannot
// be opened, and a serve / guest I/O / SIGTERM / clean-up cycle with the
// data landing in the image file.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "devices/nvme/nvme_defs.h"
#include "devices/nvme/nvme_driver.h"
#include "gtest/gtest.h"
#include "testing/child_process.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "vfu/client/client.h"

namespace vfu::nvme {
namespace {

constexpr char kBinary[] = "devices/nvme/nvme";

std::string MakeImage(const testing::ScopedTempDir& dir, const std::string& name, off_t size) {
  const std::string path = dir.File(name);
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  EXPECT_TRUE(fd.valid());
  EXPECT_EQ(::ftruncate(fd.get(), size), 0);
  return path;
}

TEST(NvmeMainTest, HelpListsTheNamespaceFlags) {
  testing::ChildProcess child(kBinary, {"--help"});
  child.WaitForExit();
  EXPECT_TRUE(absl::StrContains(child.output(), "-namespace")) << child.output();
  EXPECT_TRUE(absl::StrContains(child.output(), "-lba_size")) << child.output();
}

TEST(NvmeMainTest, MissingNamespaceFailsNamingIt) {
  testing::ScopedTempDir dir;
  testing::ChildProcess child(kBinary, {"--namespace=" + dir.File("none.img"), dir.File("n.sock")});
  const int status = child.WaitForExit();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_TRUE(absl::StrContains(child.output(), "none.img")) << child.output();
}

TEST(NvmeMainTest, BadLbaSizeFails) {
  testing::ScopedTempDir dir;
  testing::ChildProcess child(kBinary, {"--namespace=" + MakeImage(dir, "a.img", 1 << 20),
                                        "--lba_size=1000", dir.File("n.sock")});
  const int status = child.WaitForExit();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_TRUE(absl::StrContains(child.output(), "neither 512 nor 4096")) << child.output();
}

TEST(NvmeMainTest, ServesTwoNamespacesUntilSigterm) {
  testing::ScopedTempDir dir;
  const std::string first = MakeImage(dir, "a.img", 1 << 20);
  const std::string second = MakeImage(dir, "b.img", 2 << 20);
  const std::string socket = dir.File("nvme.sock");
  testing::ChildProcess child(
      kBinary, {"--namespace=" + first, "--namespace=" + second, "--lba_size=4096", socket});
  ASSERT_TRUE(child.WaitForOutput("nvme: serving 1 device(s)")) << child.output();
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::Connect(socket));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<NvmeDriver> driver, NvmeDriver::Attach(*client));
    ASSERT_OK(driver->Enable());
    ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> id, driver->Identify(kCnsController));
    EXPECT_EQ(id[516], 2) << "two namespaces";
    ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> ns, driver->Identify(kCnsNamespace, 2));
    EXPECT_EQ(ns[0] | (ns[1] << 8), 512) << "2 MiB of 4 KiB blocks";
    ASSERT_OK(driver->CreateIoQueuePair(1, 8));
    const uint64_t buffer = driver->Allocate(4096);
    std::memset(driver->Host(buffer), 0xa5, 4096);
    ASSERT_OK_AND_ASSIGN(Completion done,
                         driver->Run(1, driver->WriteCommand(2, 3, 1, buffer, 4096)));
    EXPECT_EQ(done.status, kSuccess);
  }
  std::vector<uint8_t> block(4096);
  UniqueFd fd(::open(second.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_EQ(::pread(fd.get(), block.data(), 4096, 3 * 4096), 4096);
  EXPECT_EQ(block, std::vector<uint8_t>(4096, 0xa5));
  ASSERT_NO_FATAL_FAILURE(child.Signal(SIGTERM));
  const int status = child.WaitForExit();
  ASSERT_TRUE(WIFEXITED(status)) << child.output();
  EXPECT_EQ(WEXITSTATUS(status), 0) << child.output();
  struct stat st;
  EXPECT_NE(::stat(socket.c_str(), &st), 0) << "socket removed";
}

}  // namespace
}  // namespace vfu::nvme
