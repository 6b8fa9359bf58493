#include "vfu/client/testing_fake_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "vfu/base/status_macros.h"
#include "vfu/base/syscalls.h"
#include "vfu/wire/errno_status.h"

namespace vfu::testing {
namespace {

// Room for the largest message a client test sends.
constexpr size_t kMaxMessageSize = 64 << 20;
constexpr size_t kMaxFds = 64;

// Waits until `fd` is ready for `events` or `deadline` passes.
absl::Status WaitFor(int fd, short events, absl::Time deadline) {
  while (true) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return absl::DeadlineExceededError("fake server timed out");
    struct pollfd p = {fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (n > 0) return absl::OkStatus();
    if (n < 0 && errno != EINTR) return absl::ErrnoToStatus(errno, "poll");
  }
}

std::pair<UniqueFd, UniqueFd> SocketPair() {
  int fds[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

}  // namespace

FakeEndpoint::FakeEndpoint(UniqueFd fd) : fd_(std::move(fd)), reader_(kMaxMessageSize, kMaxFds) {
  ::fcntl(fd_.get(), F_SETFL, ::fcntl(fd_.get(), F_GETFL) | O_NONBLOCK);
}

absl::StatusOr<InboundMessage> FakeEndpoint::Receive(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (received_.empty()) {
    std::vector<InboundMessage> batch;
    absl::Status status = reader_.ReadAvailable(fd_.get(), PosixSyscalls::Instance(), batch);
    for (InboundMessage& m : batch) received_.push_back(std::move(m));
    if (!received_.empty()) break;
    VFU_RETURN_IF_ERROR(status);
    VFU_RETURN_IF_ERROR(WaitFor(fd_.get(), POLLIN, deadline));
  }
  InboundMessage message = std::move(received_.front());
  received_.pop_front();
  return message;
}

absl::Status FakeEndpoint::Send(std::vector<uint8_t> message, std::vector<UniqueFd> fds) {
  const absl::Time deadline = absl::Now() + kFakeTimeout;
  writer_.Enqueue({std::move(message), std::move(fds)});
  while (true) {
    VFU_RETURN_IF_ERROR(writer_.Flush(fd_.get(), PosixSyscalls::Instance()));
    if (writer_.empty()) return absl::OkStatus();
    VFU_RETURN_IF_ERROR(WaitFor(fd_.get(), POLLOUT, deadline));
  }
}

absl::Status FakeEndpoint::SendCommand(uint16_t id, wire::Command command,
                                       absl::Span<const uint8_t> payload, bool no_reply) {
  std::vector<uint8_t> message = wire::StartMessage(payload.size());
  message.insert(message.end(), payload.begin(), payload.end());
  wire::FinishMessage(wire::CommandHeader(id, command, no_reply), message);
  return Send(std::move(message));
}

absl::Status FakeEndpoint::Reply(const wire::Header& request, absl::Span<const uint8_t> payload,
                                 std::vector<UniqueFd> fds) {
  std::vector<uint8_t> message = wire::StartMessage(payload.size());
  message.insert(message.end(), payload.begin(), payload.end());
  wire::FinishMessage(wire::ReplyHeader(request), message);
  return Send(std::move(message), std::move(fds));
}

absl::Status FakeEndpoint::ReplyError(const wire::Header& request, uint32_t errno_value) {
  // Built by hand rather than with wire::ErrorReply so that any value,
  // 0 and out-of-range ones included, can be sent.
  wire::Header h = wire::ReplyHeader(request);
  h.flags |= wire::kFlagError;
  h.error = errno_value;
  std::vector<uint8_t> message = wire::StartMessage();
  wire::FinishMessage(h, message);
  return Send(std::move(message));
}

FakeServer::FakeServer() {
  auto [server, client] = SocketPair();
  main_ = std::make_unique<FakeEndpoint>(std::move(server));
  client_end_ = std::move(client);
}

FakeServer::FakeServer(UniqueFd server_end)
    : main_(std::make_unique<FakeEndpoint>(std::move(server_end))) {}

absl::StatusOr<wire::Version> FakeServer::AcceptVersion(const wire::ServerVersionPolicy& policy) {
  VFU_ASSIGN_OR_RETURN(InboundMessage request, main_->Receive());
  if (request.header.command != static_cast<uint16_t>(wire::Command::kVersion)) {
    return absl::InvalidArgumentError(absl::StrCat("first message is ",
                                                   wire::CommandName(request.header.command)));
  }
  VFU_ASSIGN_OR_RETURN(wire::Version proposal,
                       wire::DecodeVersionRequest(request.payload(), request.fds.size()));
  VFU_ASSIGN_OR_RETURN(wire::NegotiatedVersion negotiated,
                       wire::NegotiateVersion(proposal, policy));
  std::vector<uint8_t> payload;
  wire::EncodeVersionReply(negotiated, payload);
  std::vector<UniqueFd> fds;
  if (negotiated.twin_socket()) {
    auto [ours, theirs] = SocketPair();
    twin_ = std::make_unique<FakeEndpoint>(std::move(ours));
    fds.push_back(std::move(theirs));
  }
  VFU_RETURN_IF_ERROR(main_->Reply(request.header, payload, std::move(fds)));
  return proposal;
}

absl::StatusOr<InboundMessage> FakeServer::AnswerVersionWith(absl::Span<const uint8_t> payload,
                                                             std::vector<UniqueFd> fds) {
  VFU_ASSIGN_OR_RETURN(InboundMessage request, main_->Receive());
  VFU_RETURN_IF_ERROR(main_->Reply(request.header, payload, std::move(fds)));
  return request;
}

}  // namespace vfu::testing
