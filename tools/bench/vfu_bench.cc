// vfu_bench: what vfu's threaded server costs on top of the UNIX socket it
// serves, as ratios against raw-socket floors measured in the same run.
//
//   bazel run -c opt //tools/bench:vfu_bench
//   bazel run -c opt //tools/bench:vfu_bench -- --mode=sleep --reactor_busy_poll_us=50
//   bazel run -c opt //tools/bench:vfu_bench -- --mode=connect
//   bazel run -c opt //tools/bench:vfu_bench -- --mode=devices --clients=1,8,64
//
// Every message is one a VMM sends for a 4-byte BAR access: a REGION_READ
// request is 32 bytes (16-byte header, 16-byte payload), its reply 36 bytes
// (4 data bytes more), a posted REGION_WRITE 36 bytes. The device serves a
// 4 KiB BAR0 with one memcpy per access, so the figures are vfu's own cost.
//
// Figures, each vfu figure next to the raw floor it is divided by:
//   (a) raw ping-pong: the parent sends a REGION_READ request on a
//       socketpair to a forked echo child and waits for the 36-byte reply.
//       Median and p99 round trip. The floor of (b).
//   (b) REGION_READ round trip: vfu::Client::RegionRead() against a
//       vfu::Server in a forked child: socket, IO thread, worker, IO thread,
//       socket. Median and p99; the ratio of medians is the target figure.
//       Both round trips are also split at the moment the peer (the echo
//       child's recv, the device's read hook) saw the request: the request
//       leg carries vfu's IO-thread-to-worker hand-off, the reply leg its
//       worker-to-IO-thread hand-off.
//   (c) pipelined REGION_READ: `--window` requests in flight, a new one sent
//       as each reply is collected (Client::Send/Await); messages per
//       second. Floor: the same bytes through the raw echo child, which
//       answers every request of each chunk it reads with one send.
//   (d) NO_REPLY REGION_WRITE flood: `--messages` posted 4-byte writes
//       (Client::SendNoReply), then one REGION_READ, which the server answers
//       only after every write ran (a client's commands run in order; the
//       bench checks that the read sees the last write and that the device
//       saw every write). Messages per second, the read included. Floor: the
//       raw child reads and discards the writes and answers the read.
//   (e) DMA copy throughput (tools/bench/dma_throughput.h, --dma): device
//       code's DmaRead through memory shared with an fd against memcpy, and
//       through DMA_READ messages against a raw UNIX-socket request/response
//       of the same size, at 4 KiB, 64 KiB and 1 MiB.
// Two more figures have modes of their own, with the server and the clients
// in this process (threads, no fork):
//   (f) --mode=connect (tools/bench/connect_rate.h): connect / VERSION /
//       close cycles per second of one client, against a raw connect, one
//       round trip of the same bytes and close served by a trivial accept
//       loop. A refused or failed cycle is counted and printed, never
//       hidden; any makes the run exit non-zero.
//   (g) --mode=devices (tools/bench/many_devices.h): K devices in one
//       server, K client threads pipelining REGION_READs (--window each) at
//       once, for each K of --clients: the aggregate rate against the
//       first K's, and the slowest client's share of the mean.
// The raw ends send exactly vfu's bytes (built with vfu/wire) and the echo
// child frames the stream by each header's msg_size, so a figure differs
// from its floor only by what vfu does in between: the client library, the
// IO thread, the hand-off to a worker and back.
//
// Rounds. Each floor and its figure are measured back to back, `--rounds`
// times, each time after a warm-up of a tenth of the count. A pass stops at
// its count or after --pass_seconds (a warm-up after a tenth), whichever
// comes first, so that a busy machine cannot stretch a run. A figure pools
// its rounds (all latency samples; total messages over total time), and the
// "round ratios" column shows the spread of the ratio computed per round:
// on a small machine other processes' load drifts, and this is how much.
//
// Servers (--server). `vfu`: vfu's threaded Server (IO thread + workers).
// `capi`: a device written against the libvfio-user-compatible C API
// (vfu/capi) in poll mode: the server child's one thread waits in poll(2)
// on vfu_get_poll_fd() and calls vfu_run_ctx() (in `spin`
// mode it polls without sleeping while work keeps coming, as SPDK's pollers
// do, and sleeps after 200 us without work so that it leaves the CPUs to
// the floors measured in between); nothing crosses threads. `both` runs the
// two server children side by side, each figure of one next to the same
// figure of the other within each round, each against its own floor, and
// adds rows of the C API's (c) and (d) against the threaded server's
// (mode "<mode>/capi:vfu", the threaded figure in the floor column). In
// sleep mode the C API also gets (a'): the raw ping-pong with both ends
// waiting in poll(2) before each read, as a poll-mode server and vfu's
// client must, which costs a few microseconds per wake-up more than
// blocking in recv(2); (b) is shown against it too.
//
// Modes (--mode). `spin`: the client sets ClientOptions::busy_poll, and both
// raw ends spin on non-blocking send/recv. `sleep`: the client sleeps in
// poll(2), the raw ends block in send/recv. Ratios compare figures of the
// same mode. The server's IO thread spins after every iteration only with
// --reactor_busy_poll_us, in both modes; it polls for the reply of a
// command in flight (RuntimeOptions::reply_busy_poll, --reply_busy_poll_us)
// and one idle worker polls for the next command
// (RuntimeOptions::worker_idle_spin, --worker_idle_spin_us) by default,
// both backing off when the CPU is wanted elsewhere (--poll_backoff_us).
//
// Processes. The parent stays single-threaded (its client starts no
// thread), so it may fork at any time. Each mode forks one server child;
// each floor forks its own echo child, which is gone before the next figure
// starts, so a spinning echo child never competes with a vfu figure for a
// CPU. A child keeps only its own socket open (every other inherited fd is
// closed), ignores SIGINT, exits at EOF on that socket (the parent closing
// it, or exiting for whatever reason), and is reaped by the parent.
//
// Counters (second table, per message of the measured passes), from the
// kernel's per-thread /proc files: context switches (voluntary: the thread
// blocked; involuntary: it was preempted), CPU time, and time spent runnable
// but waiting for a CPU, of the client, of the peer (the echo child, or the
// server's IO thread and workers, also shown apart); and the server's own
// counters: eventfd wake-ups (Reactor::wakeups(): worker-to-IO hand-offs
// that found the IO thread asleep), epoll_wait returns, reactor tasks and
// pool tasks (strand runners), tasks an idle worker took while polling
// (WorkerPool::spin_hits()), loop iterations that polled for a reply
// (Reactor::poller_polls()), and the client's poll(2) sleeps. The server
// child reports its side over a control socket when the parent asks,
// between passes.
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "google/protobuf/util/json_util.h"
#include "libvfio-user.h"
#include "proto/benchmark_report.pb.h"
#include "tools/bench/bench_io.h"
#include "tools/bench/connect_rate.h"
#include "tools/bench/dma_throughput.h"
#include "tools/bench/many_devices.h"
#include "tools/bench/pipelined_reads.h"
#include "vfu/base/check.h"
#include "vfu/base/log.h"
#include "vfu/base/unique_fd.h"
#include "vfu/client/client.h"
#include "vfu/vfu.h"
#include "vfu/wire/constants.h"
#include "vfu/wire/header.h"
#include "vfu/wire/region_access.h"

ABSL_FLAG(int, rounds, 3,
          "times each floor and its figure are measured, alternately; the figures pool "
          "all rounds");
ABSL_FLAG(int, iterations, 10000,
          "round trips measured per round of a latency figure, (a) and (b), after a "
          "warm-up of a tenth as many");
ABSL_FLAG(int, messages, 60000,
          "messages per round of a rate figure, (c) and (d), after a warm-up of a tenth "
          "as many");
ABSL_FLAG(double, pass_seconds, 1.0,
          "a measured pass also stops after this long (its warm-up after a tenth), "
          "which bounds a run on a busy machine");
ABSL_FLAG(int, window, 32, "requests in flight in the pipelined figure (c)");
ABSL_FLAG(int, workers, 2, "worker threads of the vfu server");
ABSL_FLAG(int, reactor_busy_poll_us, 0,
          "the server's Reactor::set_busy_poll() window in microseconds (0: the IO "
          "thread blocks at once)");
ABSL_FLAG(int, reply_busy_poll_us, -1,
          "the server's RuntimeOptions::reply_busy_poll in microseconds (-1: its default, "
          "0: off)");
ABSL_FLAG(int, worker_idle_spin_us, -1,
          "the server's RuntimeOptions::worker_idle_spin in microseconds (-1: its default, "
          "0: off)");
ABSL_FLAG(int, poll_backoff_us, -1,
          "the server's RuntimeOptions::poll_backoff in microseconds (-1: its default, 0: "
          "polls never back off)");
ABSL_FLAG(std::string, mode, "both",
          "spin, sleep or both: how the client and the raw ends wait for data; or connect "
          "(connect / VERSION / close cycles) or devices (K devices and clients, one IO thread)");
ABSL_FLAG(std::string, server, "vfu",
          "vfu (the threaded Server), capi (a poll-mode server on the C API), or both");
ABSL_FLAG(std::vector<std::string>, clients, std::vector<std::string>({"1", "8", "64"}),
          "--mode=devices: the numbers of devices and concurrent clients (K), ascending");
ABSL_FLAG(bool, dma, true,
          "also measure DMA copy throughput, mapped and through messages (text output only)");
ABSL_FLAG(bool, csv, false, "print one CSV table instead of the two text tables");
ABSL_FLAG(std::string, report, "",
          "also write the figures as a vfu.proto.BenchmarkReport in JSON to this file");

