// PollDriver: runs vfu's protocol engine (Session) for one libvfio-user
// context on the caller's thread: the poll-mode driver behind
// vfu_attach_ctx(), vfu_run_ctx() and vfu_get_poll_fd().
//
// Nothing here starts a thread. Bytes arrive through vfu's MessageReader
// (a message arriving in pieces across calls is reassembled, never a
// reason to drop the client) and replies leave through a MessageWriter
// (what the socket does not take now stays queued and goes out on a later
// call; a reply never blocks the caller).
//
// The poll fd. Once a client is attached, vfu_get_poll_fd() returns an
// epoll fd that is readable when there is work: bytes from the client, room
// for queued replies, commands already received and kept back (commands
// that arrived while vfu_sgl_read() waited for its DMA_READ reply, or the
// rest of a batch after a deferred quiesce), or a disconnect decided here
// (failed negotiation once its error reply is out, memory taken away under
// a copy, a broken stream), which the next vfu_run_ctx() reports as
// ENOTCONN. A plain socket fd could not say these: the bytes have left the
// socket, or the client sends nothing more.
//
// DMA through messages. For memory the client shared without an fd, the
// device's DMA (vfu_sgl_read/write) sends DMA_READ / DMA_WRITE and waits on
// the caller's thread for the reply with that message ID; commands that
// arrive meanwhile are kept, in order, for the next vfu_run_ctx().
//
// Quiesce. Before DMA_MAP, DMA_UNMAP, DEVICE_RESET and a DEVICE_FEATURE SET
// (migration state, DMA logging) the quiesce callback is asked; when it defers (EBUSY), that command waits and vfu_run_ctx()
// reports EBUSY until vfu_device_quiesced(). A failed quiesce fails the
// command with an error reply (libvfio-user leaves the client waiting).
//
// Bounds: commands received and not yet handled are at most 64 MiB in all,
// across every DMA wait of a callback (more, and the client is
// disconnected); replies the client does not read
// stay queued up to 16 MiB, past which no more of its commands are read
// until it reads (its further commands wait in the socket).
//
// Thread-compatible: the caller's thread (one at a time), like libvfio-user.
#ifndef VFU_CAPI_POLL_DRIVER_H_
#define VFU_CAPI_POLL_DRIVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "vfu/base/unique_fd.h"
#include "vfu/capi/callback_device.h"
#include "vfu/capi/context.h"
#include "vfu/capi/driver.h"
#include "vfu/device/device.h"
#include "vfu/dma/dma_memory.h"
#include "vfu/dma/dma_map_table.h"
#include "vfu/engine/client_channel.h"
#include "vfu/engine/message_dma.h"
#include "vfu/engine/session.h"
#include "vfu/transport/message_reader.h"
#include "vfu/transport/message_writer.h"
#include "vfu/transport/spare_buffers.h"

