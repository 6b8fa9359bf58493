// Client: the VMM end of one vfio-user connection, for VMMs, tests,
// benchmarks and inspection tools.
//
//   VFU_ASSIGN_OR_RETURN(std::unique_ptr<Client> client,
//                        Client::Connect("/run/nvme0.sock", ClientOptions()));
//   VFU_ASSIGN_OR_RETURN(wire::DeviceInfo info, client->GetDeviceInfo());
//   VFU_RETURN_IF_ERROR(client->DmaMapMemory(0x100000, absl::MakeSpan(ram)));
//   VFU_RETURN_IF_ERROR(client->RegionWrite(/*index=*/0, /*offset=*/0x14, bytes));
//
// Layers, each built on the one below:
//   typed helpers   GetDeviceInfo(), GetRegionInfo(), RegionRead(), DmaMap(),
//                   ...: encode with the wire codec, check and decode replies,
//                   respect the server's negotiated limits.
//   Call()          one command, wait for its reply (Send + Await).
//   Send()/Await()  pipelining: many commands in flight, replies matched by
//                   message ID and collected in any order; SendNoReply() for
//                   posted commands. No payload checks: tests and tools use
//                   this layer to send exactly the bytes they want.
//
// Connecting sends VERSION (major 0, our capabilities) and validates the
// reply; the server's capabilities are then in server_capabilities(). With
// ClientOptions::twin_socket and a server that grants it, the server's
// commands arrive on a second socket (PROTOCOL.md 3.5).
//
// Serving the server's commands. A server reaches client memory shared
// without an fd through DMA_READ and DMA_WRITE commands (4.10). The client
// answers them from memory registered with AddDmaMemory() (or
// DmaMapMemory()), and only while some thread is inside the client waiting:
// in Call(), Await(), Poll(), a Send() waiting for socket room, or the
// serving thread (StartServingThread()). A device that does DMA while no
// thread waits is answered when one does; a test that only wants to serve
// calls Poll() in a loop. Other server commands are answered with ENOSYS.
// A test that must decide when a device's DMA progresses holds the
// server's commands (HoldServerCommands) and releases them when it wants.
//
// Threads. Every method is thread-safe unless its comment says otherwise.
// At any moment at most one waiting thread drives the sockets (the "IO
// leader": the first to arrive, or the serving thread); the others sleep and
// are woken once the leader has stored their replies. One thread alone thus
// reads its own replies with no hand-off, and concurrent callers pay one
// wake-up per reply. With twin-socket mode the serving thread owns the twin
// socket alone, so callers never wait for it. No user code runs inside the
// client, so any method may be called from any thread at any time, except
// that destruction must not race with other calls.
//
// Waiting uses poll(2) with the caller's deadline or, with
// ClientOptions::busy_poll, spins on non-blocking reads (a cross-CPU wake-up
// costs 15-25 us on small machines; benchmarks need the spin).
//
// Errors. A server's error reply becomes a status that keeps the exact errno:
// wire::ReplyErrno(status) returns it (its code is the canonical one for that
// errno). When the server closes the connection (Unavailable) or the stream
// can no longer be framed (DataLoss), the client is broken: every waiting and
// later call fails with that status, except that replies received before
// the break can still be awaited. Reconnecting means a new Client.
#ifndef VFU_CLIENT_CLIENT_H_
#define VFU_CLIENT_CLIENT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "vfu/base/syscalls.h"
#include "vfu/base/unique_fd.h"
#include "vfu/client/dma_memory_table.h"
#include "vfu/transport/message.h"
#include "vfu/transport/message_reader.h"
#include "vfu/transport/message_writer.h"
#include "vfu/wire/capabilities.h"
#include "vfu/wire/constants.h"
#include "vfu/wire/device_info.h"
#include "vfu/wire/dma_map.h"
#include "vfu/wire/dma_transfer.h"
#include "vfu/wire/header.h"
#include "vfu/wire/irq.h"
#include "vfu/wire/region_info.h"
#include "vfu/wire/region_io_fds.h"
#include "vfu/wire/version.h"

