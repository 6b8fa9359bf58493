// Connection: one attached client, as the threaded runtime drives it.
//
// Three kinds of threads touch a connection:
//   * the IO thread (methods suffixed OnIoThread, and the Reactor handlers)
//     owns the sockets: it reads and reassembles messages, routes the
//     client's commands to the connection's strand, hands replies to our
//     own commands to the waiting caller, and writes everything queued;
//   * the strand (one worker at a time, in arrival order) runs each command
//     through the protocol engine (Session) and queues its reply;
//   * any thread may call Call() (the ClientChannel used for DMA) and wait
//     for the client's reply while the IO thread keeps serving.
//
// Everything headed to the client goes through one lock-free queue to the
// IO thread; replies queued by the strand keep their order (one producer
// token for the strand). The IO thread is woken through the reactor only
// when that queue goes from empty to non-empty.
//
// While a client's command runs on the strand, the IO thread polls for its
// reply instead of sleeping (RuntimeOptions::reply_busy_poll), so the reply
// usually needs no wake-up at all.
//
// Back-pressure and bounds (see RuntimeOptions): commands queued for the
// strand are bounded in count and bytes (the IO thread stops reading past
// either, except while a DMA reply is awaited on the main socket, when a
// second byte bound closes an abusive client); queued replies are bounded
// in bytes and fds (the strand pauses past either). The reader bounds the
// fds held for one incoming message (MessageAssembler).
//
// The write-stall clock measures a lack of progress: it restarts whenever
// bytes reach the client. A request of ours (Call) whose caller has stopped
// waiting is not sent.
//
// Closing loses nothing the client sent: every command received before the
// end of the stream (EOF, a hang-up, a read or write error, a corrupt frame)
// still runs on the strand, in order, before the device is detached; only
// their replies are dropped. Data still in the socket when the peer hung up
// is read first (the kernel bounds it: the peer can send no more).
//
// A command that waits for the device to quiesce (Session::Result::
// device_wait) holds no thread: the strand holds itself (no later command
// of this client starts) until the device answers, then the command
// finishes first and its reply leaves in order. After a disconnect the
// strand no longer holds; the next task waits for the device's answer at
// most RuntimeOptions::quiesce_wait_after_disconnect, then gives up on the
// command (Session::Abandon).
//
// The device's DMA handle (AttachmentContext) belongs to this connection:
// the strand's last task revokes it (waiting for calls in progress), then
// detaches the session, which unmaps the client's memory.
//
// Lifetime: owned by shared_ptr (DMA callers hold a reference while they
// wait). Close() runs on the IO thread; when the strand has finished its
// last task the `on_finished` callback runs on the IO thread, after which
// the owner drops its reference.
#ifndef VFU_SERVER_CONNECTION_H_
#define VFU_SERVER_CONNECTION_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <concurrentqueue/concurrentqueue.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "vfu/base/unique_fd.h"
#include "vfu/device/device.h"
#include "vfu/dispatch/pending_replies.h"
#include "vfu/dispatch/serial_queue.h"
#include "vfu/dispatch/worker_pool.h"
#include "vfu/engine/client_channel.h"
#include "vfu/engine/message_dma.h"
#include "vfu/engine/session.h"
#include "vfu/reactor/reactor.h"
#include "vfu/server/attachment_context.h"
#include "vfu/server/connection_observer.h"
#include "vfu/server/runtime_options.h"
#include "vfu/transport/message_reader.h"
#include "vfu/transport/message_writer.h"
#include "vfu/wire/negotiation.h"