namespace vfu::bench {
namespace {

constexpr uint32_t kAccessSize = kPipelinedReadSize;
constexpr uint64_t kBarSize = 4096;
// REGION_READ reply payload: the 16-byte prefix and the data.
constexpr size_t kReadReplyPayload = wire::kRegionAccessPrefixSize + kAccessSize;
constexpr size_t kReadReplySize = wire::kHeaderSize + kReadReplyPayload;
// A raw end that sees no progress for this long gives up: the peer is stuck.
constexpr int64_t kStallLimitNs = int64_t{10} * 1000 * 1000 * 1000;
// A child's socket is moved to this fd; every fd above it is closed.
constexpr int kChildFd = 3;
// The echo child's receive buffer: up to this much is answered per send.
constexpr size_t kEchoBufferSize = 256 * 1024;

// The time the peer (the device's read hook, or the echo child) last saw a
// request, in memory shared by every process of the run (CLOCK_MONOTONIC is
// one clock for all of them). It splits a round trip into a request leg
// (client send -> peer) and a reply leg (peer -> client has the reply).
// Mapped on the first call, which Run() makes before any fork.
std::atomic<int64_t>& PeerStamp() {
  static std::atomic<int64_t>* const stamp = [] {
    void* page = ::mmap(nullptr, sizeof(std::atomic<int64_t>), PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    VFU_CHECK(page != MAP_FAILED, "mmap of the shared stamp failed");
    return new (page) std::atomic<int64_t>(0);
  }();
  return *stamp;
}

// ------------------------------------------------------------------ device

// BAR0 is 4 KiB of memory, accessed with one memcpy. Hooks of one device never
// run concurrently (Device contract), so the bytes need no lock; the counters
// are atomic only because the server child's main thread reads them.
class BarDevice : public Device {
 public:
  RegionDescription DescribeRegion(uint32_t index) const override {
    if (index == 0) return {.size = kBarSize, .readable = true, .writable = true};
    return {};
  }

  absl::Status ReadRegion(uint32_t index, uint64_t offset, absl::Span<uint8_t> out) override {
    PeerStamp().store(NowNs(), std::memory_order_relaxed);
    std::memcpy(out.data(), bar0_ + offset, out.size());
    reads_.fetch_add(1, std::memory_order_relaxed);
    return absl::OkStatus();
  }

  absl::Status WriteRegion(uint32_t index, uint64_t offset,
                           absl::Span<const uint8_t> data) override {
    std::memcpy(bar0_ + offset, data.data(), data.size());
    writes_.fetch_add(1, std::memory_order_relaxed);
    return absl::OkStatus();
  }

  uint64_t reads() const { return reads_.load(std::memory_order_relaxed); }
  uint64_t writes() const { return writes_.load(std::memory_order_relaxed); }

 private:
  uint8_t bar0_[kBarSize] = {};
  std::atomic<uint64_t> reads_{0};
  std::atomic<uint64_t> writes_{0};
};

// ---------------------------------------------------------------- messages

std::vector<uint8_t> ReadRequestPayload() {
  std::vector<uint8_t> payload;
  wire::EncodeRegionReadRequest({.offset = 0, .region = 0, .count = kAccessSize}, payload);
  return payload;
}

// A 4-byte REGION_WRITE payload for BAR0[0]; SetWriteValue() fills its data.
std::vector<uint8_t> WritePayload() {
  const uint8_t zeros[kAccessSize] = {};
  std::vector<uint8_t> payload;
  wire::EncodeRegionWriteRequest({.offset = 0, .region = 0, .data = zeros}, payload);
  return payload;
}

// Stores `value` as the data of a REGION_WRITE whose payload starts at
// `payload_offset` in `bytes`.
void SetWriteValue(std::vector<uint8_t>& bytes, size_t payload_offset, uint32_t value) {
  std::memcpy(bytes.data() + payload_offset + wire::kRegionAccessPrefixSize, &value, sizeof value);
}

std::vector<uint8_t> CommandMessage(wire::Command command, bool no_reply,
                                    absl::Span<const uint8_t> payload) {
  std::vector<uint8_t> message = wire::StartMessage(payload.size());
  message.insert(message.end(), payload.begin(), payload.end());
  wire::FinishMessage(wire::CommandHeader(/*msg_id=*/0, command, no_reply), message);
  return message;
}

// The echo child's answer; its header is rewritten per request.
std::vector<uint8_t> ReadReplyMessage() {
  const uint8_t data[kAccessSize] = {};
  std::vector<uint8_t> message = wire::StartMessage(kReadReplyPayload);
  wire::EncodeRegionReadReply({.offset = 0, .region = 0, .count = kAccessSize}, data, message);
  wire::FinishMessage(wire::ReplyHeader(wire::CommandHeader(0, wire::Command::kRegionRead)),
                      message);
  return message;
}

// -------------------------------------------------------------- raw socket

// How a raw end waits for data.
enum class RawWait {
  kSpin,   // non-blocking calls in a loop
  kBlock,  // blocking in recv(2) (bounded by SO_RCVTIMEO/SO_SNDTIMEO)
  // Waits in poll(2) for the socket to be readable, then reads: the wait a
  // poll-mode server (and vfu's client) cannot avoid, which costs a few
  // microseconds more per wake-up than blocking in recv(2).
  kPoll,
};

// One end of a raw stream, waiting the way the vfu client does in the same
// mode: spinning on non-blocking calls, or blocking in the kernel. Borrows
// the fd.
class RawEnd {
 public:
  RawEnd(int fd, RawWait wait) : fd_(fd), spin_(wait == RawWait::kSpin), poll_(wait == RawWait::kPoll) {
    if (!spin_) {
      const struct timeval limit = {.tv_sec = kStallLimitNs / 1000000000, .tv_usec = 0};
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
      ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    }
  }

  // Sends all of `bytes`.
  absl::Status SendAll(absl::Span<const uint8_t> bytes) {
    const int flags = MSG_NOSIGNAL | (spin_ ? MSG_DONTWAIT : 0);
    size_t done = 0;
    int64_t stalled_since = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, flags);
      if (n > 0) {
        done += static_cast<size_t>(n);
        stalled_since = 0;
      } else if (errno != EINTR) {
        VFU_RETURN_IF_ERROR(CheckRetry(errno, "send", stalled_since));
      }
    }
    return absl::OkStatus();
  }

  // Receives at least one byte into `out`; 0 means the peer closed.
  absl::StatusOr<size_t> Receive(absl::Span<uint8_t> out) {
    const int flags = spin_ ? MSG_DONTWAIT : 0;
    int64_t stalled_since = 0;
    if (poll_) {
      pollfd readable = {.fd = fd_, .events = POLLIN, .revents = 0};
      const struct timespec limit = {.tv_sec = kStallLimitNs / 1000000000, .tv_nsec = 0};
      if (::ppoll(&readable, 1, &limit, nullptr) == 0) {
        return absl::DeadlineExceededError("poll: raw peer stalled");
      }
    }
    for (;;) {
      const ssize_t n = ::recv(fd_, out.data(), out.size(), flags);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) VFU_RETURN_IF_ERROR(CheckRetry(errno, "recv", stalled_since));
    }
  }

  // Receives exactly out.size() bytes.
  absl::Status ReceiveExactly(absl::Span<uint8_t> out) {
    size_t done = 0;
    while (done < out.size()) {
      VFU_ASSIGN_OR_RETURN(size_t n, Receive(out.subspan(done)));
      if (n == 0) return absl::UnavailableError("raw peer closed the socket");
      done += n;
    }
    return absl::OkStatus();
  }

 private:
  // OK if the call that failed with `error` may be retried: EAGAIN while
  // spinning, until the stall limit.
  absl::Status CheckRetry(int error, const char* call, int64_t& stalled_since) const {
    if (error != EAGAIN && error != EWOULDBLOCK) return absl::ErrnoToStatus(error, call);
    const int64_t now = NowNs();
    if (stalled_since == 0) stalled_since = now;
    if (!spin_ || now - stalled_since > kStallLimitNs) {
      return absl::DeadlineExceededError(absl::StrCat(call, ": raw peer stalled"));
    }
    return absl::OkStatus();
  }

  const int fd_;
  const bool spin_;
  const bool poll_;
};

// The raw peer of every floor: frames the stream by msg_size and answers
// each command that wants a reply (the reads, never the posted writes) with
// a 36-byte REGION_READ reply, the answers to one chunk in one send. Returns
// the exit code: 0 at EOF.
int RunEchoChild(UniqueFd socket, RawWait wait) {
  RawEnd end(socket.get(), wait);
  std::vector<uint8_t> in(kEchoBufferSize);
  size_t begin = 0;
  size_t filled = 0;
  std::vector<uint8_t> out;
  const std::vector<uint8_t> reply = ReadReplyMessage();
  for (;;) {
    if (filled == in.size()) {
      std::memmove(in.data(), in.data() + begin, filled - begin);
      filled -= begin;
      begin = 0;
    }
    absl::StatusOr<size_t> n = end.Receive(absl::MakeSpan(in).subspan(filled));
    if (!n.ok()) return 1;
    if (*n == 0) return 0;
    PeerStamp().store(NowNs(), std::memory_order_relaxed);
    filled += *n;
    while (filled - begin >= wire::kHeaderSize) {
      const wire::Header header =
          wire::DecodeHeader(absl::MakeConstSpan(in).subspan(begin, wire::kHeaderSize));
      if (header.msg_size < wire::kHeaderSize || header.msg_size > in.size()) return 2;
      if (filled - begin < header.msg_size) break;
      if (header.is_command() && !header.no_reply()) {
        const size_t at = out.size();
        out.insert(out.end(), reply.begin(), reply.end());
        wire::Header reply_header = wire::ReplyHeader(header);
        reply_header.msg_size = static_cast<uint32_t>(reply.size());
        wire::EncodeHeader(reply_header, absl::MakeSpan(out).subspan(at));
      }
      begin += header.msg_size;
    }
    if (begin == filled) begin = filled = 0;
    if (!out.empty()) {
      if (!end.SendAll(out).ok()) return 1;
      out.clear();
    }
  }
}

// ------------------------------------------------------------ thread usage

// The kernel's counters of one thread, or a sum of threads.
struct ThreadUsage {
  uint64_t voluntary = 0;    // context switches by blocking
  uint64_t involuntary = 0;  // preemptions
  uint64_t cpu_ns = 0;       // time on a CPU
  uint64_t wait_ns = 0;      // time runnable, waiting for a CPU