namespace vfu {

// What a Client proposes in VERSION and how it waits. The defaults propose
// what QEMU's client does (PROTOCOL.md 3.3) and serve DMA in the spec layout.
struct ClientOptions {
  // VERSION proposal. The major is always 0; QEMU proposes minor 0 too.
  uint16_t minor_version = 0;
  // Most fds we accept in one message (QEMU: 16). Twin mode needs >= 1.
  uint32_t max_msg_fds = 16;
  // Largest DMA_READ/DMA_WRITE count we serve (1 .. 64 MiB).
  uint64_t max_data_xfer_size = wire::kDefaultMaxDataXferSize;
  // Offer twin-socket mode; server_capabilities().twin_socket tells whether
  // the server granted it.
  bool twin_socket = false;
  // Offer REGION_WRITE_MULTI (as QEMU does).
  bool write_multiple = true;
  // Offer the legacy migration capability with these values (absent: not
  // offered, and a server that grants it anyway is rejected).
  std::optional<wire::MigrationCapability> migration;

  // Layout of the server's DMA_READ/DMA_WRITE messages: kSpec, or kQemu to
  // behave like QEMU's client (PROTOCOL.md 4.10 "interop trap").
  wire::DmaTransferLayout dma_layout = wire::DmaTransferLayout::kSpec;

  // Deadline of Connect()'s negotiation and of every call given no deadline
  // (QEMU's reply timeout is 5 s too).
  absl::Duration timeout = absl::Seconds(5);
  // Spin on non-blocking reads instead of sleeping in poll(2) while waiting.
  // Burns a CPU; meant for one thread driving the client. The serving thread
  // always sleeps in poll(2).
  bool busy_poll = false;

  // The kernel seam for fault injection; must outlive the client. Null means
  // PosixSyscalls::Instance().
  Syscalls* syscalls = nullptr;
};

// A server's successful reply to one of our commands.
struct Reply {
  wire::Header header;
  // The whole message, header first.
  std::vector<uint8_t> bytes;
  // The fds that came with it, now the caller's.
  std::vector<UniqueFd> fds;

  absl::Span<const uint8_t> payload() const {
    return absl::MakeConstSpan(bytes).subspan(
        bytes.size() < wire::kHeaderSize ? bytes.size() : wire::kHeaderSize);
  }
};

// Counters since the client was created. `messages_*` count every message
// (our commands and our replies to the server's commands, and the other way
// round); bytes count whole messages, headers included, as queued or
// received.
struct ClientStats {
  uint64_t messages_sent = 0;
  uint64_t messages_received = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  // Our commands, NO_REPLY ones included, and the replies to them (error
  // replies included).
  uint64_t commands_sent = 0;
  uint64_t replies_received = 0;
  // Commands from the server (DMA_READ/DMA_WRITE and anything else), and how
  // many of those were answered with an error (or would have been, under
  // NO_REPLY).
  uint64_t server_commands_received = 0;
  uint64_t server_commands_failed = 0;
  // Bytes served: read from our memory by DMA_READ, written by DMA_WRITE.
  uint64_t dma_read_bytes = 0;
  uint64_t dma_write_bytes = 0;
  // Times a waiting thread slept in poll(2), and rounds of non-blocking reads
  // in busy-poll mode.
  uint64_t poll_sleeps = 0;
  uint64_t busy_poll_rounds = 0;
};

// DEVICE_GET_REGION_INFO's answer: the decoded reply and, for a mappable
// region, the fd to mmap (invalid when the server attached none).
struct RegionInfo {
  wire::RegionInfoReply info;
  UniqueFd fd;
};

// DEVICE_GET_REGION_IO_FDS's answer: the entries and the fds their fd_index
// fields index.
struct RegionIoFds {
  wire::RegionIoFdsReply reply;
  std::vector<UniqueFd> fds;
};

// One connection to a vfio-user server; see the file comment.
class Client {
 public:
  // Connects to the server listening on the UNIX socket `socket_path` and
  // negotiates VERSION. Errors: InvalidArgument for bad options or a path
  // too long for sockaddr_un; the errno status of socket()/connect(); the
  // negotiation errors of FromFd().
  static absl::StatusOr<std::unique_ptr<Client>> Connect(const std::string& socket_path,
                                                         ClientOptions options = {});

