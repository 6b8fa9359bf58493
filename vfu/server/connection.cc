#include "vfu/server/connection.h"

#include <sys/epoll.h>
#include <sys/timerfd.h>

#include <cerrno>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "vfu/base/check.h"
#include "vfu/base/log.h"
#include "vfu/base/status_macros.h"
#include "vfu/base/syscalls.h"
#include "vfu/transport/send_buffer.h"
#include "vfu/wire/constants.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/header.h"

namespace vfu {
namespace {

// Before negotiation only VERSION may arrive; this bounds what a client can
// make us buffer before it has told us anything.
constexpr size_t kPreNegotiationMaxMessage = 64 * 1024 + 64;

}  // namespace

Connection::Connection(UniqueFd socket, Environment env)
    : env_(std::move(env)),
      observer_(std::move(env_.reporting)),
      socket_(std::move(socket)),
      reader_(kPreNegotiationMaxMessage, env_.session.version.max_msg_fds),
      twin_reader_(kPreNegotiationMaxMessage, env_.session.version.max_msg_fds),
      socket_handler_(this, &Connection::OnSocketReady),
      twin_handler_(this, &Connection::OnTwinReady),
      timer_handler_(this, &Connection::OnStallTimer),
      context_(std::make_shared<AttachmentContext>(*env_.dma, *this)),
      session_(*env_.device, context_, *env_.dma, env_.session, env_.name),
      strand_producer_(outgoing_),
      io_consumer_(outgoing_),
      strand_(*env_.pool) {
  dma_config_.layout = env_.runtime.dma_layout;
  dma_config_.timeout = env_.runtime.dma_timeout;
  SetQueuedBytesLimitsOnIoThread(kPreNegotiationMaxMessage);
  // A large reply to one of our requests goes straight into its waiter's
  // memory when the waiter registered it (DMA_READ data).
  auto sink_lookup = [this](const wire::Header& h) -> std::shared_ptr<ReplySink> {
    if (!h.is_reply() || h.is_error()) return nullptr;
    return pending_.SinkFor(h.msg_id);
  };
  reader_.assembler().set_reply_sink_lookup(sink_lookup);
  twin_reader_.assembler().set_reply_sink_lookup(sink_lookup);
}

Connection::~Connection() {
  VFU_CHECK(closed_.load(), "connection destroyed while open");
  VFU_CHECK(context_->revoked(), "connection destroyed before its DMA handle was revoked");
}

absl::Status Connection::StartOnIoThread() {
  stall_timer_ = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!stall_timer_) return absl::ErrnoToStatus(errno, "timerfd_create");
  VFU_RETURN_IF_ERROR(env_.reactor->Watch(stall_timer_.get(), EPOLLIN, &timer_handler_));
  socket_events_ = EPOLLIN;
  return env_.reactor->Watch(socket_.get(), socket_events_, &socket_handler_);
}

void Connection::CloseOnIoThread(std::string_view why) {
  if (closed_.exchange(true, std::memory_order_acq_rel)) return;
  VFU_LOG_RATE_LIMITED(kInfo, env_.name, ": client disconnected: ", why);
  observer_.OnClosing(why);
  if (reply_polling_) {
    reply_polling_ = false;
    env_.reactor->RemovePoller(this);
  }
  for (UniqueFd* fd : {&socket_, &twin_socket_, &stall_timer_}) {
    if (*fd) {
      env_.reactor->Unwatch(fd->get());
      fd->reset();
    }
  }
  writer_.Clear();
  twin_writer_.Clear();
  pending_.FailAll(absl::UnavailableError(absl::StrCat("client disconnected: ", why)));
  // Commands already received still run (their replies go nowhere); the
  // last task revokes the device's DMA handle, detaches the device and
  // tells the IO thread the strand is done. Resumed unconditionally: the
  // strand may have paused itself (fds in unsent replies, or a command
  // waiting for the device).
  strand_paused_ = false;
  {
    absl::MutexLock lock(&hold_mu_);
    holds_ = 0;
    strand_.Resume();
  }
  strand_.Post([this] {
    FinishWaitingCommand();
    context_->Revoke();
    session_.Detach();
    {
      absl::MutexLock lock(&hold_mu_);
      strand_finished_ = true;
    }
    observer_.OnDetached();
    Outgoing done;
    done.kind = Outgoing::Kind::kFinished;
    outgoing_.enqueue(strand_producer_, std::move(done));
    KickIoThread();
  });
}

