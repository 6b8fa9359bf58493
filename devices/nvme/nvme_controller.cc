#include "devices/nvme/nvme_controller.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "devices/common/register_bytes.h"
#include "vfu/base/log.h"

namespace vfu::nvme {
namespace {

// Commands one I/O queue runs before its thread moves to the next queue.
constexpr uint32_t kBatch = 32;
// Entries fetched with one read of the submission queue.
constexpr uint32_t kFetch = 16;

PciDeviceSpec NvmeSpec() {
  PciDeviceSpec spec;
  spec.identity = {.vendor_id = kVendorId,
                   .device_id = kDeviceId,
                   .subsystem_vendor_id = kVendorId,
                   .subsystem_id = kDeviceId,
                   .class_code = kClassCode,
                   .revision = kRevision,
                   .interrupt_pin = 1};
  spec.express = true;
  spec.power_management = true;
  spec.bars[0].size = kBar0Size;
  spec.bars[0].kind = pci::BarKind::kMemory64;
  // Doorbells of I/O queues 1 .. kIoeventfdQueues on ioeventfds (SQ tails,
  // then CQ heads). A ring carries no value, so it only helps shadowed
  // queues; trapped writes keep coming with their value.
  for (uint32_t qid = 1; qid <= kIoeventfdQueues; ++qid) {
    spec.ioeventfds.push_back(
        {.region = kBar0Region, .offset = SqTailDoorbell(qid), .size = 4, .trapped_write_rings = false});
  }
  for (uint32_t qid = 1; qid <= kIoeventfdQueues; ++qid) {
    spec.ioeventfds.push_back(
        {.region = kBar0Region, .offset = CqHeadDoorbell(qid), .size = 4, .trapped_write_rings = false});
  }
  spec.interrupts = {.intx = true,
                     .msi_vectors = 1,
                     .msix_vectors = kMsixVectors,
                     .msix_bar = 0,
                     .msix_table_offset = kMsixTableOffset,
                     .msix_pba_offset = kMsixPbaOffset};
  spec.migration = MigrationSpec{.device_type = "vfu-nvme", .device_version = 1};
  return spec;
}

std::vector<NvmeNamespace*> Pointers(const std::vector<std::unique_ptr<NvmeNamespace>>& list) {
  std::vector<NvmeNamespace*> out;
  for (const auto& ns : list) out.push_back(ns.get());
  return out;
}

ControllerIdentity WithDefaults(ControllerIdentity identity) {
  static std::atomic<uint32_t> instances{0};
  if (identity.serial.empty()) {
    identity.serial = absl::StrCat("VFU", ::getpid(), "-", instances.fetch_add(1));
  }
  if (identity.model.empty()) identity.model = "vfu NVMe controller";
  if (identity.firmware.empty()) identity.firmware = "1.0";
  return identity;
}

uint32_t Low(uint64_t value) { return static_cast<uint32_t>(value); }
uint32_t High(uint64_t value) { return static_cast<uint32_t>(value >> 32); }
uint64_t Merge(uint64_t old, uint32_t value, uint32_t mask, bool high) {
  const uint64_t shift = high ? 32 : 0;
  const uint64_t wide_mask = uint64_t{mask} << shift;
  return (old & ~wide_mask) | ((uint64_t{value} << shift) & wide_mask);
}

}  // namespace

absl::StatusOr<std::unique_ptr<NvmeController>> NvmeController::Create(
    const std::vector<std::string>& namespace_paths, uint32_t lba_size, uint32_t io_threads) {
  if (namespace_paths.empty()) return absl::InvalidArgumentError("no namespace");
  if (io_threads == 0 || io_threads > kMaxIoQueues) {
    return absl::InvalidArgumentError("io_threads must be 1 .. 64");
  }
  NvmeControllerOptions options;
  for (const std::string& path : namespace_paths) {
    VFU_ASSIGN_OR_RETURN(std::unique_ptr<NvmeNamespace> ns, NvmeNamespace::Open(path, lba_size));
    options.namespaces.push_back(std::move(ns));
  }
  options.io_threads = io_threads;
  return std::make_unique<NvmeController>(std::move(options));
}

NvmeController::NvmeController(NvmeControllerOptions options)
    : PciDevice(NvmeSpec()),
      namespaces_(std::move(options.namespaces)),
      nvm_(Pointers(namespaces_)),
      admin_(WithDefaults(std::move(options.identity)), Pointers(namespaces_), *this) {
  const uint32_t threads = std::clamp<uint32_t>(options.io_threads, 1, kMaxIoQueues);
  for (uint32_t i = 0; i < threads; ++i) io_threads_.push_back(std::make_unique<IoThread>());
  for (auto& thread : io_threads_) {
    IoThread* t = thread.get();
    t->thread = std::thread([this, t] { IoLoop(*t); });
  }
  admin_thread_ = std::thread([this] { AdminLoop(); });
  stop_doorbells_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (stop_doorbells_) doorbell_thread_ = std::thread([this] { DoorbellLoop(); });
}

NvmeController::~NvmeController() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    admin_cv_.SignalAll();
  }
  admin_thread_.join();
  if (doorbell_thread_.joinable()) {
    const uint64_t one = 1;
    (void)!::write(stop_doorbells_.get(), &one, sizeof one);
    doorbell_thread_.join();
  }
  for (auto& thread : io_threads_) {
    {
      absl::MutexLock lock(&thread->mu);
      thread->stop = true;
      thread->cv.SignalAll();
    }
    thread->thread.join();
  }
  coalescer_.Stop();
}

