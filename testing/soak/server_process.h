// ServerProcess: the soak server (soak_server_main.cc) running as a child
// process. The soak test talks to its devices over their sockets and to the
// process itself over a command pipe (figures, stop), and watches it from
// outside: whether it is alive, how it ended, what it logged.
//
// Threads: Alive(), Figures() and socket() from any thread; Start,
// Measure, Stop and LogTail from the one controlling thread.
#ifndef VFU_TESTING_SOAK_SERVER_PROCESS_H_
#define VFU_TESTING_SOAK_SERVER_PROCESS_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "testing/soak/process_figures.h"
#include "vfu/base/unique_fd.h"

namespace vfu::soak {

// How the server ended after "stop".
struct StopResult {
  // Server::Stop() as the server timed it; nullopt if it never reported.
  std::optional<absl::Duration> stop_time;
  // Figures the server measured of itself after Stop().
  ProcessFigures after_stop;
  // Wait status of the process; nullopt if it had to be killed.
  std::optional<int> wait_status;
};

class ServerProcess {
 public:
  // Starts `binary` serving one device per entry of `devices` ("gpio",
  // "dma_engine" or "scratchpad") under directory `dir`, with its log
  // (stderr) in `log_path` at VFU_LOG_LEVEL `log_level`, and waits up to
  // `timeout` for it to serve.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::string& binary, const std::string& dir, const std::vector<std::string>& devices,
      const std::string& log_path, const std::string& log_level, absl::Duration max_write_stall,
      absl::Duration timeout);
  // Kills the process if it still runs.
  ~ServerProcess();

  // Socket path of device `i` (in the order given to Start).
  const std::string& socket(size_t i) const { return sockets_[i]; }

  // The process has not exited (reaps it when it has). Any thread.
  bool Alive() ABSL_LOCKS_EXCLUDED(mu_);
  // Its wait status once it has exited.
  std::optional<int> ExitStatus() ABSL_LOCKS_EXCLUDED(mu_);
  // fds and RSS read from /proc now (heap not trimmed). Any thread.
  ProcessFigures Figures() const { return MeasureProcess(pid_); }

  // Asks the server to return freed heap to the system and measure itself.
  absl::StatusOr<ProcessFigures> Measure(absl::Duration timeout);
  // Sends "stop" and waits up to `timeout` for the process to exit; kills it
  // past that.
  StopResult Stop(absl::Duration timeout);

  // The last `bytes` of the server's log, and the log's size.
  std::string LogTail(size_t bytes) const;
  uint64_t LogBytes() const;

 private:
  ServerProcess() = default;
  // One line of the server's stdout, or nullopt on EOF or timeout.
  std::optional<std::string> ReadLine(absl::Duration timeout);
  bool SendCommand(const std::string& command);

  pid_t pid_ = -1;
  std::vector<std::string> sockets_;
  std::string log_path_;
  UniqueFd commands_;  // the server's stdin
  UniqueFd answers_;   // the server's stdout
  std::string pending_;

  absl::Mutex mu_;
  bool exited_ ABSL_GUARDED_BY(mu_) = false;
  int wait_status_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace vfu::soak

#endif  // VFU_TESTING_SOAK_SERVER_PROCESS_H_
