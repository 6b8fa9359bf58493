// DmaEngineDevice: a memory-to-memory copy engine on the PCI device model.
// The client programs a channel with a source, a destination and a length in
// its own (IO virtual) address space and rings the doorbell; the device
// copies by DMA on its own thread and raises the channel's MSI-X vector when
// the job ends. The framework provides config space, MSI-X and the DMA
// plumbing; this class is the register file and the copy loop.
//
// Identity: vendor 0xf00d (a placeholder, see dma_engine_registers.h),
// device 0x0002, class 0x088000 (system peripheral, other), revision 1. Conventional PCI
// (256-byte config space) with power management and MSI-X capabilities.
// Interrupts: MSI-X, one vector per channel (vector n = channel n).
//
// Registers, values and interrupts: dma_engine_registers.h.
//
// Jobs. The copy runs in chunks of kChunkSize on the channel's own thread,
// never in a region-access hook: QEMU answers DMA messages only once the
// access that rang the doorbell has its reply (PROTOCOL.md section 12).
// When both ranges are memory the client shared with an fd, bytes move
// directly between the mappings (zero copy); otherwise each chunk is read
// into a buffer and written out, through DMA_READ / DMA_WRITE messages where
// the memory is fd-less. Ranges that overlap, or wrap past the top of the
// 64-bit space, fail with ERROR_INVALID before any byte moves; LENGTH 0
// finishes at once. The registers may be reprogrammed while a job runs: it
// copied its parameters at the doorbell.
//
// A job ends DONE or ERROR: STATUS and ERROR are set, the channel's
// IRQ_STATUS bit is set and MSI-X vector n is raised. After that the job
// touches client memory no more. A mapping withdrawn during a job (DMA_UNMAP)
// fails it at its next chunk with ERROR_SOURCE_FAULT or
// ERROR_DESTINATION_FAULT; the unmap itself waits for the chunk in flight.
//
// Quiesce and migration. Asked to quiesce, a channel stops at its next
// step, between two chunks. For a migration state change or dirty-logging
// start/stop the quiesce completes, from the last channel thread to stop,
// once none is inside a chunk; for the other reasons at once (a reset or
// detach abandons the jobs; an unmap waits for the chunk's pins itself;
// waiting for a chunk whose DMA message a QEMU client answers only after
// the command would deadlock). The jobs stay paused until the unquiesce and
// for as long as migration keeps the device stopped (STOP, STOP_COPY,
// RESUMING); a doorbell then starts nothing until the device runs. The
// migration state (device type "vfu-dma-engine", version 1) is the
// registers and, for a busy channel, its job with the bytes already copied:
// the destination resumes the job at that byte and ends it with its
// interrupt there.
//
// Reset (DEVICE_RESET) restores every register to its reset value and
// abandons the jobs in flight without an interrupt. It does not wait for
// them: waiting for a DMA message in a hook deadlocks QEMU. So the one chunk
// a channel may have issued already can still land after the reset, and
// nothing after it. A client that goes away ends its jobs with an error,
// normally ERROR_DETACHED; no interrupt (its eventfds went with it); the
// detach waits until the channel threads have let go of the client. The
// registers are device state: the next client finds them.
//
// Threads: the region hooks run on the server's workers; each channel has a
// thread of its own running its jobs. One mutex guards the registers; the
// copy runs without it. Interrupts are raised under it, which is safe
// because raising is lock-free and calls nothing back.
#ifndef VFU_DEVICES_DMA_ENGINE_DMA_ENGINE_DEVICE_H_
#define VFU_DEVICES_DMA_ENGINE_DMA_ENGINE_DEVICE_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "devices/dma_engine/dma_engine_registers.h"
#include "vfu/device/pci_device.h"
#include "vfu/vfu.h"

namespace vfu::devices {

class DmaEngineDevice : public PciDevice {
 public:
  // Starts the channel threads.
  DmaEngineDevice();
  // Stops the channel threads. The server must be stopped first (it is what
  // makes a DMA message in flight return).
  ~DmaEngineDevice() override;