// ---- Registers ----

absl::Status NvmeController::OnRegionRead(uint32_t region, uint64_t offset,
                                          absl::Span<uint8_t> out) {
  if (region != kBar0Region) return PciDevice::OnRegionRead(region, offset, out);
  if (offset >= kDoorbellBase) {
    // Doorbells are write-only; reading them is harmless.
    std::fill(out.begin(), out.end(), 0);
    return absl::OkStatus();
  }
  absl::MutexLock lock(&mu_);
  for (const devices::RegisterSlice& slice : devices::RegisterSlices(offset, out.size())) {
    slice.Scatter(ReadRegisterLocked(slice.reg), out);
  }
  return absl::OkStatus();
}

uint32_t NvmeController::ReadRegisterLocked(uint64_t reg) const {
  switch (reg) {
    case kRegCap:
      return Low(kCapValue);
    case kRegCap + 4:
      return High(kCapValue);
    case kRegVs:
      return kVersion14;
    case kRegIntms:
    case kRegIntmc:
      return interrupt_mask_.load(std::memory_order_relaxed);
    case kRegCc:
      return cc_;
    case kRegCsts:
      return (ready_ ? kCstsReady : 0) | (fatal_ ? kCstsFatal : 0) |
             (shutdown_state_ << kCstsShstShift);
    case kRegAqa:
      return aqa_;
    case kRegAsq:
      return Low(asq_);
    case kRegAsq + 4:
      return High(asq_);
    case kRegAcq:
      return Low(acq_);
    case kRegAcq + 4:
      return High(acq_);
    default:
      return 0;  // reserved, CMB, boot partitions: absent
  }
}

absl::Status NvmeController::OnRegionWrite(uint32_t region, uint64_t offset,
                                           absl::Span<const uint8_t> data) {
  if (region != kBar0Region) return PciDevice::OnRegionWrite(region, offset, data);
  if (offset >= kDoorbellBase) {
    if (offset >= kDoorbellEnd || (offset & 3) != 0 || data.size() != 4) {
      VFU_LOG_RATE_LIMITED(kWarning, "nvme: ignoring a ", data.size(), "-byte doorbell write at 0x",
                           absl::Hex(offset));
      ReportEvent(AerResult(kAerTypeError, kAerInfoInvalidDoorbell, kLogError));
      return absl::OkStatus();
    }
    uint32_t value;
    std::memcpy(&value, data.data(), 4);
    WriteDoorbell(offset, value);
    return absl::OkStatus();
  }
  absl::MutexLock lock(&mu_);
  for (const devices::RegisterSlice& slice : devices::RegisterSlices(offset, data.size())) {
    WriteRegisterLocked(slice.reg, slice.Gather(data), slice.mask());
  }
  return absl::OkStatus();
}

void NvmeController::WriteRegisterLocked(uint64_t reg, uint32_t value, uint32_t mask) {
  switch (reg) {
    case kRegIntms:
      interrupt_mask_.fetch_or(value & mask & 1, std::memory_order_relaxed);
      return;
    case kRegIntmc: {
      const uint32_t cleared = value & mask & 1;
      interrupt_mask_.fetch_and(~cleared, std::memory_order_relaxed);
      // An unmasked vector with entries waiting is signalled now.
      if (cleared != 0) {
        unmasked_ = true;
        KickAdminLocked();
      }
      return;
    }
    case kRegCc: {
      const uint32_t writable = mask & kCcWritableMask;
      const uint32_t next = (cc_ & ~writable) | (value & writable);
      if (next != cc_) {
        cc_ = next;
        KickAdminLocked();
      }
      return;
    }
    case kRegAqa:
      aqa_ = (aqa_ & ~mask) | (value & mask & kAqaMask);
      return;
    case kRegAsq:
    case kRegAcq:
    case kRegAsq + 4:
    case kRegAcq + 4: {
      uint64_t& target = reg < kRegAcq ? asq_ : acq_;
      const bool high = (reg & 4) != 0;
      // Bits 11:0 are reserved: queues are page aligned.
      target = Merge(target, value, high ? mask : mask & ~0xfffu, high);
      return;
    }
    default:
      return;  // read-only or reserved: ignored
  }
}

void NvmeController::KickAdminLocked() {
  admin_kicked_ = true;
  admin_cv_.Signal();
}

void NvmeController::Kick(IoThread& thread) {
  absl::MutexLock lock(&thread.mu);
  thread.kicked = true;
  thread.cv.Signal();
}

