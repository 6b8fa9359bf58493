#include "devices/dma_engine/dma_engine_device.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "devices/common/register_bytes.h"
#include "devices/dma_engine/dma_engine_state.pb.h"
#include "vfu/base/log.h"

namespace vfu::devices {

using dma_engine::ChannelRegister;
using dma_engine::kBarSize;
using dma_engine::kChannelBase;
using dma_engine::kChannelStride;
using dma_engine::kChunkSize;
using dma_engine::kClassCode;
using dma_engine::kDeviceId;
using dma_engine::kDoorbellAbort;
using dma_engine::kDoorbellStart;
using dma_engine::kErrorAborted;
using dma_engine::kErrorDestinationFault;
using dma_engine::kErrorDetached;
using dma_engine::kErrorInvalid;
using dma_engine::kErrorNone;
using dma_engine::kErrorSourceFault;
using dma_engine::kIdValue;
using dma_engine::kMsixPbaOffset;
using dma_engine::kMsixTableOffset;
using dma_engine::kNumChannels;
using dma_engine::kRegChannels;
using dma_engine::kRegDestinationHi;
using dma_engine::kRegDestinationLo;
using dma_engine::kRegDoorbell;
using dma_engine::kRegError;
using dma_engine::kRegId;
using dma_engine::kRegIrqStatus;
using dma_engine::kRegisterRevision;
using dma_engine::kRegLength;
using dma_engine::kRegProgress;
using dma_engine::kRegSourceHi;
using dma_engine::kRegSourceLo;
using dma_engine::kRegStatus;
using dma_engine::kRegVersion;
using dma_engine::kRevision;
using dma_engine::kStatusBusy;
using dma_engine::kStatusDone;
using dma_engine::kStatusError;
using dma_engine::kVendorId;

namespace {

constexpr uint64_t kChannelEnd = ChannelRegister(kNumChannels, 0);

PciDeviceSpec DmaEngineSpec() {
  PciDeviceSpec spec;
  spec.identity = {.vendor_id = kVendorId,
                   .device_id = kDeviceId,
                   .subsystem_vendor_id = kVendorId,
                   .subsystem_id = kDeviceId,
                   .class_code = kClassCode,
                   .revision = kRevision};
  spec.bars[0].size = kBarSize;  // 32-bit memory, messages only
  spec.interrupts = {.msix_vectors = kNumChannels,
                     .msix_bar = 0,
                     .msix_table_offset = kMsixTableOffset,
                     .msix_pba_offset = kMsixPbaOffset};
  spec.migration = MigrationSpec{.device_type = "vfu-dma-engine", .device_version = 1};
  return spec;
}

uint32_t Low(uint64_t value) { return static_cast<uint32_t>(value); }
uint32_t High(uint64_t value) { return static_cast<uint32_t>(value >> 32); }
uint64_t WithLow(uint64_t value, uint32_t low) { return (value & ~uint64_t{0xffffffff}) | low; }
uint64_t WithHigh(uint64_t value, uint32_t high) {
  return (value & uint64_t{0xffffffff}) | (uint64_t{high} << 32);
}

// A pin fails this way when part of the range is fd-less memory, which
// only messages reach: not a fault, the chunk takes the buffered path.
bool NeedsMessages(const absl::Status& status) {
  return status.code() == absl::StatusCode::kFailedPrecondition;
}

// The ERROR value for a failed access to one side of the copy, logged.
uint32_t Fault(uint32_t channel, uint32_t side_error, const char* what, uint64_t iova,
               uint64_t length, const absl::Status& status) {
  VFU_LOG(kWarning, "dma_engine: channel ", channel, ": ", what, " [0x", absl::Hex(iova), ", +0x",
          absl::Hex(length), ") failed: ", status.ToString());
  return status.code() == absl::StatusCode::kUnavailable ? kErrorDetached : side_error;
}

}  // namespace

DmaEngineDevice::DmaEngineDevice() : PciDevice(DmaEngineSpec()) {
  threads_.reserve(kNumChannels);
  for (uint32_t channel = 0; channel < kNumChannels; ++channel) {
    threads_.emplace_back([this, channel] { ChannelLoop(channel); });
  }
}

DmaEngineDevice::~DmaEngineDevice() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    // Abandon what runs, so each thread stops at its next step.
    for (Channel& c : channels_) ++c.generation;
  }
  for (std::thread& thread : threads_) thread.join();
}

