#include "devices/nvme/nvme_driver.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "vfu/base/status_macros.h"
#include "vfu/device/pci_device_spec.h"

namespace vfu::nvme {
namespace {

constexpr uint32_t kReadWrite = wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite;

uint16_t LoadStatus(const uint8_t* entry) {
  // The controller writes the entry from another process (or thread): read
  // the word holding the phase with acquire semantics, then the rest.
  return std::atomic_ref<const uint16_t>(*reinterpret_cast<const uint16_t*>(entry + 14))
      .load(std::memory_order_acquire);
}

}  // namespace

NvmeDriver::NvmeDriver(Client& client, NvmeDriverOptions options)
    : client_(&client), options_(options) {}

NvmeDriver::~NvmeDriver() {
  if (memfd_ && memory_ != nullptr) ::munmap(memory_, options_.memory_bytes);
}

absl::StatusOr<std::unique_ptr<NvmeDriver>> NvmeDriver::Attach(Client& client,
                                                               NvmeDriverOptions options) {
  std::unique_ptr<NvmeDriver> driver(new NvmeDriver(client, options));
  VFU_RETURN_IF_ERROR(driver->Init());
  return driver;
}

absl::Status NvmeDriver::Init() {
  const uint64_t size = options_.memory_bytes;
  if (size < 16 * kPage || size % kPage != 0) return absl::InvalidArgumentError("memory size");
  if (options_.shared_memory) {
    memfd_.reset(::memfd_create("nvme-guest", MFD_CLOEXEC));
    if (!memfd_) return absl::ErrnoToStatus(errno, "memfd_create");
    if (::ftruncate(memfd_.get(), static_cast<off_t>(size)) != 0) {
      return absl::ErrnoToStatus(errno, "ftruncate");
    }
    void* memory = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd_.get(), 0);
    if (memory == MAP_FAILED) return absl::ErrnoToStatus(errno, "mmap");
    memory_ = static_cast<uint8_t*>(memory);
    VFU_RETURN_IF_ERROR(client_->DmaMap(options_.iova, size, kReadWrite, DuplicateFd(memfd_.get())));
  } else {
    // Page aligned within the vector: one spare page of slack.
    plain_memory_.assign(size + kPage, 0);
    const uintptr_t base = reinterpret_cast<uintptr_t>(plain_memory_.data());
    memory_ = reinterpret_cast<uint8_t*>((base + kPage - 1) & ~(kPage - 1));
    // The device's DMA messages are served on this driver's thread, inside
    // its client calls and Reap's waits: the memory has one writer at a
    // time, as it would behind a real IOMMU-less DMA model.
    VFU_RETURN_IF_ERROR(client_->DmaMapMemory(options_.iova, absl::MakeSpan(memory_, size)));
  }
  scratch_list_ = Allocate(kPage);
  std::vector<UniqueFd> sent;
  for (uint32_t i = 0; i < kMsixVectors; ++i) {
    UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!fd) return absl::ErrnoToStatus(errno, "eventfd");
    sent.push_back(DuplicateFd(fd.get()));
    eventfds_.push_back(std::move(fd));
  }
  if (options_.interrupts) {
    VFU_RETURN_IF_ERROR(client_->SetIrqEventfds(kMsixIrq, 0, std::move(sent)));
  }
  if (options_.ioeventfds) {
    VFU_ASSIGN_OR_RETURN(IoeventfdWriter writer, IoeventfdWriter::Create(*client_, kBar0Region));
    ioeventfds_.emplace(std::move(writer));
  }
  return absl::OkStatus();
}

absl::Status NvmeDriver::ShareWith(Client& destination) {
  if (!options_.shared_memory || options_.ioeventfds) {
    return absl::FailedPreconditionError("only a driver on shared memory without ioeventfds moves");
  }
  VFU_RETURN_IF_ERROR(destination.DmaMap(options_.iova, options_.memory_bytes, kReadWrite,
                                         DuplicateFd(memfd_.get())));
  if (!options_.interrupts) return absl::OkStatus();
  std::vector<UniqueFd> sent;
  for (const UniqueFd& fd : eventfds_) sent.push_back(DuplicateFd(fd.get()));
  return destination.SetIrqEventfds(kMsixIrq, 0, std::move(sent));
}