  ThreadUsage& operator+=(const ThreadUsage& other) {
    voluntary += other.voluntary;
    involuntary += other.involuntary;
    cpu_ns += other.cpu_ns;
    wait_ns += other.wait_ns;
    return *this;
  }
  ThreadUsage operator-(const ThreadUsage& other) const {
    return {voluntary - other.voluntary, involuntary - other.involuntary, cpu_ns - other.cpu_ns,
            wait_ns - other.wait_ns};
  }
};

// Reads thread `tid` of process `pid` from /proc: context switches from
// status, CPU and run-queue time from schedstat. Zeros if it is gone.
ThreadUsage ReadThreadUsage(pid_t pid, pid_t tid) {
  const std::string dir = absl::StrCat("/proc/", pid, "/task/", tid);
  ThreadUsage usage;
  std::ifstream status(dir + "/status");
  std::string key;
  while (status >> key) {
    if (key == "voluntary_ctxt_switches:") status >> usage.voluntary;
    if (key == "nonvoluntary_ctxt_switches:") status >> usage.involuntary;
  }
  std::ifstream schedstat(dir + "/schedstat");
  schedstat >> usage.cpu_ns >> usage.wait_ns;
  return usage;
}

// The calling thread (the parent is single-threaded: the whole client).
ThreadUsage SelfUsage() { return ReadThreadUsage(::getpid(), ::gettid()); }

// ------------------------------------------------------------ child process

// A forked child running `body` on its end of a socketpair, which it sees as
// kChildFd. Destroying this closes our end (the child's cue to exit) and
// reaps the child.
class ChildProcess {
 public:
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Fork(absl::FunctionRef<int(UniqueFd)> body) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
      return absl::ErrnoToStatus(errno, "socketpair");
    }
    UniqueFd ours(fds[0]);
    std::fflush(nullptr);  // Or the child would flush our buffered output too.
    const pid_t pid = ::fork();
    if (pid < 0) return absl::ErrnoToStatus(errno, "fork");
    if (pid == 0) {
      // Keep only our socket, so that no other child's socket (or the
      // parent's client) stays open here and hides its EOF.
      if (fds[1] != kChildFd && ::dup2(fds[1], kChildFd) < 0) ::_exit(3);
      if (::close_range(kChildFd + 1, ~0U, 0) != 0) {  // Before Linux 5.9.
        for (int fd = kChildFd + 1; fd < 1024; ++fd) ::close(fd);
      }
      // A Ctrl-C reaches the whole process group; the child leaves at the
      // EOF that follows instead, after cleaning up.
      ::signal(SIGINT, SIG_IGN);
      ours.release();
      ::_exit(body(UniqueFd(kChildFd)));
    }
    ::close(fds[1]);
    return std::unique_ptr<ChildProcess>(new ChildProcess(pid, std::move(ours)));
  }

  ~ChildProcess() {
    if (pid_ >= 0) Finish().IgnoreError();
  }

  int fd() const { return socket_.get(); }
  // The child's main thread (the echo child has no other) while it runs.
  ThreadUsage usage() const { return ReadThreadUsage(pid_, pid_); }

  // Closes our end of the socket and waits for the child to exit; an error
  // if it failed.
  absl::Status Finish() {
    if (pid_ < 0) return absl::FailedPreconditionError("child already reaped");
    socket_.reset();
    int status = 0;
    pid_t reaped;
    do {
      reaped = ::waitpid(pid_, &status, 0);
    } while (reaped < 0 && errno == EINTR);
    pid_ = -1;
    if (reaped < 0) return absl::ErrnoToStatus(errno, "waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return absl::InternalError(absl::StrCat("child process failed (wait status ", status, ")"));
    }
    return absl::OkStatus();
  }

 private:
  ChildProcess(pid_t pid, UniqueFd socket) : pid_(pid), socket_(std::move(socket)) {}

  pid_t pid_;
  UniqueFd socket_;
};

// ------------------------------------------------------------- server child

// What the server child reports: sent as raw bytes between processes of
// the same binary.
struct ServerStats {
  uint64_t reactor_wakeups = 0;
  uint64_t reactor_iterations = 0;
  uint64_t reactor_tasks = 0;
  uint64_t pool_tasks = 0;
  uint64_t pool_spin_hits = 0;
  uint64_t reactor_poller_polls = 0;
  uint64_t device_reads = 0;
  uint64_t device_writes = 0;
  ThreadUsage io_thread;
  ThreadUsage workers;  // all threads but the IO thread and the main thread
};

ServerStats CollectServerStats(Server& server, const BarDevice& device, pid_t io_tid) {
  ServerStats stats;
  stats.reactor_wakeups = server.reactor().wakeups();
  stats.reactor_iterations = server.reactor().loop_iterations();
  stats.reactor_tasks = server.reactor().tasks_run();
  stats.pool_tasks = server.pool().tasks_run();
  stats.pool_spin_hits = server.pool().spin_hits();
  stats.reactor_poller_polls = server.reactor().poller_polls();
  stats.device_reads = device.reads();
  stats.device_writes = device.writes();
  const pid_t self = ::getpid();
  if (DIR* dir = ::opendir("/proc/self/task")) {
    while (struct dirent* entry = ::readdir(dir)) {
      const pid_t tid = static_cast<pid_t>(std::atoi(entry->d_name));
      if (tid <= 0 || tid == self) continue;
      (tid == io_tid ? stats.io_thread : stats.workers) += ReadThreadUsage(self, tid);
    }
    ::closedir(dir);
  }
  return stats;
}

// Control protocol on the server child's socket: the child writes kReady
// once clients can connect; each kStatsRequest byte from the parent is
// answered with a ServerStats; EOF stops the server.
constexpr char kReady = 'R';
constexpr char kStatsRequest = 'S';

int RunServerChild(UniqueFd control, const std::string& socket_path, int workers,
                   int busy_poll_us) {
  const pid_t parent = ::getppid();
  BarDevice device;
  ServerOptions options;
  options.worker_threads = static_cast<size_t>(workers);
  if (const int us = absl::GetFlag(FLAGS_reply_busy_poll_us); us >= 0) {
    options.runtime.reply_busy_poll = absl::Microseconds(us);
  }
  if (const int us = absl::GetFlag(FLAGS_worker_idle_spin_us); us >= 0) {
    options.runtime.worker_idle_spin = absl::Microseconds(us);
  }
  if (const int us = absl::GetFlag(FLAGS_poll_backoff_us); us >= 0) {
    options.runtime.poll_backoff = absl::Microseconds(us);
  }
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Create(options);
  absl::Status status = server.status();
  if (status.ok()) status = (*server)->AddDevice(socket_path, device);
  if (status.ok()) status = (*server)->Start();
  if (!status.ok()) {
    std::fprintf(stderr, "vfu_bench server: %s\n", status.ToString().c_str());
    return 1;
  }
  (*server)->reactor().set_busy_poll(absl::Microseconds(busy_poll_us));
  // Learn the IO thread's tid, to tell its counters from the workers'.
  std::atomic<pid_t> io_tid{0};
  (*server)->reactor().Post([&io_tid] { io_tid.store(::gettid()); });
  for (int i = 0; i < 5000 && io_tid.load() == 0; ++i) ::usleep(1000);
  if (io_tid.load() == 0 || !WriteAll(control.get(), &kReady, 1)) return 1;
  char request;
  while (ReadAll(control.get(), &request, 1) && request == kStatsRequest) {
    const ServerStats stats = CollectServerStats(**server, device, io_tid.load());
    if (!WriteAll(control.get(), &stats, sizeof stats)) break;
  }
  (*server)->Stop();
  // An orphan (the parent was killed, or interrupted) also removes the
  // socket's directory, which the parent would otherwise remove at its end.
  const std::string::size_type slash = socket_path.rfind('/');
  if (::getppid() != parent && slash != std::string::npos) {
    ::rmdir(socket_path.substr(0, slash).c_str());
  }
  return 0;
}

// The same BAR0 as BarDevice, served through the C API.
struct CapiBar {
  uint8_t bytes[kBarSize] = {};
  uint64_t reads = 0;
  uint64_t writes = 0;
};

ssize_t CapiBarAccess(vfu_ctx_t* ctx, char* buf, size_t count, loff_t offset, bool is_write) {
  auto* bar = static_cast<CapiBar*>(vfu_get_private(ctx));
  if (is_write) {
    std::memcpy(bar->bytes + offset, buf, count);
    ++bar->writes;
  } else {
    PeerStamp().store(NowNs(), std::memory_order_relaxed);
    std::memcpy(buf, bar->bytes + offset, count);
    ++bar->reads;
  }
  return static_cast<ssize_t>(count);
}

// How long a spinning C server keeps polling after its last work before it
// sleeps in poll(2): long enough to span any client's turnaround, short
// enough that it is asleep while the floors between its figures run (a
// spinning server there would take a CPU from them).
constexpr int64_t kCapiIdleSpinNs = 200 * 1000;
// Iterations of a spinning C server between looks at its control socket.
constexpr uint64_t kCapiSpinControlInterval = 256;