  // PciDevice hooks.
  absl::Status OnRegionRead(uint32_t region, uint64_t offset, absl::Span<uint8_t> out) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status OnRegionWrite(uint32_t region, uint64_t offset,
                             absl::Span<const uint8_t> data) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status OnReset() override ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the jobs in flight and returns once no channel thread uses the
  // client's context any more, which is quick: the client's memory and
  // connection are gone by now, so any DMA call fails at once. Nothing uses
  // the context after the server has stopped, then.
  void OnClientDetached() override ABSL_LOCKS_EXCLUDED(mu_);
  void OnClientAttached() override ABSL_LOCKS_EXCLUDED(mu_);
  void OnQuiesce(QuiesceReason reason, QuiesceDone done) override ABSL_LOCKS_EXCLUDED(mu_);
  void OnUnquiesce() override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status OnMigrationStateChange(MigrationState from, MigrationState to) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status SaveState(SavePhase phase, std::string& out) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status LoadState(absl::Span<const std::string> pieces) override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // What a doorbell hands to the channel thread.
  struct Job {
    uint64_t source = 0;
    uint64_t destination = 0;
    uint32_t length = 0;
    // Bytes already copied (a job resumed after migration starts there).
    uint64_t resume_from = 0;
  };

  struct Channel {
    // Registers.
    uint64_t source = 0;
    uint64_t destination = 0;
    uint32_t length = 0;
    uint32_t status = dma_engine::kStatusIdle;
    uint32_t error = dma_engine::kErrorNone;
    uint32_t progress = 0;
    // A job waits for the channel thread.
    bool start = false;
    // ABORT arrived while busy; the thread ends the job at its next step.
    bool abort = false;
    Job job;
    // Advanced by every doorbell start, reset and detach. A job carries the
    // number it started with; once they differ the job is abandoned and
    // must leave the registers alone.
    uint64_t generation = 0;
  };

  // How a job's step went.
  enum class Step {
    kContinue,  // go on
    kAborted,   // the ABORT bit: end the job with ERROR_ABORTED
    kStale,     // reset or detach took the channel: stop, touch nothing
  };

  uint32_t ReadRegisterLocked(uint64_t offset) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stores the bits of `value` selected by `mask` (the bytes the access
  // covered) into the 32-bit register at `offset`.
  void WriteRegisterLocked(uint64_t offset, uint32_t value, uint32_t mask)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DoorbellLocked(uint32_t channel, uint32_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records the job's end in the registers and raises the channel's vector.
  void FinishLocked(uint32_t channel, uint32_t error) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The thread of channel `channel`: waits for a doorbell, runs the job.
  void ChannelLoop(uint32_t channel) ABSL_LOCKS_EXCLUDED(mu_);
  // Copies the job; returns its ERROR value, or nullopt for a stale job.
  std::optional<uint32_t> RunJob(uint32_t channel, uint64_t generation, const Job& job,
                                 std::vector<uint8_t>& buffer) ABSL_LOCKS_EXCLUDED(mu_);
  // Between steps: records `progress` and says whether to go on.
  Step Checkpoint(uint32_t channel, uint64_t generation, uint64_t progress)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Jobs may not touch client memory or raise interrupts now.
  bool PausedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return quiesced_ || migration_stopped_;
  }
  // The pending quiesce's completion once no channel is inside a chunk
  // (to be called after mu_ is released), else null.
  QuiesceDone TakeQuiesceDoneLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Every running channel waits at a step.
  bool AllParkedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // While jobs are paused, parks channel `channel` (completing a quiesce
  // if it was the last one to stop) until they may go on or the job went
  // stale. Releases mu_ while it waits.
  void WaitWhilePausedLocked(uint32_t channel, uint64_t generation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::array<Channel, dma_engine::kNumChannels> channels_ ABSL_GUARDED_BY(mu_);
  // Channel thread n is inside a job (the client's context may be in use).
  // Apart from the registers: a reset does not change it.
  std::array<bool, dma_engine::kNumChannels> running_ ABSL_GUARDED_BY(mu_) = {};
  uint32_t irq_status_ ABSL_GUARDED_BY(mu_) = 0;
  // Channel thread n waits at a step because jobs are paused.
  std::array<bool, dma_engine::kNumChannels> parked_ ABSL_GUARDED_BY(mu_) = {};
  bool quiesced_ ABSL_GUARDED_BY(mu_) = false;
  bool migration_stopped_ ABSL_GUARDED_BY(mu_) = false;
  // The quiesce in progress, until every channel is parked.
  QuiesceDone quiesce_done_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Last member: started once everything above exists.
  std::vector<std::thread> threads_;
};

}  // namespace vfu::devices

#endif  // VFU_DEVICES_DMA_ENGINE_DMA_ENGINE_DEVICE_H_