void NvmeController::WriteDoorbell(uint64_t offset, uint32_t value) {
  const uint32_t index = static_cast<uint32_t>((offset - kDoorbellBase) / 4);
  const uint16_t qid = static_cast<uint16_t>(index / 2);
  const bool completion = (index & 1) != 0;
  bool known = false;
  bool valid = false;
  {
    absl::ReaderMutexLock lock(&queues_mu_);
    if (qid == 0) {
      if (admin_sq_ != nullptr) {
        known = true;
        valid = completion ? admin_sq_->cq().SetHead(value) : admin_sq_->SetTail(value);
      }
    } else if (completion) {
      if (cqs_[qid] != nullptr) {
        known = true;
        // A shadowed queue takes its head from the shadow buffer, which is
        // never older than a posted doorbell still on its way: the write is
        // only a wake-up (taking its value could move the head back).
        valid = cqs_[qid]->shadowed() ? value < cqs_[qid]->size() : cqs_[qid]->SetHead(value);
      }
    } else if (sqs_[qid] != nullptr) {
      known = true;
      valid = sqs_[qid]->shadowed() ? value < sqs_[qid]->size() : sqs_[qid]->SetTail(value);
    }
  }
  if (!known || !valid) {
    VFU_LOG_RATE_LIMITED(kWarning, "nvme: ignoring doorbell write ", value, " for ",
                         completion ? "CQ " : "SQ ", qid, known ? " (out of range)" : " (no queue)");
    ReportEvent(AerResult(kAerTypeError,
                          known ? kAerInfoInvalidDoorbellValue : kAerInfoInvalidDoorbell,
                          kLogError));
    return;
  }
  if (completion) UpdateIntxLevel();
  if (qid == 0) {
    absl::MutexLock lock(&mu_);
    KickAdminLocked();
  } else if (completion) {
    // Slots freed: every thread that may wait for this queue looks again.
    for (auto& thread : io_threads_) Kick(*thread);
  } else {
    Kick(ThreadFor(qid));
  }
}

void NvmeController::ReportEvent(uint32_t event) {
  absl::MutexLock lock(&mu_);
  if (events_.size() >= AdminCommandSet::kMaxQueuedEvents) return;
  events_.push_back(event);
  KickAdminLocked();
}

absl::Status NvmeController::OnReset() {
  absl::MutexLock lock(&mu_);
  cc_ = 0;
  aqa_ = 0;
  asq_ = 0;
  acq_ = 0;
  interrupt_mask_.store(0, std::memory_order_relaxed);
  // The admin thread quiesces the queues; CSTS.RDY reads 1 until it has.
  ++reset_requests_;
  KickAdminLocked();
  // A reset ends any migration: the device runs (once unquiesced).
  migration_stopped_ = false;
  ResumeLocked();
  return absl::OkStatus();
}

void NvmeController::OnClientDetached() {
  absl::MutexLock lock(&mu_);
  cc_ = 0;
  aqa_ = 0;
  asq_ = 0;
  acq_ = 0;
  interrupt_mask_.store(0, std::memory_order_relaxed);
  const uint64_t request = ++reset_requests_;
  KickAdminLocked();
  while (resets_done_ < request && !stop_) admin_cv_.Wait(&mu_);
}

// ---- Quiesce ----

void NvmeController::OnQuiesce(QuiesceReason reason, QuiesceDone done) {
  // Completions waiting for a coalesced interrupt get it now, before the
  // quiesce can complete (a migration then carries no pending coalescing);
  // batches still running signal at once until the threads run again.
  coalescer_.Pause();
  QuiesceDone now;
  QuiesceDone abandoned;
  {
    absl::MutexLock lock(&mu_);
    quiesced_ = true;
    // A quiesce the engine stopped waiting for: its late answer is ignored.
    abandoned = std::move(quiesce_done_);
    quiesce_done_ = nullptr;
    unparked_ = 0;
    if (admin_busy_) {
      admin_owes_park_ = true;
      ++unparked_;
    }
    for (auto& thread : io_threads_) {
      absl::MutexLock thread_lock(&thread->mu);
      thread->paused = true;
      thread->owes_park = thread->busy;
      if (thread->busy) ++unparked_;
    }
    if (unparked_ == 0) {
      now = std::move(done);
    } else {
      quiesce_done_ = std::move(done);
    }
  }
  if (abandoned) std::move(abandoned)(absl::OkStatus());
  if (now) std::move(now)(absl::OkStatus());
}

QuiesceDone NvmeController::ParkedLocked() {
  if (unparked_ == 0 || --unparked_ != 0) return nullptr;
  QuiesceDone done = std::move(quiesce_done_);
  quiesce_done_ = nullptr;
  return done;
}

void NvmeController::ReportParked() {
  QuiesceDone done;
  {
    absl::MutexLock lock(&mu_);
    done = ParkedLocked();
  }
  if (done) std::move(done)(absl::OkStatus());
}

void NvmeController::OnUnquiesce() {
  absl::MutexLock lock(&mu_);
  quiesced_ = false;
  ResumeLocked();
}