// The poll-mode C server: one thread serves the parent's control socket and
// the device, waiting in poll(2) on both, calling vfu_run_ctx() when the
// device's poll fd is readable, as an event loop that has other fds to
// watch does. (Waiting on the device's fd alone would save about a
// microsecond per wake-up of a sleeping server.)
// `spin`: polls without sleeping while work keeps coming, as SPDK's pollers
// do.
int RunCapiServerChild(UniqueFd control, const std::string& socket_path, bool spin) {
  CapiBar bar;
  vfu_ctx_t* ctx = vfu_create_ctx(VFU_TRANS_SOCK, socket_path.c_str(),
                                  LIBVFIO_USER_FLAG_ATTACH_NB, &bar, VFU_DEV_TYPE_PCI);
  if (ctx == nullptr ||
      vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, kBarSize, CapiBarAccess,
                       VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, nullptr, 0, -1, 0) != 0 ||
      vfu_realize_ctx(ctx) != 0) {
    std::fprintf(stderr, "vfu_bench capi server: setup failed: %s\n", std::strerror(errno));
    return 1;
  }
  if (!WriteAll(control.get(), &kReady, 1)) return 1;
  bool attached = false;
  int64_t last_work_ns = 0;
  int rc = 0;
  for (uint64_t iteration = 0;; ++iteration) {
    const bool spinning = spin && attached && NowNs() - last_work_ns < kCapiIdleSpinNs;
    pollfd fds[2] = {{.fd = control.get(), .events = POLLIN, .revents = 0},
                     {.fd = vfu_get_poll_fd(ctx), .events = POLLIN, .revents = 0}};
    // A spinning poller calls vfu_run_ctx() without asking poll(2) first,
    // as SPDK's do; it looks at the control socket now and then.
    const bool look = !spinning || iteration % kCapiSpinControlInterval == 0;
    if (look && ::poll(fds, 2, spinning ? 0 : -1) < 0 && errno != EINTR) {
      rc = 1;
      break;
    }
    if (fds[0].revents != 0) {
      char request;
      if (!ReadAll(control.get(), &request, 1) || request != kStatsRequest) break;
      ServerStats stats;
      stats.device_reads = bar.reads;
      stats.device_writes = bar.writes;
      stats.io_thread = SelfUsage();
      if (!WriteAll(control.get(), &stats, sizeof stats)) break;
    }
    if (!attached) {
      if (fds[1].revents != 0 && vfu_attach_ctx(ctx) == 0) {
        attached = true;
        last_work_ns = NowNs();
      }
      continue;
    }
    // Spinning, run whether or not poll() saw the bytes arrive.
    if (!spinning && fds[1].revents == 0) continue;
    const int handled = vfu_run_ctx(ctx);
    if (handled > 0) last_work_ns = NowNs();
    if (handled < 0 && errno == ENOTCONN) attached = false;
  }
  vfu_destroy_ctx(ctx);
  return rc;
}

// The parent's handle on a server child.
class ServerProcess {
 public:
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(const std::string& socket_path,
                                                              int workers, int busy_poll_us,
                                                              bool capi = false,
                                                              bool spin = false) {
    VFU_ASSIGN_OR_RETURN(
        std::unique_ptr<ChildProcess> child, ChildProcess::Fork([&](UniqueFd control) {
          if (capi) return RunCapiServerChild(std::move(control), socket_path, spin);
          return RunServerChild(std::move(control), socket_path, workers, busy_poll_us);
        }));
    char ready = 0;
    if (!ReadAll(child->fd(), &ready, 1) || ready != kReady) {
      return absl::InternalError("the server child did not start");
    }
    return std::unique_ptr<ServerProcess>(new ServerProcess(std::move(child)));
  }

  absl::StatusOr<ServerStats> Stats() {
    ServerStats stats;
    if (!WriteAll(child_->fd(), &kStatsRequest, 1) ||
        !ReadAll(child_->fd(), &stats, sizeof stats)) {
      return absl::UnavailableError("the server child is gone");
    }
    return stats;
  }

  // Stops the server and reaps the child.
  absl::Status Stop() { return child_->Finish(); }

 private:
  explicit ServerProcess(std::unique_ptr<ChildProcess> child) : child_(std::move(child)) {}

  std::unique_ptr<ChildProcess> child_;
};

// ------------------------------------------------------------- measurements

// One measured pass.
struct Pass {
  int64_t messages = 0;  // messages the client sent, posted ones included
  int64_t elapsed_ns = 0;
  // Latency figures only: each round trip, and its request leg (see
  // PeerStamp()); the reply leg is the difference.
  std::vector<int64_t> rtt_ns;
  std::vector<int64_t> request_leg_ns;
  // vfu figures: the device accesses the pass must have caused.
  uint64_t device_reads = 0;
  uint64_t device_writes = 0;

  double rate() const { return messages * 1e9 / static_cast<double>(elapsed_ns); }
};

// Counters of the measured passes of one figure, summed; printed per
// message.
struct Costs {
  uint64_t messages = 0;
  ThreadUsage client;
  // The echo child, or the server's IO thread and workers together.
  ThreadUsage peer;
  // vfu only.
  bool vfu = false;
  ThreadUsage io_thread;
  ThreadUsage workers;
  uint64_t wakeups = 0;        // Reactor::wakeups(): eventfd writes
  uint64_t epoll_returns = 0;  // Reactor::loop_iterations()
  uint64_t reactor_tasks = 0;
  uint64_t pool_tasks = 0;     // strand runners
  uint64_t spin_hits = 0;      // WorkerPool::spin_hits()
  uint64_t poller_polls = 0;   // Reactor::poller_polls()
  uint64_t client_sleeps = 0;  // ClientStats::poll_sleeps

  Costs& operator+=(const Costs& other) {
    messages += other.messages;
    client += other.client;
    peer += other.peer;
    vfu = vfu || other.vfu;
    io_thread += other.io_thread;
    workers += other.workers;
    wakeups += other.wakeups;
    epoll_returns += other.epoll_returns;
    reactor_tasks += other.reactor_tasks;
    pool_tasks += other.pool_tasks;
    spin_hits += other.spin_hits;
    poller_polls += other.poller_polls;
    client_sleeps += other.client_sleeps;
    return *this;
  }
};

struct Measurement {
  Pass pass;
  Costs costs;
};

// One figure's measured passes over all rounds: messages, time and costs
// summed, latency samples pooled.
struct Series {
  Pass total;
  Costs costs;

  void Add(const Measurement& m) {
    total.messages += m.pass.messages;
    total.elapsed_ns += m.pass.elapsed_ns;
    total.rtt_ns.insert(total.rtt_ns.end(), m.pass.rtt_ns.begin(), m.pass.rtt_ns.end());
    total.request_leg_ns.insert(total.request_leg_ns.end(), m.pass.request_leg_ns.begin(),
                                m.pass.request_leg_ns.end());
    costs += m.costs;
  }
};

// How much a pass may do: `count` messages, but it stops early (and reports
// what it did) once `deadline_ns` has passed, which bounds a run on a busy
// machine. Every pass does at least one message.
struct Limit {
  int count;
  int64_t deadline_ns;

  bool Expired() const { return NowNs() >= deadline_ns; }
};

// The warm-up's limit (a tenth) and the measured pass's.
Limit WarmupLimit(int count, int64_t pass_ns) {
  return {std::max(1, count / 10), NowNs() + pass_ns / 10};
}
Limit PassLimit(int count, int64_t pass_ns) { return {count, NowNs() + pass_ns}; }

using RawRun = absl::FunctionRef<absl::StatusOr<Pass>(RawEnd&, Limit)>;
using VfuRun = absl::FunctionRef<absl::StatusOr<Pass>(Client&, Limit)>;

// Forks an echo child, runs a warm-up and a measured pass against it, and
// reaps it.
absl::StatusOr<Measurement> MeasureRaw(RawWait wait, int count, int64_t pass_ns, RawRun run) {
  VFU_ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> child,
                       ChildProcess::Fork([wait](UniqueFd socket) {
                         return RunEchoChild(std::move(socket), wait);
                       }));
  RawEnd end(child->fd(), wait);
  VFU_RETURN_IF_ERROR(run(end, WarmupLimit(count, pass_ns)).status());
  const ThreadUsage client0 = SelfUsage();
  const ThreadUsage peer0 = child->usage();
  VFU_ASSIGN_OR_RETURN(Pass pass, run(end, PassLimit(count, pass_ns)));
  const ThreadUsage client1 = SelfUsage();
  const ThreadUsage peer1 = child->usage();
  VFU_RETURN_IF_ERROR(child->Finish());

  Measurement m;
  m.costs.messages = static_cast<uint64_t>(pass.messages);
  m.costs.client = client1 - client0;
  m.costs.peer = peer1 - peer0;
  m.pass = std::move(pass);
  return m;
}

// Runs a warm-up and a measured pass on `client`, with the server's counters
// read around the measured one, and checks that the device saw the accesses
// the pass made.
absl::StatusOr<Measurement> MeasureVfu(ServerProcess& server, Client& client, int count,
                                       int64_t pass_ns, VfuRun run) {
  VFU_RETURN_IF_ERROR(run(client, WarmupLimit(count, pass_ns)).status());
  VFU_ASSIGN_OR_RETURN(const ServerStats s0, server.Stats());
  const ClientStats c0 = client.stats();
  const ThreadUsage u0 = SelfUsage();
  VFU_ASSIGN_OR_RETURN(Pass pass, run(client, PassLimit(count, pass_ns)));
  const ThreadUsage u1 = SelfUsage();
  const ClientStats c1 = client.stats();
  VFU_ASSIGN_OR_RETURN(const ServerStats s1, server.Stats());

  if (s1.device_reads - s0.device_reads != pass.device_reads ||
      s1.device_writes - s0.device_writes != pass.device_writes) {
    return absl::InternalError(absl::StrCat("the device saw ", s1.device_reads - s0.device_reads,
                                            " reads and ", s1.device_writes - s0.device_writes,
                                            " writes, expected ", pass.device_reads, " and ",
                                            pass.device_writes));
  }
  Measurement m;
  Costs& c = m.costs;
  c.messages = static_cast<uint64_t>(pass.messages);
  c.client = u1 - u0;
  c.vfu = true;
  c.io_thread = s1.io_thread - s0.io_thread;
  c.workers = s1.workers - s0.workers;
  c.peer = c.io_thread;
  c.peer += c.workers;
  c.wakeups = s1.reactor_wakeups - s0.reactor_wakeups;
  c.epoll_returns = s1.reactor_iterations - s0.reactor_iterations;
  c.reactor_tasks = s1.reactor_tasks - s0.reactor_tasks;
  c.pool_tasks = s1.pool_tasks - s0.pool_tasks;
  c.spin_hits = s1.pool_spin_hits - s0.pool_spin_hits;
  c.poller_polls = s1.reactor_poller_polls - s0.reactor_poller_polls;
  c.client_sleeps = c1.poll_sleeps - c0.poll_sleeps;
  m.pass = std::move(pass);
  return m;
}