// ---------------------------------------------------------------- IO thread

void Connection::OnSocketReady(uint32_t events) { OnChannelReady(events, /*twin=*/false); }

void Connection::OnTwinReady(uint32_t events) { OnChannelReady(events, /*twin=*/true); }

void Connection::OnChannelReady(uint32_t events, bool twin) {
  const char* which = twin ? "twin socket" : "socket";
  if (events & EPOLLIN) {
    inbound_scratch_.clear();
    absl::Status status = (twin ? twin_reader_ : reader_)
                              .ReadAvailable((twin ? twin_socket_ : socket_).get(),
                                             PosixSyscalls::Instance(), inbound_scratch_);
    RouteInboundOnIoThread(inbound_scratch_, twin);
    if (!status.ok()) {
      if (status.code() == absl::StatusCode::kDataLoss) {
        VFU_LOG_RATE_LIMITED(kError, env_.name, ": closing corrupt stream on the ", which, ": ",
                             status.message());
      }
      CloseOnIoThread(absl::StrCat(which, ": ", status.message()));
      return;
    }
  } else if (events & (EPOLLHUP | EPOLLERR)) {
    // Reading was paused (back-pressure) when the peer went away.
    CloseAfterReadingOnIoThread(absl::StrCat(which, " hang-up"));
    return;
  }
  if (events & EPOLLOUT) WriteOnIoThread();
  if (!closed()) UpdateInterestOnIoThread();
}

void Connection::CloseAfterReadingOnIoThread(std::string_view why) {
  // A peer that hung up can send no more: the loop ends at EOF, after at
  // most a socket buffer. The cap is for a peer that only shut down its
  // reading side and keeps sending.
  constexpr int kMaxReads = 16;  // of MessageReader::kReadBudget each
  for (bool twin : {false, true}) {
    const UniqueFd& fd = twin ? twin_socket_ : socket_;
    absl::Status status;
    for (int reads = 0; fd && status.ok() && reads < kMaxReads; ++reads) {
      inbound_scratch_.clear();
      status = (twin ? twin_reader_ : reader_)
                   .ReadAvailable(fd.get(), PosixSyscalls::Instance(), inbound_scratch_);
      RouteInboundOnIoThread(inbound_scratch_, twin);
    }
  }
  CloseOnIoThread(why);
}

void Connection::OnStallTimer(uint32_t) {
  uint64_t expirations;
  while (::read(stall_timer_.get(), &expirations, sizeof expirations) > 0) {
  }
  if (strand_paused_) {
    VFU_LOG(kWarning, env_.name, ": client has not read its replies for ",
            absl::FormatDuration(env_.runtime.max_write_stall), " (",
            writer_.queued_bytes(), " bytes queued)");
    CloseOnIoThread("client stopped reading");
  }
}

void Connection::RouteInboundOnIoThread(std::vector<InboundMessage>& messages, bool from_twin) {
  bool polling_armed = false;
  for (InboundMessage& m : messages) {
    if (closed()) return;
    const wire::Header& h = m.header;
    if (!h.is_command() && !h.is_reply()) {
      // Row 7: the body was read with the message, so the stream is still
      // framed; drop it without a reply.
      VFU_LOG_RATE_LIMITED(kWarning, env_.name, ": dropping message of unknown type ", h.type(),
                           " (id ", h.msg_id, ")");
      continue;
    }
    if (h.is_reply()) {
      uint16_t id = h.msg_id;
      if (!pending_.Complete(id, PendingReplies::Reply{.bytes = std::move(m.bytes),
                                                       .fds = std::move(m.fds),
                                                       .sunk_bytes = m.sunk_bytes})) {
        VFU_LOG_RATE_LIMITED(kWarning, env_.name, ": dropping reply with unknown id ", id, " (",
                             wire::CommandName(h.command), ")");
      }
      continue;
    }
    if (from_twin) {
      VFU_LOG_RATE_LIMITED(kWarning, env_.name, ": dropping ", wire::CommandName(h.command),
                           " sent on the twin socket (client commands belong on the main socket)");
      continue;
    }
    if (!polling_armed && !h.no_reply()) {
      // Before the hand-off: the reply may be posted before this returns.
      // (A posted write that succeeds sends nothing back: no poll for it.)
      ArmReplyPollingOnIoThread();
      polling_armed = true;
    }
    queued_commands_.fetch_add(1, std::memory_order_relaxed);
    const size_t charge = m.bytes.capacity() + sizeof(InboundMessage);
    queued_bytes_.fetch_add(charge, std::memory_order_relaxed);
    strand_.Post([this, charge, message = std::move(m)]() mutable {
      RunCommand(std::move(message), charge);
    });
  }
}

