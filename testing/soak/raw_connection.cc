#include "testing/soak/raw_connection.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "vfu/wire/version.h"

namespace vfu::soak {
namespace {

// Most fds one sendmsg/recvmsg carries here (the kernel's SCM_MAX_FD).
constexpr size_t kMaxFdsPerCall = 253;

int PollMs(absl::Time deadline) {
  const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
  return static_cast<int>(std::clamp<int64_t>(ms, 0, 1000));
}

}  // namespace

std::vector<uint8_t> CommandMessage(uint16_t id, wire::Command command,
                                    absl::Span<const uint8_t> payload, bool no_reply) {
  std::vector<uint8_t> message = wire::StartMessage(payload.size());
  message.insert(message.end(), payload.begin(), payload.end());
  wire::FinishMessage(wire::CommandHeader(id, command, no_reply), message);
  return message;
}

absl::StatusOr<RawConnection> RawConnection::Connect(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return absl::ErrnoToStatus(errno, "socket");
  sockaddr_un address = {};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path) return absl::InvalidArgumentError("path too long");
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  // A UNIX stream connect completes at once or fails (EAGAIN: backlog full).
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    return absl::UnavailableError(absl::StrCat("connect: ", std::strerror(errno)));
  }
  return RawConnection(std::move(fd));
}

absl::Status RawConnection::Negotiate(absl::Time deadline) {
  std::vector<uint8_t> payload;
  wire::EncodeVersionWithJson(0, 0, "", payload);
  if (absl::Status sent = Send(CommandMessage(next_id_++, wire::Command::kVersion, payload), {},
                               deadline);
      !sent.ok()) {
    return sent;
  }
  absl::StatusOr<RawMessage> reply = ReadMessage(deadline);
  if (!reply.ok()) return reply.status();
  if (reply->header.is_error() || reply->header.command != uint16_t(wire::Command::kVersion)) {
    return absl::InternalError("VERSION refused");
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> RawConnection::TrySend(absl::Span<const uint8_t> bytes,
                                              absl::Span<const int> fds) {
  if (fds.size() > kMaxFdsPerCall) return absl::InvalidArgumentError("too many fds for one call");
  iovec iov = {.iov_base = const_cast<uint8_t*>(bytes.data()), .iov_len = bytes.size()};
  msghdr message = {};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerCall)];
  if (!fds.empty()) {
    message.msg_control = control;
    message.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
  }
  const ssize_t n = ::sendmsg(fd_.get(), &message, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n >= 0) return static_cast<size_t>(n);
  if (errno == EAGAIN || errno == EINTR) return size_t{0};
  return absl::UnavailableError(absl::StrCat("sendmsg: ", std::strerror(errno)));
}

absl::Status RawConnection::Send(absl::Span<const uint8_t> bytes, absl::Span<const int> fds,
                                 absl::Time deadline) {
  bool fds_sent = fds.empty();
  while (!bytes.empty() || !fds_sent) {
    absl::StatusOr<size_t> n = TrySend(bytes, fds_sent ? absl::Span<const int>() : fds);
    if (!n.ok()) return n.status();
    if (*n > 0) {
      bytes.remove_prefix(*n);
      fds_sent = true;
      continue;
    }
    if (absl::Now() >= deadline) return absl::DeadlineExceededError("socket stayed full");
    pollfd p = {.fd = fd_.get(), .events = POLLOUT, .revents = 0};
    ::poll(&p, 1, PollMs(deadline));
  }
  return absl::OkStatus();
}

absl::Status RawConnection::ReadSome(absl::Time deadline) {
  while (true) {
    uint8_t buffer[64 * 1024];
    iovec iov = {.iov_base = buffer, .iov_len = sizeof buffer};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerCall)];
    msghdr message = {};
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(fd_.get(), &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n > 0) {
      for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
          int received;
          std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof received);
          ::close(received);
        }
      }
      inbox_.insert(inbox_.end(), buffer, buffer + n);
      return absl::OkStatus();
    }
    if (n == 0) return absl::UnavailableError("the server closed the connection");
    if (errno != EAGAIN && errno != EINTR) {
      return absl::UnavailableError(absl::StrCat("recvmsg: ", std::strerror(errno)));
    }
    if (absl::Now() >= deadline) return absl::DeadlineExceededError("no data from the server");
    pollfd p = {.fd = fd_.get(), .events = POLLIN, .revents = 0};
    ::poll(&p, 1, PollMs(deadline));
  }
}

absl::StatusOr<RawMessage> RawConnection::ReadMessage(absl::Time deadline) {
  while (true) {
    if (inbox_.size() >= wire::kHeaderSize) {
      RawMessage message;
      message.header = wire::DecodeHeader(inbox_);
      if (message.header.msg_size < wire::kHeaderSize) {
        return absl::DataLossError("the server sent a message shorter than its header");
      }
      if (inbox_.size() >= message.header.msg_size) {
        message.bytes.assign(inbox_.begin(), inbox_.begin() + message.header.msg_size);
        inbox_.erase(inbox_.begin(), inbox_.begin() + message.header.msg_size);
        return message;
      }
    }
    if (absl::Status read = ReadSome(deadline); !read.ok()) return read;
  }
}

}  // namespace vfu::soak
