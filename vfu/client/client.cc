// The connection engine of Client: negotiation, sending, the IO-leader wait
// loop, reply matching and serving the server's DMA commands. The typed
// commands live in client_commands.cc.
#include "vfu/client/client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "vfu/base/log.h"
#include "vfu/base/status_macros.h"
#include "vfu/transport/message_buffer_pool.h"
#include "vfu/transport/send_buffer.h"
#include "vfu/wire/errno_status.h"
#include "vfu/wire/negotiation.h"

namespace vfu {
namespace {

constexpr uint16_t kMajorVersion = 0;

// A DMA_READ crossing more registrations than this is copied into its reply
// rather than sent from each one.
constexpr size_t kMaxBorrowedViews = 8;

// Replies we must always be able to receive, whatever max_data_xfer_size
// says: DMA_UNMAP bitmaps and GET_REGION_IO_FDS entries (argsz up to 1 MiB).
constexpr uint64_t kMinIncomingPayload = 1 << 20;

// Largest message our readers accept: a data transfer of the larger of the
// two max_data_xfer_size values (a REGION_READ reply is bounded by the
// server's, a DMA_WRITE by ours), and at least a maximal VERSION reply.
size_t IncomingLimit(uint64_t ours, uint64_t servers) {
  const uint64_t payload = std::max({ours, servers, kMinIncomingPayload});
  return std::max(wire::MaxMessageSizeFor(payload),
                  wire::kHeaderSize + wire::kMaxVersionPayloadSize);
}

absl::Status ValidateOptions(const ClientOptions& options) {
  if (options.max_msg_fds > wire::kMaxMsgFdsLimit) {
    return absl::InvalidArgumentError(absl::StrCat("max_msg_fds ", options.max_msg_fds,
                                                   " above ", wire::kMaxMsgFdsLimit));
  }
  if (options.max_data_xfer_size == 0 ||
      options.max_data_xfer_size > wire::kMaxDataXferSizeLimit) {
    return absl::InvalidArgumentError(absl::StrCat("max_data_xfer_size ",
                                                   options.max_data_xfer_size,
                                                   " outside 1..", wire::kMaxDataXferSizeLimit));
  }
  if (options.twin_socket && options.max_msg_fds == 0) {
    return absl::InvalidArgumentError("twin_socket needs max_msg_fds >= 1 to receive the socket");
  }
  return absl::OkStatus();
}

absl::Status SetNonBlocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    return absl::ErrnoToStatus(errno, "fcntl(O_NONBLOCK)");
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> MakeEventfd() {
  UniqueFd fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!fd.valid()) return absl::ErrnoToStatus(errno, "eventfd");
  return fd;
}

void Kick(int eventfd) {
  const uint64_t one = 1;
  // Cannot fail short of a counter overflow, which still leaves it readable.
  [[maybe_unused]] ssize_t n = ::write(eventfd, &one, sizeof one);
}

void Drain(int eventfd) {
  uint64_t value;
  [[maybe_unused]] ssize_t n = ::read(eventfd, &value, sizeof value);
}

// `status` with `prefix` before its message; code and payloads (the errno
// wire::ReplyErrno reads) are kept.
absl::Status Annotate(const absl::Status& status, std::string_view prefix) {
  if (status.ok()) return status;
  absl::Status annotated(status.code(), absl::StrCat(prefix, ": ", status.message()));
  status.ForEachPayload([&](std::string_view url, const absl::Cord& payload) {
    annotated.SetPayload(url, payload);
  });
  return annotated;
}

std::string Describe(wire::Command command, uint16_t id) {
  return absl::StrCat(wire::CommandName(command), " (id ", id, ")");
}

// The caller's view of a reply message to `command`.
absl::StatusOr<Reply> ToReply(wire::Command command, uint16_t id, InboundMessage message) {
  const wire::Header& h = message.header;
  if (h.command != static_cast<uint16_t>(command)) {
    return absl::InvalidArgumentError(absl::StrCat(
        Describe(command, id), ": the reply names command ", wire::CommandName(h.command)));
  }
  if (h.is_error()) return wire::StatusFromReplyError(h.error, Describe(command, id));
  if (message.oversized) {
    return absl::ResourceExhaustedError(absl::StrCat(Describe(command, id), ": reply of ",
                                                     h.msg_size,
                                                     " bytes exceeds our message size limit"));
  }
  if (message.fds_truncated) {
    return absl::InvalidArgumentError(
        absl::StrCat(Describe(command, id), ": reply carries more fds than we accept"));
  }
  Reply reply;
  reply.header = h;
  reply.bytes = std::move(message.bytes);
  reply.fds = std::move(message.fds);
  return reply;
}

bool Readable(short revents) { return (revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) != 0; }

}  // namespace

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(const std::string& socket_path,
                                                        ClientOptions options) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof addr.sun_path) {
    return absl::InvalidArgumentError(absl::StrCat("socket path \"", socket_path,
                                                   "\" is empty or longer than ",
                                                   sizeof addr.sun_path - 1, " bytes"));
  }
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  VFU_RETURN_IF_ERROR(ValidateOptions(options));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return absl::ErrnoToStatus(errno, "socket");
  // Blocking connect: a UNIX socket connects at once or fails (a full
  // listen backlog blocks until the server accepts).
  int rc;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<const struct sockaddr*>(&addr), sizeof addr);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return absl::ErrnoToStatus(errno, absl::StrCat("connect to ", socket_path));
  return FromFd(std::move(fd), std::move(options));
}