// ---------------------------------------------------------------- registers

uint32_t DmaEngineDevice::ReadRegisterLocked(uint64_t offset) const {
  switch (offset) {
    case kRegId:
      return kIdValue;
    case kRegVersion:
      return kRegisterRevision;
    case kRegChannels:
      return kNumChannels;
    case kRegIrqStatus:
      return irq_status_;
    default:
      break;
  }
  if (offset < kChannelBase || offset >= kChannelEnd) return 0;  // reserved
  const Channel& c = channels_[(offset - kChannelBase) / kChannelStride];
  switch ((offset - kChannelBase) % kChannelStride) {
    case kRegSourceLo:
      return Low(c.source);
    case kRegSourceHi:
      return High(c.source);
    case kRegDestinationLo:
      return Low(c.destination);
    case kRegDestinationHi:
      return High(c.destination);
    case kRegLength:
      return c.length;
    case kRegStatus:
      return c.status;
    case kRegError:
      return c.error;
    case kRegProgress:
      return c.progress;
    default:
      return 0;  // DOORBELL and reserved
  }
}

void DmaEngineDevice::WriteRegisterLocked(uint64_t offset, uint32_t value, uint32_t mask) {
  if (offset == kRegIrqStatus) {
    irq_status_ &= ~(value & mask);
    return;
  }
  if (offset < kChannelBase || offset >= kChannelEnd) return;  // read-only or reserved
  const uint32_t channel = static_cast<uint32_t>((offset - kChannelBase) / kChannelStride);
  Channel& c = channels_[channel];
  auto merge = [&](uint32_t old) { return (old & ~mask) | (value & mask); };
  switch ((offset - kChannelBase) % kChannelStride) {
    case kRegSourceLo:
      c.source = WithLow(c.source, merge(Low(c.source)));
      break;
    case kRegSourceHi:
      c.source = WithHigh(c.source, merge(High(c.source)));
      break;
    case kRegDestinationLo:
      c.destination = WithLow(c.destination, merge(Low(c.destination)));
      break;
    case kRegDestinationHi:
      c.destination = WithHigh(c.destination, merge(High(c.destination)));
      break;
    case kRegLength:
      c.length = merge(c.length);
      break;
    case kRegDoorbell:
      // Bits of bytes the access did not cover were not written.
      DoorbellLocked(channel, value & mask);
      break;
    default:
      break;  // read-only or reserved: dropped, as hardware does
  }
}

void DmaEngineDevice::DoorbellLocked(uint32_t channel, uint32_t value) {
  Channel& c = channels_[channel];
  if ((value & kDoorbellAbort) != 0) {
    // The thread ends the job at its next step; until then it is busy.
    if (c.status == kStatusBusy) c.abort = true;
    return;
  }
  if ((value & kDoorbellStart) == 0 || c.status == kStatusBusy) return;
  c.job = {.source = c.source, .destination = c.destination, .length = c.length};
  c.status = kStatusBusy;
  c.error = kErrorNone;
  c.progress = 0;
  c.abort = false;
  c.start = true;
  ++c.generation;
}

void DmaEngineDevice::FinishLocked(uint32_t channel, uint32_t error) {
  Channel& c = channels_[channel];
  c.status = error == kErrorNone ? kStatusDone : kStatusError;
  c.error = error;
  c.abort = false;
  irq_status_ |= 1u << channel;
  // Vector n: MSI-X entry n (the device has only MSI-X). A driver may
  // poll STATUS instead of installing an eventfd: FailedPrecondition.
  absl::Status status = RaiseInterrupt(channel);
  if (!status.ok() && !absl::IsFailedPrecondition(status) && !absl::IsUnavailable(status)) {
    VFU_LOG(kWarning, "dma_engine: channel ", channel,
            ": raising MSI-X failed: ", status.ToString());
  }
}

absl::Status DmaEngineDevice::OnRegionRead(uint32_t region, uint64_t offset,
                                          absl::Span<uint8_t> out) {
  absl::MutexLock lock(&mu_);
  for (const RegisterSlice& slice : RegisterSlices(offset, out.size())) {
    slice.Scatter(ReadRegisterLocked(slice.reg), out);
  }
  return absl::OkStatus();
}

