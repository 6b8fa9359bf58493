// Small pieces every benchmark figure uses: a monotonic clock in
// nanoseconds, and whole reads and writes on a blocking fd (the raw floors'
// sockets and the control pipes to child processes).
#ifndef VFU_TOOLS_BENCH_BENCH_IO_H_
#define VFU_TOOLS_BENCH_BENCH_IO_H_

#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace vfu::bench {

inline int64_t NowNs() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 * 1000 * 1000 + ts.tv_nsec;
}

// Writes all `size` bytes; false when the fd fails or its peer is gone
// first (a socket's peer without SIGPIPE; a pipe's raises it as usual).
inline bool WriteAll(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n < 0 && errno == ENOTSOCK) n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Reads exactly `size` bytes; false on an error or end of stream first.
inline bool ReadAll(int fd, void* data, size_t size) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace vfu::bench

#endif  // VFU_TOOLS_BENCH_BENCH_IO_H_