absl::StatusOr<std::unique_ptr<Client>> Client::FromFd(UniqueFd connected_socket,
                                                       ClientOptions options) {
  VFU_RETURN_IF_ERROR(ValidateOptions(options));
  if (!connected_socket.valid()) return absl::InvalidArgumentError("invalid socket fd");
  VFU_RETURN_IF_ERROR(SetNonBlocking(connected_socket.get()));
  RaiseSendBuffer(connected_socket.get(), wire::MaxMessageSizeFor(options.max_data_xfer_size));
  VFU_ASSIGN_OR_RETURN(UniqueFd leader_wakeup, MakeEventfd());
  VFU_ASSIGN_OR_RETURN(UniqueFd thread_wakeup, MakeEventfd());
  const absl::Time deadline = absl::Now() + options.timeout;
  std::unique_ptr<Client> client(new Client(std::move(connected_socket), std::move(options),
                                            std::move(leader_wakeup), std::move(thread_wakeup)));
  VFU_RETURN_IF_ERROR(client->Negotiate(deadline));
  return client;
}

Client::Client(UniqueFd socket, ClientOptions options, UniqueFd leader_wakeup,
               UniqueFd thread_wakeup)
    : options_(std::move(options)),
      syscalls_(options_.syscalls != nullptr ? *options_.syscalls : PosixSyscalls::Instance()),
      leader_wakeup_(std::move(leader_wakeup)),
      thread_wakeup_(std::move(thread_wakeup)),
      main_(std::move(socket), IncomingLimit(options_.max_data_xfer_size, 0),
            options_.max_msg_fds) {}

Client::~Client() { StopServingThread(); }

