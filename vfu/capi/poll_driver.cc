#include "vfu/capi/poll_driver.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "vfu/base/log.h"
#include "vfu/base/syscalls.h"
#include "vfu/wire/constants.h"
#include "vfu/wire/device_feature.h"
#include "vfu/wire/errno_status.h"
#include "vfu/wire/header.h"

namespace vfu::capi {
namespace {

// Before negotiation: a VERSION message with its JSON, and some headroom.
constexpr size_t kPreNegotiationMaxMessage = 64 * 1024 + 64;
// Most bytes of commands received and not yet handled, which grow only
// while the device waits for DMA replies (however many waits one callback
// makes); a client that sends more instead of answering is disconnected.
constexpr size_t kMaxKeptBackBytes = 64 << 20;
// Replies queued for a client that does not read them: past this, no more
// commands are read from it until it has read some (the socket's own buffer
// then holds its further commands, and its sends block).
constexpr size_t kMaxQueuedReplyBytes = 16 << 20;

int Fail(int error) {
  errno = error;
  return -1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PollDriver>> PollDriver::Listen(vfu_ctx& ctx) {
  sockaddr_un address = {};
  address.sun_family = AF_UNIX;
  if (ctx.path.empty() || ctx.path.size() >= sizeof(address.sun_path)) {
    return wire::WireError(EINVAL, "socket path empty or too long");
  }
  std::memcpy(address.sun_path, ctx.path.data(), ctx.path.size());
  UniqueFd listen_fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listen_fd) return wire::WireError(errno, "socket");
  if (bind(listen_fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    return wire::WireError(errno, absl::StrCat("bind ", ctx.path));
  }
  if (listen(listen_fd.get(), 0) != 0) return wire::WireError(errno, "listen");
  UniqueFd epoll_fd(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd) return wire::WireError(errno, "epoll_create1");
  UniqueFd wake_fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd) return wire::WireError(errno, "eventfd");
  UniqueFd fault_fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fault_fd) return wire::WireError(errno, "eventfd");
  for (int fd : {wake_fd.get(), fault_fd.get()}) {
    epoll_event event = {};
    event.events = EPOLLIN;
    event.data.fd = fd;
    if (epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
      return wire::WireError(errno, "epoll_ctl");
    }
  }
  return std::unique_ptr<PollDriver>(new PollDriver(ctx, std::move(listen_fd), std::move(epoll_fd),
                                                    std::move(wake_fd), std::move(fault_fd)));
}

PollDriver::PollDriver(vfu_ctx& ctx, UniqueFd listen_fd, UniqueFd epoll_fd, UniqueFd wake_fd,
                       UniqueFd fault_fd)
    : ctx_(ctx),
      listen_fd_(std::move(listen_fd)),
      epoll_fd_(std::move(epoll_fd)),
      wake_fd_(std::move(wake_fd)),
      fault_fd_(std::move(fault_fd)) {
  writer_.set_spare_buffers(&spares_);
  dma_.set_fault_handler([this](uint64_t, uint64_t) {
    // The fd first: whoever sees the flag then finds the fd signalled, and
    // drains it with the flag (ConsumeMemoryFault).
    const uint64_t one = 1;
    (void)!write(fault_fd_.get(), &one, sizeof(one));
    memory_faulted_.store(true, std::memory_order_release);
  });
}

bool PollDriver::ConsumeMemoryFault() {
  if (!memory_faulted_.exchange(false, std::memory_order_acq_rel)) return false;
  uint64_t count;
  (void)!read(fault_fd_.get(), &count, sizeof(count));
  return true;
}

PollDriver::~PollDriver() {
  if (attached()) {
    // vfu_destroy_ctx(): the client goes, its memory is released quietly
    // (libvfio-user calls no reset callback here either).
    session_->Detach();
    session_.reset();
  }
  unlink(ctx_.path.c_str());
}

absl::Status PollDriver::Realize() {
  device_ = std::make_unique<CallbackDevice>(
      ctx_, [this](uint64_t iova, uint64_t length, DmaDirection direction) {
        return dma_.Translate(iova, length, direction);
      });
  return absl::OkStatus();
}

int PollDriver::GetPollFd() const { return attached() ? epoll_fd_.get() : listen_fd_.get(); }

int PollDriver::Attach() {
  if (device_ == nullptr) return Fail(EINVAL);
  if (attached()) return Fail(EBUSY);
  const bool nonblocking = (ctx_.flags & LIBVFIO_USER_FLAG_ATTACH_NB) != 0;
  UniqueFd client;
  for (;;) {
    client = UniqueFd(accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (client) break;
    if (errno == EINTR) continue;
    if ((errno == EAGAIN || errno == EWOULDBLOCK) && !nonblocking) {
      pollfd waiter = {.fd = listen_fd_.get(), .events = POLLIN, .revents = 0};
      if (poll(&waiter, 1, -1) < 0 && errno != EINTR) return -1;
      continue;
    }
    return -1;
  }
  client_fd_ = std::move(client);
  epoll_event event = {};
  event.events = EPOLLIN;
  event.data.fd = client_fd_.get();
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, client_fd_.get(), &event) != 0) {
    const int error = errno;
    client_fd_.reset();
    return Fail(error);
  }
  interest_ = EPOLLIN;
  SessionOptions options;
  reader_ = std::make_unique<MessageReader>(kPreNegotiationMaxMessage,
                                            options.version.max_msg_fds);
  session_ = std::make_unique<Session>(*device_, static_cast<DeviceContext&>(*this), dma_,
                                       options, ctx_.path);
  reader_->assembler().set_spare_buffers(&spares_);
  session_->set_spare_buffers(&spares_);
  dma_config_ = MessageDmaConfig();
  (void)ConsumeMemoryFault();
  peer_gone_ = false;
  close_after_flush_ = false;
  return 0;
}

