// The dma_engine server binary as a user runs it: usage, serving several
// independent devices (checked by copying through them from this process,
// so the memory crosses a process boundary), and a clean stop on SIGTERM or
// SIGINT.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "devices/dma_engine/dma_check.h"
#include "devices/dma_engine/dma_engine_registers.h"
#include "gtest/gtest.h"
#include "testing/child_process.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "vfu/client/client.h"

namespace vfu::devices {
namespace {

// Relative to the test's runfiles directory, where Bazel runs it.
constexpr char kBinary[] = "devices/dma_engine/dma_engine";
// The binary running with stdout and stderr into one pipe we read.
class Child : public testing::ChildProcess {
 public:
  explicit Child(const std::vector<std::string>& args) : ChildProcess(kBinary, args) {}
};

bool IsSocket(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

uint32_t Read32(Client& client, uint64_t offset) {
  absl::StatusOr<std::vector<uint8_t>> bytes = client.RegionRead(0, offset, 4);
  EXPECT_OK(bytes);
  uint32_t value = 0;
  if (bytes.ok() && bytes->size() == 4) std::memcpy(&value, bytes->data(), 4);
  return value;
}

// The server refuses a second client until it has noticed the first left
// (and a starting child listens only once it is up). The deadline only
// bounds a server that never lets us in: a number of attempts would assume
// a speed.
std::unique_ptr<Client> ConnectWhenFree(const std::string& path) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  absl::Status last;
  do {
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(path);
    if (client.ok()) return *std::move(client);
    last = client.status();
    std::this_thread::yield();
  } while (absl::Now() < deadline);
  ADD_FAILURE() << "could not connect to " << path << ": " << last;
  return nullptr;
}

// --help prints the usage (Abseil's flag library exits non-zero after it)
// and serves nothing.
TEST(DmaEngineMainTest, HelpPrintsUsage) {
  Child child({"--help"});
  const int status = child.WaitForExit();
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_TRUE(absl::StrContains(child.output(), "Usage: dma_engine")) << child.output();
  EXPECT_TRUE(absl::StrContains(child.output(), "SOCKET_PATH [SOCKET_PATH...]")) << child.output();
  EXPECT_FALSE(absl::StrContains(child.output(), "serving"));
}

// Without a socket path there is nothing to do: usage and exit status 2.
TEST(DmaEngineMainTest, NoSocketPathIsUsageError) {
  Child child({});
  const int status = child.WaitForExit();
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_TRUE(absl::StrContains(child.output(), "Usage: dma_engine")) << child.output();
}

TEST(DmaEngineMainTest, SamePathTwiceIsUsageError) {
  testing::ScopedTempDir dir;
  Child child({dir.File("a.sock"), dir.File("a.sock")});
  const int status = child.WaitForExit();
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_FALSE(Exists(dir.File("a.sock")));
}

TEST(DmaEngineMainTest, BadSocketModeIsUsageError) {
  testing::ScopedTempDir dir;
  Child child({"--socket_mode=0999", dir.File("a.sock")});
  const int status = child.WaitForExit();
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_TRUE(absl::StrContains(child.output(), "--socket_mode")) << child.output();
}

// A path the server cannot listen on is an error naming the path.
TEST(DmaEngineMainTest, UnusablePathFails) {
  testing::ScopedTempDir dir;
  const std::string path = dir.File("missing-dir/dma.sock");
  Child child({path});
  const int status = child.WaitForExit();
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_TRUE(absl::StrContains(child.output(), path)) << child.output();
}

class DmaEngineMainSignalTest : public ::testing::TestWithParam<int> {};

// Two paths serve two independent engines, each to one client after
// another; copies through either work, with memory shared by fd and by
// messages; the signal stops the server, which removes both sockets and
// exits 0.
TEST_P(DmaEngineMainSignalTest, ServesUntilSignalThenCleansUp) {
  testing::ScopedTempDir dir;
  const std::string first = dir.File("dma0.sock");
  const std::string second = dir.File("dma1.sock");
  Child child({first, second});
  ASSERT_TRUE(child.WaitForOutput("dma_engine: serving 2 device(s)")) << child.output();
  EXPECT_TRUE(IsSocket(first));
  EXPECT_TRUE(IsSocket(second));

  {
    std::unique_ptr<Client> a = ConnectWhenFree(first);
    std::unique_ptr<Client> b = ConnectWhenFree(second);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    for (Client* client : {a.get(), b.get()}) {
      for (DmaCheckMemory memory : {DmaCheckMemory::kFdBacked, DmaCheckMemory::kMessages}) {
        // The check's own 10 s would be a speed assumption in a test.
        absl::StatusOr<DmaCheckReport> report =
            RunDmaCheck(*client, {.memory = memory, .timeout = absl::Seconds(20)});
        ASSERT_OK(report);
        EXPECT_TRUE(report->ok) << FormatDmaCheckReport(*report);
      }
    }
    // Only the first device has run a job on channel 1.
    ASSERT_OK(RunDmaCheck(*a, {.channel = 1, .timeout = absl::Seconds(20)}));
    EXPECT_EQ(Read32(*b, dma_engine::ChannelRegister(1, dma_engine::kRegStatus)),
              dma_engine::kStatusIdle);
  }
  // The next client of the first device finds its state.
  std::unique_ptr<Client> again = ConnectWhenFree(first);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(Read32(*again, dma_engine::ChannelRegister(1, dma_engine::kRegStatus)),
            dma_engine::kStatusDone);

  ASSERT_NO_FATAL_FAILURE(child.Signal(GetParam()));
  const int status = child.WaitForExit();
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status << "\n" << child.output();
  EXPECT_EQ(WEXITSTATUS(status), 0) << child.output();
  EXPECT_TRUE(absl::StrContains(child.output(), "stopped")) << child.output();
  EXPECT_FALSE(Exists(first));
  EXPECT_FALSE(Exists(second));
  // The connected client saw the server go.
  EXPECT_THAT(again->GetDeviceInfo(), testing::StatusIs(absl::StatusCode::kUnavailable));
}

INSTANTIATE_TEST_SUITE_P(StopSignals, DmaEngineMainSignalTest, ::testing::Values(SIGTERM, SIGINT),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string(info.param == SIGTERM ? "Sigterm" : "Sigint");
                         });

}  // namespace
}  // namespace vfu::devices
