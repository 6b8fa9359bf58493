// Tunables of the threaded runtime, with the reasons for their defaults.
#ifndef VFU_SERVER_RUNTIME_OPTIONS_H_
#define VFU_SERVER_RUNTIME_OPTIONS_H_

#include <cstddef>

#include "absl/time/time.h"
#include "vfu/wire/dma_transfer.h"

namespace vfu {

struct RuntimeOptions {
  // Commands received from one client but not yet run. Past this the IO
  // thread stops reading that client's socket (unless a DMA reply is
  // awaited), so a flooding client is slowed down by its own socket buffer.
  size_t max_queued_commands = 256;
  // Reply bytes queued for a client that is not reading. Above the high
  // mark the client's commands stop running; below the low mark they
  // resume.
  size_t outbound_high_water = 8 << 20;
  size_t outbound_low_water = 2 << 20;
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
};

}  // namespace vfu

#endif  // VFU_SERVER_RUNTIME_OPTIONS_H_