void NvmeController::ResumeLocked() {
  if (PausedLocked()) return;
  coalescer_.Resume();
  for (auto& thread : io_threads_) {
    absl::MutexLock thread_lock(&thread->mu);
    thread->paused = false;
    thread->kicked = true;  // work may have arrived while parked
    thread->cv.Signal();
  }
  KickAdminLocked();
}

// ---- Admin thread ----

void NvmeController::AdminLoop() {
  bool more = false;
  for (;;) {
    QuiesceDone parked;
    bool reset = false;
    bool enable = false;
    bool disable = false;
    bool shutdown = false;
    uint64_t reset_target = 0;
    std::vector<uint32_t> events;
    bool unmasked = false;
    bool paused = false;
    {
      absl::MutexLock lock(&mu_);
      if (admin_busy_) {
        admin_busy_ = false;
        if (admin_owes_park_) {
          admin_owes_park_ = false;
          parked = ParkedLocked();
        }
      }
    }
    if (parked) std::move(parked)(absl::OkStatus());
    {
      absl::MutexLock lock(&mu_);
      while (!stop_ && !admin_kicked_ && !(more && !PausedLocked())) admin_cv_.Wait(&mu_);
      if (stop_) break;
      admin_kicked_ = false;
      // Paused: only what touches no client memory (resets, enable,
      // shutdown); events and the admin queue wait.
      paused = PausedLocked();
      admin_busy_ = !paused;
      reset = reset_requests_ != resets_done_;
      reset_target = reset_requests_;
      const bool want_enabled = (cc_ & kCcEnable) != 0;
      disable = !reset && (enabled_ || fatal_) && !want_enabled;
      enable = !reset && !enabled_ && want_enabled && !ready_ && !fatal_;
      shutdown = !reset && enabled_ && CcShn(cc_) != kShnNone && shutdown_state_ == kShstNormal;
      if (!paused) {
        events.swap(events_);
        unmasked = unmasked_;
        unmasked_ = false;
      }
    }
    if (reset || disable) Disable();
    if (reset) {
      absl::MutexLock lock(&mu_);
      resets_done_ = reset_target;
      admin_cv_.SignalAll();
      // A driver may have set CC.EN again meanwhile.
      admin_kicked_ = true;
      continue;
    }
    if (enable) Enable();
    if (shutdown) Shutdown();
    if (paused) {
      more = false;
      continue;
    }
    for (uint32_t event : events) {
      if (std::optional<uint16_t> cid = admin_.QueueEvent(event)) {
        PostEvent(*cid, event);
      }
    }
    // INTx/MSI unmasked: entries still unconsumed need their interrupt.
    if (unmasked && (interrupt_mask_.load(std::memory_order_relaxed) & 1) == 0 &&
        interrupt_route() != InterruptRouter::Route::kMsix) {
      std::vector<std::shared_ptr<CompletionQueue>> unconsumed;
      {
        absl::ReaderMutexLock lock(&queues_mu_);
        if (admin_sq_ != nullptr) unconsumed.push_back(admin_sq_->shared_cq());
        for (const auto& cq : cqs_) {
          if (cq != nullptr) unconsumed.push_back(cq);
        }
      }
      for (const auto& cq : unconsumed) {
        if (cq->irq_enabled() && cq->HasUnconsumed()) {
          coalescer_.SignalNow(cq->vector());
          break;
        }
      }
    }
    PostPendingEvents();
    more = ServeAdminQueue();
  }
}

void NvmeController::Enable() {
  uint32_t cc;
  uint32_t aqa;
  uint64_t asq;
  uint64_t acq;
  {
    absl::MutexLock lock(&mu_);
    cc = cc_;
    aqa = aqa_;
    asq = asq_;
    acq = acq_;
  }
  const uint32_t sq_size = (aqa & 0xfff) + 1;
  const uint32_t cq_size = ((aqa >> 16) & 0xfff) + 1;
  const uint64_t page = uint64_t{4096} << CcMps(cc);
  const char* invalid = nullptr;
  if (CcMps(cc) < kMpsMin || CcMps(cc) > kMpsMax) invalid = "CC.MPS out of the CAP range";
  if (CcCss(cc) != 0) invalid = "CC.CSS selects no supported command set";
  if (sq_size < 2 || cq_size < 2) invalid = "admin queue of one entry";
  if ((asq & (page - 1)) != 0 || (acq & (page - 1)) != 0) invalid = "admin queue misaligned";
  if (invalid != nullptr) {
    Fatal(invalid);
    return;
  }
  page_size_.store(page, std::memory_order_relaxed);
  admin_dma_ = dma();
  auto cq = std::make_shared<CompletionQueue>(0, acq, cq_size, 0, true);
  auto sq = std::make_shared<SubmissionQueue>(0, asq, sq_size, std::move(cq));
  {
    absl::MutexLock lock(&queues_mu_);
    admin_sq_ = std::move(sq);
  }
  absl::MutexLock lock(&mu_);
  enabled_ = true;
  ready_ = true;
}