// (a) One request, one reply, at a time.
absl::StatusOr<Pass> RawPingPong(RawEnd& end, Limit limit) {
  const std::vector<uint8_t> request =
      CommandMessage(wire::Command::kRegionRead, false, ReadRequestPayload());
  std::vector<uint8_t> reply(kReadReplySize);
  Pass pass;
  pass.rtt_ns.reserve(limit.count);
  pass.request_leg_ns.reserve(limit.count);
  const int64_t start = NowNs();
  int64_t t1 = start;
  // At least one round trip, so that every pass has a sample.
  while (pass.messages < limit.count && (pass.messages == 0 || t1 < limit.deadline_ns)) {
    const int64_t t0 = NowNs();
    VFU_RETURN_IF_ERROR(end.SendAll(request));
    VFU_RETURN_IF_ERROR(end.ReceiveExactly(absl::MakeSpan(reply)));
    t1 = NowNs();
    pass.rtt_ns.push_back(t1 - t0);
    pass.request_leg_ns.push_back(PeerStamp().load(std::memory_order_relaxed) - t0);
    ++pass.messages;
  }
  pass.elapsed_ns = t1 - start;
  return pass;
}

// (b)
absl::StatusOr<Pass> VfuRoundTrips(Client& client, Limit limit) {
  Pass pass;
  pass.rtt_ns.reserve(limit.count);
  pass.request_leg_ns.reserve(limit.count);
  const int64_t start = NowNs();
  int64_t t1 = start;
  // At least one round trip, so that every pass has a sample.
  while (pass.messages < limit.count && (pass.messages == 0 || t1 < limit.deadline_ns)) {
    const int64_t t0 = NowNs();
    VFU_ASSIGN_OR_RETURN(std::vector<uint8_t> data, client.RegionRead(0, 0, kAccessSize));
    t1 = NowNs();
    pass.rtt_ns.push_back(t1 - t0);
    pass.request_leg_ns.push_back(PeerStamp().load(std::memory_order_relaxed) - t0);
    if (data.size() != kAccessSize) return absl::InternalError("short REGION_READ");
    ++pass.messages;
  }
  pass.elapsed_ns = t1 - start;
  pass.device_reads = static_cast<uint64_t>(pass.messages);
  return pass;
}

// (c) floor: `window` requests in flight, one sent per reply received (one
// send each, as Client::Send makes). Past the deadline no new request goes
// out and the outstanding ones are collected.
absl::StatusOr<Pass> RawPipelined(RawEnd& end, Limit limit, int window) {
  const std::vector<uint8_t> request =
      CommandMessage(wire::Command::kRegionRead, false, ReadRequestPayload());
  std::vector<uint8_t> in(64 * 1024);
  const int64_t start = NowNs();
  int target = limit.count;
  int sent = 0;
  int received = 0;
  size_t partial = 0;  // bytes of a reply not complete yet
  for (; sent < std::min(window, target); ++sent) VFU_RETURN_IF_ERROR(end.SendAll(request));
  while (received < sent) {
    VFU_ASSIGN_OR_RETURN(size_t n, end.Receive(absl::MakeSpan(in)));
    if (n == 0) return absl::UnavailableError("raw peer closed the socket");
    partial += n;
    for (; partial >= kReadReplySize; partial -= kReadReplySize) {
      ++received;
      if (sent < target && limit.Expired()) target = sent;
      if (sent < target) {
        VFU_RETURN_IF_ERROR(end.SendAll(request));
        ++sent;
      }
    }
  }
  Pass pass;
  pass.elapsed_ns = NowNs() - start;
  pass.messages = received;
  return pass;
}

// (c)
absl::StatusOr<Pass> VfuPipelined(Client& client, Limit limit, int window) {
  const int64_t start = NowNs();
  VFU_ASSIGN_OR_RETURN(const int64_t done, RunPipelinedReads(client, window, limit.count,
                                                             [&limit] { return limit.Expired(); }));
  Pass pass;
  pass.elapsed_ns = NowNs() - start;
  pass.messages = done;
  pass.device_reads = static_cast<uint64_t>(done);
  return pass;
}

// Posted writes in a flood stop early only at multiples of this, to keep the
// clock reads out of the loop.
constexpr int kFloodDeadlineStride = 64;

// (d) floor: posted writes, one send each, then one read.
absl::StatusOr<Pass> RawFlood(RawEnd& end, Limit limit, uint32_t& next_value) {
  std::vector<uint8_t> write = CommandMessage(wire::Command::kRegionWrite, true, WritePayload());
  const std::vector<uint8_t> request =
      CommandMessage(wire::Command::kRegionRead, false, ReadRequestPayload());
  std::vector<uint8_t> reply(kReadReplySize);
  const int64_t start = NowNs();
  int writes = 0;
  for (; writes < limit.count; ++writes) {
    if (writes % kFloodDeadlineStride == 0 && writes > 0 && limit.Expired()) break;
    SetWriteValue(write, wire::kHeaderSize, next_value++);
    VFU_RETURN_IF_ERROR(end.SendAll(write));
  }
  VFU_RETURN_IF_ERROR(end.SendAll(request));
  VFU_RETURN_IF_ERROR(end.ReceiveExactly(absl::MakeSpan(reply)));
  Pass pass;
  pass.elapsed_ns = NowNs() - start;
  pass.messages = writes + 1;
  return pass;
}

// (d)
absl::StatusOr<Pass> VfuFlood(Client& client, Limit limit, uint32_t& next_value) {
  std::vector<uint8_t> write = WritePayload();
  const int64_t start = NowNs();
  int writes = 0;
  for (; writes < limit.count; ++writes) {
    if (writes % kFloodDeadlineStride == 0 && writes > 0 && limit.Expired()) break;
    SetWriteValue(write, 0, next_value++);
    VFU_RETURN_IF_ERROR(client.SendNoReply(wire::Command::kRegionWrite, write));
  }
  VFU_ASSIGN_OR_RETURN(std::vector<uint8_t> data, client.RegionRead(0, 0, kAccessSize));
  Pass pass;
  pass.elapsed_ns = NowNs() - start;
  pass.messages = writes + 1;
  pass.device_reads = 1;
  pass.device_writes = static_cast<uint64_t>(writes);
  uint32_t seen = 0;
  if (data.size() == sizeof seen) std::memcpy(&seen, data.data(), sizeof seen);
  if (data.size() != sizeof seen || seen != next_value - 1) {
    return absl::InternalError(absl::StrCat("the read after the flood saw ", seen,
                                            ", not the last posted write ", next_value - 1));
  }
  return pass;
}

// ------------------------------------------------------------------ report

enum class Target { kNone, kAtMost, kAtLeast };

struct Row {
  std::string mode;
  std::string figure;
  double value = NAN;
  bool latency = false;  // value in ns, else messages per second
  double floor = NAN;
  Target target = Target::kNone;
  double target_ratio = NAN;
  // The same ratio computed in each round alone: its spread shows the noise.
  std::vector<double> round_ratios;
  std::optional<Costs> costs;
  std::string costs_label;  // the row's short name in the costs table
  std::string rate_unit = "msg/s";  // of a rate (not latency) row
  // "devices" mode: K, and the slowest client's share of the mean.
  int clients = 0;
  double slowest_share = NAN;
  double slowest_share_worst_round = NAN;
  // "connect" mode: failed cycles.
  int64_t refusals = 0;
  int64_t other_failures = 0;

  double ratio() const { return value / floor; }
  std::optional<bool> met() const {
    if (target == Target::kNone || std::isnan(floor)) return std::nullopt;
    // A devices row also needs its slowest client to get its share.
    if (!std::isnan(slowest_share) && slowest_share < kManyDevicesShareTarget) return false;
    return target == Target::kAtMost ? ratio() <= target_ratio : ratio() >= target_ratio;
  }
};

struct Percentiles {
  double median_ns;
  double p99_ns;
};

Percentiles Summarize(std::vector<int64_t> samples) {
  std::sort(samples.begin(), samples.end());
  const size_t n = samples.size();
  return {static_cast<double>(samples[n / 2]),
          static_cast<double>(samples[std::min(n - 1, n * 99 / 100)])};
}

double Median(std::vector<int64_t> samples) {
  std::nth_element(samples.begin(), samples.begin() + samples.size() / 2, samples.end());
  return static_cast<double>(samples[samples.size() / 2]);
}

// Each round trip minus its request leg.
std::vector<int64_t> ReplyLegs(const Pass& pass) {
  std::vector<int64_t> legs(pass.rtt_ns.size());
  for (size_t i = 0; i < legs.size(); ++i) legs[i] = pass.rtt_ns[i] - pass.request_leg_ns[i];
  return legs;
}

struct Config {
  int rounds;
  int64_t pass_ns;
  int iterations;
  int messages;
  int window;
  int workers;
  int reactor_busy_poll_us;
  std::string socket_path;       // the threaded server's
  std::string capi_socket_path;  // the C API server's
};

// A rate figure, (c) or (d), over the rounds: the raw floor's and vfu's
// passes, and each round's ratio and vfu rate (to compare servers round by
// round).
struct RateFigure {
  Series raw, vfu;
  std::vector<double> ratios, rates;
};

// One round of a rate figure: its floor, then the figure.
absl::Status MeasureRate(RawWait raw_wait, ServerProcess& server, Client& client, int messages,
                         int64_t pass_ns, RawRun raw_run, VfuRun vfu_run, RateFigure& figure) {
  VFU_ASSIGN_OR_RETURN(Measurement raw, MeasureRaw(raw_wait, messages, pass_ns, raw_run));
  VFU_ASSIGN_OR_RETURN(Measurement vfu, MeasureVfu(server, client, messages, pass_ns, vfu_run));
  figure.ratios.push_back(vfu.pass.rate() / raw.pass.rate());
  figure.rates.push_back(vfu.pass.rate());
  figure.raw.Add(raw);
  figure.vfu.Add(vfu);
  return absl::OkStatus();
}

// One server under measurement in a mode: its child, its client and what
// its rounds measured.
struct ServerRun {
  bool capi = false;
  std::unique_ptr<ServerProcess> server;
  std::unique_ptr<Client> client;
  Series raw_rtt, vfu_rtt;
  std::vector<double> median_ratios, p99_ratios;
  RateFigure pipelined;  // (c)
  RateFigure flood;      // (d)
  // Sleep mode, C API: the ping-pong with both raw ends waiting in poll(2)
  // first, and (b) against it.
  Series polled_rtt;
  std::vector<double> polled_ratios;
};

