#include "devices/nvme/admin_command_set.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "vfu/base/status_macros.h"

namespace vfu::nvme {
namespace {

// The composite temperature the controller reports: 27 C, in Kelvin.
constexpr uint16_t kTemperatureKelvin = 300;
constexpr uint16_t kDefaultOverTemperature = 343;  // 70 C
constexpr uint32_t kSmartLogSize = 512;
constexpr uint32_t kFirmwareLogSize = 512;

template <typename T>
void Put(uint8_t* page, size_t offset, T value) {
  std::memcpy(page + offset, &value, sizeof value);
}

// ASCII, space padded, as Identify wants its strings.
void PutString(uint8_t* page, size_t offset, size_t width, const std::string& text) {
  std::memset(page + offset, ' ', width);
  std::memcpy(page + offset, text.data(), std::min(width, text.size()));
}

// A 128-bit little-endian counter field from a 64-bit value.
void PutCounter(uint8_t* page, size_t offset, uint64_t value) { Put<uint64_t>(page, offset, value); }

uint16_t QueueId(const SubmissionEntry& sqe) { return sqe.cdw10 & 0xffff; }
uint32_t QueueSize(const SubmissionEntry& sqe) { return (sqe.cdw10 >> 16) + 1; }

AdminCommandSet::Result Status(uint16_t status) { return {.status = status}; }

// The features Get Features and Set Features know; others are Invalid Field.
bool IsSupportedFeature(uint8_t fid) {
  switch (fid) {
    case kFeatArbitration:
    case kFeatTemperatureThreshold:
    case kFeatVolatileWriteCache:
    case kFeatNumberOfQueues:
    case kFeatInterruptCoalescing:
    case kFeatInterruptVectorConfig:
    case kFeatAsyncEventConfig:
      return true;
    default:
      return false;
  }
}

}  // namespace

AdminCommandSet::AdminCommandSet(ControllerIdentity identity,
                                 std::vector<NvmeNamespace*> namespaces, AdminQueueHost& host)
    : identity_(std::move(identity)), namespaces_(std::move(namespaces)), host_(host) {
  Reset();
}

void AdminCommandSet::Reset() {
  arbitration_ = 0;
  over_temperature_ = kDefaultOverTemperature;
  under_temperature_ = 0;
  write_cache_enabled_ = true;
  queues_allocated_ = kMaxIoQueues;
  queues_created_ = false;
  interrupt_coalescing_ = 0;
  coalescing_disabled_.fill(false);
  async_event_config_ = 0;
  pending_event_requests_.clear();
  queued_events_.clear();
}

AdminCommandSet::Result AdminCommandSet::Execute(const SubmissionEntry& sqe, DeviceContext& dma,
                                                 GuestData& data) {
  // SGLs are not supported for admin commands either.
  if ((sqe.flags >> 6) != 0 || (sqe.flags & 3) != 0) return Status(kInvalidField);
  switch (sqe.opcode) {
    case kAdminIdentify:
      return Identify(sqe, dma, data);
    case kAdminCreateCq:
      return CreateCq(sqe);
    case kAdminCreateSq:
      return CreateSq(sqe);
    case kAdminDeleteSq:
      return DeleteSq(sqe);
    case kAdminDeleteCq:
      return DeleteCq(sqe);
    case kAdminGetFeatures:
      return GetFeatures(sqe);
    case kAdminSetFeatures:
      return SetFeatures(sqe);
    case kAdminGetLogPage:
      return GetLogPage(sqe, dma, data);
    case kAdminAsyncEvent:
      return AsyncEventRequest(sqe);
    case kAdminDoorbellBufferConfig: {
      // Two distinct page-aligned pages (NVMe 1.4 section 5.8; QEMU and SPDK
      // refuse the same way).
      const uint64_t page = host_.page_size();
      if (sqe.prp1 == 0 || sqe.prp2 == 0 || sqe.prp1 == sqe.prp2 ||
          (sqe.prp1 & (page - 1)) != 0 || (sqe.prp2 & (page - 1)) != 0) {
        return Status(kInvalidField);
      }
      host_.SetShadowDoorbells(sqe.prp1, sqe.prp2);
      return Status(kSuccess);
    }
    case kAdminAbort:
      // Commands run to completion as soon as they are fetched: there is
      // never one left to abort. DW0 bit 0 = "not aborted", always legal.
      return {.status = kSuccess, .dw0 = 1};
    default:
      return Status(kInvalidOpcode);
  }
}

// ---- Identify ----

AdminCommandSet::Result AdminCommandSet::Identify(const SubmissionEntry& sqe, DeviceContext& dma,
                                                  GuestData& data) {
  const uint32_t cns = sqe.cdw10 & 0xff;
  const uint32_t nn = static_cast<uint32_t>(namespaces_.size());
  std::array<uint8_t, kIdentifySize> page = {};
  switch (cns) {
    case kCnsController:
      FillIdentifyController(page.data());
      break;
    case kCnsNamespace:
    case kCnsNamespaceDescriptors:
      if (sqe.nsid == 0 || sqe.nsid > nn) return Status(kInvalidNamespace);
      if (cns == kCnsNamespace) {
        FillIdentifyNamespace(*namespaces_[sqe.nsid - 1], sqe.nsid, page.data());
      } else {
        // One descriptor: the EUI-64 (type 1, 8 bytes), as in Identify Namespace.
        page[0] = 1;
        page[1] = 8;
        Put<uint64_t>(page.data(), 4, (uint64_t{identity_.controller_id} << 32) | sqe.nsid);
      }
      break;
    case kCnsActiveNamespaces: {
      if (sqe.nsid >= 0xfffffffe) return Status(kInvalidNamespace);
      size_t out = 0;
      for (uint32_t nsid = sqe.nsid + 1; nsid <= nn && out < kIdentifySize / 4; ++nsid) {
        Put<uint32_t>(page.data(), 4 * out++, nsid);
      }
      break;
    }
    default:
      return Status(kInvalidField);
  }
  if (uint16_t status = data.Walk(dma, sqe, kIdentifySize, host_.page_size()); status != kSuccess) {
    return Status(status);
  }
  return Status(data.CopyOut(dma, page));
}

void AdminCommandSet::FillIdentifyController(uint8_t* page) const {
  Put<uint16_t>(page, 0, kVendorId);
  Put<uint16_t>(page, 2, kVendorId);
  PutString(page, 4, 20, identity_.serial);
  PutString(page, 24, 40, identity_.model);
  PutString(page, 64, 8, identity_.firmware);
  page[72] = 6;  // RAB
  page[77] = kMdts;
  Put<uint16_t>(page, 78, identity_.controller_id);
  Put<uint32_t>(page, 80, kVersion14);
  Put<uint16_t>(page, 256, 1u << 8);  // OACS: Doorbell Buffer Config
  page[258] = 3;                // ACL: 4 aborts
  page[259] = kAerLimit - 1;    // AERL
  page[260] = (1 << 1) | 1;     // FRMW: one slot, read-only
  page[261] = 0;                // LPA
  page[262] = kErrorLogEntries - 1;
  page[263] = 0;                // NPSS: one power state
  Put<uint16_t>(page, 266, kDefaultOverTemperature);  // WCTEMP
  Put<uint16_t>(page, 268, 358);                      // CCTEMP, 85 C
  page[512] = (kSqEntrySizeLog2 << 4) | kSqEntrySizeLog2;
  page[513] = (kCqEntrySizeLog2 << 4) | kCqEntrySizeLog2;
  Put<uint16_t>(page, 514, kMaxQueueEntries);
  Put<uint32_t>(page, 516, static_cast<uint32_t>(namespaces_.size()));
  Put<uint16_t>(page, 520, (1 << 2) | (1 << 3));  // ONCS: DSM, Write Zeroes
  page[525] = 1;                                  // VWC present
  Put<uint32_t>(page, 536, 0);                    // SGLS: none
  const std::string nqn = "nqn.2026-01.dev.vfu:nvme:" + identity_.serial;
  std::memcpy(page + 768, nqn.data(), std::min<size_t>(255, nqn.size()));
  // Power state 0: 25 W (MP in centiwatts), no latencies.
  Put<uint16_t>(page, 2048, 2500);
}

void AdminCommandSet::FillIdentifyNamespace(const NvmeNamespace& ns, uint32_t nsid,
                                            uint8_t* page) const {
  Put<uint64_t>(page, 0, ns.num_lbas());   // NSZE
  Put<uint64_t>(page, 8, ns.num_lbas());   // NCAP
  Put<uint64_t>(page, 16, ns.num_lbas());  // NUSE
  page[24] = 1;                            // NSFEAT: thin provisioning (holes)
  page[25] = 0;                            // NLBAF: one format
  page[26] = 0;                            // FLBAS: format 0
  page[33] = 1 | (1 << 3);                 // DLFEAT: deallocated reads zeros; WZ DEAC
  Put<uint64_t>(page, 120, (uint64_t{identity_.controller_id} << 32) | nsid);  // EUI64
  Put<uint32_t>(page, 128, ns.lba_shift() << 16);  // LBAF0: LBADS, no metadata
}

// ---- Queues ----

AdminCommandSet::Result AdminCommandSet::CreateCq(const SubmissionEntry& sqe) {
  const uint16_t qid = QueueId(sqe);
  const uint32_t size = QueueSize(sqe);
  const uint16_t vector = sqe.cdw11 >> 16;
  const bool contiguous = (sqe.cdw11 & 1) != 0;
  const bool irq_enabled = (sqe.cdw11 & 2) != 0;
  if (qid == 0 || qid > max_qid() || host_.CqExists(qid)) return Status(kInvalidQueueId);
  if (size < 2 || size > kMaxQueueEntries) return Status(kInvalidQueueSize);
  if ((sqe.prp1 & (host_.page_size() - 1)) != 0) return Status(kInvalidPrpOffset);
  if (vector >= kMsixVectors) return Status(kInvalidInterruptVector);
  if (!contiguous) return Status(kInvalidField);
  host_.CreateCq(qid, sqe.prp1, size, vector, irq_enabled);
  queues_created_ = true;
  return Status(kSuccess);
}

AdminCommandSet::Result AdminCommandSet::CreateSq(const SubmissionEntry& sqe) {
  const uint16_t qid = QueueId(sqe);
  const uint32_t size = QueueSize(sqe);
  const uint16_t cqid = sqe.cdw11 >> 16;
  const bool contiguous = (sqe.cdw11 & 1) != 0;
  if (cqid == 0 || !host_.CqExists(cqid)) return Status(kCompletionQueueInvalid);
  if (qid == 0 || qid > max_qid() || host_.SqExists(qid)) return Status(kInvalidQueueId);
  if (size < 2 || size > kMaxQueueEntries) return Status(kInvalidQueueSize);
  if ((sqe.prp1 & (host_.page_size() - 1)) != 0) return Status(kInvalidPrpOffset);
  if (!contiguous) return Status(kInvalidField);
  host_.CreateSq(qid, sqe.prp1, size, cqid);
  queues_created_ = true;
  return Status(kSuccess);
}

AdminCommandSet::Result AdminCommandSet::DeleteSq(const SubmissionEntry& sqe) {
  const uint16_t qid = QueueId(sqe);
  if (qid == 0 || !host_.SqExists(qid)) return Status(kInvalidQueueId);
  host_.DeleteSq(qid);
  return Status(kSuccess);
}

AdminCommandSet::Result AdminCommandSet::DeleteCq(const SubmissionEntry& sqe) {
  const uint16_t qid = QueueId(sqe);
  if (qid == 0 || !host_.CqExists(qid)) return Status(kInvalidQueueId);
  if (host_.CqInUse(qid)) return Status(kInvalidQueueDeletion);
  host_.DeleteCq(qid);
  return Status(kSuccess);
}

// ---- Features ----

AdminCommandSet::Result AdminCommandSet::GetFeatures(const SubmissionEntry& sqe) {
  const uint8_t fid = sqe.cdw10 & 0xff;
  const uint32_t select = (sqe.cdw10 >> 8) & 7;
  if (select > 3) return Status(kInvalidField);
  const bool defaults = select == 1 || select == 2;  // nothing is saveable
  if (!IsSupportedFeature(fid)) return Status(kInvalidField);
  // SEL 011b: the capabilities: changeable (bit 2), not saveable.
  if (select == 3) return {.status = kSuccess, .dw0 = 1u << 2};
  switch (fid) {
    case kFeatArbitration:
      return {.dw0 = defaults ? 0 : arbitration_};
    case kFeatTemperatureThreshold: {
      const uint32_t sensor = (sqe.cdw11 >> 16) & 0xf;
      const uint32_t type = (sqe.cdw11 >> 20) & 3;
      if (sensor != 0 || type > 1) return Status(kInvalidField);
      const uint16_t value = type == 0 ? (defaults ? kDefaultOverTemperature : over_temperature_)
                                       : (defaults ? 0 : under_temperature_);
      return {.dw0 = value | (sensor << 16) | (type << 20)};
    }
    case kFeatVolatileWriteCache:
      return {.dw0 = (defaults || write_cache_enabled_) ? 1u : 0u};
    case kFeatNumberOfQueues: {
      const uint32_t count = (defaults ? kMaxIoQueues : queues_allocated_) - 1u;
      return {.dw0 = count | (count << 16)};
    }
    case kFeatInterruptCoalescing:
      return {.dw0 = defaults ? 0 : interrupt_coalescing_};
    case kFeatInterruptVectorConfig: {
      const uint32_t vector = sqe.cdw11 & 0xffff;
      if (vector >= kMsixVectors) return Status(kInvalidField);
      const bool disabled = !defaults && coalescing_disabled_[vector];
      return {.dw0 = vector | (disabled ? 1u << 16 : 0u)};
    }
    default:  // kFeatAsyncEventConfig
      return {.dw0 = defaults ? 0 : async_event_config_};
  }
}

AdminCommandSet::Result AdminCommandSet::SetFeatures(const SubmissionEntry& sqe) {
  const uint8_t fid = sqe.cdw10 & 0xff;
  const bool save = (sqe.cdw10 >> 31) != 0;
  if (!IsSupportedFeature(fid)) return Status(kInvalidField);
  if (save) return Status(kFeatureNotSaveable);
  switch (fid) {
    case kFeatArbitration:
      arbitration_ = sqe.cdw11;
      return {.dw0 = 0};
    case kFeatTemperatureThreshold: {
      const uint32_t sensor = (sqe.cdw11 >> 16) & 0xf;
      const uint32_t type = (sqe.cdw11 >> 20) & 3;
      if (sensor != 0 || type > 1) return Status(kInvalidField);
      (type == 0 ? over_temperature_ : under_temperature_) = sqe.cdw11 & 0xffff;
      return {.dw0 = 0};
    }
    case kFeatVolatileWriteCache:
      write_cache_enabled_ = (sqe.cdw11 & 1) != 0;
      return {.dw0 = 0};
    case kFeatNumberOfQueues: {
      const uint32_t sqs = sqe.cdw11 & 0xffff;
      const uint32_t cqs = sqe.cdw11 >> 16;
      if (sqs == 0xffff || cqs == 0xffff) return Status(kInvalidField);
      if (queues_created_) return Status(kCommandSequenceError);
      // One count for both kinds: a driver pairs them.
      queues_allocated_ =
          static_cast<uint16_t>(std::min<uint32_t>(std::max(sqs, cqs) + 1, kMaxIoQueues));
      const uint32_t count = queues_allocated_ - 1u;
      return {.dw0 = count | (count << 16)};
    }
    case kFeatInterruptCoalescing:
      interrupt_coalescing_ = sqe.cdw11 & 0xffff;
      return {.dw0 = 0};
    case kFeatInterruptVectorConfig: {
      const uint32_t vector = sqe.cdw11 & 0xffff;
      if (vector >= kMsixVectors) return Status(kInvalidField);
      coalescing_disabled_[vector] = (sqe.cdw11 >> 16) & 1;
      return {.dw0 = 0};
    }
    default:  // kFeatAsyncEventConfig
      async_event_config_ = sqe.cdw11;
      return {.dw0 = 0};
  }
}

// ---- Logs ----

void AdminCommandSet::FillSmartLog(uint8_t* page) const {
  uint64_t bytes_read = 0, bytes_written = 0, reads = 0, writes = 0;
  for (const NvmeNamespace* ns : namespaces_) {
    bytes_read += ns->bytes_read();
    bytes_written += ns->bytes_written();
    reads += ns->read_commands();
    writes += ns->write_commands();
  }
  page[0] = kTemperatureKelvin > over_temperature_ ? 1u << 1 : 0;  // critical warning
  Put<uint16_t>(page, 1, kTemperatureKelvin);
  page[3] = 100;  // available spare %
  page[4] = 10;   // spare threshold %
  // Data units: thousands of 512-byte units, rounded up.
  PutCounter(page, 32, (bytes_read / 512 + 999) / 1000);
  PutCounter(page, 48, (bytes_written / 512 + 999) / 1000);
  PutCounter(page, 64, reads);
  PutCounter(page, 80, writes);
  PutCounter(page, 112, 1);  // power cycles
}

AdminCommandSet::Result AdminCommandSet::GetLogPage(const SubmissionEntry& sqe,
                                                    DeviceContext& dma, GuestData& data) {
  const uint8_t lid = sqe.cdw10 & 0xff;
  const uint64_t dwords = ((uint64_t{sqe.cdw11 & 0xffff} << 16) | (sqe.cdw10 >> 16)) + 1;
  const uint64_t offset = (uint64_t{sqe.cdw13} << 32) | sqe.cdw12;
  std::array<uint8_t, kSmartLogSize> log = {};
  uint64_t log_size = 0;
  switch (lid) {
    case kLogError:
      // No error has been recorded: every entry is empty (error count 0).
      log_size = kErrorLogEntries * kErrorLogEntrySize;
      break;
    case kLogSmart:
      if (sqe.nsid != 0 && sqe.nsid != 0xffffffff) return Status(kInvalidField);
      FillSmartLog(log.data());
      log_size = kSmartLogSize;
      break;
    case kLogFirmwareSlot:
      log[0] = 1;  // AFI: slot 1 active
      PutString(log.data(), 8, 8, identity_.firmware);
      log_size = kFirmwareLogSize;
      break;
    default:
      return Status(kInvalidLogPage);
  }
  const uint64_t bytes = dwords * 4;
  if ((offset & 3) != 0 || offset >= log_size || bytes > kMaxTransferBytes) {
    return Status(kInvalidField);
  }
  if (uint16_t status = data.Walk(dma, sqe, bytes, host_.page_size()); status != kSuccess) {
    return Status(status);
  }
  // Past the end of the log the transfer reads zeros.
  std::vector<uint8_t> out(bytes, 0);
  std::memcpy(out.data(), log.data() + offset, std::min(bytes, log_size - offset));
  return Status(data.CopyOut(dma, out));
}

// ---- Asynchronous events ----

AdminCommandSet::Result AdminCommandSet::AsyncEventRequest(const SubmissionEntry& sqe) {
  if (!queued_events_.empty()) {
    const uint32_t event = queued_events_.front();
    queued_events_.pop_front();
    return {.status = kSuccess, .dw0 = event};
  }
  if (pending_event_requests_.size() >= kAerLimit) return Status(kAerLimitExceeded);
  pending_event_requests_.push_back(sqe.cid);
  return {.deferred = true};
}

std::optional<uint16_t> AdminCommandSet::QueueEvent(uint32_t event) {
  if (!pending_event_requests_.empty()) {
    const uint16_t cid = pending_event_requests_.front();
    pending_event_requests_.erase(pending_event_requests_.begin());
    return cid;
  }
  if (queued_events_.size() < kMaxQueuedEvents) queued_events_.push_back(event);
  return std::nullopt;
}

void AdminCommandSet::SaveState(NvmeAdminState& out) const {
  out.set_arbitration(arbitration_);
  out.set_over_temperature(over_temperature_);
  out.set_under_temperature(under_temperature_);
  out.set_write_cache_enabled(write_cache_enabled_);
  out.set_queues_allocated(queues_allocated_);
  out.set_queues_created(queues_created_);
  out.set_interrupt_coalescing(interrupt_coalescing_);
  for (uint32_t vector = 0; vector < coalescing_disabled_.size(); ++vector) {
    if (coalescing_disabled_[vector]) out.add_coalescing_disabled_vectors(vector);
  }
  out.set_async_event_config(async_event_config_);
  for (uint16_t cid : pending_event_requests_) out.add_event_requests(cid);
  for (uint32_t event : queued_events_) out.add_queued_events(event);
}

absl::Status AdminCommandSet::CheckState(const NvmeAdminState& state) {
  if (state.over_temperature() > 0xffff || state.under_temperature() > 0xffff) {
    return absl::InvalidArgumentError("nvme: temperature threshold out of range");
  }
  if (state.queues_allocated() == 0 || state.queues_allocated() > kMaxIoQueues) {
    return absl::InvalidArgumentError("nvme: queue count out of range");
  }
  if (state.interrupt_coalescing() > 0xffff) {
    return absl::InvalidArgumentError("nvme: interrupt coalescing value out of range");
  }
  for (uint32_t vector : state.coalescing_disabled_vectors()) {
    if (vector >= kMsixVectors) return absl::InvalidArgumentError("nvme: vector out of range");
  }
  if (static_cast<size_t>(state.event_requests_size()) > kAerLimit ||
      static_cast<size_t>(state.queued_events_size()) > kMaxQueuedEvents) {
    return absl::InvalidArgumentError("nvme: too many event requests or events");
  }
  for (uint32_t cid : state.event_requests()) {
    if (cid > 0xffff) return absl::InvalidArgumentError("nvme: event request CID out of range");
  }
  return absl::OkStatus();
}

absl::Status AdminCommandSet::LoadState(const NvmeAdminState& state) {
  VFU_RETURN_IF_ERROR(CheckState(state));
  arbitration_ = state.arbitration();
  over_temperature_ = static_cast<uint16_t>(state.over_temperature());
  under_temperature_ = static_cast<uint16_t>(state.under_temperature());
  write_cache_enabled_ = state.write_cache_enabled();
  queues_allocated_ = static_cast<uint16_t>(state.queues_allocated());
  queues_created_ = state.queues_created();
  interrupt_coalescing_ = state.interrupt_coalescing();
  coalescing_disabled_.fill(false);
  for (uint32_t vector : state.coalescing_disabled_vectors()) coalescing_disabled_[vector] = true;
  async_event_config_ = state.async_event_config();
  pending_event_requests_.assign(state.event_requests().begin(), state.event_requests().end());
  queued_events_.assign(state.queued_events().begin(), state.queued_events().end());
  return absl::OkStatus();
}

}  // namespace vfu::nvme