void NvmeController::DetachQueue(const std::shared_ptr<SubmissionQueue>& queue) {
  IoThread& thread = ThreadFor(queue->id());
  absl::MutexLock lock(&thread.mu);
  auto& queues = thread.queues;
  queues.erase(std::remove(queues.begin(), queues.end(), queue), queues.end());
  if (queues.empty()) thread.dma.reset();
  const uint64_t batch = thread.batches;
  while (thread.busy && thread.batches == batch) thread.cv.Wait(&thread.mu);
}

void NvmeController::Disable() {
  std::vector<std::shared_ptr<SubmissionQueue>> sqs;
  std::vector<std::shared_ptr<CompletionQueue>> cqs;
  {
    absl::MutexLock lock(&queues_mu_);
    for (auto& sq : sqs_) {
      if (sq != nullptr) sqs.push_back(std::move(sq));
      sq = nullptr;
    }
    for (auto& cq : cqs_) {
      if (cq != nullptr) cqs.push_back(std::move(cq));
      cq = nullptr;
    }
    admin_sq_ = nullptr;
    shadow_buffer_ = 0;
    event_index_buffer_ = 0;
  }
  // Completion queues die first: a command that ends while its thread is
  // being waited for posts nothing.
  for (const auto& cq : cqs) cq->Kill();
  for (const auto& sq : sqs) DetachQueue(sq);
  admin_.Reset();
  // No thread completes anything now: coalesced interrupts still waiting
  // are dropped with their completions' queues, and no timer fires after.
  coalescer_.Reset();
  aer_completions_.clear();  // a reset drops outstanding requests uncompleted
  write_cache_enabled_.store(admin_.write_cache_enabled(), std::memory_order_relaxed);
  admin_dma_ = nullptr;
  absl::MutexLock lock(&mu_);
  enabled_ = false;
  ready_ = false;
  fatal_ = false;
  shutdown_state_ = kShstNormal;
}

void NvmeController::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    shutdown_state_ = kShstOccurring;
  }
  for (const auto& ns : namespaces_) {
    absl::Status status = ns->Flush();
    if (!status.ok()) VFU_LOG(kWarning, "nvme: shutdown flush: ", status.message());
  }
  absl::MutexLock lock(&mu_);
  shutdown_state_ = kShstComplete;
}

bool NvmeController::ServeAdminQueue() {
  std::shared_ptr<SubmissionQueue> sq;
  {
    absl::ReaderMutexLock lock(&queues_mu_);
    sq = admin_sq_;
  }
  if (sq == nullptr || admin_dma_ == nullptr) return false;
  uint32_t done = 0;
  bool posted = false;
  while (done < kBatch && sq->Pending() > 0) {
    if (!sq->cq().Reserve()) return false;  // the CQ head doorbell wakes us
    SubmissionEntry sqe;
    absl::StatusOr<size_t> fetched = sq->Fetch(*admin_dma_, absl::MakeSpan(&sqe, 1));
    if (!fetched.ok() || *fetched != 1) {
      sq->cq().Unreserve();
      Fatal("cannot read the admin submission queue");
      return false;
    }
    sq->Advance(1);
    ++done;
    AdminCommandSet::Result result = admin_.Execute(sqe, *admin_dma_, admin_data_);
    write_cache_enabled_.store(admin_.write_cache_enabled(), std::memory_order_relaxed);
    if (sqe.opcode == kAdminSetFeatures) ApplyCoalescing();
    if (result.deferred) {
      sq->cq().Unreserve();
      continue;
    }
    const CompletionEntry cqe = {.dw0 = result.dw0,
                                 .dw1 = 0,
                                 .sq_head = static_cast<uint16_t>(sq->head()),
                                 .sq_id = 0,
                                 .cid = sqe.cid,
                                 .status = static_cast<uint16_t>(result.status << 1)};
    absl::Status status = sq->cq().Post(*admin_dma_, cqe);
    if (!status.ok()) {
      if (status.code() != absl::StatusCode::kFailedPrecondition) {
        Fatal("cannot write the admin completion queue");
      }
      return false;
    }
    posted = true;
  }
  // The admin CQ is never coalesced (its interrupt also covers I/O
  // completions waiting on vector 0).
  if (posted) coalescer_.SignalNow(0);
  return sq->Pending() > 0;
}

void NvmeController::PostEvent(uint16_t cid, uint32_t event) {
  // At most kAerLimit wait: each answers a distinct outstanding request.
  aer_completions_.push_back({.cid = cid, .event = event});
  PostPendingEvents();
  if (!aer_completions_.empty()) delayed_events_.fetch_add(1, std::memory_order_relaxed);
}