void Connection::ArmReplyPollingOnIoThread() {
  if (env_.runtime.reply_busy_poll <= absl::ZeroDuration()) return;
  reply_poll_until_ = absl::Now() + env_.runtime.reply_busy_poll;
  if (!reply_polling_) {
    reply_polling_ = true;
    env_.reactor->AddPoller(this);
  }
}

bool Connection::KeepPolling() {
  // A reply is due while a command is queued or running, and after the
  // last one ran until its reply is drained (the strand queues the reply
  // before it counts the command done, then kicks us). A command that
  // outlasts the window (a device waiting for DMA, say) gets its wake-up
  // after all.
  const bool reply_due = queued_commands_.load(std::memory_order_seq_cst) > 0 ||
                         outgoing_.size_approx() > 0;
  if (reply_due && !closed() && absl::Now() < reply_poll_until_) return true;
  reply_polling_ = false;
  return false;
}

void Connection::DrainOutgoingOnIoThread() {
  // Clear the flag before draining: a producer that enqueues after this
  // point sees it clear and wakes us again, so nothing is left behind.
  kick_pending_.exchange(false, std::memory_order_seq_cst);
  Outgoing batch[32];
  size_t n;
  bool finished = false;
  while ((n = outgoing_.try_dequeue_bulk(io_consumer_, batch, std::size(batch))) > 0) {
    for (size_t i = 0; i < n; ++i) {
      Outgoing& item = batch[i];
      switch (item.kind) {
        case Outgoing::Kind::kMessage:
          if (closed()) break;
          if (item.request_ticket != 0) {
            // A request of ours whose caller timed out or was failed must
            // not reach the client (a late DMA_WRITE, say). Replies queued
            // ahead may hold it back, so the writer asks just before its
            // first byte leaves.
            item.message.still_wanted = [this, id = item.request_id, ticket = item.request_ticket] {
              return pending_.Waiting(id, ticket);
            };
          }
          (item.to_twin ? twin_writer_ : writer_).Enqueue(std::move(item.message));
          break;
        case Outgoing::Kind::kApplyNegotiation:
          if (closed()) break;
          reader_.assembler().set_max_message_size(item.limits.max_incoming_message_size);
          SetQueuedBytesLimitsOnIoThread(item.limits.max_incoming_message_size);
          twin_reader_.assembler().set_max_message_size(item.limits.max_incoming_message_size);
          // Our largest messages are DMA_WRITEs of the client's limit.
          RaiseSendBuffer(socket_.get(),
                          wire::MaxMessageSizeFor(item.limits.max_data_xfer_to_client));
          if (item.twin_socket) {
            twin_socket_ = std::move(item.twin_socket);
            RaiseSendBuffer(twin_socket_.get(),
                            wire::MaxMessageSizeFor(item.limits.max_data_xfer_to_client));
            twin_events_ = EPOLLIN;
            absl::Status s = env_.reactor->Watch(twin_socket_.get(), twin_events_, &twin_handler_);
            if (!s.ok()) VFU_LOG(kError, env_.name, ": cannot watch twin socket: ", s.message());
          }
          break;
        case Outgoing::Kind::kCloseAfterFlush:
          close_after_flush_ = true;
          break;
        case Outgoing::Kind::kFinished:
          finished = true;
          break;
      }
      item = Outgoing();
    }
  }
  if (finished) {
    // The strand's last task queued kFinished; the owner may now release us.
    env_.on_finished(this);
    return;
  }
  if (closed()) return;
  WriteOnIoThread();
  if (!closed()) UpdateInterestOnIoThread();
}