absl::Status Client::Negotiate(absl::Time deadline) {
  wire::Version proposal;
  proposal.major = kMajorVersion;
  proposal.minor = options_.minor_version;
  wire::Capabilities& ours = proposal.capabilities;
  ours.max_msg_fds = options_.max_msg_fds;
  ours.max_data_xfer_size = options_.max_data_xfer_size;
  ours.twin_socket.supported = options_.twin_socket;
  ours.write_multiple = options_.write_multiple;
  ours.migration = options_.migration;
  // Offer only what is asked for: an absent member reads as "not supported".
  const wire::CapabilityMembers members = {
      .max_msg_fds = true,
      .max_data_xfer_size = true,
      .twin_socket = options_.twin_socket,
      .write_multiple = options_.write_multiple,
      .migration = options_.migration.has_value(),
  };
  std::vector<uint8_t> payload;
  wire::EncodeVersion(proposal, members, payload);

  absl::StatusOr<Reply> reply = Call(wire::Command::kVersion, payload, {}, deadline);
  if (!reply.ok()) return Annotate(reply.status(), "VERSION negotiation");
  const size_t num_fds = reply->fds.size();
  absl::StatusOr<wire::Version> server = wire::DecodeVersionReply(reply->payload(), num_fds);
  if (!server.ok()) return Annotate(server.status(), "VERSION reply rejected");
  VFU_RETURN_IF_ERROR(Annotate(wire::ValidateServerVersionReply(proposal, *server, num_fds),
                               "VERSION reply rejected"));

  // No other thread can see the client yet.
  server_version_ = *std::move(server);
  absl::MutexLock lock(&mu_);
  if (server_version_.capabilities.twin_socket.supported) {
    // ValidateServerVersionReply() checked that fd_index names a received fd.
    UniqueFd twin = std::move(reply->fds[*server_version_.capabilities.twin_socket.fd_index]);
    VFU_RETURN_IF_ERROR(SetNonBlocking(twin.get()));
    RaiseSendBuffer(twin.get(), wire::MaxMessageSizeFor(options_.max_data_xfer_size));
    twin_ = std::make_unique<Channel>(std::move(twin), 0, options_.max_msg_fds);
    twin_granted_ = true;
  }
  ApplyNegotiatedLimitsLocked();
  return absl::OkStatus();
}

void Client::ApplyNegotiatedLimitsLocked() {
  const size_t limit =
      IncomingLimit(options_.max_data_xfer_size, server_version_.capabilities.max_data_xfer_size);
  main_.reader.assembler().set_max_message_size(limit);
  if (twin_ != nullptr) twin_->reader.assembler().set_max_message_size(limit);
}

// ---- Sending ----

absl::StatusOr<Reply> Client::Call(wire::Command cmd, absl::Span<const uint8_t> payload,
                                   std::vector<UniqueFd> fds, std::optional<absl::Time> deadline) {
  const absl::Time d = deadline.value_or(DefaultDeadline());
  VFU_ASSIGN_OR_RETURN(uint16_t id,
                       SendWithDeadline(cmd, payload, std::move(fds), /*no_reply=*/false, d));
  absl::StatusOr<Reply> reply = Await(id, d);
  if (reply.status().code() == absl::StatusCode::kDeadlineExceeded) Abandon(id);
  return reply;
}

absl::StatusOr<uint16_t> Client::Send(wire::Command cmd, absl::Span<const uint8_t> payload,
                                      std::vector<UniqueFd> fds, bool no_reply) {
  return SendWithDeadline(cmd, payload, std::move(fds), no_reply, DefaultDeadline());
}

absl::Status Client::SendNoReply(wire::Command cmd, absl::Span<const uint8_t> payload,
                                 std::vector<UniqueFd> fds) {
  return SendWithDeadline(cmd, payload, std::move(fds), /*no_reply=*/true, DefaultDeadline())
      .status();
}