int PollDriver::Run() {
  if (!attached()) return Fail(ENOTCONN);
  if ((ctx_.flags & LIBVFIO_USER_FLAG_ATTACH_NB) != 0) return RunOnce();
  // Blocking: serve until the client leaves (-1/ENOTCONN), or until a
  // quiesce is deferred (-1/EBUSY), as libvfio-user's blocking loop does.
  for (;;) {
    if (RunOnce() > 0) continue;
    if (errno != EAGAIN) return -1;
    // The epoll fd, not the socket: it also wakes us when another thread's
    // copy found the client's memory gone (fault_fd_). RunOnce() left its
    // interest (EPOLLOUT while replies are queued) up to date.
    pollfd waiter = {.fd = epoll_fd_.get(), .events = POLLIN, .revents = 0};
    if (poll(&waiter, 1, -1) < 0 && errno != EINTR) return -1;
  }
}

int PollDriver::RunOnce() {
  if (parked_) return Fail(EBUSY);
  if (ConsumeMemoryFault()) {
    VFU_LOG_RATE_LIMITED(kWarning, ctx_.path,
                         ": the client took away memory under a DMA copy: disconnecting it");
    peer_gone_ = true;
  }
  if (!peer_gone_) FlushWriter();
  if (!peer_gone_ && writer_.queued_bytes() < kMaxQueuedReplyBytes) ReadInbound();
  const int handled = ProcessInbound();
  if (!peer_gone_) FlushWriter();
  // The device is unquiesced when vfu_run_ctx() returns.
  quiesced_ = false;
  if (parked_) {
    UpdateReadiness();
    return Fail(EBUSY);
  }
  if (handled > 0) {
    UpdateReadiness();
    return handled;
  }
  if (peer_gone_) {
    Disconnect();
    return Fail(ENOTCONN);
  }
  UpdateReadiness();
  return Fail(EAGAIN);
}

int PollDriver::QuiesceDone(int quiesce_errno) {
  if (!parked_) return Fail(EINVAL);
  InboundMessage message = std::move(*parked_);
  parked_.reset();
  if (quiesce_errno != 0) {
    // libvfio-user sends nothing here and the client waits forever.
    OutboundMessage reply;
    reply.bytes = wire::ErrorReply(message.header, quiesce_errno);
    if (!message.header.no_reply()) writer_.Enqueue(std::move(reply));
  } else {
    quiesced_ = true;
    Execute(std::move(message));
    ProcessInbound();
  }
  if (!peer_gone_) FlushWriter();
  quiesced_ = false;
  UpdateReadiness();
  return 0;
}

