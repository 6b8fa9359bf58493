// ScopedTempDir: a fresh directory with a short path, removed with its
// contents on destruction. Bazel's TEST_TMPDIR is too long for socket paths
// (sockaddr_un holds 107 bytes), so sockets live here instead. Tests, the
// soak test and the benchmarks use it.
#ifndef VFU_TESTING_TEMP_DIR_H_
#define VFU_TESTING_TEMP_DIR_H_

#include <ftw.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "vfu/base/check.h"

namespace vfu::testing {

class ScopedTempDir {
 public:
  // /tmp/<prefix>-XXXXXX.
  explicit ScopedTempDir(const std::string& prefix = "vfu-test") {
    std::string pattern = "/tmp/" + prefix + "-XXXXXX";
    VFU_CHECK(::mkdtemp(pattern.data()) != nullptr, "mkdtemp failed");
    path_ = pattern;
  }
  ~ScopedTempDir() {
    ::nftw(
        path_.c_str(),
        [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }, 16,
        FTW_DEPTH | FTW_PHYS);
  }
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  const std::string& path() const { return path_; }
  // `path()/name`.
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace vfu::testing

#endif  // VFU_TESTING_TEMP_DIR_H_
