// NvmeDriver: the guest's side of an NvmeController, on the vfu client
// library: it enables the controller, runs admin commands, creates I/O
// queue pairs, submits and reaps commands. Guest memory is one region this
// process allocates and maps for the device at `iova` (DMA_MAP): a memfd
// shared with an fd (the device then moves data zero copy), or plain memory
// the device reaches through DMA messages. Interrupts arrive on eventfds
// (MSI-X vector q for queue pair q), or the driver polls completion queues.
//
//   VFU_ASSIGN_OR_RETURN(auto driver, NvmeDriver::Attach(*client, {}));
//   VFU_RETURN_IF_ERROR(driver->Enable());
//   VFU_RETURN_IF_ERROR(driver->CreateIoQueuePair(1, 64));
//   SubmissionEntry read = driver->ReadCommand(1, /*slba=*/0, /*blocks=*/8, buffer_iova);
//   VFU_ASSIGN_OR_RETURN(Completion done, driver->Run(1, read));
//
// Used by the device's tests and tools/nvme. Thread-compatible: one thread
// drives it. With fd-less memory that thread also serves the device's DMA
// messages (inside its client calls and while Reap waits): do not start the
// client's serving thread.
#ifndef VFU_DEVICES_NVME_NVME_DRIVER_H_
#define VFU_DEVICES_NVME_NVME_DRIVER_H_

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "devices/nvme/nvme_defs.h"
#include "vfu/base/unique_fd.h"
#include "vfu/client/client.h"
#include "vfu/client/ioeventfd_writer.h"

namespace vfu::nvme {

// A completion as the driver reads it; `status` without the phase tag.
struct Completion {
  uint32_t dw0 = 0;
  uint16_t sq_head = 0;
  uint16_t sq_id = 0;
  uint16_t cid = 0;
  uint16_t status = 0;
};

struct NvmeDriverOptions {
  uint64_t memory_bytes = 64ull << 20;
  // Shared memfd (zero copy) or fd-less memory (DMA messages).
  bool shared_memory = true;
  uint64_t iova = 0x100000000ull;
  uint32_t admin_entries = 32;
  // Wait for completions on MSI-X eventfds; otherwise poll memory.
  bool interrupts = true;
  absl::Duration timeout = absl::Seconds(20);
  // With shadow doorbells, ring the device through the ioeventfds it offers
  // (as QEMU with KVM does) instead of REGION_WRITE messages.
  bool ioeventfds = false;
};

class NvmeDriver {
 public:
  static constexpr uint64_t kPage = 4096;
  // Queues are aligned for the largest page size the controller allows.
  static constexpr uint64_t kQueueAlignment = 4096ull << kMpsMax;

  // Maps the guest memory and installs the interrupt eventfds.
  static absl::StatusOr<std::unique_ptr<NvmeDriver>> Attach(Client& client,
                                                            NvmeDriverOptions options = {});
  ~NvmeDriver();

  // ---- Registers ----
  // Live migration with memory shared by both servers: maps this driver's
  // guest memory on `destination` (a client of the server the device
  // migrates to) and installs the same interrupt eventfds there; after the
  // migration, UseClient(destination) sends register and doorbell accesses
  // to it. Shared memory without ioeventfds only.
  absl::Status ShareWith(Client& destination);
  void UseClient(Client& destination) { client_ = &destination; }

  absl::StatusOr<uint32_t> Read32(uint64_t offset);
  absl::StatusOr<uint64_t> Read64(uint64_t offset);
  absl::Status Write32(uint64_t offset, uint32_t value, bool posted = false);
  // Waits until (CSTS & mask) == value.
  absl::Status WaitForCsts(uint32_t mask, uint32_t value);

  // Programs the admin queue, sets CC.EN and waits for CSTS.RDY; Disable
  // clears CC.EN and waits for RDY = 0 (the driver's queues are gone then).
  absl::Status Enable(uint32_t cc_extra = 0);
  absl::Status Disable();
  // Normal shutdown notification; waits for SHST complete.
  absl::Status Shutdown();

  // ---- Commands ----
  // Submits `sqe` (its CID replaced) to queue `qid` and waits for its
  // completion. Other completions seen meanwhile (e.g. asynchronous events)
  // are kept for TakeStray.
  absl::StatusOr<Completion> Run(uint16_t qid, SubmissionEntry sqe);
  std::optional<Completion> TakeStray();

  // Submits without waiting (rings the doorbell when `ring`); the CID is the
  // caller's. FailedPrecondition when the queue is full.
  absl::Status Submit(uint16_t qid, const SubmissionEntry& sqe, bool ring = true);
  absl::Status RingSubmission(uint16_t qid);
  // Reaps up to out.size() completions of queue `qid` (and writes the CQ
  // head doorbell); with `wait`, waits up to the timeout for one first.
  absl::StatusOr<size_t> Reap(uint16_t qid, absl::Span<Completion> out, bool wait);