bool PollDriver::NeedsQuiesce(const InboundMessage& message) const {
  if (ctx_.quiesce == nullptr || quiesced_ || message.oversized) return false;
  switch (static_cast<wire::Command>(message.header.command)) {
    case wire::Command::kDmaMap:
    case wire::Command::kDmaUnmap:
    case wire::Command::kDeviceReset:
      return session_->negotiated();
    case wire::Command::kDeviceFeature: {
      // A SET (migration state, DMA logging start/stop) changes what the
      // device may do; GET and PROBE do not.
      absl::Span<const uint8_t> payload = message.payload();
      if (payload.size() < 8) return false;
      uint32_t flags;
      std::memcpy(&flags, payload.data() + 4, sizeof(flags));
      return session_->negotiated() && (flags & wire::kDeviceFeatureSet) != 0;
    }
    default:
      return false;
  }
}

int PollDriver::ProcessInbound() {
  int handled = 0;
  while (InboundPending() && !parked_ && session_ != nullptr) {
    // Moved out first: a callback's DMA wait may append to inbound_.
    InboundMessage message = std::move(inbound_[inbound_head_++]);
    inbound_bytes_ -= message.bytes.size();
    if (!message.header.is_command()) {
      VFU_LOG_RATE_LIMITED(kWarning, ctx_.path, ": dropped a reply (msg_id ", message.header.msg_id,
                           ") that no request of ours waits for");
      continue;
    }
    if (NeedsQuiesce(message)) {
      errno = 0;
      if (ctx_.quiesce(&ctx_) == 0) {
        quiesced_ = true;
      } else if (errno == EBUSY) {
        parked_ = std::move(message);
        break;
      } else {
        const int error = errno != 0 ? errno : EIO;
        if (!message.header.no_reply()) {
          OutboundMessage reply;
          reply.bytes = wire::ErrorReply(message.header, error);
          writer_.Enqueue(std::move(reply));
        }
        ++handled;
        continue;
      }
    }
    Execute(std::move(message));
    ++handled;
  }
  if (!InboundPending()) {
    inbound_.clear();
    inbound_head_ = 0;
    inbound_bytes_ = 0;
  }
  return handled;
}

void PollDriver::Execute(InboundMessage message) {
  Session::Result result = session_->Handle(std::move(message));
  if (result.negotiated) {
    reader_->assembler().set_max_message_size(result.negotiated->limits.max_incoming_message_size);
    dma_config_.max_transfer = result.negotiated->limits.max_data_xfer_to_client;
    session_->Attach();
  }
  if (result.reply) writer_.Enqueue(std::move(*result.reply));
  if (result.close_connection) close_after_flush_ = true;
}

void PollDriver::ReadInbound() {
  const size_t before = inbound_.size();
  absl::Status status = reader_->ReadAvailable(client_fd_.get(), PosixSyscalls::Instance(), inbound_);
  for (size_t i = before; i < inbound_.size(); ++i) inbound_bytes_ += inbound_[i].bytes.size();
  if (!status.ok()) {
    if (!absl::IsUnavailable(status)) {
      VFU_LOG_RATE_LIMITED(kWarning, ctx_.path, ": closing the connection: ", status.message());
    }
    peer_gone_ = true;
  }
}

void PollDriver::FlushWriter() {
  absl::Status status = writer_.Flush(client_fd_.get(), PosixSyscalls::Instance());
  if (!status.ok()) {
    peer_gone_ = true;
    writer_.Clear();
    return;
  }
  if (close_after_flush_ && writer_.empty()) peer_gone_ = true;
}

void PollDriver::UpdateReadiness() {
  // Work for the next vfu_run_ctx(): kept-back commands, or a departure
  // decided here (the client broke the stream, its negotiation failed and
  // the error reply is out, it sent too much during a DMA wait), which the
  // client's socket may never show. A parked command holds both.
  const bool pending = (InboundPending() || peer_gone_) && !parked_;
  if (pending != wake_signalled_) {
    uint64_t value = 1;
    if (pending) {
      (void)!write(wake_fd_.get(), &value, sizeof(value));
    } else {
      (void)!read(wake_fd_.get(), &value, sizeof(value));
    }
    wake_signalled_ = pending;
  }
  if (!client_fd_) return;
  const uint32_t interest =
      (writer_.queued_bytes() < kMaxQueuedReplyBytes ? uint32_t{EPOLLIN} : 0u) |
      (writer_.empty() ? 0u : uint32_t{EPOLLOUT});
  if (interest != interest_) {
    epoll_event event = {};
    event.events = interest;
    event.data.fd = client_fd_.get();
    if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, client_fd_.get(), &event) == 0) {
      interest_ = interest;
    }
  }
}

