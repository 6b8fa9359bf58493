// What the soak test watches of the server process from outside: its open
// fds and resident memory, read from /proc.
#ifndef VFU_TESTING_SOAK_PROCESS_FIGURES_H_
#define VFU_TESTING_SOAK_PROCESS_FIGURES_H_

#include <sys/types.h>

#include <cstdint>

namespace vfu::soak {

struct ProcessFigures {
  // Entries of /proc/PID/fd; -1 when the process is gone.
  int fds = -1;
  // VmRSS of /proc/PID/status in KiB; 0 when unknown.
  uint64_t rss_kb = 0;
};

// Reads both figures of process `pid` (any process of this user).
ProcessFigures MeasureProcess(pid_t pid);

}  // namespace vfu::soak

#endif  // VFU_TESTING_SOAK_PROCESS_FIGURES_H_