uint64_t NvmeDriver::Allocate(uint64_t bytes, uint64_t alignment) {
  const uint64_t rounded = (bytes + kPage - 1) & ~(kPage - 1);
  next_free_ = (next_free_ + alignment - 1) & ~(alignment - 1);
  if (next_free_ > options_.memory_bytes || rounded > options_.memory_bytes - next_free_) return 0;
  const uint64_t iova = options_.iova + next_free_;
  next_free_ += rounded;
  std::memset(Host(iova), 0, rounded);
  return iova;
}

// ---- Registers ----

absl::StatusOr<uint32_t> NvmeDriver::Read32(uint64_t offset) {
  VFU_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, client_->RegionRead(kBar0Region, offset, 4));
  if (bytes.size() != 4) return absl::DataLossError("short register read");
  uint32_t value;
  std::memcpy(&value, bytes.data(), 4);
  return value;
}

absl::StatusOr<uint64_t> NvmeDriver::Read64(uint64_t offset) {
  VFU_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, client_->RegionRead(kBar0Region, offset, 8));
  if (bytes.size() != 8) return absl::DataLossError("short register read");
  uint64_t value;
  std::memcpy(&value, bytes.data(), 8);
  return value;
}

absl::Status NvmeDriver::Write32(uint64_t offset, uint32_t value, bool posted) {
  uint8_t bytes[4];
  std::memcpy(bytes, &value, 4);
  return client_->RegionWrite(kBar0Region, offset, bytes, posted);
}

absl::Status NvmeDriver::WaitForCsts(uint32_t mask, uint32_t value) {
  const absl::Time deadline = absl::Now() + options_.timeout;
  for (;;) {
    VFU_ASSIGN_OR_RETURN(uint32_t csts, Read32(kRegCsts));
    if ((csts & mask) == value) return absl::OkStatus();
    if ((csts & kCstsFatal) != 0 && (mask & kCstsFatal) == 0) {
      return absl::InternalError("controller fatal status");
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("CSTS stuck at 0x", absl::Hex(csts)));
    }
  }
}

absl::Status NvmeDriver::Enable(uint32_t cc_extra) {
  Queue& admin = queues_[0];
  if (!admin.exists) {
    admin.entries = options_.admin_entries;
    admin.cq_entries = options_.admin_entries;
    admin.sq_iova = Allocate(admin.entries * kSqEntrySize, kQueueAlignment);
    admin.cq_iova = Allocate(admin.entries * kCqEntrySize, kQueueAlignment);
  }
  std::memset(Host(admin.cq_iova), 0, admin.cq_entries * kCqEntrySize);
  admin.exists = true;
  admin.sq_tail = admin.sq_head = admin.cq_head = 0;
  admin.phase = true;
  const uint32_t aqa = (admin.entries - 1) | ((admin.entries - 1) << 16);
  VFU_RETURN_IF_ERROR(Write32(kRegAqa, aqa));
  VFU_RETURN_IF_ERROR(Write32(kRegAsq, static_cast<uint32_t>(admin.sq_iova)));
  VFU_RETURN_IF_ERROR(Write32(kRegAsq + 4, static_cast<uint32_t>(admin.sq_iova >> 32)));
  VFU_RETURN_IF_ERROR(Write32(kRegAcq, static_cast<uint32_t>(admin.cq_iova)));
  VFU_RETURN_IF_ERROR(Write32(kRegAcq + 4, static_cast<uint32_t>(admin.cq_iova >> 32)));
  const uint32_t cc = (kSqEntrySizeLog2 << 16) | (kCqEntrySizeLog2 << 20) | cc_extra;
  VFU_RETURN_IF_ERROR(Write32(kRegCc, cc));
  VFU_RETURN_IF_ERROR(Write32(kRegCc, cc | kCcEnable));
  return WaitForCsts(kCstsReady, kCstsReady);
}

absl::Status NvmeDriver::Disable() {
  VFU_ASSIGN_OR_RETURN(uint32_t cc, Read32(kRegCc));
  VFU_RETURN_IF_ERROR(Write32(kRegCc, cc & ~kCcEnable));
  // A reset is also how a fatal status is cleared: wait for both to go.
  VFU_RETURN_IF_ERROR(WaitForCsts(kCstsReady | kCstsFatal, 0));
  for (uint32_t q = 1; q <= kMaxIoQueues; ++q) queues_[q].exists = false;
  // A reset forgets the doorbell buffer.
  shadow_ = event_index_ = 0;
  return absl::OkStatus();
}

