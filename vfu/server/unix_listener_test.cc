#include "vfu/server/unix_listener.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"

namespace vfu {
namespace {

using ::vfu::testing::IsOk;
using ::vfu::testing::ScopedTempDir;
using ::vfu::testing::StatusIs;

std::string TempPath(const std::string& name) {
  static ScopedTempDir dir;
  return dir.File(name);
}

// The socket file gets exactly the requested mode, whatever the umask.
TEST(UnixListenerTest, CreatesSocketWithMode) {
  std::string path = TempPath("mode.sock");
  ASSERT_OK_AND_ASSIGN(UniqueFd fd, ListenUnix(path, 0600));
  struct stat st;
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  UnlinkSocketPath(path);
  EXPECT_NE(::lstat(path.c_str(), &st), 0);
}

// A path a live server answers on is refused.
TEST(UnixListenerTest, RefusesLiveServer) {
  std::string path = TempPath("live.sock");
  ASSERT_OK_AND_ASSIGN(UniqueFd first, ListenUnix(path));
  EXPECT_THAT(ListenUnix(path), StatusIs(absl::StatusCode::kAlreadyExists));
  UnlinkSocketPath(path);
}

// A stale socket file (nobody listening) is replaced.
TEST(UnixListenerTest, ReplacesStaleSocket) {
  std::string path = TempPath("stale.sock");
  {
    ASSERT_OK_AND_ASSIGN(UniqueFd first, ListenUnix(path));
  }  // closed, file left behind
  ASSERT_OK_AND_ASSIGN(UniqueFd second, ListenUnix(path));
  EXPECT_THAT(ConnectUnix(path), IsOk());
  UnlinkSocketPath(path);
}

// A regular file at the path is never deleted.
TEST(UnixListenerTest, RefusesNonSocketFile) {
  std::string path = TempPath("regular.file");
  std::ofstream(path) << "data";
  EXPECT_THAT(ListenUnix(path), StatusIs(absl::StatusCode::kFailedPrecondition));
  struct stat st;
  EXPECT_EQ(::lstat(path.c_str(), &st), 0);
  ::unlink(path.c_str());
}

// Paths too long for sockaddr_un are rejected up front.
TEST(UnixListenerTest, RejectsLongPath) {
  EXPECT_THAT(ListenUnix(std::string(200, 'x')), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace vfu
