#include "testing/soak/process_figures.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace vfu::soak {

ProcessFigures MeasureProcess(pid_t pid) {
  ProcessFigures figures;
  const std::string base = "/proc/" + std::to_string(pid);
  if (DIR* dir = ::opendir((base + "/fd").c_str()); dir != nullptr) {
    int count = 0;
    while (const dirent* entry = ::readdir(dir)) {
      if (entry->d_name[0] != '.') ++count;
    }
    ::closedir(dir);
    // The directory stream itself holds an fd while we count our own.
    figures.fds = pid == ::getpid() ? count - 1 : count;
  }
  if (FILE* status = std::fopen((base + "/status").c_str(), "r"); status != nullptr) {
    char line[256];
    while (std::fgets(line, sizeof line, status) != nullptr) {
      unsigned long long kb = 0;
      if (std::sscanf(line, "VmRSS: %llu kB", &kb) == 1) figures.rss_kb = kb;
    }
    std::fclose(status);
  }
  return figures;
}

}  // namespace vfu::soak