  // Takes over `connected_socket` (a connected SOCK_STREAM socket, e.g. one
  // end of a socketpair; made non-blocking here, its send buffer raised to
  // hold a whole DMA_READ reply of options.max_data_xfer_size where the
  // system allows) and negotiates VERSION within options.timeout. Errors: InvalidArgument for bad options; an
  // error reply to VERSION as its errno; a VERSION reply that is malformed or
  // inconsistent with our proposal (major differs, minor above ours, JSON
  // invalid or without its NUL, twin_socket fd_index not naming the one fd
  // received, a capability we did not offer) is InvalidArgument (EINVAL);
  // DeadlineExceeded, Unavailable as for Call(). A server command that
  // arrives before the client is returned finds no memory registered yet
  // (EFAULT): servers DMA only after DMA_MAP, which comes later.
  static absl::StatusOr<std::unique_ptr<Client>> FromFd(UniqueFd connected_socket,
                                                        ClientOptions options = {});

  // Stops the serving thread and closes the sockets. No other call may be in
  // progress or start.
  ~Client();

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // ---- Negotiated state (fixed once the client exists) ----

  const ClientOptions& options() const { return options_; }
  // The server's VERSION reply.
  uint16_t server_minor_version() const { return server_version_.minor; }
  // The server's capabilities, defaults filled in for absent members.
  const wire::Capabilities& server_capabilities() const {
    return server_version_.capabilities;
  }
  // Twin-socket mode was granted: the server's commands use a second socket.
  bool twin_socket_active() const { return twin_granted_; }

  // ---- Raw commands ----

  // Sends `cmd` with `payload` and `fds` and waits for its reply until
  // `deadline` (default: now + options().timeout). An error reply becomes its
  // errno's status (wire::StatusFromReplyError). Other errors:
  //   DeadlineExceeded  no reply in time; the command is abandoned (a late
  //                     reply is dropped)
  //   Unavailable       the server closed the connection (DataLoss: the
  //                     stream broke)
  //   InvalidArgument   the reply names another command, carries more fds
  //                     than we accept
  //   ResourceExhausted the reply exceeds the message size we accept
  // The payload and fd count are not judged against the server's limits.
  absl::StatusOr<Reply> Call(wire::Command cmd, absl::Span<const uint8_t> payload,
                             std::vector<UniqueFd> fds = {},
                             std::optional<absl::Time> deadline = {});

  // Sends `cmd` and returns its message ID, which stays reserved until
  // Await() collects the reply or Abandon() drops it. With `no_reply` the
  // command carries NO_REPLY: nothing is awaited and the ID is not reserved.
  // Returns once the whole message is in the kernel's socket buffer, so a
  // posted command needs no later call to leave; while the socket is full it
  // waits, serving the server's commands and storing replies meanwhile.
  // Errors: the connection's status once broken; ResourceExhausted when all
  // 65536 IDs await replies; InvalidArgument for a message above 4 GiB;
  // DeadlineExceeded when the socket stays full for options().timeout (the
  // server is not reading): the rest of the message stays queued, goes out
  // during later waits, and its reply will be dropped.
  absl::StatusOr<uint16_t> Send(wire::Command cmd, absl::Span<const uint8_t> payload,
                                std::vector<UniqueFd> fds = {}, bool no_reply = false);

  // Send() with NO_REPLY, for posted commands.
  absl::Status SendNoReply(wire::Command cmd, absl::Span<const uint8_t> payload,
                           std::vector<UniqueFd> fds = {});

  // Waits for the reply to the command Send() numbered `id`, until
  // `deadline` (default: now + options().timeout), then releases the ID.
  // Replies may arrive in any order; those for other IDs are kept until
  // awaited. Errors as for Call(), except that on DeadlineExceeded the
  // command stays outstanding: Await() it again or Abandon() it. NotFound
  // when `id` is not outstanding (never sent, already collected, abandoned,
  // or collected meanwhile by another thread).
  absl::StatusOr<Reply> Await(uint16_t id, std::optional<absl::Time> deadline = {});

  // Forgets the outstanding command `id`: its reply, now or later, is
  // dropped. The ID stays reserved until that reply arrives, so a late reply
  // can never be mistaken for a newer command's.
  void Abandon(uint16_t id);

