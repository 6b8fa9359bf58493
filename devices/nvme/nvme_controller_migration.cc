// NvmeController's live migration: the state saved at STOP_COPY with every
// thread parked (nvme_state.proto), checked and restored on the destination.
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "devices/nvme/nvme_controller.h"
#include "vfu/base/log.h"
#include "vfu/base/status_macros.h"

namespace vfu::nvme {
namespace {

bool Stops(MigrationState state) {
  return state == MigrationState::kStop || state == MigrationState::kStopCopy ||
         state == MigrationState::kResuming;
}

NvmeCompletionQueueState SaveCq(const CompletionQueue& cq) {
  NvmeCompletionQueueState out;
  const CompletionQueue::Indices indices = cq.indices();
  out.set_id(cq.id());
  out.set_base(cq.base());
  out.set_size(cq.size());
  out.set_vector(cq.vector());
  out.set_irq_enabled(cq.irq_enabled());
  out.set_head(indices.head);
  out.set_tail(indices.tail);
  out.set_phase(indices.phase);
  out.set_shadow_head(cq.shadow_head_address());
  out.set_event_index(cq.event_index_address());
  return out;
}

NvmeSubmissionQueueState SaveSq(const SubmissionQueue& sq) {
  NvmeSubmissionQueueState out;
  out.set_id(sq.id());
  out.set_base(sq.base());
  out.set_size(sq.size());
  out.set_cq_id(sq.cq().id());
  out.set_head(sq.head());
  out.set_tail(sq.tail());
  out.set_shadow_tail(sq.shadow_tail_address());
  out.set_event_index(sq.event_index_address());
  return out;
}

absl::Status CheckCq(const NvmeCompletionQueueState& cq, uint32_t min_size) {
  if (cq.size() < min_size || cq.size() > kMaxQueueEntries || cq.head() >= cq.size() ||
      cq.tail() >= cq.size() || cq.vector() >= kMsixVectors) {
    return absl::InvalidArgumentError(absl::StrCat("nvme: CQ ", cq.id(), " state out of range"));
  }
  return absl::OkStatus();
}

absl::Status CheckSq(const NvmeSubmissionQueueState& sq) {
  if (sq.size() < 2 || sq.size() > kMaxQueueEntries || sq.head() >= sq.size() ||
      sq.tail() >= sq.size()) {
    return absl::InvalidArgumentError(absl::StrCat("nvme: SQ ", sq.id(), " state out of range"));
  }
  return absl::OkStatus();
}

std::shared_ptr<CompletionQueue> RestoreCq(const NvmeCompletionQueueState& state) {
  auto cq = std::make_shared<CompletionQueue>(static_cast<uint16_t>(state.id()), state.base(),
                                              state.size(), static_cast<uint16_t>(state.vector()),
                                              state.irq_enabled());
  cq->Restore({.head = state.head(), .tail = state.tail(), .phase = state.phase()});
  if (state.shadow_head() != 0) cq->EnableShadow(state.shadow_head(), state.event_index());
  return cq;
}

std::shared_ptr<SubmissionQueue> RestoreSq(const NvmeSubmissionQueueState& state,
                                           std::shared_ptr<CompletionQueue> cq) {
  auto sq = std::make_shared<SubmissionQueue>(static_cast<uint16_t>(state.id()), state.base(),
                                              state.size(), std::move(cq));
  sq->Restore(state.head(), state.tail());
  if (state.shadow_tail() != 0) sq->EnableShadow(state.shadow_tail(), state.event_index());
  return sq;
}

}  // namespace

absl::Status NvmeController::OnMigrationStateChange(MigrationState from, MigrationState to) {
  absl::MutexLock lock(&mu_);
  migration_stopped_ = Stops(to);
  // Called quiesced: the threads run again at the unquiesce.
  ResumeLocked();
  return absl::OkStatus();
}

absl::Status NvmeController::SaveState(SavePhase phase, std::string& out) {
  if (phase == SavePhase::kPreCopy) return absl::OkStatus();  // small: all at the end
  // Every thread is parked (STOP_COPY is entered quiesced), so the admin
  // thread's own state (admin_, aer_completions_) is still.
  NvmeControllerState state;
  {
    absl::MutexLock lock(&mu_);
    state.set_cc(cc_);
    state.set_aqa(aqa_);
    state.set_asq(asq_);
    state.set_acq(acq_);
    state.set_intms(interrupt_mask_.load(std::memory_order_relaxed));
    state.set_ready(ready_);
    state.set_fatal(fatal_);
    state.set_shutdown_state(shutdown_state_);
    state.set_enabled(enabled_);
    state.set_intx_unmasked(unmasked_);
    for (uint32_t event : events_) state.add_reported_events(event);
  }
  state.set_page_size(page_size_.load(std::memory_order_relaxed));
  {
    absl::ReaderMutexLock lock(&queues_mu_);
    if (admin_sq_ != nullptr) {
      *state.mutable_admin_sq() = SaveSq(*admin_sq_);
      *state.mutable_admin_cq() = SaveCq(admin_sq_->cq());
    }
    for (const auto& cq : cqs_) {
      if (cq != nullptr) *state.add_cqs() = SaveCq(*cq);
    }
    for (const auto& sq : sqs_) {
      if (sq != nullptr) *state.add_sqs() = SaveSq(*sq);
    }
    state.set_shadow_buffer(shadow_buffer_);
    state.set_event_index_buffer(event_index_buffer_);
  }
  admin_.SaveState(*state.mutable_admin());
  for (const EventCompletion& pending : aer_completions_) {
    NvmeEventCompletion* completion = state.add_event_completions();
    completion->set_cid(pending.cid);
    completion->set_event(pending.event);
  }
  if (!state.AppendToString(&out)) return absl::InternalError("nvme: state not serialized");
  return absl::OkStatus();
}

absl::Status NvmeController::CheckState(const NvmeControllerState& state) {
  auto invalid = [](const char* why) { return absl::InvalidArgumentError(why); };
  if ((state.cc() & ~kCcWritableMask) != 0) return invalid("nvme: CC has read-only bits");
  if ((state.aqa() & ~kAqaMask) != 0) return invalid("nvme: AQA has reserved bits");
  if ((state.asq() & 0xfff) != 0 || (state.acq() & 0xfff) != 0) {
    return invalid("nvme: admin queue base not page aligned");
  }
  if (state.intms() > 1 || state.shutdown_state() > 3) return invalid("nvme: INTMS or SHST");
  bool page_ok = false;
  for (uint32_t mps = kMpsMin; mps <= kMpsMax; ++mps) {
    page_ok |= state.page_size() == (uint64_t{4096} << mps);
  }
  if (!page_ok) return invalid("nvme: page size outside CAP.MPS");
  if (state.has_admin_sq() != state.has_admin_cq() || (!state.enabled() && state.has_admin_sq())) {
    return invalid("nvme: admin queue pair without an enabled controller");
  }
  if (state.has_admin_sq()) {
    VFU_RETURN_IF_ERROR(CheckSq(state.admin_sq()));
    VFU_RETURN_IF_ERROR(CheckCq(state.admin_cq(), 2));
    if (state.admin_sq().id() != 0 || state.admin_cq().id() != 0 ||
        state.admin_sq().shadow_tail() != 0 || state.admin_cq().shadow_head() != 0) {
      return invalid("nvme: admin queue state");
    }
  }
  if (!state.enabled() && (state.cqs_size() > 0 || state.sqs_size() > 0)) {
    return invalid("nvme: I/O queues without an enabled controller");
  }
  std::set<uint32_t> cq_ids;
  for (const NvmeCompletionQueueState& cq : state.cqs()) {
    if (cq.id() == 0 || cq.id() > kMaxIoQueues || !cq_ids.insert(cq.id()).second) {
      return invalid("nvme: CQ id out of range or repeated");
    }
    VFU_RETURN_IF_ERROR(CheckCq(cq, 2));
  }
  std::set<uint32_t> sq_ids;
  for (const NvmeSubmissionQueueState& sq : state.sqs()) {
    if (sq.id() == 0 || sq.id() > kMaxIoQueues || !sq_ids.insert(sq.id()).second) {
      return invalid("nvme: SQ id out of range or repeated");
    }
    if (cq_ids.count(sq.cq_id()) == 0) return invalid("nvme: SQ on a CQ that does not exist");
    VFU_RETURN_IF_ERROR(CheckSq(sq));
  }
  if (static_cast<size_t>(state.reported_events_size()) > AdminCommandSet::kMaxQueuedEvents ||
      static_cast<size_t>(state.event_completions_size()) > kAerLimit) {
    return invalid("nvme: too many events");
  }
  for (const NvmeEventCompletion& completion : state.event_completions()) {
    if (completion.cid() > 0xffff) return invalid("nvme: event completion CID out of range");
  }
  return AdminCommandSet::CheckState(state.admin());
}

absl::Status NvmeController::LoadState(absl::Span<const std::string> pieces) {
  // Pre-copy rounds append nothing: the last piece is the state.
  if (pieces.empty()) return absl::InvalidArgumentError("nvme: no migration state");
  for (size_t i = 0; i + 1 < pieces.size(); ++i) {
    if (!pieces[i].empty()) return absl::InvalidArgumentError("nvme: unexpected pre-copy state");
  }
  NvmeControllerState state;
  if (!state.ParseFromString(pieces.back())) {
    return absl::InvalidArgumentError("nvme: migration state is not an NvmeControllerState");
  }
  VFU_RETURN_IF_ERROR(CheckState(state));

  // Whatever this controller ran before is dropped, as a reset would.
  Disable();
  std::shared_ptr<DeviceContext> context = dma();
  std::array<std::shared_ptr<CompletionQueue>, kMaxIoQueues + 1> cqs;
  std::array<std::shared_ptr<SubmissionQueue>, kMaxIoQueues + 1> sqs;
  for (const NvmeCompletionQueueState& cq : state.cqs()) cqs[cq.id()] = RestoreCq(cq);
  for (const NvmeSubmissionQueueState& sq : state.sqs()) {
    sqs[sq.id()] = RestoreSq(sq, cqs[sq.cq_id()]);
  }
  std::shared_ptr<SubmissionQueue> admin_sq;
  if (state.has_admin_sq()) admin_sq = RestoreSq(state.admin_sq(), RestoreCq(state.admin_cq()));
  VFU_RETURN_IF_ERROR(admin_.LoadState(state.admin()));
  write_cache_enabled_.store(admin_.write_cache_enabled(), std::memory_order_relaxed);
  ApplyCoalescing();
  aer_completions_.clear();
  for (const NvmeEventCompletion& completion : state.event_completions()) {
    aer_completions_.push_back(
        {.cid = static_cast<uint16_t>(completion.cid()), .event = completion.event()});
  }
  page_size_.store(state.page_size(), std::memory_order_relaxed);
  admin_dma_ = state.enabled() ? context : nullptr;
  {
    absl::MutexLock lock(&queues_mu_);
    admin_sq_ = admin_sq;
    cqs_ = cqs;
    sqs_ = sqs;
    shadow_buffer_ = state.shadow_buffer();
    event_index_buffer_ = state.event_index_buffer();
  }
  for (uint16_t qid = 1; qid <= kMaxIoQueues; ++qid) {
    if (sqs[qid] == nullptr) continue;
    IoThread& thread = ThreadFor(qid);
    absl::MutexLock lock(&thread.mu);
    thread.queues.push_back(sqs[qid]);
    thread.dma = context;
  }
  absl::MutexLock lock(&mu_);
  cc_ = state.cc();
  aqa_ = state.aqa();
  asq_ = state.asq();
  acq_ = state.acq();
  interrupt_mask_.store(state.intms(), std::memory_order_relaxed);
  ready_ = state.ready();
  fatal_ = state.fatal();
  shutdown_state_ = state.shutdown_state();
  enabled_ = state.enabled();
  unmasked_ = state.intx_unmasked();
  events_.assign(state.reported_events().begin(), state.reported_events().end());
  // The admin thread compares CC with what it applied when it next runs.
  KickAdminLocked();
  return absl::OkStatus();
}

}  // namespace vfu::nvme