absl::Status NvmeDriver::Shutdown() {
  VFU_ASSIGN_OR_RETURN(uint32_t cc, Read32(kRegCc));
  VFU_RETURN_IF_ERROR(Write32(kRegCc, (cc & ~(3u << 14)) | (1u << 14)));
  return WaitForCsts(3u << kCstsShstShift, kShstComplete << kCstsShstShift);
}

// ---- Queues ----

absl::Status NvmeDriver::Submit(uint16_t qid, const SubmissionEntry& sqe, bool ring) {
  if (qid > kMaxIoQueues || !queues_[qid].exists) return absl::NotFoundError("no such queue");
  Queue& queue = queues_[qid];
  const uint32_t next = (queue.sq_tail + 1) % queue.entries;
  if (next == queue.sq_head) return absl::FailedPreconditionError("submission queue full");
  std::memcpy(Host(queue.sq_iova + uint64_t{queue.sq_tail} * kSqEntrySize), &sqe, sizeof sqe);
  queue.sq_tail = next;
  if (ring) return RingSubmission(qid);
  return absl::OkStatus();
}

absl::Status NvmeDriver::RingSubmission(uint16_t qid) {
  return Doorbell(qid, 2 * uint32_t{qid}, queues_[qid].sq_tail);
}

absl::Status NvmeDriver::Doorbell(uint16_t qid, uint32_t index, uint32_t value) {
  std::atomic_thread_fence(std::memory_order_release);
  if (shadow_ != 0 && qid != 0) {
    auto* shadow = reinterpret_cast<uint32_t*>(Host(shadow_)) + index;
    auto* event_index = reinterpret_cast<uint32_t*>(Host(event_index_)) + index;
    const uint32_t old = std::atomic_ref<uint32_t>(*shadow).load(std::memory_order_relaxed);
    std::atomic_ref<uint32_t>(*shadow).store(value, std::memory_order_release);
    // Shadow store before the EventIdx load (the controller does the mirror
    // image), so one side always sees the other.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    const uint32_t event = std::atomic_ref<uint32_t>(*event_index).load(std::memory_order_acquire);
    // Ring only when the new value moved past EventIdx: EventIdx in
    // [old, value) modulo 2^16.
    const uint16_t distance_to_event = static_cast<uint16_t>(value - event - 1);
    const uint16_t moved = static_cast<uint16_t>(value - old);
    if (distance_to_event >= moved) return absl::OkStatus();
  }
  ++mmio_doorbells_;
  if (shadow_ != 0 && qid != 0 && ioeventfds_.has_value()) {
    // The value travels in the shadow buffer; the eventfd only wakes.
    uint8_t bytes[4];
    std::memcpy(bytes, &value, 4);
    VFU_ASSIGN_OR_RETURN(IoeventfdWriter::Path path,
                         ioeventfds_->Write(kDoorbellBase + 4 * uint64_t{index}, bytes, true));
    if (path == IoeventfdWriter::Path::kEventfd) ++eventfd_doorbells_;
    return absl::OkStatus();
  }
  return Write32(kDoorbellBase + 4 * uint64_t{index}, value, /*posted=*/true);
}

absl::Status NvmeDriver::EnableShadowDoorbells() {
  const uint64_t shadow = Allocate(kPage, kQueueAlignment);
  const uint64_t event_index = Allocate(kPage, kQueueAlignment);
  if (shadow == 0 || event_index == 0) return absl::ResourceExhaustedError("memory");
  SubmissionEntry sqe = {};
  sqe.opcode = kAdminDoorbellBufferConfig;
  sqe.prp1 = shadow;
  sqe.prp2 = event_index;
  VFU_ASSIGN_OR_RETURN(Completion done, Run(0, sqe));
  if (done.status != kSuccess) {
    return absl::InternalError(
        absl::StrCat("Doorbell Buffer Config: status 0x", absl::Hex(done.status)));
  }
  shadow_ = shadow;
  event_index_ = event_index;
  return absl::OkStatus();
}

std::optional<Completion> NvmeDriver::Peek(Queue& queue) {
  const uint8_t* entry = Host(queue.cq_iova + uint64_t{queue.cq_head} * kCqEntrySize);
  const uint16_t status = LoadStatus(entry);
  if (((status & 1) != 0) != queue.phase) return std::nullopt;
  CompletionEntry raw;
  std::memcpy(&raw, entry, sizeof raw);
  if (++queue.cq_head == queue.cq_entries) {
    queue.cq_head = 0;
    queue.phase = !queue.phase;
  }
  queue.sq_head = raw.sq_head;
  return Completion{.dw0 = raw.dw0,
                    .sq_head = raw.sq_head,
                    .sq_id = raw.sq_id,
                    .cid = raw.cid,
                    .status = static_cast<uint16_t>(status >> 1)};
}

