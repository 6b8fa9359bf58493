#include "tools/bench/connect_rate.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tools/bench/register_device.h"
#include "testing/temp_dir.h"
#include "tools/bench/bench_io.h"
#include "vfu/base/status_macros.h"
#include "vfu/base/unique_fd.h"
#include "vfu/client/client.h"
#include "vfu/vfu.h"
#include "vfu/wire/header.h"
#include "vfu/wire/version.h"

namespace vfu::bench {
namespace {

// Distinct failure messages kept per side.
constexpr size_t kFailureSamples = 3;
// The raw accept loop's largest message: a VERSION fits many times over.
constexpr uint32_t kRawMaxMessage = 64 * 1024;

// The VERSION command vfu::Client sends by default, byte for byte in size:
// the raw floor moves the same bytes.
std::vector<uint8_t> VersionRequest() {
  ClientOptions defaults;
  wire::Version version;
  version.capabilities.max_msg_fds = defaults.max_msg_fds;
  version.capabilities.max_data_xfer_size = defaults.max_data_xfer_size;
  std::vector<uint8_t> payload;
  wire::EncodeVersion(version, {.max_msg_fds = true, .max_data_xfer_size = true}, payload);
  std::vector<uint8_t> message = wire::StartMessage(payload.size());
  message.insert(message.end(), payload.begin(), payload.end());
  wire::FinishMessage(wire::CommandHeader(/*msg_id=*/0, wire::Command::kVersion), message);
  return message;
}

// The floor's server: accepts one connection at a time, answers its one
// message with the same bytes under a reply header, and closes it. Runs on
// its own thread until the listening socket is shut down.
class RawAcceptLoop {
 public:
  static absl::StatusOr<std::unique_ptr<RawAcceptLoop>> Start(const std::string& path) {
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return absl::InvalidArgumentError("path too long");
    std::memcpy(addr.sun_path, path.data(), path.size());
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return absl::ErrnoToStatus(errno, "socket");
    if (::bind(fd.get(), reinterpret_cast<const struct sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd.get(), SOMAXCONN) != 0) {
      return absl::ErrnoToStatus(errno, "bind/listen");
    }
    return std::unique_ptr<RawAcceptLoop>(new RawAcceptLoop(std::move(fd)));
  }

  ~RawAcceptLoop() {
    // Wakes the blocked accept(2), which then fails: the loop's cue to end.
    ::shutdown(listen_fd_.get(), SHUT_RDWR);
    thread_.join();
  }

 private:
  explicit RawAcceptLoop(UniqueFd listen_fd)
      : listen_fd_(std::move(listen_fd)), thread_([this] { Loop(); }) {}

  void Loop() {
    std::vector<uint8_t> message(kRawMaxMessage);
    for (;;) {
      UniqueFd peer(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!peer.valid()) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;
      }
      absl::Span<uint8_t> header = absl::MakeSpan(message).first(wire::kHeaderSize);
      if (!ReadAll(peer.get(), header.data(), header.size())) continue;
      wire::Header request = wire::DecodeHeader(header);
      if (request.msg_size < wire::kHeaderSize || request.msg_size > kRawMaxMessage) continue;
      if (!ReadAll(peer.get(), message.data() + wire::kHeaderSize,
                   request.msg_size - wire::kHeaderSize)) {
        continue;
      }
      wire::Header reply = wire::ReplyHeader(request);
      reply.msg_size = request.msg_size;
      wire::EncodeHeader(reply, header);
      WriteAll(peer.get(), message.data(), request.msg_size);
    }
  }

  UniqueFd listen_fd_;
  std::thread thread_;
};

// One raw cycle: connect, send `request`, receive as many bytes back, close.
absl::Status RawCycle(const std::string& path, absl::Span<const uint8_t> request,
                      std::vector<uint8_t>& reply) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return absl::ErrnoToStatus(errno, "socket");
  if (::connect(fd.get(), reinterpret_cast<const struct sockaddr*>(&addr), sizeof addr) != 0) {
    return absl::ErrnoToStatus(errno, "connect");
  }
  if (!WriteAll(fd.get(), request.data(), request.size())) {
    return absl::UnavailableError("raw send failed");
  }
  reply.resize(request.size());
  if (!ReadAll(fd.get(), reply.data(), reply.size())) {
    return absl::UnavailableError("raw peer closed before replying");
  }
  return absl::OkStatus();
}

}  // namespace

void ConnectCycles::CountFailure(const absl::Status& status) {
  // Unavailable: the connect was refused or the connection closed before
  // the VERSION reply, as a server that turns a client away does.
  ++(absl::IsUnavailable(status) ? refused : other_failures);
  const std::string message = status.ToString();
  if (failure_samples.size() < kFailureSamples &&
      std::find(failure_samples.begin(), failure_samples.end(), message) ==
          failure_samples.end()) {
    failure_samples.push_back(message);
  }
}

void ConnectCycles::Add(const ConnectCycles& other) {
  completed += other.completed;
  elapsed_ns += other.elapsed_ns;
  refused += other.refused;
  other_failures += other.other_failures;
  for (const std::string& sample : other.failure_samples) {
    if (failure_samples.size() < kFailureSamples &&
        std::find(failure_samples.begin(), failure_samples.end(), sample) ==
            failure_samples.end()) {
      failure_samples.push_back(sample);
    }
  }
}