absl::Status DmaEngineDevice::OnRegionWrite(uint32_t region, uint64_t offset,
                                           absl::Span<const uint8_t> data) {
  absl::MutexLock lock(&mu_);
  // One register at a time, in address order: an 8-byte write of LENGTH
  // and DOORBELL sets the length first, then rings.
  for (const RegisterSlice& slice : RegisterSlices(offset, data.size())) {
    WriteRegisterLocked(slice.reg, slice.Gather(data), slice.mask());
  }
  return absl::OkStatus();
}

absl::Status DmaEngineDevice::OnReset() {
  absl::MutexLock lock(&mu_);
  for (Channel& c : channels_) {
    // A new generation abandons the job in flight; the thread stops at its
    // next step without touching the registers or raising an interrupt.
    const uint64_t generation = c.generation + 1;
    c = Channel();
    c.generation = generation;
  }
  irq_status_ = 0;
  migration_stopped_ = false;  // a reset ends any migration: the device runs
  return absl::OkStatus();
}

void DmaEngineDevice::OnClientDetached() {
  absl::MutexLock lock(&mu_);
  for (uint32_t channel = 0; channel < kNumChannels; ++channel) {
    Channel& c = channels_[channel];
    if (c.status != kStatusBusy) continue;
    ++c.generation;
    c.start = false;
    c.abort = false;
    c.status = kStatusError;
    c.error = kErrorDetached;
    // No interrupt: its eventfd left with the client.
    irq_status_ |= 1u << channel;
  }
  // Every job is stale now, so each thread stops at its next step; the
  // server may go away once this returns.
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (bool running : running_) {
      if (running) return false;
    }
    return true;
  };
  mu_.Await(absl::Condition(&idle));
}

void DmaEngineDevice::OnClientAttached() {
  absl::MutexLock lock(&mu_);
  // No operation of a previous client can still need the device quiet.
  quiesced_ = false;
}

// ---------------------------------------------------------------- quiesce

bool DmaEngineDevice::AllParkedLocked() const {
  for (uint32_t channel = 0; channel < kNumChannels; ++channel) {
    if (running_[channel] && !parked_[channel]) return false;
  }
  return true;
}

QuiesceDone DmaEngineDevice::TakeQuiesceDoneLocked() {
  if (!quiesce_done_ || !AllParkedLocked()) return nullptr;
  QuiesceDone done = std::move(quiesce_done_);
  quiesce_done_ = nullptr;
  return done;
}

void DmaEngineDevice::WaitWhilePausedLocked(uint32_t channel, uint64_t generation) {
  if (!PausedLocked()) return;
  parked_[channel] = true;
  if (QuiesceDone done = TakeQuiesceDoneLocked()) {
    // Not under mu_: the engine may go on with the command from here.
    mu_.Unlock();
    std::move(done)(absl::OkStatus());
    mu_.Lock();
  }
  const Channel& c = channels_[channel];
  auto resume = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !PausedLocked() || c.generation != generation || stopping_;
  };
  mu_.Await(absl::Condition(&resume));
  parked_[channel] = false;
}

void DmaEngineDevice::OnQuiesce(QuiesceReason reason, QuiesceDone done) {
  QuiesceDone now;
  {
    absl::MutexLock lock(&mu_);
    quiesced_ = true;
    if (reason == QuiesceReason::kMigration || reason == QuiesceReason::kDmaLogging) {
      // The saved progress and the dirty log must count the chunk in
      // flight: wait for it (its DMA messages are answered meanwhile).
      quiesce_done_ = std::move(done);
      now = TakeQuiesceDoneLocked();
    } else {
      // Reset and detach abandon the jobs; DMA_MAP / UNMAP are safe against
      // a chunk in flight (an unmap waits for its pins). Waiting here for a
      // chunk whose DMA message the client answers only after this command
      // (QEMU, under its lock) would deadlock: done now, parked at the next
      // step.
      now = std::move(done);
    }
  }
  // Otherwise the last channel to reach a step completes it.
  if (now) std::move(now)(absl::OkStatus());
}

void DmaEngineDevice::OnUnquiesce() {
  absl::MutexLock lock(&mu_);
  quiesced_ = false;
}

// ---------------------------------------------------------------- migration