  // ---- Serving the server's commands ----

  // Registers client memory the server may access with DMA_READ/DMA_WRITE at
  // IOVA [iova, iova + memory.size()); `device_access` in DMA_MAP flag bits
  // (wire::kDmaMapFlagRead: DMA_READ allowed, wire::kDmaMapFlagWrite:
  // DMA_WRITE allowed). The memory must stay valid until removed or the
  // client destroyed; the server writes it from whichever thread serves.
  // A DMA_READ reply is sent from the memory itself, not from a copy: bytes
  // changed by other threads while a reply is still going out may be sent
  // as changed (as with any DMA racing the CPU).
  // Sends nothing (DmaMapMemory() also sends the DMA_MAP). A DMA outside the
  // registered memory is answered EFAULT, a forbidden direction EPERM, a
  // count above options().max_data_xfer_size E2BIG. Errors: AlreadyExists
  // (EEXIST) on overlap; InvalidArgument for an empty or wrapping range.
  absl::Status AddDmaMemory(uint64_t iova, absl::Span<uint8_t> memory,
                            uint32_t device_access = wire::kDmaMapFlagRead |
                                                     wire::kDmaMapFlagWrite);
  // Unregisters the memory registered at exactly `iova`. NotFound if none.
  absl::Status RemoveDmaMemory(uint64_t iova);

  // Processes incoming traffic (serving DMA requests, storing replies) until
  // at least one message has been handled or `timeout` has passed. Returns OK
  // in both cases (a quiet socket is no error), or the connection's status
  // once it is broken.
  absl::Status Poll(absl::Duration timeout);

  // Holding the server's commands, for tests that must decide when a
  // device's DMA may progress (e.g. that a job is certainly still running
  // when a reset or a disconnect reaches it). While held, commands that
  // arrive are kept unanswered, in arrival order, whichever thread reads
  // them; replies to our own commands flow as usual. Release serves the
  // kept commands (their replies leave at once or during later waits) and
  // every later one as before. The server's DMA deadline keeps running
  // meanwhile. Neither call waits for the server.
  void HoldServerCommands() ABSL_LOCKS_EXCLUDED(mu_);
  void ReleaseServerCommands() ABSL_LOCKS_EXCLUDED(mu_);

  // Starts a thread that serves the server's commands while no caller
  // waits: in twin-socket mode it owns the twin socket; otherwise it drives
  // the main socket whenever no caller does (callers' replies then reach
  // them through it, at the cost of a wake-up each). The thread stops when
  // the connection breaks, at StopServingThread() or in the destructor.
  // FailedPrecondition if it is already running. Start and Stop must not be
  // called concurrently with each other.
  absl::Status StartServingThread();
  // Stops and joins the serving thread; no-op if none runs.
  void StopServingThread();

  // ---- Typed commands (PROTOCOL.md 4) ----
  // Each sends one command (some several) with options().timeout and checks
  // the reply's structure; errors are those of Call(), plus InvalidArgument
  // for a malformed reply and for arguments beyond the server's negotiated
  // limits (checked before sending).

  // DEVICE_GET_INFO with argsz 16.
  absl::StatusOr<wire::DeviceInfo> GetDeviceInfo();

  // DEVICE_GET_REGION_INFO for region `index`. Retries with the larger argsz
  // the server reports until the reply is complete (capabilities included);
  // the region fd comes from that final reply.
  absl::StatusOr<RegionInfo> GetRegionInfo(uint32_t index);

  // DEVICE_GET_REGION_IO_FDS for region `index`, retrying with the argsz a
  // header-only reply reports.
  absl::StatusOr<RegionIoFds> GetRegionIoFds(uint32_t index);

  // DEVICE_GET_IRQ_INFO for IRQ index `index`.
  absl::StatusOr<wire::IrqInfo> GetIrqInfo(uint32_t index);

  // DEVICE_SET_IRQS as given (argsz is computed: 20 + data.size()), with
  // `fds` attached (DATA_EVENTFD: one per vector, or none to de-assign).
  // `fds` are sent and closed here: pass duplicates (DuplicateFd()) of
  // eventfds you keep reading.
  absl::Status SetIrqs(const wire::SetIrqsRequest& request, std::vector<UniqueFd> fds = {});