void NvmeController::PostPendingEvents() {
  if (aer_completions_.empty()) return;
  std::shared_ptr<SubmissionQueue> sq;
  {
    absl::ReaderMutexLock lock(&queues_mu_);
    sq = admin_sq_;
  }
  if (sq == nullptr || admin_dma_ == nullptr) return;
  bool posted = false;
  // A full admin CQ keeps them waiting: its head doorbell wakes this thread.
  while (!aer_completions_.empty() && sq->cq().Reserve()) {
    const EventCompletion& next = aer_completions_.front();
    const CompletionEntry cqe = {.dw0 = next.event,
                                 .dw1 = 0,
                                 .sq_head = static_cast<uint16_t>(sq->head()),
                                 .sq_id = 0,
                                 .cid = next.cid,
                                 .status = static_cast<uint16_t>(kSuccess << 1)};
    absl::Status status = sq->cq().Post(*admin_dma_, cqe);
    if (!status.ok()) {
      if (status.code() != absl::StatusCode::kFailedPrecondition) {
        Fatal("cannot write the admin completion queue");
      }
      break;
    }
    aer_completions_.pop_front();
    posted = true;
  }
  // The admin CQ is never coalesced (its interrupt also covers I/O
  // completions waiting on vector 0).
  if (posted) coalescer_.SignalNow(0);
}

// ---- AdminQueueHost ----

bool NvmeController::CqExists(uint16_t qid) const {
  absl::ReaderMutexLock lock(&queues_mu_);
  return qid <= kMaxIoQueues && cqs_[qid] != nullptr;
}

bool NvmeController::SqExists(uint16_t qid) const {
  absl::ReaderMutexLock lock(&queues_mu_);
  return qid <= kMaxIoQueues && sqs_[qid] != nullptr;
}

bool NvmeController::CqInUse(uint16_t qid) const {
  absl::ReaderMutexLock lock(&queues_mu_);
  for (const auto& sq : sqs_) {
    if (sq != nullptr && sq->cq().id() == qid) return true;
  }
  return false;
}

void NvmeController::CreateCq(uint16_t qid, uint64_t base, uint32_t size, uint16_t vector,
                              bool irq_enabled) {
  auto cq = std::make_shared<CompletionQueue>(qid, base, size, vector, irq_enabled);
  uint64_t shadow, event_index;
  {
    absl::MutexLock lock(&queues_mu_);
    cqs_[qid] = cq;
    shadow = shadow_buffer_;
    event_index = event_index_buffer_;
  }
  ShadowQueue(qid, nullptr, cq.get(), shadow, event_index);
}

void NvmeController::SetShadowDoorbells(uint64_t shadow, uint64_t event_index) {
  std::vector<std::pair<std::shared_ptr<SubmissionQueue>, std::shared_ptr<CompletionQueue>>>
      queues(kMaxIoQueues + 1);
  {
    absl::MutexLock lock(&queues_mu_);
    shadow_buffer_ = shadow;
    event_index_buffer_ = event_index;
    for (uint16_t qid = 1; qid <= kMaxIoQueues; ++qid) queues[qid] = {sqs_[qid], cqs_[qid]};
  }
  // Queues that exist already switch now (Linux may configure late). The
  // admin thread creates and deletes queues, so none changes meanwhile.
  for (uint16_t qid = 1; qid <= kMaxIoQueues; ++qid) {
    ShadowQueue(qid, queues[qid].first.get(), queues[qid].second.get(), shadow, event_index);
  }
}

void NvmeController::ShadowQueue(uint16_t qid, SubmissionQueue* sq, CompletionQueue* cq,
                                 uint64_t shadow, uint64_t event_index) {
  if (shadow == 0 || admin_dma_ == nullptr) return;
  // Start the shadow slots from the values the controller holds, so a stale
  // buffer (older Linux does not clear it after a reset) is not taken for
  // new submissions; the EventIdx slots ask for a doorbell at once. Written
  // without holding a lock: DMA may wait for the client.
  auto put = [this](uint64_t iova, uint32_t value) {
    (void)admin_dma_->DmaWrite(
        iova, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&value), sizeof value));
  };
  if (sq != nullptr) {
    const uint64_t slot = 8 * uint64_t{qid};
    put(shadow + slot, sq->tail());
    put(event_index + slot, sq->tail());
    sq->EnableShadow(shadow + slot, event_index + slot);
  }
  if (cq != nullptr) {
    const uint64_t slot = 8 * uint64_t{qid} + 4;
    put(shadow + slot, 0);
    put(event_index + slot, 0);
    cq->EnableShadow(shadow + slot, event_index + slot);
  }
}

void NvmeController::CreateSq(uint16_t qid, uint64_t base, uint32_t size, uint16_t cqid) {
  std::shared_ptr<SubmissionQueue> sq;
  uint64_t shadow, event_index;
  {
    absl::MutexLock lock(&queues_mu_);
    sq = std::make_shared<SubmissionQueue>(qid, base, size, cqs_[cqid]);
    sqs_[qid] = sq;
    shadow = shadow_buffer_;
    event_index = event_index_buffer_;
  }
  ShadowQueue(qid, sq.get(), nullptr, shadow, event_index);
  IoThread& thread = ThreadFor(qid);
  absl::MutexLock lock(&thread.mu);
  thread.queues.push_back(std::move(sq));
  thread.dma = admin_dma_;
}

void NvmeController::DeleteSq(uint16_t qid) {
  std::shared_ptr<SubmissionQueue> sq;
  {
    absl::MutexLock lock(&queues_mu_);
    sq = std::move(sqs_[qid]);
    sqs_[qid] = nullptr;
  }
  if (sq == nullptr) return;
  // Its thread finishes the batch it runs (those commands complete
  // normally, before this command's own completion).
  DetachQueue(sq);
  AbortUnfetched(*sq);
}