absl::StatusOr<uint16_t> Client::SendWithDeadline(wire::Command cmd,
                                                  absl::Span<const uint8_t> payload,
                                                  std::vector<UniqueFd> fds, bool no_reply,
                                                  absl::Time deadline) {
  if (payload.size() > std::numeric_limits<uint32_t>::max() - wire::kHeaderSize) {
    return absl::InvalidArgumentError(
        absl::StrCat(wire::CommandName(cmd), " payload of ", payload.size(), " bytes"));
  }
  // Build the message before taking the lock; only the header waits for the ID.
  OutboundMessage message;
  message.bytes = wire::StartMessage(payload.size());
  message.bytes.insert(message.bytes.end(), payload.begin(), payload.end());
  message.fds = std::move(fds);

  absl::MutexLock lock(&mu_);
  if (!broken_.ok()) return broken_;
  if (outstanding_.size() > std::numeric_limits<uint16_t>::max()) {
    return absl::ResourceExhaustedError("all 65536 message IDs await replies");
  }
  // Skip IDs still awaiting a reply, so a reply always names one command.
  while (outstanding_.contains(next_id_)) ++next_id_;
  const uint16_t id = next_id_++;
  if (!no_reply) outstanding_.emplace(id, Outstanding{.command = cmd});

  wire::FinishMessage(wire::CommandHeader(id, cmd, no_reply), message.bytes);
  ++stats_.commands_sent;
  EnqueueLocked(main_, std::move(message));
  const uint64_t end = main_.enqueued_bytes;
  FlushLocked(main_);
  absl::Status status;
  if (main_.sent_bytes() < end && broken_.ok()) {
    // The socket is full. A sleeping IO leader armed poll(2) before this
    // output existed: make it look again, for POLLOUT too.
    if (io_leader_) Kick(leader_wakeup_.get());
    status = WaitLocked(
        [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return main_.sent_bytes() >= end; },
        deadline, /*allow_busy=*/true);
  }
  if (!broken_.ok()) {
    outstanding_.erase(id);
    return broken_;
  }
  if (!status.ok()) {
    // Part of the message may be out; it cannot be taken back. It leaves
    // during later waits, and its reply is not wanted.
    auto it = outstanding_.find(id);
    if (it != outstanding_.end()) it->second.abandoned = true;
    return Annotate(status, absl::StrCat("sending ", Describe(cmd, id),
                                         ": the server does not read"));
  }
  return id;
}

void Client::EnqueueLocked(Channel& channel, OutboundMessage message) {
  ++stats_.messages_sent;
  const size_t size = message.size();
  stats_.bytes_sent += size;
  channel.enqueued_bytes += size;
  channel.writer.Enqueue(std::move(message));
}

bool Client::FlushLocked(Channel& channel) {
  if (!broken_.ok() || channel.writer.empty()) return false;
  const size_t before = channel.writer.queued_bytes();
  absl::Status status = channel.writer.Flush(channel.fd.get(), syscalls_);
  if (status.ok()) return channel.writer.queued_bytes() < before;
  // The server may have answered before it went away: take what it sent
  // before declaring the connection dead.
  ReadLocked(channel);
  BreakLocked(Annotate(status, "sending to the server"));
  return false;
}

// ---- Waiting ----

absl::StatusOr<Reply> Client::Await(uint16_t id, std::optional<absl::Time> deadline) {
  const absl::Time d = deadline.value_or(DefaultDeadline());
  wire::Command command;
  InboundMessage message;
  {
    absl::MutexLock lock(&mu_);
    auto it = outstanding_.find(id);
    if (it == outstanding_.end() || it->second.abandoned) {
      return absl::NotFoundError(absl::StrCat("no outstanding command with id ", id));
    }
    command = it->second.command;
    // Re-looked-up each time: other threads' Send() calls rehash the map.
    absl::Status status = WaitLocked(
        [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          auto it = outstanding_.find(id);
          return it == outstanding_.end() || it->second.abandoned ||
                 it->second.reply.has_value();
        },
        d, /*allow_busy=*/true);
    it = outstanding_.find(id);
    if (it == outstanding_.end() || it->second.abandoned) {
      return absl::NotFoundError(absl::StrCat(Describe(command, id),
                                              " was collected or abandoned by another thread"));
    }
    if (!it->second.reply.has_value()) {
      if (status.code() == absl::StatusCode::kDeadlineExceeded) {
        return absl::DeadlineExceededError(
            absl::StrCat("no reply to ", Describe(command, id), " before the deadline"));
      }
      // Broken: the reply can no longer come.
      outstanding_.erase(it);
      return Annotate(status, Describe(command, id));
    }
    message = *std::move(it->second.reply);
    outstanding_.erase(it);
  }
  return ToReply(command, id, std::move(message));
}

void Client::Abandon(uint16_t id) {
  absl::MutexLock lock(&mu_);
  auto it = outstanding_.find(id);
  if (it == outstanding_.end()) return;
  if (it->second.reply.has_value() || !broken_.ok()) {
    outstanding_.erase(it);
  } else {
    it->second.abandoned = true;
  }
  // Another thread may be awaiting `id`: it returns NotFound now.
  cv_.SignalAll();
  if (io_leader_) Kick(leader_wakeup_.get());
}