void CountConnectCycles(absl::FunctionRef<absl::Status()> cycle, int64_t pass_ns, int max_cycles,
                        ConnectCycles& cycles) {
  const int64_t start = NowNs();
  const int64_t deadline = start + pass_ns;
  int64_t now = start;
  for (int attempts = 0; attempts < max_cycles && (attempts == 0 || now < deadline); ++attempts) {
    const absl::Status status = cycle();
    now = NowNs();
    if (status.ok()) {
      ++cycles.completed;
    } else {
      cycles.CountFailure(status);
    }
  }
  cycles.elapsed_ns += now - start;
}

absl::StatusOr<ConnectRateResult> MeasureConnectRate(const ConnectRateOptions& options) {
  if (options.pass_seconds <= 0 || options.rounds < 1 || options.max_cycles < 1) {
    return absl::InvalidArgumentError("pass_seconds, rounds and max_cycles must be positive");
  }
  const int64_t pass_ns = static_cast<int64_t>(options.pass_seconds * 1e9);
  const testing::ScopedTempDir dir("vfu-bench");
  const std::string vfu_path = dir.File("vfu.sock");
  const std::string raw_path = dir.File("raw.sock");

  RegisterDevice device;
  VFU_ASSIGN_OR_RETURN(std::unique_ptr<Server> server, Server::Create());
  VFU_RETURN_IF_ERROR(server->AddDevice(vfu_path, device));
  VFU_RETURN_IF_ERROR(server->Start());
  VFU_ASSIGN_OR_RETURN(std::unique_ptr<RawAcceptLoop> raw_loop, RawAcceptLoop::Start(raw_path));

  const std::vector<uint8_t> request = VersionRequest();
  std::vector<uint8_t> reply;
  auto raw_cycle = [&] { return RawCycle(raw_path, request, reply); };
  auto vfu_cycle = [&]() -> absl::Status {
    // Connect sends VERSION and checks the reply; the destructor closes.
    return Client::Connect(vfu_path).status();
  };

  ConnectRateResult result;
  std::vector<double> ratios;
  for (int round = 0; round < options.rounds; ++round) {
    // Warm-ups of a tenth: their time and cycles are not measured, but a
    // failure in them counts like any other (nothing may hide a refusal).
    ConnectCycles raw_warmup, vfu_warmup;
    CountConnectCycles(raw_cycle, pass_ns / 10, options.max_cycles / 10 + 1, raw_warmup);
    CountConnectCycles(vfu_cycle, pass_ns / 10, options.max_cycles / 10 + 1, vfu_warmup);
    ConnectCycles raw_round, vfu_round;
    CountConnectCycles(raw_cycle, pass_ns, options.max_cycles, raw_round);
    CountConnectCycles(vfu_cycle, pass_ns, options.max_cycles, vfu_round);
    if (raw_round.rate() > 0) ratios.push_back(vfu_round.rate() / raw_round.rate());
    result.raw.Add(raw_round);
    result.vfu.Add(vfu_round);
    for (auto [total, warmup] : {std::pair{&result.raw, &raw_warmup}, {&result.vfu, &vfu_warmup}}) {
      ConnectCycles failures_only;
      failures_only.refused = warmup->refused;
      failures_only.other_failures = warmup->other_failures;
      failures_only.failure_samples = warmup->failure_samples;
      total->Add(failures_only);
    }
  }
  raw_loop.reset();
  server->Stop();
  if (result.raw.rate() > 0) result.ratio = result.vfu.rate() / result.raw.rate();
  if (!ratios.empty()) {
    result.ratio_min = *std::min_element(ratios.begin(), ratios.end());
    result.ratio_max = *std::max_element(ratios.begin(), ratios.end());
  }
  return result;
}

std::string FormatConnectRate(const ConnectRateResult& r) {
  std::string out = absl::StrFormat("%-34s %14s %9s %9s %8s\n", "connect cycle", "rate",
                                    "completed", "refused", "other");
  auto line = [&](const char* name, const ConnectCycles& c) {
    absl::StrAppendFormat(&out, "%-34s %8.0f cyc/s %9d %9d %8d\n", name, c.rate(), c.completed,
                          c.refused, c.other_failures);
  };
  line("raw connect + 1 round trip + close", r.raw);
  line("vfu connect + VERSION + close", r.vfu);
  absl::StrAppendFormat(&out, "ratio %.2fx (rounds %.2f..%.2f)\n", r.ratio, r.ratio_min,
                        r.ratio_max);
  for (const auto* side : {&r.raw, &r.vfu}) {
    for (const std::string& sample : side->failure_samples) {
      absl::StrAppend(&out, side == &r.raw ? "raw" : "vfu", " failure: ", sample, "\n");
    }
  }
  if (r.vfu.failures() + r.raw.failures() > 0) {
    absl::StrAppend(&out, "FAILED: ", r.vfu.failures() + r.raw.failures(),
                    " cycles failed (refused: the server closed the connection before its "
                    "VERSION reply)\n");
  }
  return out;
}

}  // namespace vfu::bench