void Connection::WriteOnIoThread() {
  const size_t queued_before = writer_.queued_bytes() + twin_writer_.queued_bytes();
  const size_t fds_before = writer_.queued_fds() + twin_writer_.queued_fds();
  absl::Status status = writer_.Flush(socket_.get(), PosixSyscalls::Instance());
  if (status.ok() && twin_socket_) {
    status = twin_writer_.Flush(twin_socket_.get(), PosixSyscalls::Instance());
  }
  reply_fds_held_.fetch_sub(fds_before - (writer_.queued_fds() + twin_writer_.queued_fds()),
                            std::memory_order_relaxed);
  if (!status.ok()) {
    // The peer is gone (or the socket broke); what it sent before still runs.
    CloseAfterReadingOnIoThread(status.message());
    return;
  }
  if (close_after_flush_ && writer_.empty()) {
    CloseOnIoThread("closed by the server after a failed negotiation");
    return;
  }
  // Back-pressure: stop running this client's commands while its replies
  // (bytes, or fds open in this process) pile up, and start the stall clock.
  const size_t queued = writer_.queued_bytes() + twin_writer_.queued_bytes();
  const size_t queued_fds = reply_fds_held_.load(std::memory_order_relaxed);
  if (strand_paused_for_fds_.exchange(false, std::memory_order_acquire) && !strand_paused_) {
    // The strand paused itself (RunCommand): ours to resume now.
    strand_paused_ = true;
    observer_.OnRepliesBackedUp();
    ArmStallTimerOnIoThread(true);
  }
  if (!strand_paused_ && (queued > env_.runtime.outbound_high_water ||
                          queued_fds > env_.runtime.outbound_fds_high_water)) {
    strand_paused_ = true;
    observer_.OnRepliesBackedUp();
    HoldStrand(kHoldBackPressure);
    ArmStallTimerOnIoThread(true);
  } else if (strand_paused_ && queued <= env_.runtime.outbound_low_water &&
             queued_fds <= env_.runtime.outbound_fds_low_water) {
    strand_paused_ = false;
    ReleaseStrand(kHoldBackPressure);
    ArmStallTimerOnIoThread(false);
  } else if (strand_paused_ && queued < queued_before) {
    // A slow client that reads is not stalled: the clock measures time
    // without progress.
    ArmStallTimerOnIoThread(true);
  }
}

void Connection::SetQueuedBytesLimitsOnIoThread(size_t max_message_size) {
  const RuntimeOptions& o = env_.runtime;
  const size_t limit = o.max_queued_bytes != 0
                           ? o.max_queued_bytes
                           : RuntimeOptions::kQueuedBytesPerMessage * max_message_size;
  max_queued_bytes_.store(limit, std::memory_order_relaxed);
  max_queued_bytes_awaiting_reply_ = o.max_queued_bytes_awaiting_reply != 0
                                         ? o.max_queued_bytes_awaiting_reply
                                         : RuntimeOptions::kAwaitingReplyFactor * limit;
}

void Connection::UpdateInterestOnIoThread() {
  // Stop reading a client whose commands pile up, unless one of our own
  // commands awaits its reply on this socket (it would never arrive); then
  // only a second, larger byte bound applies.
  const bool reply_expected_here = !twin_socket_ && pending_.in_flight() > 0;
  if (reply_expected_here &&
      queued_bytes_.load(std::memory_order_relaxed) > max_queued_bytes_awaiting_reply_) {
    VFU_LOG_RATE_LIMITED(kWarning, env_.name, ": ", queued_bytes_.load(std::memory_order_relaxed),
                         " bytes of commands queued while a DMA reply is awaited (limit ",
                         max_queued_bytes_awaiting_reply_, "): disconnecting the client");
    CloseOnIoThread("too many commands queued while a DMA reply was awaited");
    return;
  }
  auto below_limit = [this] {
    return queued_commands_.load(std::memory_order_seq_cst) < env_.runtime.max_queued_commands &&
           queued_bytes_.load(std::memory_order_seq_cst) <
               max_queued_bytes_.load(std::memory_order_relaxed);
  };
  bool read = reply_expected_here || below_limit();
  if (!read) {
    // Publish the pause before looking at the count again: a command that
    // finished before the store saw no pause and did not kick us, so its
    // decrement must be visible to the second look. (RunCommand decrements,
    // then reads the flag; both sides seq_cst.)
    const bool was_paused = reading_paused_.exchange(true, std::memory_order_seq_cst);
    read = below_limit();
    if (!read && !was_paused) observer_.OnCommandsBackedUp();
  }
  if (read) reading_paused_.store(false, std::memory_order_seq_cst);
  uint32_t events = (read ? uint32_t{EPOLLIN} : 0u) | (writer_.empty() ? 0u : uint32_t{EPOLLOUT});
  if (events != socket_events_) {
    socket_events_ = events;
    absl::Status s = env_.reactor->Modify(socket_.get(), events);
    if (!s.ok()) VFU_LOG(kError, env_.name, ": epoll modify: ", s.message());
  }
  if (twin_socket_) {
    uint32_t twin_events = uint32_t{EPOLLIN} | (twin_writer_.empty() ? 0u : uint32_t{EPOLLOUT});
    if (twin_events != twin_events_) {
      twin_events_ = twin_events;
      absl::Status s = env_.reactor->Modify(twin_socket_.get(), twin_events);
      if (!s.ok()) VFU_LOG(kError, env_.name, ": epoll modify (twin): ", s.message());
    }
  }
}