absl::Status Client::Poll(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  const uint64_t seen = stats_.messages_received;
  absl::Status status = WaitLocked(
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stats_.messages_received != seen; },
      deadline, /*allow_busy=*/true);
  if (status.code() == absl::StatusCode::kDeadlineExceeded) return absl::OkStatus();
  return status;
}

template <typename Done>
absl::Status Client::WaitLocked(Done done, absl::Time deadline, bool allow_busy) {
  for (bool first_round = true;; first_round = false) {
    if (done()) return absl::OkStatus();
    if (!broken_.ok()) return broken_;
    if (!first_round && absl::Now() >= deadline) {
      return absl::DeadlineExceededError("deadline exceeded");
    }
    if (io_leader_) {
      // Another thread drives the sockets; it signals cv_ after every round.
      cv_.WaitWithDeadline(&mu_, deadline);
    } else {
      PumpLocked(deadline, allow_busy && options_.busy_poll);
    }
  }
}

void Client::PumpLocked(absl::Time deadline, bool busy) {
  io_leader_ = true;
  const bool lead_twin = twin_ != nullptr && !twin_owned_by_thread_;
  bool wrote = FlushLocked(main_);
  if (lead_twin) wrote = FlushLocked(*twin_) || wrote;

  bool read_main = true;
  bool read_twin = lead_twin;
  if (!broken_.ok() || wrote) {
    // No sleep: the caller re-checks its condition (a drained queue may be
    // all it waits for); reading costs one recvmsg per socket.
  } else if (busy) {
    ++stats_.busy_poll_rounds;
    // Let threads queued on mu_ (senders) in between spins.
    mu_.Unlock();
    mu_.Lock();
  } else {
    struct pollfd fds[3];
    nfds_t nfds = 0;
    fds[nfds++] = {main_.fd.get(),
                   static_cast<short>(POLLIN | (main_.writer.empty() ? 0 : POLLOUT)), 0};
    fds[nfds++] = {leader_wakeup_.get(), POLLIN, 0};
    if (lead_twin) {
      fds[nfds++] = {twin_->fd.get(),
                     static_cast<short>(POLLIN | (twin_->writer.empty() ? 0 : POLLOUT)), 0};
    }
    struct timespec ts;
    struct timespec* timeout = nullptr;
    if (deadline != absl::InfiniteFuture()) {
      ts = absl::ToTimespec(std::max(deadline - absl::Now(), absl::ZeroDuration()));
      timeout = &ts;
    }
    ++stats_.poll_sleeps;
    // Sleep without the lock: senders, followers and the serving thread
    // carry on; a sender that queues output kicks leader_wakeup_.
    mu_.Unlock();
    const int n = ::ppoll(fds, nfds, timeout, nullptr);
    const int poll_errno = errno;
    mu_.Lock();
    if (n < 0) {
      if (poll_errno != EINTR) BreakLocked(absl::ErrnoToStatus(poll_errno, "ppoll"));
      read_main = read_twin = false;
    } else {
      if ((fds[1].revents & POLLIN) != 0) Drain(leader_wakeup_.get());
      read_main = Readable(fds[0].revents);
      read_twin = lead_twin && Readable(fds[2].revents);
    }
  }

  if (broken_.ok() && read_main) ReadLocked(main_);
  // StartServingThread() may have handed the twin to the thread meanwhile.
  const bool still_lead_twin = twin_ != nullptr && !twin_owned_by_thread_;
  if (broken_.ok() && read_twin && still_lead_twin) ReadLocked(*twin_);
  FlushLocked(main_);
  if (still_lead_twin) FlushLocked(*twin_);

  io_leader_ = false;
  cv_.SignalAll();
}

// ---- Incoming messages ----