void NvmeController::AbortUnfetched(SubmissionQueue& sq) {
  if (admin_dma_ == nullptr) return;
  if (sq.shadowed()) (void)sq.RefreshTailFromShadow(*admin_dma_);
  CompletionQueue& cq = sq.cq();
  uint32_t aborted = 0;
  uint32_t dropped = 0;
  // Bounded by the queue size: every pass moves the head one entry on.
  while (sq.Pending() > 0) {
    if (!cq.Reserve()) {
      // The CQ is full and we cannot wait for the driver here: the rest
      // are implicitly aborted (NVMe 1.4 section 5.6 allows it).
      dropped = sq.Pending();
      break;
    }
    SubmissionEntry sqe;
    absl::StatusOr<size_t> fetched = sq.Fetch(*admin_dma_, absl::MakeSpan(&sqe, 1));
    if (!fetched.ok() || *fetched != 1) {
      cq.Unreserve();
      dropped = sq.Pending();
      break;
    }
    sq.Advance(1);
    const CompletionEntry cqe = {.dw0 = 0,
                                 .dw1 = 0,
                                 .sq_head = static_cast<uint16_t>(sq.head()),
                                 .sq_id = sq.id(),
                                 .cid = sqe.cid,
                                 .status = static_cast<uint16_t>(kAbortedSqDeletion << 1)};
    absl::Status posted = cq.Post(*admin_dma_, cqe);
    if (!posted.ok()) {
      if (posted.code() != absl::StatusCode::kFailedPrecondition) {
        Fatal("cannot write an I/O completion queue");
      }
      return;
    }
    ++aborted;
  }
  if (aborted > 0 && cq.irq_enabled()) coalescer_.Completed(cq.vector(), aborted);
  if (dropped > 0) {
    VFU_LOG_RATE_LIMITED(kWarning, "nvme: SQ ", sq.id(), " deleted with ", dropped,
                         " commands its full CQ had no room for: not completed");
  }
}

void NvmeController::DeleteCq(uint16_t qid) {
  std::shared_ptr<CompletionQueue> cq;
  {
    absl::MutexLock lock(&queues_mu_);
    cq = std::move(cqs_[qid]);
    cqs_[qid] = nullptr;
  }
  if (cq != nullptr) cq->Kill();
}

// ---- I/O threads ----

void NvmeController::IoLoop(IoThread& thread) {
  GuestData data(&zero_copy_, &bounced_);
  std::vector<std::shared_ptr<SubmissionQueue>> queues;
  std::shared_ptr<DeviceContext> dma;
  bool more = false;
  for (;;) {
    bool parked = false;
    {
      absl::MutexLock lock(&thread.mu);
      if (thread.busy) {
        thread.busy = false;
        ++thread.batches;
        thread.cv.SignalAll();
        parked = thread.owes_park;
        thread.owes_park = false;
      }
    }
    if (parked) ReportParked();
    {
      absl::MutexLock lock(&thread.mu);
      while (!thread.stop && (thread.paused || (!thread.kicked && !more))) {
        thread.cv.Wait(&thread.mu);
      }
      if (thread.stop) return;
      thread.kicked = false;
      thread.busy = true;
      queues = thread.queues;
      dma = thread.dma;
    }
    more = false;
    if (dma == nullptr) continue;
    for (const auto& queue : queues) more |= ServeIoQueue(*queue, *dma, data);
  }
}