void Connection::ArmStallTimerOnIoThread(bool armed) {
  if ((!armed && !stall_timer_armed_) || !stall_timer_) return;
  stall_timer_armed_ = armed;
  struct itimerspec spec = {};
  if (armed) {
    absl::Duration d = env_.runtime.max_write_stall;
    spec.it_value = absl::ToTimespec(d);
    if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;
  }
  ::timerfd_settime(stall_timer_.get(), 0, &spec, nullptr);
}

// ------------------------------------------------------------------- strand

void Connection::RunCommand(InboundMessage message, size_t queued_charge) {
  // Runs even after the connection closed: the client sent it before it
  // went away (its reply is dropped by the IO thread). A command parked
  // before it finishes first, keeping the replies in order.
  FinishWaitingCommand();
  const ConnectionObserver::CommandStart start = observer_.BeforeCommand(message);
  Session::Result result = session_.Handle(std::move(message));
  if (result.device_wait) {
    AwaitDevice(std::move(result.device_wait), queued_charge, start);
    return;
  }
  FinishCommand(std::move(result), queued_charge, start);
}

void Connection::AwaitDevice(std::shared_ptr<DeviceWait> wait, size_t queued_charge,
                             const ConnectionObserver::CommandStart& start) {
  device_wait_ = wait;
  device_wait_charge_ = queued_charge;
  device_wait_start_ = start;
  // From inside this task: it is the last to run until the device answers.
  HoldStrand(kHoldDevice);
  wait->OnReady([weak = weak_from_this()] {
    if (std::shared_ptr<Connection> self = weak.lock()) self->OnDeviceAnswered();
  });
}

void Connection::OnDeviceAnswered() {
  absl::MutexLock lock(&hold_mu_);
  // After the last task the parked command was finished or given up on.
  if (strand_finished_) return;
  // Usually a later command's task finishes the parked one first; this
  // task does it when none is queued.
  strand_.Post([this] { FinishWaitingCommand(); });
  if ((holds_ & kHoldDevice) != 0) {
    holds_ &= ~kHoldDevice;
    if (holds_ == 0) strand_.Resume();
  }
}

void Connection::FinishWaitingCommand() {
  if (device_wait_ == nullptr) return;
  std::shared_ptr<DeviceWait> wait = std::move(device_wait_);
  device_wait_ = nullptr;
  // Not ready only once the client is gone (nothing holds the strand then).
  const bool answered =
      wait->ready() || wait->WaitFor(env_.runtime.quiesce_wait_after_disconnect);
  FinishCommand(answered ? session_.Continue() : session_.Abandon(), device_wait_charge_,
                device_wait_start_);
}

void Connection::HoldStrand(uint32_t reason) {
  absl::MutexLock lock(&hold_mu_);
  // A close resumed the strand for good: its remaining tasks must run.
  if (closed()) return;
  if (holds_ == 0) strand_.Pause();
  holds_ |= reason;
}

void Connection::ReleaseStrand(uint32_t reason) {
  absl::MutexLock lock(&hold_mu_);
  if ((holds_ & reason) == 0) return;
  holds_ &= ~reason;
  if (holds_ == 0) strand_.Resume();
}

