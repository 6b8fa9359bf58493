// Tunables of the threaded runtime, with the reasons for their defaults.
#ifndef VFU_SERVER_RUNTIME_OPTIONS_H_
#define VFU_SERVER_RUNTIME_OPTIONS_H_

#include <cstddef>

#include "absl/time/time.h"
#include "vfu/dma/dma_map_table.h"
#include "vfu/wire/dma_transfer.h"

namespace vfu {

struct RuntimeOptions {
  // Commands received from one client but not yet run, by count and by
  // bytes held (each message's buffer plus its bookkeeping). Past either the
  // IO thread stops reading that client's socket, so a flooding client is
  // slowed down by its own socket buffer; reading resumes as commands run
  // (while a DMA reply is awaited, max_queued_bytes_awaiting_reply instead).
  // A read that crosses the mark still completes: the bytes may exceed it by
  // one read (MessageReader::kReadBudget) plus one message.
  size_t max_queued_commands = 256;
  // 0 (the default): kQueuedBytesPerMessage times the largest message the
  // client may send (negotiated; 64 KiB before VERSION), i.e. 4 MiB and a
  // little for the default 1 MiB max_data_xfer_size.
  size_t max_queued_bytes = 0;
  static constexpr size_t kQueuedBytesPerMessage = 4;
  // While one of our commands (DMA_READ/DMA_WRITE) awaits its reply on the
  // main socket, the IO thread must keep reading to find the reply, so the
  // marks above do not stop it. Commands queued meanwhile may reach this
  // many bytes; past it the client is disconnected as abusive (with a log
  // line). 0 (the default): kAwaitingReplyFactor times the effective
  // max_queued_bytes (16 MiB and a little by default). With a twin socket
  // replies arrive there and the main socket obeys the marks above.
  size_t max_queued_bytes_awaiting_reply = 0;
  static constexpr size_t kAwaitingReplyFactor = 4;
  // Reply bytes queued for a client that is not reading. Above the high
  // mark the client's commands stop running; below the low mark they
  // resume.
  size_t outbound_high_water = 8 << 20;
  size_t outbound_low_water = 2 << 20;
  // The same for fds in queued replies (e.g. region fds in
  // DEVICE_GET_REGION_INFO replies), each open in this process until its
  // reply is sent: above the high mark the client's commands stop running,
  // at or below the low mark they resume, and the stall clock
  // (max_write_stall) runs meanwhile. The strand checks the mark after each
  // reply it queues, so the fds held exceed it by at most one reply's fds.
  size_t outbound_fds_high_water = 64;
  size_t outbound_fds_low_water = 16;
  // A client whose replies have made no progress for this long while its
  // commands are paused (above the high mark) is disconnected. The clock
  // restarts whenever bytes reach the client, so a slow client that keeps
  // reading stays.
  absl::Duration max_write_stall = absl::Seconds(30);
  // When accepting a client fails for lack of resources (EMFILE, ENFILE,
  // ENOBUFS, ENOMEM) or another error, the listening socket is left alone
  // this long before the next try (the connection waits in the backlog),
  // instead of failing again at once in a loop.
  absl::Duration accept_retry_delay = absl::Milliseconds(100);
  // What one client's DMA mappings may hold: bytes of fd-backed mappings
  // (address space), the size of one mapping, and how long an unmap or a
  // detach waits for pinned memory before revoking it (see
  // vfu/dma/dma_map_table.h). `max_maps` and `page_sizes` are replaced by
  // what VERSION negotiated (ServerOptions::version).
  DmaMapLimits dma_limits;
  // How long a departed client's device gets to quiesce: a command that
  // still waits for the device (Device::Quiesce answered later) and the
  // quiesce of the detach itself each wait at most this long, holding one
  // worker, before the detach goes on without it (logged). While the client
  // is connected, a quiesce holds no thread and has no time limit: the
  // client's commands simply wait, bounded by max_queued_commands.
  absl::Duration quiesce_wait_after_disconnect = absl::Seconds(5);
  // How long a server-initiated command (DMA_READ/WRITE) waits for its reply.
  absl::Duration dma_timeout = absl::Seconds(5);
  // After handing a client's command to a worker, the IO thread polls for
  // up to this long (instead of sleeping in epoll_wait) while the command
  // runs, so that its reply is written without an eventfd wake-up; on a
  // 2-CPU VM that wake-up cost about half a raw socket round trip. The poll
  // ends as soon as none of the client's commands is queued or running.
  // Zero turns it off.
  absl::Duration reply_busy_poll = absl::Microseconds(50);
  // A worker that goes idle while no other command is queued or running
  // polls this long for the next one before it sleeps (one worker at a
  // time, yielding its CPU between looks), so a client that sends its next
  // command within the window needs no worker wake-up (about a third of a
  // raw round trip on a 2-CPU VM). It costs up to this much CPU time after
  // each burst of commands. Zero turns it off. Keep reply_busy_poll on with
  // it: a worker that takes each command at once also posts each reply at
  // once, and an IO thread that sleeps meanwhile is then woken per reply
  // instead of per batch (measured: pipelined throughput halved).
  absl::Duration worker_idle_spin = absl::Microseconds(100);
  // Both polls yield their CPU between looks. A yield that took a time
  // slice means the CPU is wanted elsewhere (another process, a client that
  // busy-polls itself); polling would then delay replies by slices instead
  // of saving wake-ups, so both polls stop for this long. Zero: they never
  // stop (for tests that count wake-ups).
  absl::Duration poll_backoff = absl::Milliseconds(10);
  // Layout of DMA_READ/DMA_WRITE messages. QEMU's client uses its own
  // variant (PROTOCOL.md 4.10).
  wire::DmaTransferLayout dma_layout = wire::DmaTransferLayout::kSpec;
  // Per-command statistics (DeviceStatistics: counts, errors, bytes,
  // latency). On by default and cheap; false exists so that tools/bench can
  // measure what they cost against the same server in the same run.
  // Events are published either way.
  bool statistics = true;
};

}  // namespace vfu

#endif  // VFU_SERVER_RUNTIME_OPTIONS_H_