void Client::ReadLocked(Channel& channel) {
  // Borrow inbox_'s capacity (no allocation per read) for a local batch, so
  // that the member is never in use while messages are dispatched.
  std::vector<InboundMessage> batch = std::move(inbox_);
  batch.clear();
  absl::Status status = channel.reader.ReadAvailable(channel.fd.get(), syscalls_, batch);
  for (InboundMessage& message : batch) DispatchLocked(channel, std::move(message));
  batch.clear();
  inbox_ = std::move(batch);
  if (!status.ok()) BreakLocked(Annotate(status, "receiving from the server"));
}

void Client::DispatchLocked(Channel& channel, InboundMessage message) {
  ++stats_.messages_received;
  stats_.bytes_received += message.header.msg_size;
  if (message.header.is_reply()) {
    HandleReplyLocked(std::move(message));
  } else if (message.header.is_command()) {
    HandleServerCommandLocked(channel, std::move(message));
  } else {
    // PROTOCOL.md 10 row 7: neither command nor reply; drop it, never answer.
    VFU_LOG(kWarning, "dropping a message of type ", message.header.type(), " (",
            wire::CommandName(message.header.command), ", id ", message.header.msg_id, ")");
  }
}

void Client::HandleReplyLocked(InboundMessage message) {
  ++stats_.replies_received;
  const wire::Header& h = message.header;
  auto it = outstanding_.find(h.msg_id);
  if (it == outstanding_.end()) {
    VFU_LOG(kWarning, "dropping a reply (", wire::CommandName(h.command), ", id ", h.msg_id,
            ") to no outstanding command");
    return;
  }
  if (it->second.abandoned) {
    outstanding_.erase(it);
    return;
  }
  if (it->second.reply.has_value()) {
    VFU_LOG(kWarning, "dropping a second reply to ", Describe(it->second.command, h.msg_id));
    return;
  }
  it->second.reply = std::move(message);
}

void Client::HandleServerCommandLocked(Channel& channel, InboundMessage message) {
  ++stats_.server_commands_received;
  if (hold_server_commands_) {
    held_server_commands_.emplace_back(&channel, std::move(message));
    return;
  }
  AnswerServerCommandLocked(channel, std::move(message));
}

void Client::AnswerServerCommandLocked(Channel& channel, InboundMessage message) {
  const wire::Header& h = message.header;
  OutboundMessage reply;
  reply.bytes = wire::StartMessage(wire::kDmaTransferFixedSize);
  absl::Status status = ServeLocked(message, reply);
  // A large DMA_WRITE's buffer can take the next large message unzeroed.
  MessageBufferPool::Instance().Recycle(std::move(message.bytes));
  if (!status.ok()) {
    ++stats_.server_commands_failed;
    VFU_LOG(kWarning, "server command ", wire::CommandName(h.command), " (id ", h.msg_id,
            ") fails with errno ", wire::ReplyErrno(status), ": ", status.message());
    if (!h.no_reply()) EnqueueLocked(channel, {wire::ErrorReply(h, wire::ReplyErrno(status)), {}});
    return;
  }
  if (h.no_reply()) return;
  wire::Header reply_header = wire::ReplyHeader(h);
  // Counts are capped at 64 MiB: the size fits in msg_size.
  reply_header.msg_size = static_cast<uint32_t>(reply.size());
  wire::EncodeHeader(reply_header, absl::MakeSpan(reply.bytes));
  EnqueueLocked(channel, std::move(reply));
}

void Client::OwnBorrowedBytesLocked() {
  main_.writer.OwnBorrowedBytes();
  if (twin_ != nullptr) twin_->writer.OwnBorrowedBytes();
}