absl::Status DmaEngineDevice::OnMigrationStateChange(MigrationState from, MigrationState to) {
  absl::MutexLock lock(&mu_);
  migration_stopped_ = to == MigrationState::kStop || to == MigrationState::kStopCopy ||
                       to == MigrationState::kResuming;
  // The engine quiesced the device before the arc, so this holds already;
  // without that, wait here for the chunks in flight to end, so the saved
  // progress is exactly what was copied.
  if (migration_stopped_) {
    auto parked = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return AllParkedLocked(); };
    mu_.Await(absl::Condition(&parked));
  }
  return absl::OkStatus();
}

absl::Status DmaEngineDevice::SaveState(SavePhase phase, std::string& out) {
  if (phase == SavePhase::kPreCopy) return absl::OkStatus();  // small: all at the end
  dma_engine::DmaEngineState state;
  absl::MutexLock lock(&mu_);
  state.set_irq_status(irq_status_);
  for (const Channel& c : channels_) {
    dma_engine::DmaEngineChannelState* saved = state.add_channels();
    saved->set_source(c.source);
    saved->set_destination(c.destination);
    saved->set_length(c.length);
    saved->set_status(c.status);
    saved->set_error(c.error);
    saved->set_progress(c.progress);
    if (c.status == kStatusBusy) {
      saved->set_job_source(c.job.source);
      saved->set_job_destination(c.job.destination);
      saved->set_job_length(c.job.length);
      saved->set_abort(c.abort);
    }
  }
  if (!state.SerializeToString(&out)) {
    return absl::InternalError("dma_engine: state not serialized");
  }
  return absl::OkStatus();
}