  // Creates CQ and SQ `qid` of `entries` entries (the CQ of `cq_entries`
  // when not 0), the CQ on vector `qid`, interrupts enabled.
  absl::Status CreateIoQueuePair(uint16_t qid, uint32_t entries, uint32_t cq_entries = 0);
  absl::Status DeleteIoQueuePair(uint16_t qid);
  // Identify `cns` for `nsid` into a new page; the status on failure.
  absl::StatusOr<std::vector<uint8_t>> Identify(uint32_t cns, uint32_t nsid = 0);
  // Doorbell Buffer Config: from now on the I/O queues' doorbells go to a
  // shadow buffer in guest memory, and to the device only when they pass
  // the EventIdx the controller left (as Linux's nvme_dbbuf_* do).
  absl::Status EnableShadowDoorbells();
  bool shadow_doorbells() const { return shadow_ != 0; }
  // The shadow doorbell buffer's client address (0: none), for tests that
  // update a shadow slot without ringing.
  uint64_t shadow_buffer() const { return shadow_; }
  // Doorbell writes that went to the device (REGION_WRITE messages).
  uint64_t mmio_doorbells() const { return mmio_doorbells_; }
  // Of those, the ones that went through an ioeventfd instead of a message.
  uint64_t eventfd_doorbells() const { return eventfd_doorbells_; }
  // Set Features Number of Queues; the allocated count (1-based).
  absl::StatusOr<uint32_t> SetQueueCount(uint32_t count);

  // Command builders. The data buffer is `bytes` long at `iova`,
  // contiguous in guest memory; PRPs (and a PRP list when needed, in a page
  // the driver keeps per SQ slot) are filled in.
  SubmissionEntry ReadCommand(uint32_t nsid, uint64_t slba, uint32_t blocks, uint64_t iova,
                              uint64_t bytes);
  SubmissionEntry WriteCommand(uint32_t nsid, uint64_t slba, uint32_t blocks, uint64_t iova,
                               uint64_t bytes);
  // PRP1/PRP2 for a contiguous buffer; `list_iova` is a page for the list.
  void SetPrps(SubmissionEntry& sqe, uint64_t iova, uint64_t bytes, uint64_t list_iova);

  // ---- Guest memory ----
  // A fresh page-aligned range of guest memory; aborts the test-like caller
  // with an invalid iova (0) when memory runs out.
  uint64_t Allocate(uint64_t bytes, uint64_t alignment = kPage);
  uint8_t* Host(uint64_t iova) { return memory_ + (iova - options_.iova); }
  uint64_t iova() const { return options_.iova; }
  uint64_t memory_bytes() const { return options_.memory_bytes; }
  // A page for PRP lists, reused by every command builder call.
  uint64_t scratch_list() const { return scratch_list_; }

  // The eventfd of MSI-X vector `vector` (for tests).
  int interrupt_fd(uint16_t vector) const { return eventfds_[vector].get(); }
  uint64_t interrupts_seen() const { return interrupts_seen_; }

 private:
  struct Queue {
    bool exists = false;
    uint64_t sq_iova = 0;
    uint64_t cq_iova = 0;
    uint32_t entries = 0;     // SQ
    uint32_t cq_entries = 0;
    uint32_t sq_tail = 0;
    uint32_t sq_head = 0;  // as the controller reported it
    uint32_t cq_head = 0;
    bool phase = true;
  };

  NvmeDriver(Client& client, NvmeDriverOptions options);
  absl::Status Init();
  // One completion if one is there (advances the head; no doorbell).
  std::optional<Completion> Peek(Queue& queue);
  absl::Status WaitInterrupt(uint16_t vector, absl::Time deadline);
  // Writes doorbell `index` (2q: SQ tail, 2q + 1: CQ head) of queue `qid`:
  // to the shadow buffer, and to the device when needed.
  absl::Status Doorbell(uint16_t qid, uint32_t index, uint32_t value);

  Client* client_;  // the device's server: changes with a migration
  NvmeDriverOptions options_;
  UniqueFd memfd_;
  uint8_t* memory_ = nullptr;
  std::vector<uint8_t> plain_memory_;
  uint64_t next_free_ = 0;
  uint64_t scratch_list_ = 0;
  std::array<Queue, kMaxIoQueues + 1> queues_;
  std::vector<UniqueFd> eventfds_;
  std::deque<Completion> stray_;
  uint16_t next_cid_ = 0;
  uint64_t interrupts_seen_ = 0;
  uint64_t shadow_ = 0;
  uint64_t event_index_ = 0;
  uint64_t mmio_doorbells_ = 0;
  uint64_t eventfd_doorbells_ = 0;
  std::optional<IoeventfdWriter> ioeventfds_;
};

}  // namespace vfu::nvme

#endif  // VFU_DEVICES_NVME_NVME_DRIVER_H_
