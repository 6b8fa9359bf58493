#include "testing/soak/server_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

extern char** environ;

namespace vfu::soak {
namespace {

// "key=value" fields of one line.
std::optional<int64_t> Field(const std::string& line, const std::string& key) {
  for (absl::string_view word : absl::StrSplit(line, ' ')) {
    if (absl::StartsWith(word, key + "=")) {
      int64_t value = 0;
      if (absl::SimpleAtoi(word.substr(key.size() + 1), &value)) return value;
    }
  }
  return std::nullopt;
}

ProcessFigures ParseFigures(const std::string& line) {
  ProcessFigures figures;
  figures.fds = static_cast<int>(Field(line, "fds").value_or(-1));
  figures.rss_kb = static_cast<uint64_t>(Field(line, "rss_kb").value_or(0));
  return figures;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::string& binary, const std::string& dir, const std::vector<std::string>& devices,
    const std::string& log_path, const std::string& log_level, absl::Duration max_write_stall,
    absl::Duration timeout) {
  std::unique_ptr<ServerProcess> process(new ServerProcess());
  process->log_path_ = log_path;
  std::vector<std::string> args = {
      binary, absl::StrCat("--max_write_stall_ms=", absl::ToInt64Milliseconds(max_write_stall))};
  for (size_t i = 0; i < devices.size(); ++i) {
    process->sockets_.push_back(absl::StrCat(dir, "/", devices[i], i, ".sock"));
    args.push_back(absl::StrCat(devices[i], ":", process->sockets_.back()));
  }
  int to_child[2], from_child[2];
  if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) {
    return absl::ErrnoToStatus(errno, "pipe2");
  }
  process->commands_.reset(to_child[1]);
  process->answers_.reset(from_child[0]);
  UniqueFd child_stdin(to_child[0]), child_stdout(from_child[1]);
  UniqueFd log(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!log.valid()) return absl::ErrnoToStatus(errno, "open " + log_path);

  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, child_stdin.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, child_stdout.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, log.get(), STDERR_FILENO);
  // Our environment (sanitizer options included) with the log level set.
  std::vector<std::string> environment = {"VFU_LOG_LEVEL=" + log_level};
  for (char** entry = environ; *entry != nullptr; ++entry) {
    if (!absl::StartsWith(*entry, "VFU_LOG_LEVEL=")) environment.emplace_back(*entry);
  }
  std::vector<char*> envp;
  for (std::string& entry : environment) envp.push_back(entry.data());
  envp.push_back(nullptr);
  const int error =
      ::posix_spawn(&process->pid_, binary.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) {
    process->pid_ = -1;
    return absl::ErrnoToStatus(error, "posix_spawn " + binary);
  }
  std::optional<std::string> line = process->ReadLine(timeout);
  if (line != "ready") {
    return absl::UnavailableError(absl::StrCat("the soak server did not start; its log:\n",
                                               process->LogTail(4096)));
  }
  return process;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0 && Alive()) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

bool ServerProcess::Alive() {
  absl::MutexLock lock(&mu_);
  if (exited_) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    exited_ = true;
    wait_status_ = status;
    return false;
  }
  return true;
}

std::optional<int> ServerProcess::ExitStatus() {
  if (Alive()) return std::nullopt;
  absl::MutexLock lock(&mu_);
  return wait_status_;
}

std::optional<std::string> ServerProcess::ReadLine(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (size_t end = pending_.find('\n'); end != std::string::npos) {
      std::string line = pending_.substr(0, end);
      pending_.erase(0, end + 1);
      return line;
    }
    const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left < 0) return std::nullopt;
    pollfd p = {.fd = answers_.get(), .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, static_cast<int>(left)) != 1) continue;
    char buffer[512];
    const ssize_t n = ::read(answers_.get(), buffer, sizeof buffer);
    if (n <= 0) return std::nullopt;
    pending_.append(buffer, static_cast<size_t>(n));
  }
}

bool ServerProcess::SendCommand(const std::string& command) {
  const std::string line = command + "\n";
  // A pipe write of a few bytes is atomic; a dead reader gives EPIPE, which
  // the test ignores SIGPIPE for (see soak_runner.cc).
  return ::write(commands_.get(), line.data(), line.size()) == static_cast<ssize_t>(line.size());
}

absl::StatusOr<ProcessFigures> ServerProcess::Measure(absl::Duration timeout) {
  if (!SendCommand("measure")) return absl::UnavailableError("the soak server is gone");
  std::optional<std::string> line = ReadLine(timeout);
  if (!line.has_value()) return absl::DeadlineExceededError("no answer to measure");
  return ParseFigures(*line);
}

StopResult ServerProcess::Stop(absl::Duration timeout) {
  StopResult result;
  if (SendCommand("stop")) {
    std::optional<std::string> line = ReadLine(timeout);
    if (line.has_value() && absl::StartsWith(*line, "stopped")) {
      if (std::optional<int64_t> us = Field(*line, "stop_us")) {
        result.stop_time = absl::Microseconds(*us);
      }
      result.after_stop = ParseFigures(*line);
    }
  }
  // The process exits right after its answer; the deadline bounds a hang in
  // its destructors (and LeakSanitizer's scan at exit), counted from the
  // answer. 10 ms is only the interval between looks.
  const absl::Time deadline = absl::Now() + timeout;
  while (Alive() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  if (Alive()) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    absl::MutexLock lock(&mu_);
    exited_ = true;
    wait_status_ = SIGKILL;
    return result;
  }
  result.wait_status = ExitStatus();
  return result;
}

std::string ServerProcess::LogTail(size_t bytes) const {
  std::ifstream in(log_path_, std::ios::binary);
  std::stringstream all;
  all << in.rdbuf();
  const std::string text = all.str();
  return text.size() <= bytes ? text : text.substr(text.size() - bytes);
}

uint64_t ServerProcess::LogBytes() const {
  struct stat st;
  return ::stat(log_path_.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

}  // namespace vfu::soak