  // Installs `eventfds` as the triggers of vectors [start, start + size) of
  // IRQ index `index`, as QEMU does: in messages of at most the server's
  // max_msg_fds fds, a run of invalid UniqueFds going out as a de-assign of
  // those vectors. The messages are pipelined. FailedPrecondition if the
  // server accepts no fds.
  absl::Status SetIrqEventfds(uint32_t index, uint32_t start, std::vector<UniqueFd> eventfds);

  // Disables every vector of IRQ index `index` (TRIGGER|NONE, count 0).
  absl::Status DisableIrqs(uint32_t index);

  // REGION_READ of `count` bytes at `offset` in region `index`. The result
  // holds what the server returned, which may be fewer bytes (never more).
  absl::StatusOr<std::vector<uint8_t>> RegionRead(uint32_t index, uint64_t offset,
                                                  uint32_t count);

  // REGION_WRITE of `data` at `offset` in region `index`. With `posted` the
  // write carries NO_REPLY and this returns once it is queued (the server
  // applies commands in order, so a later read observes it). A short write
  // reported by the server is an error (InvalidArgument).
  absl::Status RegionWrite(uint32_t index, uint64_t offset, absl::Span<const uint8_t> data,
                           bool posted = false);

  // DMA_MAP of IOVA [iova, iova + size) with `flags` (wire::kDmaMapFlag*).
  // With `fd`, the server maps that file at `file_offset`; to serve message
  // DMA on the range as well (the specification wants both), also register
  // the memory with AddDmaMemory().
  absl::Status DmaMap(uint64_t iova, uint64_t size, uint32_t flags, UniqueFd fd = UniqueFd(),
                      uint64_t file_offset = 0);

  // Registers `memory` at `iova` (AddDmaMemory) and maps it without an fd,
  // so the server reaches it by DMA_READ/DMA_WRITE. Unregisters it again if
  // the DMA_MAP fails.
  absl::Status DmaMapMemory(uint64_t iova, absl::Span<uint8_t> memory,
                            uint32_t flags = wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite);

  // DMA_UNMAP of exactly the mapping [iova, iova + size). Once the server
  // has confirmed (it no longer reaches the range), registered memory lying
  // entirely inside the range is unregistered.
  absl::Status DmaUnmap(uint64_t iova, uint64_t size);

  // DMA_UNMAP with the ALL flag; on success unregisters all memory.
  absl::Status DmaUnmapAll();

  // DEVICE_RESET.
  absl::Status Reset();

  // ---- Statistics ----

  ClientStats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // One socket with its framing state.
  struct Channel {
    Channel(UniqueFd fd, size_t max_message_size, size_t max_fds)
        : fd(std::move(fd)), reader(max_message_size, max_fds) {}
    // Bytes ever handed to the kernel: a message queued when
    // `enqueued_bytes` reached N has left once this reaches N.
    uint64_t sent_bytes() const { return enqueued_bytes - writer.queued_bytes(); }

    UniqueFd fd;
    MessageReader reader;
    MessageWriter writer;
    // Bytes ever queued on `writer`.
    uint64_t enqueued_bytes = 0;
  };

  // A command we sent and expect a reply to.
  struct Outstanding {
    wire::Command command;
    // Abandon()ed: drop the reply when it comes, then free the ID.
    bool abandoned = false;
    std::optional<InboundMessage> reply = std::nullopt;
  };

  Client(UniqueFd socket, ClientOptions options, UniqueFd leader_wakeup,
         UniqueFd thread_wakeup);

  absl::Status Negotiate(absl::Time deadline);