namespace vfu::capi {

class PollDriver : public Driver,
                   public DeviceContext,
                   public ClientChannel,
                   private MessageDmaPath {
 public:
  // Creates, binds and listens on the socket at ctx.path (which must not
  // exist). Errors carry an errno (wire::ReplyErrno).
  static absl::StatusOr<std::unique_ptr<PollDriver>> Listen(vfu_ctx& ctx);
  ~PollDriver() override;

  // Driver.
  absl::Status Realize() override;
  int Attach() override;
  int GetPollFd() const override;
  int Run() override;
  int QuiesceDone(int quiesce_errno) override;
  CallbackDevice* device() override { return device_.get(); }
  absl::StatusOr<DmaSgList> Translate(uint64_t iova, uint64_t length,
                                      DmaDirection direction) override {
    return dma_.Translate(iova, length, direction);
  }
  absl::Status ReadMemory(uint64_t iova, absl::Span<uint8_t> out) override {
    return DmaRead(iova, out);
  }
  absl::Status WriteMemory(uint64_t iova, absl::Span<const uint8_t> data) override {
    return DmaWrite(iova, data);
  }

  bool attached() const { return session_ != nullptr; }

  // DeviceContext: the device's DMA (vfu_sgl_read / vfu_sgl_write).
  absl::Status DmaRead(uint64_t iova, absl::Span<uint8_t> out) override;
  absl::Status DmaWrite(uint64_t iova, absl::Span<const uint8_t> data) override;
  absl::StatusOr<DmaSgList> DmaPin(uint64_t iova, uint64_t length,
                                   DmaDirection direction) override;

  // ClientChannel: sends a DMA_READ / DMA_WRITE and waits for its reply,
  // keeping commands that arrive meanwhile.
  absl::StatusOr<InboundMessage> Call(std::vector<uint8_t> command, absl::Time deadline,
                                      std::shared_ptr<ReplySink> sink) override;

 private:
  PollDriver(vfu_ctx& ctx, UniqueFd listen_fd, UniqueFd epoll_fd, UniqueFd wake_fd,
             UniqueFd fault_fd);

  // Whether a copy found the client's memory taken away since the last
  // look; clears the flag and fault_fd_.
  bool ConsumeMemoryFault();
  // One non-blocking pass: flush, read, handle what is complete.
  int RunOnce();
  // Handles kept-back commands until none is left or one waits for a
  // quiesce. Returns how many were handled.
  int ProcessInbound();
  void Execute(InboundMessage message);
  bool NeedsQuiesce(const InboundMessage& message) const;
  void ReadInbound();
  bool InboundPending() const { return inbound_head_ < inbound_.size(); }
  void FlushWriter();
  // Keeps the poll fd's readiness in line with the work left (see above).
  void UpdateReadiness();
  // Waits until the client's socket is readable (or writable while replies
  // are queued), or `deadline`. False on timeout.
  bool WaitSocket(short events, absl::Time deadline);
  // The client is gone: reset callback (LOST_CONN), unregister its memory,
  // detach the session, close the socket.
  void Disconnect();
  // MessageDmaPath: fd-less client memory, through DMA_READ / DMA_WRITE.
  absl::Status Read(uint64_t iova, absl::Span<uint8_t> out) override;
  absl::Status Write(uint64_t iova, absl::Span<const uint8_t> data) override;

  vfu_ctx& ctx_;
  UniqueFd listen_fd_;
  UniqueFd epoll_fd_;
  // Readable while kept-back commands wait or a departure is decided (part
  // of epoll_fd_).
  UniqueFd wake_fd_;
  bool wake_signalled_ = false;
  // Readable once a copy found the client's memory taken away, from
  // whichever thread copied (part of epoll_fd_): the next vfu_run_ctx()
  // disconnects the client even if it sends nothing more.
  UniqueFd fault_fd_;
  UniqueFd client_fd_;
  DmaMapTable dma_;
  // The device's copies: the table's fast path, mmapped segments, messages.
  DmaMemory memory_{dma_, *this};
  // Set (from whichever thread copied) when the client took memory away
  // under a copy; the next vfu_run_ctx() disconnects it, as the threaded
  // runtime does.
  std::atomic<bool> memory_faulted_{false};
  std::unique_ptr<CallbackDevice> device_;
  // Message buffers passed from the writer (sent replies) and the session
  // (handled commands) back to the reader and the session, so a message
  // costs no allocation. Declared before its users, which it outlives.
  SpareBuffers spares_;
  std::unique_ptr<Session> session_;
  std::unique_ptr<MessageReader> reader_;
  MessageWriter writer_;
  // Commands received and not yet handled: inbound_[inbound_head_..].
  // Received into directly and emptied (capacity kept) once all are
  // handled, so a batch costs no queue allocation and no extra move.
  std::vector<InboundMessage> inbound_;
  size_t inbound_head_ = 0;
  // Bytes of inbound_[inbound_head_..]: bounded by kMaxKeptBackBytes while
  // DMA waits keep commands back.
  size_t inbound_bytes_ = 0;
  // What a DMA wait receives, before it is sorted into its reply and kept
  // commands.
  std::vector<InboundMessage> scratch_;
  // The command waiting for a deferred quiesce.
  std::optional<InboundMessage> parked_;
  // The device said it is quiesced; until the current call returns.
  bool quiesced_ = false;
  // The client closed, reset or broke the stream: disconnect once the
  // commands it sent before are handled.
  bool peer_gone_ = false;
  // Close once the queued replies are out (failed negotiation).
  bool close_after_flush_ = false;
  uint32_t interest_ = 0;
  MessageDmaConfig dma_config_;
  uint16_t next_request_id_ = 1;
};

}  // namespace vfu::capi

#endif  // VFU_CAPI_POLL_DRIVER_H_
