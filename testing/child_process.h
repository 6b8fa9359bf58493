// ChildProcess: a program under test running as a user runs it, with its
// stdout and stderr going into one pipe the test reads (the device server
// binaries' main tests).
#ifndef VFU_TESTING_CHILD_PROCESS_H_
#define VFU_TESTING_CHILD_PROCESS_H_

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "vfu/base/unique_fd.h"

extern char** environ;

namespace vfu::testing {

class ChildProcess {
 public:
  // Runs `binary` (a path, e.g. relative to the test's runfiles directory)
  // with `args`. A failure to start is a test failure.
  ChildProcess(const std::string& binary, const std::vector<std::string>& args) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2: " << std::strerror(errno);
      return;
    }
    output_fd_.reset(fds[0]);
    UniqueFd write_end(fds[1]);
    std::vector<std::string> argv_strings = {binary};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& arg : argv_strings) argv.push_back(arg.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDERR_FILENO);
    const int error = ::posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (error != 0) {
      ADD_FAILURE() << "posix_spawn " << binary << ": " << std::strerror(error);
      pid_ = -1;
    }
  }
  // Kills and reaps the child if it is still running.
  ~ChildProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Reads output until it contains `text`; false on EOF or timeout.
  bool WaitForOutput(const std::string& text) {
    while (!absl::StrContains(output_, text)) {
      if (!ReadSome()) return false;
    }
    return true;
  }

  // Reads output to EOF, then reaps the child: its wait status, or -1.
  int WaitForExit() {
    while (ReadSome()) {
    }
    if (pid_ <= 0) return -1;
    int status = 0;
    if (::waitpid(pid_, &status, 0) != pid_) return -1;
    pid_ = -1;
    return status;
  }

  void Signal(int signal_number) { ASSERT_EQ(::kill(pid_, signal_number), 0); }
  const std::string& output() const { return output_; }

 private:
  // How long the child may stay silent while we wait for it.
  static constexpr int kTimeoutMs = 10000;

  // One read of whatever is there within the timeout; false at EOF,
  // timeout or error.
  bool ReadSome() {
    if (!output_fd_.valid()) return false;
    pollfd p = {.fd = output_fd_.get(), .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, kTimeoutMs) != 1) {
      ADD_FAILURE() << "no output from the child for " << kTimeoutMs << " ms; so far:\n"
                    << output_;
      return false;
    }
    char buffer[4096];
    const ssize_t n = ::read(output_fd_.get(), buffer, sizeof buffer);
    if (n <= 0) return false;
    output_.append(buffer, static_cast<size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  UniqueFd output_fd_;
  std::string output_;
};

}  // namespace vfu::testing

#endif  // VFU_TESTING_CHILD_PROCESS_H_