  absl::StatusOr<uint16_t> SendWithDeadline(wire::Command cmd, absl::Span<const uint8_t> payload,
                                            std::vector<UniqueFd> fds, bool no_reply,
                                            absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Time DefaultDeadline() const { return absl::Now() + options_.timeout; }

  // Waits until done() holds, driving the sockets when no other thread does
  // (see PumpLocked) and otherwise sleeping on cv_. Always makes at least
  // one non-blocking attempt, even past the deadline. Returns OK once done()
  // holds, else the connection's status once broken, else DeadlineExceeded.
  // `allow_busy`: spin instead of poll(2) if options().busy_poll.
  template <typename Done>
  absl::Status WaitLocked(Done done, absl::Time deadline, bool allow_busy)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // One round as IO leader: flush, wait for the sockets until `deadline`
  // (poll(2) with mu_ released) or take one spin, then read and dispatch
  // whatever arrived, flush the answers, and wake the other waiters. A round
  // whose first flush wrote something does not sleep: that alone may be
  // what the caller waits for.
  void PumpLocked(absl::Time deadline, bool busy) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The serving thread's loop (ServeTwinOnThread: twin mode).
  void ServeMainOnThread() ABSL_LOCKS_EXCLUDED(mu_);
  void ServeTwinOnThread() ABSL_LOCKS_EXCLUDED(mu_);

  // Reads what `channel` has and dispatches it; a read error breaks the
  // connection.
  void ReadLocked(Channel& channel) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes what the socket takes; returns whether any byte went out. A write
  // error breaks the connection.
  bool FlushLocked(Channel& channel) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EnqueueLocked(Channel& channel, OutboundMessage message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DispatchLocked(Channel& channel, InboundMessage message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleReplyLocked(InboundMessage message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Serves the server's command `message` (or keeps it while held) and
  // queues the reply on `channel`.
  void HandleServerCommandLocked(Channel& channel, InboundMessage message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AnswerServerCommandLocked(Channel& channel, InboundMessage message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Serves one server command, appending the reply payload to `reply`
  // (whose bytes start with room for the header); a DMA_READ reply borrows
  // the registered memory it reads.
  absl::Status ServeLocked(const InboundMessage& message, OutboundMessage& reply)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes queued replies copy the registered memory they borrow: called
  // before that memory is unregistered or written by a DMA_WRITE.
  void OwnBorrowedBytesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Marks the connection broken with `status` (first cause wins).
  void BreakLocked(absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Raises the incoming message size limit once the server's
  // max_data_xfer_size is known.
  void ApplyNegotiatedLimitsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ClientOptions options_;
  Syscalls& syscalls_;
  // eventfds that interrupt poll(2): leader_wakeup_ that of the IO leader
  // (new output queued by another thread, StopServingThread),
  // thread_wakeup_ that of the serving thread in twin mode. Immutable.
  const UniqueFd leader_wakeup_;
  const UniqueFd thread_wakeup_;

  // Written by Negotiate() before the client is handed out; read-only after.
  wire::Version server_version_;
  bool twin_granted_ = false;

  mutable absl::Mutex mu_;
  // Signalled when an IO round ends (replies stored, leader gone), the
  // connection breaks, or the serving thread must stop.
  absl::CondVar cv_;

  Channel main_ ABSL_GUARDED_BY(mu_);
  // Twin mode only.
  std::unique_ptr<Channel> twin_ ABSL_GUARDED_BY(mu_);
  // A thread is the IO leader (inside PumpLocked, possibly with mu_
  // released while it sleeps in poll(2)).
  bool io_leader_ ABSL_GUARDED_BY(mu_) = false;
  // The serving thread owns twin_: the IO leader leaves it alone.
  bool twin_owned_by_thread_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status broken_ ABSL_GUARDED_BY(mu_);

  uint16_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<uint16_t, Outstanding> outstanding_ ABSL_GUARDED_BY(mu_);

  DmaMemoryTable memory_ ABSL_GUARDED_BY(mu_);
  // Reused buffer: the messages of one read.
  std::vector<InboundMessage> inbox_ ABSL_GUARDED_BY(mu_);

  ClientStats stats_ ABSL_GUARDED_BY(mu_);

  // HoldServerCommands() is in effect; the commands kept meanwhile, with
  // the socket each came on (main_ or *twin_, both stable).
  bool hold_server_commands_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::pair<Channel*, InboundMessage>> held_server_commands_ ABSL_GUARDED_BY(mu_);

  std::thread serving_thread_ ABSL_GUARDED_BY(mu_);
  bool stop_serving_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace vfu

#endif  // VFU_CLIENT_CLIENT_H_