namespace vfu {

class Connection : public ClientChannel,
                   public std::enable_shared_from_this<Connection>,
                   private Reactor::Poller {
 public:
  struct Environment {
    Reactor* reactor;
    WorkerPool* pool;
    Device* device;
    // The device's DMA mappings, which this client fills.
    DmaMapTable* dma;
    SessionOptions session;
    RuntimeOptions runtime;
    // Log prefix, e.g. the socket path.
    std::string name;
    // Runs on the IO thread once the connection is closed and idle.
    std::function<void(Connection*)> on_finished;
    // Statistics and events (ConnectionObserver).
    ConnectionReporting reporting;
  };

  Connection(UniqueFd socket, Environment env);
  ~Connection() override;

  // Registers the socket with the reactor. IO thread.
  absl::Status StartOnIoThread();
  // Disconnects: closes the sockets, fails pending DMA, lets the strand
  // run the commands already received (their replies are dropped), revokes
  // the device's DMA handle, detaches the device, then calls on_finished.
  // Idempotent. IO thread.
  void CloseOnIoThread(std::string_view why);

  // Runs `task` on the strand after the commands received so far. IO
  // thread, before the connection is closed.
  void PostToStrandOnIoThread(std::function<void()> task) { strand_.Post(std::move(task)); }

  // ClientChannel: sends a command to the client and waits for its reply.
  // Any thread.
  absl::StatusOr<InboundMessage> Call(std::vector<uint8_t> command, absl::Time deadline,
                                      std::shared_ptr<ReplySink> sink) override;

  // DMA parameters negotiated with this client. Any thread.
  MessageDmaConfig dma_config() const ABSL_LOCKS_EXCLUDED(dma_mu_);

  // Waits until the strand has no task running. IO thread, after
  // on_finished has been called.
  void WaitIdle() { strand_.WaitIdle(); }

  bool closed() const { return closed_.load(std::memory_order_acquire); }
  const std::string& name() const { return env_.name; }
  const ConnectionObserver& observer() const { return observer_; }

 private:
  // Something for the IO thread: a message to send, or a change of state
  // that must take effect in order with the messages around it.
  struct Outgoing {
    enum class Kind { kMessage, kApplyNegotiation, kCloseAfterFlush, kFinished };
    Kind kind = Kind::kMessage;
    OutboundMessage message;
    bool to_twin = false;
    // A request of ours (Call): its PendingReplies registration. Not sent
    // once the caller has stopped waiting (ticket 0: not a request).
    uint16_t request_id = 0;
    uint64_t request_ticket = 0;
    wire::ConnectionLimits limits;
    UniqueFd twin_socket;
  };

  // Reactor handler for one of the connection's fds.
  class FdHandler : public Reactor::Handler {
   public:
    FdHandler(Connection* owner, void (Connection::*on_ready)(uint32_t))
        : owner_(owner), on_ready_(on_ready) {}
    void OnReady(uint32_t events) override { (owner_->*on_ready_)(events); }

   private:
    Connection* owner_;
    void (Connection::*on_ready_)(uint32_t);
  };

  // IO thread.
  void OnSocketReady(uint32_t events);
  void OnTwinReady(uint32_t events);
  // Reads, routes and writes for the main socket or the twin socket.
  void OnChannelReady(uint32_t events, bool twin);
  void OnStallTimer(uint32_t events);
  void RouteInboundOnIoThread(std::vector<InboundMessage>& messages, bool from_twin);
  void DrainOutgoingOnIoThread();
  void WriteOnIoThread();
  void UpdateInterestOnIoThread();
  // Closes after routing what the peer sent before it went away (a
  // hang-up or a failed write): the rest of its stream, up to EOF.
  void CloseAfterReadingOnIoThread(std::string_view why);
  // Arms (restarting the clock if it runs) or disarms the stall timer.
  void ArmStallTimerOnIoThread(bool armed);
  // Makes the reactor poll for the reply of a command about to go to the
  // strand (RuntimeOptions::reply_busy_poll).
  void ArmReplyPollingOnIoThread();
  // Reactor::Poller: keep the loop polling while a reply is due.
  bool KeepPolling() override;

  // Inbound byte bounds in force (RuntimeOptions::max_queued_bytes and
  // max_queued_bytes_awaiting_reply, resolved for `max_message_size`).
  void SetQueuedBytesLimitsOnIoThread(size_t max_message_size);

  // Strand. `queued_charge`: what the command added to queued_bytes_.
  void RunCommand(InboundMessage message, size_t queued_charge);
  // Queues what a command produced and counts it done.
  void FinishCommand(Session::Result result, size_t queued_charge,
                     const ConnectionObserver::CommandStart& start);
  // Parks the command that waits for `wait` until the device answers.
  void AwaitDevice(std::shared_ptr<DeviceWait> wait, size_t queued_charge,
                   const ConnectionObserver::CommandStart& start);
  // Finishes the parked command, if any (waiting for the device, bounded,
  // only once the client is gone).
  void FinishWaitingCommand();
  // The device answered the parked command's quiesce. Any thread.
  void OnDeviceAnswered() ABSL_LOCKS_EXCLUDED(hold_mu_);

  // Why the strand is held: no task starts while any reason is set.
  static constexpr uint32_t kHoldBackPressure = 1;  // IO thread: replies pile up
  static constexpr uint32_t kHoldDevice = 2;        // a command waits for the device
  // Any thread; ignored once closed (the close resumes the strand for good).
  void HoldStrand(uint32_t reason) ABSL_LOCKS_EXCLUDED(hold_mu_);
  void ReleaseStrand(uint32_t reason) ABSL_LOCKS_EXCLUDED(hold_mu_);

  // Any thread.
  void Push(Outgoing item);
  void KickIoThread();

  Environment env_;
  ConnectionObserver observer_;
  // IO thread only.
  UniqueFd socket_;
  UniqueFd twin_socket_;
  UniqueFd stall_timer_;
  MessageReader reader_;
  MessageReader twin_reader_;
  MessageWriter writer_;
  MessageWriter twin_writer_;
  FdHandler socket_handler_;
  FdHandler twin_handler_;
  FdHandler timer_handler_;
  uint32_t socket_events_ = 0;
  uint32_t twin_events_ = 0;
  bool close_after_flush_ = false;
  bool strand_paused_ = false;
  bool stall_timer_armed_ = false;
  // Registered as the reactor's poller, until reply_poll_until_.
  bool reply_polling_ = false;
  absl::Time reply_poll_until_;
  std::vector<InboundMessage> inbound_scratch_;

  // The device's handle on this client's memory; revoked by the strand's
  // last task. Before session_, which hands it to the device.
  std::shared_ptr<AttachmentContext> context_;
  // Strand only.
  Session session_;

  std::atomic<bool> closed_{false};
  std::atomic<bool> twin_active_{false};
  std::atomic<size_t> queued_commands_{0};
  // Bytes held by those commands, and the mark past which reading stops
  // (read by the strand to decide whether to wake the IO thread).
  std::atomic<size_t> queued_bytes_{0};
  std::atomic<size_t> max_queued_bytes_{0};
  // IO thread only: past this, while a reply is awaited, the client is
  // disconnected.
  size_t max_queued_bytes_awaiting_reply_ = 0;
  // fds in replies the strand queued and the writers have not sent yet (each
  // open in this process). The strand pauses itself once past
  // outbound_fds_high_water and sets the flag; the IO thread takes the pause
  // over (strand_paused_) and resumes it.
  std::atomic<size_t> reply_fds_held_{0};
  std::atomic<bool> strand_paused_for_fds_{false};
  std::atomic<bool> kick_pending_{false};
  // Set by the IO thread while it does not read the socket (back-pressure).
  std::atomic<bool> reading_paused_{false};

  moodycamel::ConcurrentQueue<Outgoing> outgoing_;
  // Used only by strand tasks (never two at once), so the strand's replies
  // leave in the order the commands ran.
  moodycamel::ProducerToken strand_producer_;
  moodycamel::ConsumerToken io_consumer_;

  PendingReplies pending_;
  SerialQueue strand_;

  // Serializes the strand's Pause/Resume among its reasons, and a device's
  // late answer against the strand's last task.
  absl::Mutex hold_mu_;
  uint32_t holds_ ABSL_GUARDED_BY(hold_mu_) = 0;
  // Set by the strand's last task: nothing may be posted to it any more.
  bool strand_finished_ ABSL_GUARDED_BY(hold_mu_) = false;
  // Strand only: the command waiting for the device, and its charge.
  std::shared_ptr<DeviceWait> device_wait_;
  size_t device_wait_charge_ = 0;
  ConnectionObserver::CommandStart device_wait_start_;

  mutable absl::Mutex dma_mu_;
  MessageDmaConfig dma_config_ ABSL_GUARDED_BY(dma_mu_);
};

}  // namespace vfu

#endif  // VFU_SERVER_CONNECTION_H_