void Connection::FinishCommand(Session::Result result, size_t queued_charge,
                               const ConnectionObserver::CommandStart& start) {
  // A parked command's latency includes the device's wait.
  observer_.AfterCommand(start, result);
  if (result.negotiated) {
    {
      absl::MutexLock lock(&dma_mu_);
      dma_config_.max_transfer = result.negotiated->limits.max_data_xfer_to_client;
    }
    Outgoing apply;
    apply.kind = Outgoing::Kind::kApplyNegotiation;
    apply.limits = result.negotiated->limits;
    apply.twin_socket = std::move(result.twin_socket);
    twin_active_.store(static_cast<bool>(apply.twin_socket), std::memory_order_release);
    outgoing_.enqueue(strand_producer_, std::move(apply));
    // Tell the device before the VERSION reply leaves, so a client that has
    // its reply knows the device is attached.
    session_.Attach();
  }
  if (result.reply) {
    Outgoing reply;
    reply.message = std::move(*result.reply);
    // Counted before the IO thread can send them (and count them out).
    const size_t fds = reply.message.fds.size();
    // After a close the reply is dropped unsent: nothing to hold back.
    const bool too_many_fds =
        !closed() && fds > 0 &&
        reply_fds_held_.fetch_add(fds, std::memory_order_relaxed) + fds >
            env_.runtime.outbound_fds_high_water;
    outgoing_.enqueue(strand_producer_, std::move(reply));
    if (too_many_fds) {
      // Run nothing more until the client reads; this reply's kick below
      // lets the IO thread take the pause over. (After a close the hold is
      // refused: the detach must run.)
      HoldStrand(kHoldBackPressure);
      strand_paused_for_fds_.store(true, std::memory_order_release);
    }
  }
  if (result.close_connection) {
    Outgoing close;
    close.kind = Outgoing::Kind::kCloseAfterFlush;
    outgoing_.enqueue(strand_producer_, std::move(close));
  }
  const size_t bytes_still_queued =
      queued_bytes_.fetch_sub(queued_charge, std::memory_order_seq_cst) - queued_charge;
  const size_t still_queued = queued_commands_.fetch_sub(1, std::memory_order_seq_cst) - 1;
  // A posted write that succeeded needs no IO-thread wake-up, unless the IO
  // thread stopped reading and may resume now (see UpdateInterestOnIoThread).
  const bool resume_reading =
      reading_paused_.load(std::memory_order_seq_cst) &&
      still_queued < env_.runtime.max_queued_commands &&
      bytes_still_queued < max_queued_bytes_.load(std::memory_order_relaxed);
  if (result.reply || result.negotiated || result.close_connection || resume_reading) {
    KickIoThread();
  }
}

// --------------------------------------------------------------- any thread

void Connection::KickIoThread() {
  if (kick_pending_.exchange(true, std::memory_order_seq_cst)) return;
  env_.reactor->Post([weak = weak_from_this()] {
    if (std::shared_ptr<Connection> self = weak.lock()) self->DrainOutgoingOnIoThread();
  });
}

void Connection::Push(Outgoing item) {
  if (strand_.IsCurrent()) {
    outgoing_.enqueue(strand_producer_, std::move(item));
  } else {
    outgoing_.enqueue(std::move(item));
  }
  KickIoThread();
}

absl::StatusOr<InboundMessage> Connection::Call(std::vector<uint8_t> command,
                                                absl::Time deadline,
                                                std::shared_ptr<ReplySink> sink) {
  if (closed()) return absl::UnavailableError("client disconnected");
  // However the wait ends, the IO thread writes no more into the sink's
  // memory once this returns.
  absl::Cleanup revoke = [&sink] {
    if (sink != nullptr) sink->Revoke();
  };
  PendingReplies::Slot slot;
  VFU_ASSIGN_OR_RETURN(uint16_t id, pending_.Register(&slot, sink));
  wire::Store<uint16_t>(absl::MakeSpan(command), 0, id);
  Outgoing item;
  item.message.bytes = std::move(command);
  item.to_twin = twin_active_.load(std::memory_order_acquire);
  item.request_id = id;
  item.request_ticket = slot.ticket();
  Push(std::move(item));
  VFU_ASSIGN_OR_RETURN(PendingReplies::Reply reply, pending_.Wait(&slot, deadline));
  InboundMessage message;
  message.header = wire::DecodeHeader(reply.bytes);
  message.bytes = std::move(reply.bytes);
  message.fds = std::move(reply.fds);
  message.sunk_bytes = reply.sunk_bytes;
  return message;
}

MessageDmaConfig Connection::dma_config() const {
  absl::MutexLock lock(&dma_mu_);
  return dma_config_;
}

}  // namespace vfu