absl::Status Client::ServeLocked(const InboundMessage& message, OutboundMessage& reply) {
  const wire::Header& h = message.header;
  const wire::DmaTransferLayout layout = options_.dma_layout;
  const uint64_t max_count = options_.max_data_xfer_size;
  // As QEMU: server commands take no fds (they close with `message`).
  if (!message.fds.empty() || message.fds_truncated) {
    return wire::WireError(EINVAL, "server command carries fds");
  }
  // The decoders get an unlimited max_count so that a count above ours is
  // answered E2BIG (PROTOCOL.md 4.10) rather than their EINVAL.
  constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();

  if (h.command == static_cast<uint16_t>(wire::Command::kDmaRead)) {
    if (message.oversized) {
      return wire::WireError(EINVAL, absl::StrCat("DMA_READ request of ", h.msg_size, " bytes"));
    }
    VFU_ASSIGN_OR_RETURN(
        wire::DmaReadRequest request,
        wire::DecodeDmaReadRequest(message.payload(), 0, layout, kNoLimit));
    if (request.count > max_count) {
      return wire::WireError(E2BIG, absl::StrCat("DMA_READ of ", request.count,
                                                 " bytes, above our max_data_xfer_size ",
                                                 max_count));
    }
    absl::InlinedVector<absl::Span<const uint8_t>, 2> data;
    VFU_RETURN_IF_ERROR(memory_.ReadViews(request.address, request.count, data));
    wire::EncodeDmaReadReplyHead(request.address, request.count, layout, reply.bytes);
    const absl::Span<const uint8_t> tail = wire::DmaReadReplyTail(layout);
    if (data.size() <= kMaxBorrowedViews) {
      // Sent from the registered memory itself: no copy of the data. Every
      // change to the table and every DMA_WRITE first makes the queued
      // replies own their bytes (OwnBorrowedBytesLocked).
      reply.borrowed = std::move(data);
      if (!tail.empty()) reply.borrowed.push_back(tail);
    } else {
      reply.bytes.reserve(reply.bytes.size() + request.count + tail.size());
      for (absl::Span<const uint8_t> view : data) {
        reply.bytes.insert(reply.bytes.end(), view.begin(), view.end());
      }
      reply.bytes.insert(reply.bytes.end(), tail.begin(), tail.end());
    }
    stats_.dma_read_bytes += request.count;
    return absl::OkStatus();
  }

  if (h.command == static_cast<uint16_t>(wire::Command::kDmaWrite)) {
    if (message.oversized) {
      return wire::WireError(E2BIG, absl::StrCat("DMA_WRITE message of ", h.msg_size,
                                                 " bytes, above our max_data_xfer_size ",
                                                 max_count));
    }
    VFU_ASSIGN_OR_RETURN(
        wire::DmaWriteRequest request,
        wire::DecodeDmaWriteRequest(message.payload(), 0, layout, kNoLimit));
    if (request.count() > max_count) {
      return wire::WireError(E2BIG, absl::StrCat("DMA_WRITE of ", request.count(),
                                                 " bytes, above our max_data_xfer_size ",
                                                 max_count));
    }
    // Queued DMA_READ replies were read before this write: keep their bytes.
    OwnBorrowedBytesLocked();
    VFU_RETURN_IF_ERROR(memory_.Write(request.address, request.data));
    wire::EncodeDmaWriteReply({.address = request.address, .count = request.count()}, layout,
                              reply.bytes);
    stats_.dma_write_bytes += request.count();
    return absl::OkStatus();
  }

  // As QEMU answers a command it does not know.
  return wire::WireError(ENOSYS, absl::StrCat("the client does not serve ",
                                              wire::CommandName(h.command), " (", h.command,
                                              ")"));
}

void Client::BreakLocked(absl::Status status) {
  if (!broken_.ok()) return;
  broken_ = std::move(status);
  VFU_LOG(kInfo, "vfio-user connection lost: ", broken_.ToString());
  main_.writer.Clear();
  if (twin_ != nullptr) twin_->writer.Clear();
  cv_.SignalAll();
  // Whoever sleeps in poll(2) on the other socket must notice too.
  Kick(leader_wakeup_.get());
  Kick(thread_wakeup_.get());
}

// ---- Serving memory and the serving thread ----

absl::Status Client::AddDmaMemory(uint64_t iova, absl::Span<uint8_t> memory,
                                  uint32_t device_access) {
  absl::MutexLock lock(&mu_);
  return memory_.Add(iova, memory, device_access);
}