bool NvmeController::ServeIoQueue(SubmissionQueue& queue, DeviceContext& dma, GuestData& data) {
  CompletionQueue& cq = queue.cq();
  const uint64_t page = page_size();
  // A Set Features racing with this batch may apply to it or not.
  const bool write_cache = write_cache_enabled_.load(std::memory_order_relaxed);
  const bool shadowed = queue.shadowed();
  uint32_t done = 0;
  uint32_t posted = 0;
  // The batch ended waiting for completion slots (or on a queue it could
  // not read): no EventIdx to arm.
  bool stalled = false;
  SubmissionEntry entries[kFetch];
  while (done < kBatch) {
    uint32_t pending = queue.Pending();
    if (pending == 0 && shadowed) {
      (void)queue.RefreshTailFromShadow(dma);
      pending = queue.Pending();
    }
    if (pending == 0) break;
    uint32_t reserved = 0;
    const uint32_t want = std::min({pending, kFetch, kBatch - done});
    while (reserved < want && cq.Reserve()) ++reserved;
    if (reserved == 0 && cq.shadowed()) {
      // The driver may have consumed entries without ringing: look at its
      // shadow head, and if still full ask for a doorbell at the next one.
      (void)cq.RefreshHeadFromShadow(dma);
      while (reserved < want && cq.Reserve()) ++reserved;
      if (reserved == 0) {
        cq.ArmEventIndex(dma);
        while (reserved < want && cq.Reserve()) ++reserved;
      }
    }
    if (reserved == 0) {
      stalled = true;  // the CQ is full: its head doorbell kicks us
      break;
    }
    absl::StatusOr<size_t> fetched = queue.Fetch(dma, absl::MakeSpan(entries, reserved));
    if (!fetched.ok() || *fetched == 0) {
      for (uint32_t i = 0; i < reserved; ++i) cq.Unreserve();
      if (!fetched.ok()) {
        VFU_LOG_RATE_LIMITED(kWarning, "nvme: SQ ", queue.id(), " unreadable: ",
                             fetched.status().message());
        Fatal("cannot read an I/O submission queue");
      }
      stalled = true;
      break;
    }
    for (size_t i = *fetched; i < reserved; ++i) cq.Unreserve();
    for (size_t i = 0; i < *fetched; ++i) {
      const SubmissionEntry& sqe = entries[i];
      queue.Advance(1);
      ++done;
      const uint16_t status = nvm_.Execute(sqe, dma, page, write_cache, data);
      const CompletionEntry cqe = {.dw0 = 0,
                                   .dw1 = 0,
                                   .sq_head = static_cast<uint16_t>(queue.head()),
                                   .sq_id = queue.id(),
                                   .cid = sqe.cid,
                                   .status = static_cast<uint16_t>(status << 1)};
      absl::Status result = cq.Post(dma, cqe);
      if (!result.ok()) {
        if (result.code() != absl::StatusCode::kFailedPrecondition) {
          Fatal("cannot write an I/O completion queue");
        }
        for (size_t j = i + 1; j < *fetched; ++j) cq.Unreserve();
        return false;
      }
      ++posted;
    }
  }
  if (posted > 0 && cq.irq_enabled()) coalescer_.Completed(cq.vector(), posted);
  if (done == kBatch && queue.Pending() > 0) return true;
  // Going idle: with shadow doorbells, ask for the next submission's
  // doorbell; entries that raced with that are served at once.
  if (shadowed && !stalled) return queue.ArmEventIndex(dma);
  return false;
}

// ---- Doorbell thread ----

void NvmeController::DoorbellLoop() {
  std::vector<size_t> doorbells(num_ioeventfds());
  for (size_t i = 0; i < doorbells.size(); ++i) doorbells[i] = i;
  for (;;) {
    absl::StatusOr<DoorbellWait> wait =
        WaitForIoeventfds(doorbells, stop_doorbells_.get(), absl::InfiniteDuration());
    if (!wait.ok()) {
      VFU_LOG(kError, "nvme: waiting for doorbells: ", wait.status().message());
      return;
    }
    if (wait->wake_fd_ready) return;
    bool completion_rung = false;
    for (size_t i : wait->rung) {
      const bool completion = i >= kIoeventfdQueues;
      const uint16_t qid = static_cast<uint16_t>(i % kIoeventfdQueues + 1);
      bool shadowed = false;
      {
        absl::ReaderMutexLock lock(&queues_mu_);
        shadowed = completion ? cqs_[qid] != nullptr && cqs_[qid]->shadowed()
                              : sqs_[qid] != nullptr && sqs_[qid]->shadowed();
      }
      if (!shadowed) {
        VFU_LOG_RATE_LIMITED(kWarning, "nvme: ioeventfd doorbell of ", completion ? "CQ " : "SQ ",
                             qid, " without shadow doorbells: its value is lost");
      }
      if (completion) {
        completion_rung = true;
      } else {
        Kick(ThreadFor(qid));
      }
    }
    if (completion_rung) {
      for (auto& thread : io_threads_) Kick(*thread);
    }
  }
}

// ---- Any thread ----

void NvmeController::SignalVector(uint16_t vector) {
  const InterruptRouter::Route route = interrupt_route();
  if (route == InterruptRouter::Route::kMsix) {
    (void)RaiseInterrupt(vector);
    return;
  }
  // MSI and INTx: INTMS masks them (NVMe 1.4 section 7.5.1). INTx is a
  // level: up while any completion queue holds unconsumed entries.
  if ((interrupt_mask_.load(std::memory_order_relaxed) & 1) != 0) return;
  if (route == InterruptRouter::Route::kIntx) (void)SetIntxLevel(true);
  (void)RaiseInterrupt(vector);
}

void NvmeController::UpdateIntxLevel() {
  if (interrupt_route() != InterruptRouter::Route::kIntx) return;
  bool unconsumed = false;
  {
    absl::ReaderMutexLock lock(&queues_mu_);
    if (admin_sq_ != nullptr) unconsumed = admin_sq_->cq().HasUnconsumed();
    for (const auto& cq : cqs_) {
      if (unconsumed) break;
      if (cq != nullptr && cq->irq_enabled()) unconsumed = cq->HasUnconsumed();
    }
  }
  if (!unconsumed) (void)SetIntxLevel(false);
}

void NvmeController::Fatal(const char* why) {
  VFU_LOG_RATE_LIMITED(kWarning, "nvme: controller fatal status: ", why);
  absl::MutexLock lock(&mu_);
  fatal_ = true;
}

}  // namespace vfu::nvme