// Runs every figure of one mode `config.rounds` times for each server in
// `kinds` (false: the threaded Server, true: the C API), each floor right
// before its figure (so both see the same background load), and appends the
// mode's rows. With both servers, their children run side by side (the one
// not measured is idle and asleep) and their figures alternate within each
// round, so the comparison rows of the C API against the threaded server
// see the same load too.
absl::Status RunMode(const Config& config, bool spin, const std::vector<bool>& kinds,
                     std::vector<Row>& rows) {
  std::vector<ServerRun> runs;
  for (bool capi : kinds) {
    ServerRun& run = runs.emplace_back();
    run.capi = capi;
    const std::string path = capi ? config.capi_socket_path : config.socket_path;
    VFU_ASSIGN_OR_RETURN(run.server, ServerProcess::Start(path, config.workers,
                                                          config.reactor_busy_poll_us, capi, spin));
    ClientOptions options;
    options.busy_poll = spin;
    VFU_ASSIGN_OR_RETURN(run.client, Client::Connect(path, options));
  }
  const int iterations = config.iterations;
  const int messages = config.messages;
  const int window = config.window;
  uint32_t next_value = 1;
  const int64_t pass_ns = config.pass_ns;
  const RawWait raw_wait = spin ? RawWait::kSpin : RawWait::kBlock;
  auto raw_pipelined = [window](RawEnd& end, Limit limit) {
    return RawPipelined(end, limit, window);
  };
  auto vfu_pipelined = [window](Client& c, Limit limit) { return VfuPipelined(c, limit, window); };
  auto raw_flood = [&next_value](RawEnd& end, Limit limit) {
    return RawFlood(end, limit, next_value);
  };
  auto vfu_flood = [&next_value](Client& c, Limit limit) { return VfuFlood(c, limit, next_value); };

  for (int round = 0; round < config.rounds; ++round) {
    // (a), (b)
    for (ServerRun& run : runs) {
      VFU_ASSIGN_OR_RETURN(Measurement a, MeasureRaw(raw_wait, iterations, pass_ns, RawPingPong));
      VFU_ASSIGN_OR_RETURN(Measurement b, MeasureVfu(*run.server, *run.client, iterations,
                                                     pass_ns, VfuRoundTrips));
      const Percentiles pa = Summarize(a.pass.rtt_ns);
      const Percentiles pb = Summarize(b.pass.rtt_ns);
      run.median_ratios.push_back(pb.median_ns / pa.median_ns);
      run.p99_ratios.push_back(pb.p99_ns / pa.p99_ns);
      run.raw_rtt.Add(a);
      run.vfu_rtt.Add(b);
      if (run.capi && !spin) {
        VFU_ASSIGN_OR_RETURN(Measurement polled,
                             MeasureRaw(RawWait::kPoll, iterations, pass_ns, RawPingPong));
        run.polled_ratios.push_back(pb.median_ns / Summarize(polled.pass.rtt_ns).median_ns);
        run.polled_rtt.Add(polled);
      }
    }
    // (c), then (d)
    for (ServerRun& run : runs) {
      VFU_RETURN_IF_ERROR(MeasureRate(raw_wait, *run.server, *run.client, messages, pass_ns,
                                      raw_pipelined, vfu_pipelined, run.pipelined));
    }
    for (ServerRun& run : runs) {
      VFU_RETURN_IF_ERROR(MeasureRate(raw_wait, *run.server, *run.client, messages, pass_ns,
                                      raw_flood, vfu_flood, run.flood));
    }
  }
  for (ServerRun& run : runs) {
    run.client.reset();
    VFU_RETURN_IF_ERROR(run.server->Stop());
  }

  auto add = [&](const std::string& mode, std::string figure, double value, bool latency,
                 std::optional<Costs> costs, std::string costs_label = "") -> Row& {
    Row& row = rows.emplace_back();
    row.mode = mode;
    row.figure = std::move(figure);
    row.value = value;
    row.latency = latency;
    row.costs = std::move(costs);
    row.costs_label = std::move(costs_label);
    return row;
  };
  auto compare = [](Row& row, double floor, std::vector<double> round_ratios,
                    Target target = Target::kNone, double target_ratio = NAN) {
    row.floor = floor;
    row.round_ratios = std::move(round_ratios);
    row.target = target;
    row.target_ratio = target_ratio;
  };
  for (ServerRun& run : runs) {
    const std::string mode = absl::StrCat(spin ? "spin" : "sleep", run.capi ? "/capi" : "");
    const Percentiles raw_p = Summarize(run.raw_rtt.total.rtt_ns);
    const Percentiles vfu_p = Summarize(run.vfu_rtt.total.rtt_ns);
    add(mode, "(a) raw ping-pong rtt, median", raw_p.median_ns, true, run.raw_rtt.costs,
        "(a) raw");
    add(mode, "(a) raw ping-pong rtt, p99", raw_p.p99_ns, true, std::nullopt);
    compare(add(mode, "(b) REGION_READ rtt, median", vfu_p.median_ns, true, run.vfu_rtt.costs,
                "(b) vfu"),
            raw_p.median_ns, run.median_ratios, Target::kAtMost, run.capi ? 1.1 : 1.3);
    compare(add(mode, "(b) REGION_READ rtt, p99", vfu_p.p99_ns, true, std::nullopt), raw_p.p99_ns,
            run.p99_ratios);
    if (!run.polled_ratios.empty()) {
      const double polled = Summarize(run.polled_rtt.total.rtt_ns).median_ns;
      add(mode, "(a') raw ping-pong, ends wait in poll(2), median", polled, true,
          run.polled_rtt.costs, "(a') raw");
      compare(add(mode, "(b) REGION_READ rtt, of (a'), median", vfu_p.median_ns, true,
                  std::nullopt),
              polled, run.polled_ratios);
    }
    const double raw_request = Median(run.raw_rtt.total.request_leg_ns);
    const double raw_reply = Median(ReplyLegs(run.raw_rtt.total));
    add(mode, "(a) request leg: send -> echo child, median", raw_request, true, std::nullopt);
    add(mode, "(a) reply leg: echo child -> reply, median", raw_reply, true, std::nullopt);
    compare(add(mode, "(b) request leg: send -> device, median",
                Median(run.vfu_rtt.total.request_leg_ns), true, std::nullopt),
            raw_request, {});
    compare(add(mode, "(b) reply leg: device -> reply, median",
                Median(ReplyLegs(run.vfu_rtt.total)), true, std::nullopt),
            raw_reply, {});
    add(mode, absl::StrCat("(c) raw pipelined echo, window ", window),
        run.pipelined.raw.total.rate(), false, run.pipelined.raw.costs, "(c) raw");
    compare(add(mode, absl::StrCat("(c) pipelined REGION_READ, window ", window),
                run.pipelined.vfu.total.rate(), false, run.pipelined.vfu.costs, "(c) vfu"),
            run.pipelined.raw.total.rate(), run.pipelined.ratios, Target::kAtLeast, 0.6);
    add(mode, "(d) raw write flood + 1 echo", run.flood.raw.total.rate(), false,
        run.flood.raw.costs, "(d) raw");
    compare(add(mode, "(d) NO_REPLY REGION_WRITE flood + 1 read", run.flood.vfu.total.rate(),
                false, run.flood.vfu.costs, "(d) vfu"),
            run.flood.raw.total.rate(), run.flood.ratios, Target::kAtLeast, 0.1);
  }
  if (runs.size() == 2) {
    // The C API in poll mode against the threaded server: the "floor"
    // column holds the threaded server's figure.
    const ServerRun& threaded = runs[0].capi ? runs[1] : runs[0];
    const ServerRun& capi = runs[0].capi ? runs[0] : runs[1];
    auto per_round = [](const std::vector<double>& mine, const std::vector<double>& theirs) {
      std::vector<double> ratios;
      for (size_t i = 0; i < mine.size() && i < theirs.size(); ++i) {
        ratios.push_back(mine[i] / theirs[i]);
      }
      return ratios;
    };
    const std::string mode = absl::StrCat(spin ? "spin" : "sleep", "/capi:vfu");
    compare(add(mode, absl::StrCat("(c) pipelined, window ", window, ", of the threaded server"),
                capi.pipelined.vfu.total.rate(), false, std::nullopt),
            threaded.pipelined.vfu.total.rate(),
            per_round(capi.pipelined.rates, threaded.pipelined.rates), Target::kAtLeast, 1.0);
    compare(add(mode, "(d) NO_REPLY flood, of the threaded server", capi.flood.vfu.total.rate(),
                false, std::nullopt),
            threaded.flood.vfu.total.rate(), per_round(capi.flood.rates, threaded.flood.rates),
            Target::kAtLeast, 1.0);
  }
  return absl::OkStatus();
}

std::string FormatValue(double value, bool latency) {
  if (std::isnan(value)) return "-";
  return latency ? absl::StrFormat("%.1f us", value / 1e3)
                 : absl::StrFormat("%.1f kmsg/s", value / 1e3);
}

// Two decimals, none from 100 up (to fit the column).
std::string FormatNumber(double value) {
  return std::isnan(value) ? "-" : absl::StrFormat("%.*f", value >= 100 ? 0 : 2, value);
}

std::string FormatTarget(const Row& row) {
  switch (row.target) {
    case Target::kNone:
      return "-";
    case Target::kAtMost:
      return absl::StrFormat("<= %.1fx", row.target_ratio);
    case Target::kAtLeast:
      return absl::StrFormat(">= %.1fx", row.target_ratio);
  }
  return "-";
}

// "min..max" of the per-round ratios, or "-".
std::string FormatSpread(const Row& row) {
  if (row.round_ratios.size() < 2) return "-";
  const auto [lo, hi] = std::minmax_element(row.round_ratios.begin(), row.round_ratios.end());
  return absl::StrFormat("%.2f..%.2f", *lo, *hi);
}

// A column of the costs table: a counter per message of the measured pass.
struct CostColumn {
  const char* name;
  double (*per_message)(const Costs&);
};