absl::Status Client::RemoveDmaMemory(uint64_t iova) {
  absl::MutexLock lock(&mu_);
  OwnBorrowedBytesLocked();
  return memory_.Remove(iova);
}

void Client::HoldServerCommands() {
  absl::MutexLock lock(&mu_);
  hold_server_commands_ = true;
}

void Client::ReleaseServerCommands() {
  absl::MutexLock lock(&mu_);
  hold_server_commands_ = false;
  std::vector<std::pair<Channel*, InboundMessage>> held = std::move(held_server_commands_);
  held_server_commands_.clear();
  if (held.empty() || !broken_.ok()) return;
  for (auto& [channel, message] : held) AnswerServerCommandLocked(*channel, std::move(message));
  // Send the answers now where no other thread drives the socket; wake
  // the thread that does.
  if (io_leader_) {
    Kick(leader_wakeup_.get());
  } else {
    FlushLocked(main_);
  }
  if (twin_ != nullptr) {
    if (twin_owned_by_thread_) {
      Kick(thread_wakeup_.get());
    } else if (!io_leader_) {
      FlushLocked(*twin_);
    }
  }
}

absl::Status Client::StartServingThread() {
  absl::MutexLock lock(&mu_);
  if (serving_thread_.joinable()) {
    return absl::FailedPreconditionError("the serving thread is already running");
  }
  if (!broken_.ok()) return broken_;
  stop_serving_ = false;
  if (twin_ != nullptr) {
    twin_owned_by_thread_ = true;
    serving_thread_ = std::thread([this] { ServeTwinOnThread(); });
  } else {
    serving_thread_ = std::thread([this] { ServeMainOnThread(); });
  }
  return absl::OkStatus();
}

void Client::StopServingThread() {
  std::thread thread;
  {
    absl::MutexLock lock(&mu_);
    if (!serving_thread_.joinable()) return;
    stop_serving_ = true;
    thread = std::move(serving_thread_);
    cv_.SignalAll();
  }
  // It sleeps in poll(2) either as the IO leader or on the twin socket.
  Kick(leader_wakeup_.get());
  Kick(thread_wakeup_.get());
  thread.join();
  absl::MutexLock lock(&mu_);
  stop_serving_ = false;
  twin_owned_by_thread_ = false;
}

void Client::ServeMainOnThread() {
  absl::MutexLock lock(&mu_);
  absl::Status status =
      WaitLocked([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_serving_; },
                 absl::InfiniteFuture(), /*allow_busy=*/false);
  if (!status.ok()) VFU_LOG(kInfo, "serving thread stops: ", status.ToString());
}

void Client::ServeTwinOnThread() {
  mu_.Lock();
  while (!stop_serving_ && broken_.ok()) {
    Channel& twin = *twin_;
    FlushLocked(twin);
    struct pollfd fds[2] = {
        {twin.fd.get(), static_cast<short>(POLLIN | (twin.writer.empty() ? 0 : POLLOUT)), 0},
        {thread_wakeup_.get(), POLLIN, 0},
    };
    ++stats_.poll_sleeps;
    mu_.Unlock();
    const int n = ::ppoll(fds, 2, nullptr, nullptr);
    const int poll_errno = errno;
    mu_.Lock();
    if (n < 0) {
      if (poll_errno != EINTR) BreakLocked(absl::ErrnoToStatus(poll_errno, "ppoll"));
      continue;
    }
    if ((fds[1].revents & POLLIN) != 0) Drain(thread_wakeup_.get());
    if (stop_serving_ || !broken_.ok()) break;
    const uint64_t received = stats_.messages_received;
    if (Readable(fds[0].revents)) ReadLocked(twin);
    FlushLocked(twin);
    if (stats_.messages_received != received) {
      // Poll() waits for messages on any socket: wake it wherever it sleeps.
      cv_.SignalAll();
      if (io_leader_) Kick(leader_wakeup_.get());
    }
  }
  mu_.Unlock();
}

ClientStats Client::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace vfu