bool PollDriver::WaitSocket(short events, absl::Time deadline) {
  for (;;) {
    int timeout_ms = -1;
    if (deadline != absl::InfiniteFuture()) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return false;
      timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
    }
    pollfd waiter = {.fd = client_fd_.get(), .events = events, .revents = 0};
    const int n = poll(&waiter, 1, timeout_ms);
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return true;  // let the caller's IO see it
  }
}

void PollDriver::Disconnect() {
  if (ctx_.reset != nullptr) ctx_.reset(&ctx_, VFU_RESET_LOST_CONN);
  device_->UnregisterAll();
  session_->Detach();
  session_.reset();
  reader_.reset();
  writer_.Clear();
  inbound_.clear();
  inbound_head_ = 0;
  inbound_bytes_ = 0;
  parked_.reset();
  quiesced_ = false;
  peer_gone_ = false;
  close_after_flush_ = false;
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, client_fd_.get(), nullptr);
  client_fd_.reset();
  UpdateReadiness();
}

// ------------------------------------------------------------------ DMA

absl::Status PollDriver::DmaRead(uint64_t iova, absl::Span<uint8_t> out) {
  if (!attached()) return absl::UnavailableError("no client attached");
  return memory_.Read(iova, out);
}

absl::Status PollDriver::DmaWrite(uint64_t iova, absl::Span<const uint8_t> data) {
  if (!attached()) return absl::UnavailableError("no client attached");
  return memory_.Write(iova, data);
}

absl::Status PollDriver::Read(uint64_t iova, absl::Span<uint8_t> out) {
  return DmaReadViaMessages(*this, dma_config_, iova, out);
}

absl::Status PollDriver::Write(uint64_t iova, absl::Span<const uint8_t> data) {
  return DmaWriteViaMessages(*this, dma_config_, iova, data);
}

absl::StatusOr<DmaSgList> PollDriver::DmaPin(uint64_t iova, uint64_t length,
                                             DmaDirection direction) {
  return dma_.Translate(iova, length, direction);
}

absl::StatusOr<InboundMessage> PollDriver::Call(std::vector<uint8_t> command, absl::Time deadline,
                                                std::shared_ptr<ReplySink> sink) {
  (void)sink;  // Replies are received into their own buffer.
  if (!attached() || peer_gone_) return absl::UnavailableError("the client is gone");
  if (command.size() < wire::kHeaderSize) return absl::InternalError("command without header");
  const uint16_t id = next_request_id_++;
  std::memcpy(command.data(), &id, sizeof(id));  // msg_id leads the header
  OutboundMessage message;
  message.bytes = std::move(command);
  writer_.Enqueue(std::move(message));
  while (!writer_.empty()) {
    FlushWriter();
    if (peer_gone_) return absl::UnavailableError("the client is gone");
    if (!writer_.empty() && !WaitSocket(POLLOUT, deadline)) {
      return absl::DeadlineExceededError("the client does not read our DMA request");
    }
  }
  for (;;) {
    scratch_.clear();
    absl::Status status =
        reader_->ReadAvailable(client_fd_.get(), PosixSyscalls::Instance(), scratch_);
    std::optional<InboundMessage> reply;
    for (InboundMessage& received : scratch_) {
      if (!reply && received.header.is_reply() && received.header.msg_id == id) {
        reply = std::move(received);
      } else {
        // Commands are kept for vfu_run_ctx(); stray replies are dropped
        // there.
        inbound_bytes_ += received.bytes.size();
        inbound_.push_back(std::move(received));
      }
    }
    scratch_.clear();
    if (!status.ok()) peer_gone_ = true;
    if (inbound_bytes_ > kMaxKeptBackBytes && !reply) {
      VFU_LOG_RATE_LIMITED(kWarning, ctx_.path, ": the client sent ", inbound_bytes_,
                           " bytes of commands instead of DMA replies; disconnecting");
      peer_gone_ = true;
    }
    if (reply) {
      UpdateReadiness();
      return std::move(*reply);
    }
    if (peer_gone_) {
      UpdateReadiness();
      return absl::UnavailableError("the client left while we waited for its DMA reply");
    }
    if (!WaitSocket(POLLIN, deadline)) {
      UpdateReadiness();
      return absl::DeadlineExceededError("no DMA reply from the client");
    }
  }
}

}  // namespace vfu::capi
