// The gpio server binary as a user runs it: usage, serving several
// independent devices, and a clean stop on SIGTERM or SIGINT.
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
#include "devices/gpio/gpio_device.h"
#include "gtest/gtest.h"
#include "testing/child_process.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "vfu/client/client.h"

namespace vfu::devices {
namespace {

// Relative to the test's runfiles directory, where Bazel runs it.
constexpr char kBinary[] = "devices/gpio/gpio";
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

void Write32(Client& client, uint64_t offset, uint32_t value) {
  std::vector<uint8_t> bytes(4);
  std::memcpy(bytes.data(), &value, 4);
  EXPECT_OK(client.RegionWrite(0, offset, bytes));
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
TEST(GpioMainTest, HelpPrintsUsage) {
  Child child({"--help"});
  const int status = child.WaitForExit();
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_TRUE(absl::StrContains(child.output(), "Usage: gpio [--socket_mode=0600] [--control=PATH [--control_mode=0600]] SOCKET_PATH"))
      << child.output();
  EXPECT_TRUE(absl::StrContains(child.output(), "-socket_mode (permissions of the socket files"))
      << child.output();
  EXPECT_FALSE(absl::StrContains(child.output(), "serving"));
}

// Without a socket path there is nothing to do: usage and exit status 2.
TEST(GpioMainTest, NoSocketPathIsUsageError) {
  Child child({});
  const int status = child.WaitForExit();
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_TRUE(absl::StrContains(child.output(), "Usage: gpio")) << child.output();
}

TEST(GpioMainTest, SamePathTwiceIsUsageError) {
  testing::ScopedTempDir dir;
  Child child({dir.File("a.sock"), dir.File("a.sock")});
  const int status = child.WaitForExit();
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_FALSE(Exists(dir.File("a.sock")));
}

TEST(GpioMainTest, BadSocketModeIsUsageError) {
  testing::ScopedTempDir dir;
  for (const char* mode : {"--socket_mode=rw", "--socket_mode=0800", "--socket_mode=10000"}) {
    Child child({mode, dir.File("a.sock")});
    const int status = child.WaitForExit();
    ASSERT_TRUE(WIFEXITED(status)) << mode << ": status " << status;
    EXPECT_EQ(WEXITSTATUS(status), 2) << mode;
    EXPECT_TRUE(absl::StrContains(child.output(), "--socket_mode wants octal")) << child.output();
  }
  EXPECT_FALSE(Exists(dir.File("a.sock")));
}

// --socket_mode sets who may connect.
TEST(GpioMainTest, SocketModeApplies) {
  testing::ScopedTempDir dir;
  const std::string path = dir.File("gpio.sock");
  Child child({"--socket_mode=0660", path});
  ASSERT_TRUE(child.WaitForOutput("gpio: serving 1 device(s)")) << child.output();
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  ASSERT_NO_FATAL_FAILURE(child.Signal(SIGTERM));
  const int status = child.WaitForExit();
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// A path the server cannot listen on is an error naming the path.
TEST(GpioMainTest, UnusablePathFails) {
  testing::ScopedTempDir dir;
  const std::string path = dir.File("missing-dir/gpio.sock");
  Child child({path});
  const int status = child.WaitForExit();
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_TRUE(absl::StrContains(child.output(), path)) << child.output();
}

class GpioMainSignalTest : public ::testing::TestWithParam<int> {};

// Two paths serve two independent devices, each to one client after
// another; the signal stops the server, which removes both sockets and
// exits 0.
TEST_P(GpioMainSignalTest, ServesUntilSignalThenCleansUp) {
  testing::ScopedTempDir dir;
  const std::string first = dir.File("gpio0.sock");
  const std::string second = dir.File("gpio1.sock");
  Child child({first, second});
  ASSERT_TRUE(child.WaitForOutput("gpio: serving 2 device(s)")) << child.output();
  EXPECT_TRUE(IsSocket(first));
  EXPECT_TRUE(IsSocket(second));

  {
    std::unique_ptr<Client> a = ConnectWhenFree(first);
    std::unique_ptr<Client> b = ConnectWhenFree(second);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(Read32(*a, GpioDevice::kRegId), GpioDevice::kIdValue);
    EXPECT_EQ(Read32(*b, GpioDevice::kRegId), GpioDevice::kIdValue);
    Write32(*a, GpioDevice::kRegOutput, 0x1234);
    EXPECT_EQ(Read32(*b, GpioDevice::kRegOutput), 0u);
  }
  // The next client of the first device finds its state.
  std::unique_ptr<Client> again = ConnectWhenFree(first);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(Read32(*again, GpioDevice::kRegOutput), 0x1234u);

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

INSTANTIATE_TEST_SUITE_P(StopSignals, GpioMainSignalTest, ::testing::Values(SIGTERM, SIGINT),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string(info.param == SIGTERM ? "Sigterm" : "Sigint");
                         });

}  // namespace
}  // namespace vfu::devices