double PerMessage(const Costs& c, uint64_t count) {
  return static_cast<double>(count) / static_cast<double>(c.messages);
}
double PerMessageUs(const Costs& c, uint64_t ns) { return PerMessage(c, ns) / 1e3; }
double VfuOnly(const Costs& c, double value) { return c.vfu ? value : NAN; }

// Legend (also printed): vcs voluntary context switches (the thread blocked), ics
// involuntary ones (preempted), cpu and wait microseconds on a CPU and
// runnable but waiting for one.
constexpr CostColumn kCostColumns[] = {
    {"msgs", [](const Costs& c) { return static_cast<double>(c.messages); }},
    {"c.vcs", [](const Costs& c) { return PerMessage(c, c.client.voluntary); }},
    {"c.ics", [](const Costs& c) { return PerMessage(c, c.client.involuntary); }},
    {"c.cpu", [](const Costs& c) { return PerMessageUs(c, c.client.cpu_ns); }},
    {"c.wait", [](const Costs& c) { return PerMessageUs(c, c.client.wait_ns); }},
    {"p.vcs", [](const Costs& c) { return PerMessage(c, c.peer.voluntary); }},
    {"p.ics", [](const Costs& c) { return PerMessage(c, c.peer.involuntary); }},
    {"p.cpu", [](const Costs& c) { return PerMessageUs(c, c.peer.cpu_ns); }},
    {"p.wait", [](const Costs& c) { return PerMessageUs(c, c.peer.wait_ns); }},
    {"io.vcs", [](const Costs& c) { return VfuOnly(c, PerMessage(c, c.io_thread.voluntary)); }},
    {"io.ics", [](const Costs& c) { return VfuOnly(c, PerMessage(c, c.io_thread.involuntary)); }},
    {"io.cpu", [](const Costs& c) { return VfuOnly(c, PerMessageUs(c, c.io_thread.cpu_ns)); }},
    {"io.wait", [](const Costs& c) { return VfuOnly(c, PerMessageUs(c, c.io_thread.wait_ns)); }},
    {"w.vcs", [](const Costs& c) { return VfuOnly(c, PerMessage(c, c.workers.voluntary)); }},
    {"w.ics", [](const Costs& c) { return VfuOnly(c, PerMessage(c, c.workers.involuntary)); }},
    {"w.cpu", [](const Costs& c) { return VfuOnly(c, PerMessageUs(c, c.workers.cpu_ns)); }},
    {"w.wait", [](const Costs& c) { return VfuOnly(c, PerMessageUs(c, c.workers.wait_ns)); }},
    {"wakeup", [](const Costs& c) { return VfuOnly(c, PerMessage(c, c.wakeups)); }},
    {"epoll", [](const Costs& c) { return VfuOnly(c, PerMessage(c, c.epoll_returns)); }},
    {"r.task", [](const Costs& c) { return VfuOnly(c, PerMessage(c, c.reactor_tasks)); }},
    {"p.task", [](const Costs& c) { return VfuOnly(c, PerMessage(c, c.pool_tasks)); }},
    {"w.spin", [](const Costs& c) { return VfuOnly(c, PerMessage(c, c.spin_hits)); }},
    {"r.poll", [](const Costs& c) { return VfuOnly(c, PerMessage(c, c.poller_polls)); }},
    {"sleep", [](const Costs& c) { return VfuOnly(c, PerMessage(c, c.client_sleeps)); }},
};

void PrintTables(const std::vector<Row>& rows) {
  std::printf("%-10s %-44s %14s %14s %7s %12s %8s %s\n", "mode", "figure", "value", "floor", "ratio",
              "round ratios", "target", "met");
  for (const Row& row : rows) {
    const std::optional<bool> met = row.met();
    std::printf(
        "%-10s %-44s %14s %14s %7s %12s %8s %s\n", row.mode.c_str(), row.figure.c_str(),
        FormatValue(row.value, row.latency).c_str(), FormatValue(row.floor, row.latency).c_str(),
        std::isnan(row.floor) ? "-" : absl::StrFormat("%.2fx", row.ratio()).c_str(),
        FormatSpread(row).c_str(), FormatTarget(row).c_str(), met ? (*met ? "yes" : "NO") : "");
  }
  std::printf(
      "\nmsgs: messages measured, all rounds; the rest per message. c: client process; p: peer "
      "(echo child, or the\nserver's IO thread + workers); io: IO thread; w: workers. vcs/ics: "
      "voluntary "
      "(blocked) / involuntary (preempted) context switches;\ncpu/wait: us on a CPU / us "
      "runnable but waiting for one. wakeup: eventfd writes (Reactor::wakeups()); epoll:\n"
      "epoll_wait returns; r.task/p.task: reactor / pool tasks run; w.spin: tasks a polling "
      "idle worker took;\nr.poll: loop iterations that polled for a reply; sleep: client "
      "poll(2) sleeps.\n");
  std::printf("%-10s %-9s", "mode", "figure");
  for (const CostColumn& column : kCostColumns) std::printf(" %6s", column.name);
  std::printf("\n");
  for (const Row& row : rows) {
    if (!row.costs) continue;
    std::printf("%-10s %-9s", row.mode.c_str(), row.costs_label.c_str());
    for (const CostColumn& column : kCostColumns) {
      const double value = column.per_message(*row.costs);
      std::printf(" %6s", FormatNumber(value).c_str());
    }
    std::printf("\n");
  }
}

// The 1-minute load average: figures from a busy machine are noisy (a
// spinning end that loses its CPU stalls for a whole time slice).
std::string LoadAverage() {
  double load = 0;
  return ::getloadavg(&load, 1) == 1 ? absl::StrFormat("%.2f", load) : "?";
}

