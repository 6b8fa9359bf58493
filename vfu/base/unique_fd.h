// UniqueFd: sole ownership of a file descriptor, closed on destruction.
//
// Move-only, so a signature shows who owns an fd: a function taking
// `UniqueFd` consumes it, one taking `int` only borrows it. Not thread-safe;
// an fd is owned by one thread at a time.
#ifndef VFU_BASE_UNIQUE_FD_H_
#define VFU_BASE_UNIQUE_FD_H_

#include <vector>

namespace vfu {

class UniqueFd {
 public:
  UniqueFd() = default;
  // Takes ownership of `fd` (negative means "none").
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }

  // Gives up ownership without closing; returns the fd.
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

  // Closes the current fd (if any) and takes ownership of `fd`.
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Duplicates `fd` with close-on-exec set; an invalid UniqueFd on failure
// (errno is left set).
UniqueFd DuplicateFd(int fd);

// The raw numbers of `fds`, in order, still owned by `fds`.
std::vector<int> RawFds(const std::vector<UniqueFd>& fds);

}  // namespace vfu

#endif  // VFU_BASE_UNIQUE_FD_H_