absl::Status DmaEngineDevice::LoadState(absl::Span<const std::string> pieces) {
  dma_engine::DmaEngineState state;
  if (pieces.size() != 1 || !state.ParseFromString(pieces.front())) {
    return absl::InvalidArgumentError("dma_engine: migration state is not one DmaEngineState");
  }
  if (state.channels_size() != static_cast<int>(kNumChannels) ||
      (state.irq_status() >> kNumChannels) != 0) {
    return absl::InvalidArgumentError("dma_engine: migration state has the wrong channel count");
  }
  for (const dma_engine::DmaEngineChannelState& saved : state.channels()) {
    const bool busy = saved.status() == kStatusBusy;
    if (saved.status() > kStatusError || saved.error() > kErrorInvalid ||
        (busy && saved.progress() > saved.job_length())) {
      return absl::InvalidArgumentError(
          "dma_engine: migration state has a bad status, error or progress");
    }
  }
  absl::MutexLock lock(&mu_);
  irq_status_ = state.irq_status();
  for (uint32_t channel = 0; channel < kNumChannels; ++channel) {
    const dma_engine::DmaEngineChannelState& saved = state.channels(channel);
    Channel& c = channels_[channel];
    // Whatever ran here is abandoned: a new generation.
    const uint64_t generation = c.generation + 1;
    c = Channel();
    c.generation = generation;
    c.source = saved.source();
    c.destination = saved.destination();
    c.length = saved.length();
    c.status = saved.status();
    c.error = saved.error();
    c.progress = saved.progress();
    if (c.status == kStatusBusy) {
      // Resumed at the byte the source had reached, once the device runs.
      c.job = {.source = saved.job_source(),
               .destination = saved.job_destination(),
               .length = saved.job_length(),
               .resume_from = saved.progress()};
      c.abort = saved.abort();
      c.start = true;
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- jobs

void DmaEngineDevice::ChannelLoop(uint32_t channel) {
  std::vector<uint8_t> buffer(kChunkSize);
  while (true) {
    Job job;
    uint64_t generation;
    {
      absl::MutexLock lock(&mu_);
      const Channel& c = channels_[channel];
      // A job rung while the device is paused starts once it may run.
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return (c.start && !PausedLocked()) || stopping_;
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      channels_[channel].start = false;
      running_[channel] = true;
      job = c.job;
      generation = c.generation;
    }
    const std::optional<uint32_t> error = RunJob(channel, generation, job, buffer);
    QuiesceDone quiesced;
    {
      absl::MutexLock lock(&mu_);
      // Its interrupt waits too while the device is paused.
      if (error) WaitWhilePausedLocked(channel, generation);
      // A reset or detach since the last step already set the registers.
      if (error && channels_[channel].generation == generation) FinishLocked(channel, *error);
      running_[channel] = false;
      quiesced = TakeQuiesceDoneLocked();
    }
    if (quiesced) std::move(quiesced)(absl::OkStatus());
  }
}

DmaEngineDevice::Step DmaEngineDevice::Checkpoint(uint32_t channel, uint64_t generation,
                                                  uint64_t progress) {
  absl::MutexLock lock(&mu_);
  Channel& c = channels_[channel];
  if (c.generation != generation) return Step::kStale;
  c.progress = static_cast<uint32_t>(progress);
  WaitWhilePausedLocked(channel, generation);
  if (c.generation != generation) return Step::kStale;
  return c.abort ? Step::kAborted : Step::kContinue;
}

std::optional<uint32_t> DmaEngineDevice::RunJob(uint32_t channel, uint64_t generation,
                                                const Job& job, std::vector<uint8_t>& buffer) {
  if (job.length == 0) return kErrorNone;
  const uint64_t source_last = job.source + (job.length - 1);
  const uint64_t destination_last = job.destination + (job.length - 1);
  if (source_last < job.source || destination_last < job.destination ||
      (job.source <= destination_last && job.destination <= source_last)) {
    VFU_LOG(kWarning, "dma_engine: channel ", channel, ": source 0x", absl::Hex(job.source),
            " and destination 0x", absl::Hex(job.destination), " of 0x", absl::Hex(job.length),
            " bytes overlap or wrap around");
    return kErrorInvalid;
  }
  // The whole job runs for the client attached now: should it leave, every
  // call fails with Unavailable (kErrorDetached), never reaching the next.
  const std::shared_ptr<DeviceContext> context = dma();

  // Set once a pin finds fd-less memory: the rest of the job is buffered
  // rather than trying (and failing) to pin every chunk.
  bool buffered = false;
  uint64_t done = job.resume_from;
  while (done < job.length) {
    switch (Checkpoint(channel, generation, done)) {
      case Step::kStale:
        return std::nullopt;
      case Step::kAborted:
        return kErrorAborted;
      case Step::kContinue:
        break;
    }
    const uint64_t n = std::min<uint64_t>(kChunkSize, job.length - done);
    const uint64_t source = job.source + done;
    const uint64_t destination = job.destination + done;

    if (!buffered) {
      // Zero copy between two fd-backed ranges. The lists are released
      // before any wait for the client (DmaSgList's contract).
      absl::StatusOr<DmaSgList> in = context->DmaPin(source, n, DmaDirection::kRead);
      if (!in.ok() && !NeedsMessages(in.status())) {
        return Fault(channel, kErrorSourceFault, "reading source", source, n, in.status());
      }
      if (in.ok()) {
        absl::StatusOr<DmaSgList> out = context->DmaPin(destination, n, DmaDirection::kWrite);
        if (!out.ok() && !NeedsMessages(out.status())) {
          return Fault(channel, kErrorDestinationFault, "writing destination", destination, n,
                       out.status());
        }
        if (out.ok()) {
          // Guarded: the client may have shrunk the file behind either
          // side. The copy marks the destination dirty.
          if (absl::Status copy = DmaSgList::Copy(*in, *out); !copy.ok()) {
            return Fault(channel, kErrorSourceFault, "copying", source, n, copy);
          }
          done += n;
          continue;
        }
      }
      buffered = true;
    }

    absl::Span<uint8_t> chunk = absl::MakeSpan(buffer).subspan(0, n);
    if (absl::Status read = context->DmaRead(source, chunk); !read.ok()) {
      return Fault(channel, kErrorSourceFault, "reading source", source, n, read);
    }
    // The read may have waited long for the client: look again before
    // writing anything.
    switch (Checkpoint(channel, generation, done)) {
      case Step::kStale:
        return std::nullopt;
      case Step::kAborted:
        return kErrorAborted;
      case Step::kContinue:
        break;
    }
    if (absl::Status write = context->DmaWrite(destination, chunk); !write.ok()) {
      return Fault(channel, kErrorDestinationFault, "writing destination", destination, n, write);
    }
    done += n;
  }
  if (Checkpoint(channel, generation, done) == Step::kStale) return std::nullopt;
  return kErrorNone;
}

}  // namespace vfu::devices