// Writes `rows` as a vfu.proto.BenchmarkReport (JSON) to `path`.
absl::Status WriteReport(const std::string& path, const std::vector<Row>& rows,
                         double seconds) {
  vfu::proto::BenchmarkReport report;
  report.set_cpus(static_cast<int32_t>(::sysconf(_SC_NPROCESSORS_ONLN)));
  report.set_load_average(LoadAverage());
  report.set_seconds(seconds);
  for (const Row& row : rows) {
    vfu::proto::BenchmarkFigure* f = report.add_figures();
    f->set_mode(row.mode);
    f->set_figure(row.figure);
    f->set_value(row.value);
    f->set_unit(row.latency ? "ns" : row.rate_unit);
    f->set_clients(row.clients);
    if (!std::isnan(row.slowest_share)) {
      f->set_slowest_client_share(row.slowest_share);
      f->set_slowest_client_share_worst_round(row.slowest_share_worst_round);
    }
    f->set_refusals(row.refusals);
    f->set_other_failures(row.other_failures);
    if (!std::isnan(row.floor)) {
      f->set_floor(row.floor);
      f->set_ratio(row.ratio());
    }
    if (!row.round_ratios.empty()) {
      f->set_round_ratio_min(*std::min_element(row.round_ratios.begin(), row.round_ratios.end()));
      f->set_round_ratio_max(*std::max_element(row.round_ratios.begin(), row.round_ratios.end()));
    }
    if (row.target != Target::kNone) {
      f->set_target(absl::StrCat(row.target == Target::kAtMost ? "<=" : ">=", row.target_ratio));
      f->set_met(row.met().value_or(false));
    }
  }
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  google::protobuf::util::Status status =
      google::protobuf::util::MessageToJsonString(report, &json, options);
  if (!status.ok()) return absl::InternalError(std::string(status.message()));
  std::ofstream out(path);
  out << json;
  if (!out.good()) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

void PrintCsv(const std::vector<Row>& rows) {
  std::string header =
      "mode,figure,value,unit,floor,ratio,round_ratio_min,round_ratio_max,target,met";
  for (const CostColumn& column : kCostColumns) absl::StrAppend(&header, ",", column.name);
  std::printf("%s\n", header.c_str());
  auto num = [](double v) { return std::isnan(v) ? std::string() : absl::StrFormat("%.4g", v); };
  for (const Row& row : rows) {
    const std::optional<bool> met = row.met();
    double lo = NAN;
    double hi = NAN;
    if (!row.round_ratios.empty()) {
      lo = *std::min_element(row.round_ratios.begin(), row.round_ratios.end());
      hi = *std::max_element(row.round_ratios.begin(), row.round_ratios.end());
    }
    std::string target;
    if (row.target != Target::kNone) {
      target = absl::StrCat(row.target == Target::kAtMost ? "<=" : ">=", row.target_ratio);
    }
    std::vector<std::string> fields = {row.mode,
                                       absl::StrCat("\"", row.figure, "\""),
                                       num(row.latency ? row.value / 1e3 : row.value),
                                       row.latency ? "us" : row.rate_unit,
                                       num(row.latency ? row.floor / 1e3 : row.floor),
                                       num(row.ratio()),
                                       num(lo),
                                       num(hi),
                                       target,
                                       met ? (*met ? "yes" : "no") : ""};
    for (const CostColumn& column : kCostColumns) {
      fields.push_back(row.costs ? num(column.per_message(*row.costs)) : "");
    }
    std::printf("%s\n", absl::StrJoin(fields, ",").c_str());
  }
}


// Prints `rows` as CSV (--csv) or writes them to --report; the text tables
// of the connect and devices modes are their own.
absl::Status ReportRows(const std::vector<Row>& rows, int64_t start_ns) {
  if (!absl::GetFlag(FLAGS_report).empty()) {
    VFU_RETURN_IF_ERROR(
        WriteReport(absl::GetFlag(FLAGS_report), rows, (NowNs() - start_ns) / 1e9));
  }
  if (absl::GetFlag(FLAGS_csv)) PrintCsv(rows);
  return absl::OkStatus();
}

// --mode=connect (tools/bench/connect_rate.h). Any failed cycle fails the
// run, after the figures are printed.
absl::Status RunConnectMode(const Config& config) {
  const int64_t start = NowNs();
  // The server logs every client it refuses; the figure counts them instead.
  SetMinLogLevel(LogLevel::kError);
  VFU_ASSIGN_OR_RETURN(
      const ConnectRateResult result,
      MeasureConnectRate({.pass_seconds = config.pass_ns / 1e9, .rounds = config.rounds}));
  std::vector<Row> rows;
  Row& raw = rows.emplace_back();
  raw.mode = "connect";
  raw.figure = "(f) raw connect + 1 round trip + close";
  raw.value = result.raw.rate();
  raw.rate_unit = "cycles/s";
  raw.refusals = result.raw.refused;
  raw.other_failures = result.raw.other_failures;
  Row& vfu = rows.emplace_back();
  vfu.mode = "connect";
  vfu.figure = "(f) connect + VERSION + close";
  vfu.value = result.vfu.rate();
  vfu.floor = result.raw.rate();
  vfu.round_ratios = {result.ratio_min, result.ratio_max};
  vfu.rate_unit = "cycles/s";
  vfu.refusals = result.vfu.refused;
  vfu.other_failures = result.vfu.other_failures;
  VFU_RETURN_IF_ERROR(ReportRows(rows, start));
  if (!absl::GetFlag(FLAGS_csv)) {
    std::printf("%s\n%.1f s; load average %s\n", FormatConnectRate(result).c_str(),
                (NowNs() - start) / 1e9, LoadAverage().c_str());
  }
  const int64_t failures = result.vfu.failures() + result.raw.failures();
  if (failures > 0) {
    return absl::UnavailableError(absl::StrCat(failures, " connect cycles failed"));
  }
  return absl::OkStatus();
}

// --mode=devices (tools/bench/many_devices.h).
absl::Status RunDevicesMode(const Config& config) {
  const int64_t start = NowNs();
  ManyDevicesOptions options{.window = config.window,
                             .pass_seconds = config.pass_ns / 1e9,
                             .rounds = config.rounds,
                             .workers = config.workers};
  options.clients.clear();
  for (const std::string& k : absl::GetFlag(FLAGS_clients)) {
    int value = 0;
    if (!absl::SimpleAtoi(k, &value) || value < 1 || value > 256) {
      return absl::InvalidArgumentError("--clients: numbers in 1..256, ascending");
    }
    options.clients.push_back(value);
  }
  VFU_ASSIGN_OR_RETURN(const std::vector<ManyDevicesRow> measured, MeasureManyDevices(options));
  std::vector<Row> rows;
  for (const ManyDevicesRow& m : measured) {
    Row& row = rows.emplace_back();
    row.mode = "devices";
    row.figure = absl::StrCat("(g) ", m.clients, " devices, pipelined REGION_READ, window ",
                              config.window);
    row.value = m.aggregate_per_s;
    row.floor = measured.front().aggregate_per_s;
    row.round_ratios = {m.ratio_min, m.ratio_max};
    row.clients = m.clients;
    row.slowest_share = m.slowest_share;
    row.slowest_share_worst_round = m.slowest_share_worst_round;
    if (m.has_target) {
      // The share target is carried by the report's slowest_client_share;
      // `met` covers both.
      row.target = Target::kAtLeast;
      row.target_ratio = kManyDevicesRatioTarget;
    }
  }
  VFU_RETURN_IF_ERROR(ReportRows(rows, start));
  if (!absl::GetFlag(FLAGS_csv)) {
    std::printf("%s\n%.1f s; load average %s\n", FormatManyDevices(measured).c_str(),
                (NowNs() - start) / 1e9, LoadAverage().c_str());
  }
  return absl::OkStatus();
}

// A microseconds flag where -1 means `fallback`, for the header line.
std::string FormatMicros(const absl::Flag<int>& flag, absl::Duration fallback) {
  const int us = absl::GetFlag(flag);
  return absl::FormatDuration(us >= 0 ? absl::Microseconds(us) : fallback);
}

absl::Status Run() {
  Config config{
      .rounds = absl::GetFlag(FLAGS_rounds),
      .pass_ns = static_cast<int64_t>(absl::GetFlag(FLAGS_pass_seconds) * 1e9),
      .iterations = absl::GetFlag(FLAGS_iterations),
      .messages = absl::GetFlag(FLAGS_messages),
      .window = absl::GetFlag(FLAGS_window),
      .workers = absl::GetFlag(FLAGS_workers),
      .reactor_busy_poll_us = absl::GetFlag(FLAGS_reactor_busy_poll_us),
      .socket_path = "",  // Set once the directory exists.
      .capi_socket_path = "",
  };
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (const std::string server = absl::GetFlag(FLAGS_server);
      server != "vfu" && server != "capi" && server != "both") {
    return absl::InvalidArgumentError("--server must be vfu, capi or both");
  }
  if (mode != "spin" && mode != "sleep" && mode != "both" && mode != "connect" &&
      mode != "devices") {
    return absl::InvalidArgumentError("--mode must be spin, sleep, both, connect or devices");
  }
  if (config.rounds < 1 || config.pass_ns <= 0 || config.iterations < 1 || config.messages < 1 ||
      config.workers < 1 || config.reactor_busy_poll_us < 0 ||
      absl::GetFlag(FLAGS_reply_busy_poll_us) < -1 ||
      absl::GetFlag(FLAGS_worker_idle_spin_us) < -1 ||
      absl::GetFlag(FLAGS_poll_backoff_us) < -1) {
    return absl::InvalidArgumentError(
        "--rounds, --pass_seconds, --iterations, --messages and --workers must be positive, "
        "--reactor_busy_poll_us not negative, --reply_busy_poll_us, "
        "--worker_idle_spin_us and --poll_backoff_us -1 or more");
  }
  // The client has 65536 message IDs.
  if (config.window < 1 || config.window > 4096) {
    return absl::InvalidArgumentError("--window must be in 1..4096");
  }

  if (!absl::GetFlag(FLAGS_csv) && (mode == "connect" || mode == "devices")) {
    std::printf("vfu_bench --mode=%s: %ld CPUs, load average %s; %d workers; %d rounds of "
                "passes of %.1f s after a warm-up of a tenth\n\n",
                mode.c_str(), ::sysconf(_SC_NPROCESSORS_ONLN), LoadAverage().c_str(),
                config.workers, config.rounds, config.pass_ns / 1e9);
    std::fflush(stdout);
  }
  if (mode == "connect") return RunConnectMode(config);
  if (mode == "devices") return RunDevicesMode(config);

  PeerStamp();  // Maps the shared page before the first fork.
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/vfu-bench-XXXXXX");
  if (::mkdtemp(pattern.data()) == nullptr) return absl::ErrnoToStatus(errno, "mkdtemp");
  const std::string dir = pattern;
  config.socket_path = dir + "/bench.sock";
  config.capi_socket_path = dir + "/capi.sock";

  if (!absl::GetFlag(FLAGS_csv)) {
    std::printf(
        "vfu_bench: %ld CPUs, load average %s; %d workers, reactor busy-poll %d us, reply "
        "poll %s, worker idle spin %s, poll backoff %s; %d rounds of passes of %d round trips "
        "or %d messages, window %d, each pass at most %.1f s after a warm-up of a tenth\n\n",
        ::sysconf(_SC_NPROCESSORS_ONLN), LoadAverage().c_str(), config.workers,
        config.reactor_busy_poll_us, FormatMicros(FLAGS_reply_busy_poll_us,
                                                  RuntimeOptions().reply_busy_poll).c_str(),
        FormatMicros(FLAGS_worker_idle_spin_us, RuntimeOptions().worker_idle_spin).c_str(),
        FormatMicros(FLAGS_poll_backoff_us, RuntimeOptions().poll_backoff).c_str(),
        config.rounds, config.iterations, config.messages, config.window, config.pass_ns / 1e9);
    std::fflush(stdout);
  }
  const int64_t start = NowNs();
  std::vector<Row> rows;
  absl::Status status;
  const std::string server_kind = absl::GetFlag(FLAGS_server);
  for (bool spin : {true, false}) {
    if (mode == (spin ? "sleep" : "spin")) continue;
    std::vector<bool> kinds;
    if (server_kind != "capi") kinds.push_back(false);
    if (server_kind != "vfu") kinds.push_back(true);
    status = RunMode(config, spin, kinds, rows);
    if (!status.ok()) break;
  }
  // The servers remove them; this is for a failed run.
  ::unlink(config.socket_path.c_str());
  ::unlink(config.capi_socket_path.c_str());
  ::rmdir(dir.c_str());
  VFU_RETURN_IF_ERROR(status);
  if (!absl::GetFlag(FLAGS_report).empty()) {
    VFU_RETURN_IF_ERROR(WriteReport(absl::GetFlag(FLAGS_report), rows, (NowNs() - start) / 1e9));
  }

  if (absl::GetFlag(FLAGS_csv)) {
    PrintCsv(rows);
    return absl::OkStatus();
  }
  PrintTables(rows);
  int targets = 0;
  int met = 0;
  for (const Row& row : rows) {
    if (std::optional<bool> m = row.met()) {
      ++targets;
      met += *m ? 1 : 0;
    }
  }
  if (absl::GetFlag(FLAGS_dma)) {
    // Every thread of the figures above has ended: MeasureDmaThroughput
    // forks its client processes first thing.
    // Five short rounds at least: socket throughput on a shared machine
    // swings by 2x from one pass to the next, and the median of five ratios
    // is steadier than that of three.
    VFU_ASSIGN_OR_RETURN(
        std::vector<DmaThroughputRow> dma_rows,
        MeasureDmaThroughput({.pass_seconds = 0.3, .rounds = std::max(config.rounds, 5)}));
    std::printf("\n%s", FormatDmaThroughput(dma_rows).c_str());
    for (const DmaThroughputRow& row : dma_rows) {
      if (row.target == 0) continue;
      ++targets;
      met += row.ratio >= row.target ? 1 : 0;
    }
  }
  std::printf("\n%d of %d targets met; %.1f s; load average %s\n", met, targets,
              (NowNs() - start) / 1e9, LoadAverage().c_str());
  return absl::OkStatus();
}

}  // namespace
}  // namespace vfu::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Measures vfu's REGION_READ latency and message rates against raw UNIX-socket floors.");
  absl::ParseCommandLine(argc, argv);
  vfu::SetMinLogLevel(vfu::LogLevel::kWarning);
  const absl::Status status = vfu::bench::Run();
  std::fflush(stdout);  // The figures first, then why the run failed.
  if (!status.ok()) {
    std::fprintf(stderr, "vfu_bench: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