absl::Status NvmeDriver::WaitInterrupt(uint16_t vector, absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return absl::DeadlineExceededError("no completion");
  pollfd p = {.fd = eventfds_[vector].get(), .events = POLLIN, .revents = 0};
  // Bounded slices: a completion written while interrupts are off (or
  // coalesced away) is still found by the next look at the queue.
  const int slice_ms = static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left), 100));
  if (::poll(&p, 1, std::max(slice_ms, 1)) == 1) {
    uint64_t count = 0;
    if (::read(p.fd, &count, sizeof count) == sizeof count) interrupts_seen_ += count;
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> NvmeDriver::Reap(uint16_t qid, absl::Span<Completion> out, bool wait) {
  if (qid > kMaxIoQueues || !queues_[qid].exists) return absl::NotFoundError("no such queue");
  Queue& queue = queues_[qid];
  const absl::Time deadline = absl::Now() + options_.timeout;
  size_t n = 0;
  for (;;) {
    // fd-less memory: completions arrive as DMA_WRITE messages; serve
    // what came.
    if (!options_.shared_memory) VFU_RETURN_IF_ERROR(client_->Poll(absl::ZeroDuration()));
    while (n < out.size()) {
      std::optional<Completion> completion = Peek(queue);
      if (!completion) break;
      out[n++] = *completion;
    }
    if (n > 0 || !wait) break;
    if (!options_.shared_memory) {
      if (absl::Now() > deadline) return absl::DeadlineExceededError("no completion");
      VFU_RETURN_IF_ERROR(client_->Poll(absl::Milliseconds(1)));
    } else if (options_.interrupts) {
      VFU_RETURN_IF_ERROR(WaitInterrupt(qid, deadline));
    } else if (absl::Now() > deadline) {
      return absl::DeadlineExceededError("no completion");
    }
  }
  if (n > 0) VFU_RETURN_IF_ERROR(Doorbell(qid, 2 * uint32_t{qid} + 1, queue.cq_head));
  return n;
}

absl::StatusOr<Completion> NvmeDriver::Run(uint16_t qid, SubmissionEntry sqe) {
  sqe.cid = next_cid_++;
  VFU_RETURN_IF_ERROR(Submit(qid, sqe));
  for (;;) {
    Completion completion;
    VFU_ASSIGN_OR_RETURN(size_t n, Reap(qid, absl::MakeSpan(&completion, 1), /*wait=*/true));
    if (n == 0) continue;
    if (completion.cid == sqe.cid) return completion;
    stray_.push_back(completion);
  }
}

std::optional<Completion> NvmeDriver::TakeStray() {
  if (stray_.empty()) return std::nullopt;
  Completion completion = stray_.front();
  stray_.pop_front();
  return completion;
}

absl::Status NvmeDriver::CreateIoQueuePair(uint16_t qid, uint32_t entries, uint32_t cq_entries) {
  if (qid == 0 || qid > kMaxIoQueues) return absl::InvalidArgumentError("queue id");
  if (cq_entries == 0) cq_entries = entries;
  Queue queue;
  queue.entries = entries;
  queue.cq_entries = cq_entries;
  queue.sq_iova = Allocate(uint64_t{entries} * kSqEntrySize, kQueueAlignment);
  queue.cq_iova = Allocate(uint64_t{cq_entries} * kCqEntrySize, kQueueAlignment);
  if (queue.sq_iova == 0 || queue.cq_iova == 0) return absl::ResourceExhaustedError("memory");
  SubmissionEntry cq = {};
  cq.opcode = kAdminCreateCq;
  cq.prp1 = queue.cq_iova;
  cq.cdw10 = qid | ((cq_entries - 1) << 16);
  cq.cdw11 = 1 | 2 | (uint32_t{qid} << 16);
  VFU_ASSIGN_OR_RETURN(Completion done, Run(0, cq));
  if (done.status != kSuccess) {
    return absl::InternalError(absl::StrCat("Create I/O CQ: status 0x", absl::Hex(done.status)));
  }
  SubmissionEntry sq = {};
  sq.opcode = kAdminCreateSq;
  sq.prp1 = queue.sq_iova;
  sq.cdw10 = qid | ((entries - 1) << 16);
  sq.cdw11 = 1 | (uint32_t{qid} << 16);
  VFU_ASSIGN_OR_RETURN(done, Run(0, sq));
  if (done.status != kSuccess) {
    return absl::InternalError(absl::StrCat("Create I/O SQ: status 0x", absl::Hex(done.status)));
  }
  queue.exists = true;
  queues_[qid] = queue;
  return absl::OkStatus();
}

absl::Status NvmeDriver::DeleteIoQueuePair(uint16_t qid) {
  SubmissionEntry sq = {};
  sq.opcode = kAdminDeleteSq;
  sq.cdw10 = qid;
  VFU_ASSIGN_OR_RETURN(Completion done, Run(0, sq));
  if (done.status != kSuccess) return absl::InternalError("Delete I/O SQ failed");
  SubmissionEntry cq = {};
  cq.opcode = kAdminDeleteCq;
  cq.cdw10 = qid;
  VFU_ASSIGN_OR_RETURN(done, Run(0, cq));
  if (done.status != kSuccess) return absl::InternalError("Delete I/O CQ failed");
  queues_[qid].exists = false;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint8_t>> NvmeDriver::Identify(uint32_t cns, uint32_t nsid) {
  const uint64_t page = scratch_list_;
  SubmissionEntry sqe = {};
  sqe.opcode = kAdminIdentify;
  sqe.nsid = nsid;
  sqe.prp1 = page;
  sqe.cdw10 = cns;
  VFU_ASSIGN_OR_RETURN(Completion done, Run(0, sqe));
  if (done.status != kSuccess) {
    return absl::InternalError(absl::StrCat("Identify: status 0x", absl::Hex(done.status)));
  }
  // Reading through the client orders us after the device's DMA writes
  // when they travelled as messages.
  return std::vector<uint8_t>(Host(page), Host(page) + kIdentifySize);
}

absl::StatusOr<uint32_t> NvmeDriver::SetQueueCount(uint32_t count) {
  SubmissionEntry sqe = {};
  sqe.opcode = kAdminSetFeatures;
  sqe.cdw10 = kFeatNumberOfQueues;
  sqe.cdw11 = (count - 1) | ((count - 1) << 16);
  VFU_ASSIGN_OR_RETURN(Completion done, Run(0, sqe));
  if (done.status != kSuccess) return absl::InternalError("Set Features Number of Queues failed");
  return (done.dw0 & 0xffff) + 1;
}

void NvmeDriver::SetPrps(SubmissionEntry& sqe, uint64_t iova, uint64_t bytes,
                         uint64_t list_iova) {
  sqe.prp1 = iova;
  sqe.prp2 = 0;
  const uint64_t first = kPage - (iova & (kPage - 1));
  if (bytes <= first) return;
  const uint64_t rest = bytes - first;
  const uint64_t second = iova + first;
  if (rest <= kPage) {
    sqe.prp2 = second;
    return;
  }
  // One list page holds 512 entries: enough for any transfer up to MDTS.
  auto* list = reinterpret_cast<uint64_t*>(Host(list_iova));
  const uint64_t pages = (rest + kPage - 1) / kPage;
  for (uint64_t i = 0; i < pages; ++i) list[i] = second + i * kPage;
  sqe.prp2 = list_iova;
}

SubmissionEntry NvmeDriver::ReadCommand(uint32_t nsid, uint64_t slba, uint32_t blocks,
                                        uint64_t iova, uint64_t bytes) {
  SubmissionEntry sqe = {};
  sqe.opcode = kNvmRead;
  sqe.nsid = nsid;
  sqe.cdw10 = static_cast<uint32_t>(slba);
  sqe.cdw11 = static_cast<uint32_t>(slba >> 32);
  sqe.cdw12 = blocks - 1;
  SetPrps(sqe, iova, bytes, scratch_list_);
  return sqe;
}

SubmissionEntry NvmeDriver::WriteCommand(uint32_t nsid, uint64_t slba, uint32_t blocks,
                                         uint64_t iova, uint64_t bytes) {
  SubmissionEntry sqe = ReadCommand(nsid, slba, blocks, iova, bytes);
  sqe.opcode = kNvmWrite;
  return sqe;
}

}  // namespace vfu::nvme
