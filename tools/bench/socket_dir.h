// A private temporary directory for a benchmark's UNIX sockets, removed
// with whatever sockets are left in it. Under /tmp rather than $TMPDIR:
// a socket path must fit in 108 bytes, and test runners' $TMPDIR are long.
#ifndef VFU_TOOLS_BENCH_SOCKET_DIR_H_
#define VFU_TOOLS_BENCH_SOCKET_DIR_H_

#include <dirent.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace vfu::bench {

class SocketDir {
 public:
  static absl::StatusOr<std::unique_ptr<SocketDir>> Create() {
    std::string pattern = "/tmp/vfu-bench-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) return absl::ErrnoToStatus(errno, "mkdtemp");
    return std::unique_ptr<SocketDir>(new SocketDir(pattern));
  }

  ~SocketDir() {
    if (DIR* dir = ::opendir(path_.c_str())) {
      while (const struct dirent* entry = ::readdir(dir)) {
        const std::string name = entry->d_name;
        if (name != "." && name != "..") ::unlink(Path(name).c_str());
      }
      ::closedir(dir);
    }
    ::rmdir(path_.c_str());
  }

  SocketDir(const SocketDir&) = delete;
  SocketDir& operator=(const SocketDir&) = delete;

  std::string Path(const std::string& name) const { return absl::StrCat(path_, "/", name); }

 private:
  explicit SocketDir(std::string path) : path_(std::move(path)) {}

  const std::string path_;
};

}  // namespace vfu::bench

#endif  // VFU_TOOLS_BENCH_SOCKET_DIR_H_
