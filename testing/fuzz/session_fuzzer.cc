// Fuzzes the protocol engine (vfu/engine/session.h) end to end: a
// MemoryDevice behind a Session, fed a client's byte stream framed the way
// the server's connection frames it, and checked against a small model of
// what each command must do.
//
// Input: a control byte, then the client's byte stream. Control bits:
//   0  negotiate first with a well-formed VERSION (else the stream must)
//   1  that VERSION offers write_multiple
//   2  the server supports write_multiple
//   3  the server's max_data_xfer_size is 256 (else 1 MiB)
//   4  commands whose msg_id has bit 0 set carry an eventfd
//   5  commands whose msg_id has bit 1 set report MSG_CTRUNC
//   6  the device migrates (its stream is BAR0: half of a snapshot in
//      PRE_COPY, the rest in STOP_COPY; RESUMING takes exactly BAR0's size),
//      the server offers migration (pgsize 4096) and so does the VERSION;
//      and the device quiesces later (the fuzzer answers, then continues
//      the command) for commands whose msg_id has bit 2 set, and fails its
//      quiesce (EAGAIN) for those with bit 3 set
//   7  BAR0 is 16 bytes (else 4096)
// The stream is framed with SplitFrame() under the server's limits (64 KiB
// before negotiation, the negotiated one after). Oversized messages reach
// the session as headers; a corrupt or incomplete frame ends the run, as
// it ends the connection. Messages of reply or unknown type are dropped,
// as the connection drops them.
//
// Checks, for every command handled:
//  - success or failure, and closing the connection, are what the model
//    predicts (PROTOCOL.md section 10 rows 1-2, 4, 5, 8-10, 14, 15, 17,
//    19, 20, 22-28, 35; SET_IRQS fails, as MemoryDevice has no
//    interrupts; DMA_MAP succeeds exactly for an fd-less, aligned map that
//    overlaps no model mapping, DMA_UNMAP exactly for a model mapping or
//    ALL; DEVICE_FEATURE: dirty logging is checked for shape only, as the
//    model does not keep logging state; migration features are ENOTSUP
//    for a device that does not migrate, else PROBE echoes, GETs answer
//    from the model, and SET MIG_DEVICE_STATE succeeds exactly for an
//    enterable target other than STOP_COPY -> PRE_COPY, except that
//    leaving RESUMING with an incomplete stream fails with EBADMSG and
//    stays; in STOP only region access, DEVICE_FEATURE and MIG_DATA_READ
//    run and in STOP_COPY only the last two (else EINVAL);
//    MIG_DATA_READ runs in PRE_COPY/STOP_COPY only and returns exactly the
//    model's next stream bytes, MIG_DATA_WRITE in RESUMING only;
//    DEVICE_RESET returns the state to RUNNING);
//  - a NO_REPLY command gets no reply; any other gets a well-formed one:
//    reply type, msg_id and command echoed, msg_size equal to its length,
//    no reserved flag bits, no fds; an error reply is exactly the 16-byte
//    header with an errno the command may give (EINVAL unless noted);
//  - success payloads: VERSION decodes and is accepted by the client's
//    ValidateServerVersionReply(); GET_INFO, GET_REGION_INFO and
//    GET_IRQ_INFO fit the request's argsz and describe the device;
//    REGION_READ returns exactly the bytes the model holds; REGION_WRITE
//    and REGION_WRITE_MULTI echo what was written; DMA_UNMAP echoes its
//    range; DEVICE_FEATURE echoes SET/PROBE and decodes as a GET reply;
//  - after every command BAR0 equals the model's copy (writes, partial
//    WRITE_MULTI batches and resets applied exactly once, NO_REPLY ones
//    included);
//  - a command the device is asked to quiesce for (DMA_MAP, DMA_UNMAP,
//    DEVICE_RESET, a real migration state change, DMA logging start or
//    stop) fails with EAGAIN and has no effect when the quiesce fails; a
//    deferred quiesce parks the command without a reply until it is
//    answered; quiesce and unquiesce alternate, and none is left open;
//  - the device is attached once after negotiation and detached at the
//    end; every fd sent with a command is closed.
#include <linux/vfio.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "testing/fuzz/fuzz_util.h"
#include "testing/local_dma_context.h"
#include "testing/memory_device.h"
#include "vfu/base/unique_fd.h"
#include "vfu/base/status_macros.h"
#include "vfu/device/device.h"
#include "vfu/device/migration_state.h"
#include "vfu/engine/session.h"
#include "vfu/transport/message.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/capabilities.h"
#include "vfu/wire/constants.h"
#include "vfu/wire/device_feature.h"
#include "vfu/wire/device_info.h"
#include "vfu/wire/errno_status.h"
#include "vfu/wire/dma_map.h"
#include "vfu/wire/dma_unmap.h"
#include "vfu/wire/frame_splitter.h"
#include "vfu/wire/header.h"
#include "vfu/wire/irq.h"
#include "vfu/wire/migration_data.h"
#include "vfu/wire/negotiation.h"
#include "vfu/wire/region_access.h"
#include "vfu/wire/region_info.h"
#include "vfu/wire/version.h"

namespace vfu::fuzz {
namespace {

using wire::Command;
using wire::kHeaderSize;

// The server connection's limit before negotiation (vfu/server/connection.cc).
constexpr size_t kPreNegotiationMaxMessage = 64 * 1024 + 64;
// Config space of MemoryDevice: region 7, 256 bytes, read-only zeros.
constexpr uint32_t kConfigRegion = wire::kPciNumRegions - 2;
constexpr uint64_t kConfigSize = 256;
constexpr size_t kMaxFdsPerRun = 64;

// What the engine must have done so far, kept independently of it.
struct Model {
  wire::ServerVersionPolicy policy;
  bool negotiated = false;
  wire::Version proposal;  // the client's VERSION, once negotiated
  bool write_multiple = false;
  uint64_t max_data_xfer_size = 0;
  std::vector<uint8_t> bar0;
  // Live fd-less DMA mappings: iova -> size.
  std::map<uint64_t, uint64_t> dma_maps;

  // Migration (control bit 6), as the device below defines its stream.
  bool migrates = false;
  uint32_t mig_state = kRunning;
  bool saving = false;
  std::vector<uint8_t> snapshot;  // what the save stream serves
  size_t cursor = 0;
  size_t limit = 0;
  std::vector<uint8_t> incoming;  // what RESUMING received
  // The bytes the last successful MIG_DATA_READ must return.
  std::vector<uint8_t> expected_read;
  // The device fails the quiesce of the command being predicted.
  bool fail_quiesce = false;

  static constexpr uint32_t kStop = 1, kRunning = 2, kStopCopy = 3, kResuming = 4,
                            kPreCopy = 6;
};

// A MemoryDevice that migrates (when asked to): its stream is BAR0 (half
// of a snapshot in PRE_COPY, the rest of a fresh snapshot in STOP_COPY); in
// RESUMING it takes at most BAR0's size and applies it at RESUMING -> STOP
// when it got exactly that much.
class FuzzMigratingDevice : public testing::MemoryDevice {
 public:
  FuzzMigratingDevice(uint64_t bar0_size, bool migrates)
      : MemoryDevice(bar0_size), size_(bar0_size), migrates_(migrates) {}

  bool SupportsMigration() const override { return migrates_; }
  absl::Status OnMigrationArc(MigrationState from, MigrationState to) override {
    if (from == MigrationState::kResuming) {
      if (incoming_.size() != size_) return wire::WireError(EBADMSG, "incomplete stream");
      VFU_RETURN_IF_ERROR(WriteRegion(0, 0, incoming_));
    }
    if (to == MigrationState::kPreCopy) {
      Snapshot(/*keep_cursor=*/false, size_ / 2);
    } else if (to == MigrationState::kStopCopy) {
      Snapshot(/*keep_cursor=*/from == MigrationState::kPreCopy, size_);
    } else if (to == MigrationState::kResuming) {
      incoming_.clear();
    } else {
      saving_ = false;
    }
    return absl::OkStatus();
  }
  absl::StatusOr<size_t> ReadMigrationData(absl::Span<uint8_t> out) override {
    VFU_FUZZ_CHECK(saving_, "MIG_DATA_READ reached the device while it does not save");
    const size_t n = std::min(out.size(), limit_ - cursor_);
    std::copy_n(snapshot_.begin() + cursor_, n, out.begin());
    cursor_ += n;
    return n;
  }
  absl::Status WriteMigrationData(absl::Span<const uint8_t> data) override {
    if (data.size() > size_ - incoming_.size()) {
      return wire::WireError(EFBIG, "stream longer than BAR0");
    }
    incoming_.insert(incoming_.end(), data.begin(), data.end());
    return absl::OkStatus();
  }
  uint64_t MigrationDataEstimate() override { return saving_ ? limit_ - cursor_ : 0; }

  // How the next quiesces go: answered later (CompleteHeld) and/or failed.
  void set_quiesce_behavior(bool defer, bool fail) {
    defer_ = defer;
    fail_ = fail;
  }
  void Quiesce(QuiesceReason, QuiesceDone done) override {
    VFU_FUZZ_CHECK(!quiesced_ && !held_, "quiesce while quiesced or quiescing");
    if (defer_) {
      held_.emplace(std::move(done));
      return;
    }
    Answer(std::move(done));
  }
  // Answers a held quiesce; false if none is held.
  bool CompleteHeld() {
    if (!held_) return false;
    QuiesceDone done = std::move(*held_);
    held_.reset();
    Answer(std::move(done));
    return true;
  }
  void Unquiesce() override {
    VFU_FUZZ_CHECK(quiesced_, "unquiesce without a successful quiesce");
    quiesced_ = false;
  }
  bool quiesce_open() const { return quiesced_ || held_.has_value(); }

  absl::Status Reset() override {
    saving_ = false;
    incoming_.clear();
    return MemoryDevice::Reset();
  }

 private:
  void Snapshot(bool keep_cursor, size_t limit) {
    snapshot_ = bar0();
    if (!keep_cursor) cursor_ = 0;
    limit_ = limit;
    saving_ = true;
  }

  void Answer(QuiesceDone done) {
    if (fail_) {
      std::move(done)(wire::WireError(EAGAIN, "fuzzed quiesce failure"));
      return;
    }
    quiesced_ = true;
    std::move(done)(absl::OkStatus());
  }

  const size_t size_;
  const bool migrates_;
  bool defer_ = false;
  bool fail_ = false;
  bool quiesced_ = false;
  std::optional<QuiesceDone> held_;
  bool saving_ = false;
  std::vector<uint8_t> snapshot_;
  size_t cursor_ = 0;
  size_t limit_ = 0;
  std::vector<uint8_t> incoming_;
};

// Region access as MemoryDevice allows it: BAR0 read-write, config space
// read-only, nothing else; within bounds.
bool AccessOk(const Model& model, uint32_t region, uint64_t offset, uint64_t count, bool write) {
  uint64_t size = 0;
  if (region == 0) {
    size = model.bar0.size();
  } else if (region == kConfigRegion && !write) {
    size = kConfigSize;
  } else {
    return false;
  }
  return offset <= size && count <= size - offset;
}

struct Prediction {
  bool ok = false;
  bool close = false;
  // The outcome depends on state the model does not keep (dirty logging):
  // success or any of `errnos` is right.
  bool either = false;
  // Errnos a failure may carry.
  std::vector<int> errnos = {EINVAL};
};

constexpr uint64_t kPageSize = 4096;

// DMA_MAP as DmaMapTable judges it for the fds this fuzzer sends (eventfds,
// which cannot be mmapped): success only for an fd-less, page-aligned map
// that overlaps nothing.
Prediction PredictDmaMap(absl::Span<const uint8_t> payload, size_t fds, Model& model) {
  const absl::StatusOr<wire::DmaMapRequest> r = wire::DecodeDmaMapRequest(payload, fds);
  if (!r.ok()) return {};
  Prediction fail{.errnos = {EINVAL, EEXIST, ENOSPC, ENODEV, EACCES}};
  if (fds != 0 || (r->flags & (wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite)) == 0 ||
      r->addr % kPageSize != 0 || r->size % kPageSize != 0 ||
      r->size > (uint64_t{8} << 40)) {
    return fail;
  }
  for (const auto& [iova, size] : model.dma_maps) {
    if (r->addr < iova + size && iova < r->addr + r->size) return fail;
  }
  model.dma_maps[r->addr] = r->size;
  return {.ok = true};
}

Prediction PredictDmaUnmap(absl::Span<const uint8_t> payload, size_t fds, Model& model) {
  const absl::StatusOr<wire::DmaUnmapRequest> r = wire::DecodeDmaUnmapRequest(payload, fds);
  if (!r.ok()) return {};
  if (r->flags & wire::kDmaUnmapFlagAll) {
    model.dma_maps.clear();
    return {.ok = true};
  }
  // A dirty bitmap needs logging and fd-backed memory, which never exist here.
  auto it = model.dma_maps.find(r->addr);
  if (r->bitmap || it == model.dma_maps.end() || it->second != r->size) {
    return {.errnos = {EINVAL, ENOENT}};
  }
  model.dma_maps.erase(it);
  return {.ok = true};
}

// SET MIG_DEVICE_STATE, with the model's own reading of PROTOCOL.md
// section 6 (any enterable target is reachable except STOP_COPY ->
// PRE_COPY) and of the device's stream.
Prediction PredictSetState(uint32_t target, Model& model) {
  const bool enterable = target == Model::kStop || target == Model::kRunning ||
                         target == Model::kStopCopy || target == Model::kResuming ||
                         target == Model::kPreCopy;
  if (!enterable || (model.mig_state == Model::kStopCopy && target == Model::kPreCopy)) {
    return {};
  }
  if (target == model.mig_state) return {.ok = true};
  if (model.mig_state == Model::kResuming) {
    // Every path out of RESUMING starts with RESUMING -> STOP.
    if (model.incoming.size() != model.bar0.size()) return {.errnos = {EBADMSG}};
    model.bar0 = model.incoming;
  }
  if (target == Model::kPreCopy) {
    // Always entered from RUNNING: a fresh snapshot, half of it offered.
    model.snapshot = model.bar0;
    model.cursor = 0;
    model.limit = model.bar0.size() / 2;
    model.saving = true;
  } else if (target == Model::kStopCopy) {
    // Straight from PRE_COPY the stream goes on; otherwise through STOP.
    if (model.mig_state != Model::kPreCopy) model.cursor = 0;
    model.snapshot = model.bar0;
    model.limit = model.bar0.size();
    model.saving = true;
  } else {
    model.saving = false;
    if (target == Model::kResuming) model.incoming.clear();
  }
  model.mig_state = target;
  return {.ok = true};
}

Prediction PredictDeviceFeature(absl::Span<const uint8_t> payload, size_t fds, Model& model) {
  const absl::StatusOr<wire::DeviceFeatureRequest> r =
      wire::DecodeDeviceFeatureRequest(payload, fds);
  if (!r.ok()) return {};
  switch (r->feature()) {
    case wire::DeviceFeature::kDmaLoggingStart:
    case wire::DeviceFeature::kDmaLoggingStop:
    case wire::DeviceFeature::kDmaLoggingReport:
      if (r->is_probe()) return {.ok = true};
      return {.either = true};
    default:
      if (!model.migrates) return {.errnos = {ENOTSUP}};
      if (r->is_probe() || r->is_get()) return {.ok = true};
      return PredictSetState(std::get<wire::FeatureMigState>(r->data).device_state, model);
  }
}

// Whether the engine must quiesce the device for `m` (admitted already):
// DMA_MAP, DMA_UNMAP and DEVICE_RESET always; DEVICE_FEATURE for a SET
// (not PROBE) of logging start/stop, or of a migration state the device
// can reach and is not in.
bool NeedsQuiesce(const InboundMessage& m, const Model& model) {
  switch (static_cast<Command>(m.header.command)) {
    case Command::kDmaMap:
    case Command::kDmaUnmap:
    case Command::kDeviceReset:
      return true;
    case Command::kDeviceFeature: {
      const absl::StatusOr<wire::DeviceFeatureRequest> r =
          wire::DecodeDeviceFeatureRequest(m.payload(), m.fds.size());
      if (!r.ok() || r->is_probe() || !r->is_set()) return false;
      if (r->feature() == wire::DeviceFeature::kDmaLoggingStart ||
          r->feature() == wire::DeviceFeature::kDmaLoggingStop) {
        return true;
      }
      if (r->feature() != wire::DeviceFeature::kMigDeviceState || !model.migrates) return false;
      const uint32_t target = std::get<wire::FeatureMigState>(r->data).device_state;
      const bool enterable = target == Model::kStop || target == Model::kRunning ||
                             target == Model::kStopCopy || target == Model::kResuming ||
                             target == Model::kPreCopy;
      return enterable && target != model.mig_state &&
             !(model.mig_state == Model::kStopCopy && target == Model::kPreCopy);
    }
    default:
      return false;
  }
}

// The commands STOP and STOP_COPY allow (PROTOCOL.md section 6).
bool AllowedInState(const Model& model, uint16_t command) {
  const Command c = static_cast<Command>(command);
  const bool feature_or_read = c == Command::kDeviceFeature || c == Command::kMigDataRead;
  if (model.mig_state == Model::kStopCopy) return feature_or_read;
  if (model.mig_state == Model::kStop) {
    return feature_or_read || c == Command::kRegionRead || c == Command::kRegionWrite ||
           c == Command::kRegionWriteMulti;
  }
  return true;
}

// What handling `m` must do, updating the model with its side effects
// (which happen whether or not a reply is sent).
Prediction Predict(const InboundMessage& m, Model& model) {
  const wire::Header& h = m.header;
  const absl::Span<const uint8_t> payload = m.payload();
  const size_t fds = m.fds.size();
  // Before negotiation, anything but a good VERSION fails and closes (row 9).
  if (m.oversized || m.fds_truncated || !wire::IsKnownCommand(h.command)) {
    return {.ok = false, .close = !model.negotiated};
  }
  if (!model.negotiated && h.command != static_cast<uint16_t>(Command::kVersion)) {
    return {.ok = false, .close = true};
  }
  if (model.negotiated && !AllowedInState(model, h.command)) return {};
  if (model.negotiated && model.fail_quiesce && NeedsQuiesce(m, model)) {
    return {.errnos = {EAGAIN}};  // and nothing changes
  }
  switch (static_cast<Command>(h.command)) {
    case Command::kVersion: {
      if (model.negotiated) return {};
      const absl::StatusOr<wire::Version> v = wire::DecodeVersionRequest(payload, fds);
      if (!v.ok()) return {.ok = false, .close = true};
      const absl::StatusOr<wire::NegotiatedVersion> n = wire::NegotiateVersion(*v, model.policy);
      if (!n.ok()) return {.ok = false, .close = true};
      model.negotiated = true;
      model.proposal = *v;
      model.write_multiple = n->write_multiple();
      model.max_data_xfer_size = n->reply.capabilities.max_data_xfer_size;
      return {.ok = true};
    }
    case Command::kDeviceGetInfo:
      return {.ok = wire::DecodeDeviceGetInfoRequest(payload, fds).ok()};
    case Command::kDeviceGetRegionInfo: {
      const absl::StatusOr<wire::RegionInfoRequest> r = wire::DecodeRegionInfoRequest(payload, fds);
      return {.ok = r.ok() && r->index < wire::kPciNumRegions};
    }
    case Command::kDeviceGetIrqInfo: {
      const absl::StatusOr<wire::IrqInfo> r = wire::DecodeIrqInfoRequest(payload, fds);
      return {.ok = r.ok() && r->index < wire::kPciNumIrqs};
    }
    case Command::kRegionRead: {
      const absl::StatusOr<wire::RegionAccess> r =
          wire::DecodeRegionReadRequest(payload, fds, model.max_data_xfer_size);
      return {.ok = r.ok() && AccessOk(model, r->region, r->offset, r->count, false)};
    }
    case Command::kRegionWrite: {
      const absl::StatusOr<wire::RegionAccessData> r =
          wire::DecodeRegionWriteRequest(payload, fds, model.max_data_xfer_size);
      if (!r.ok() || !AccessOk(model, r->region, r->offset, r->data.size(), true)) return {};
      std::copy(r->data.begin(), r->data.end(), model.bar0.begin() + r->offset);
      return {.ok = true};
    }
    case Command::kRegionWriteMulti: {
      if (!model.write_multiple) return {};
      const absl::StatusOr<std::vector<wire::RegionWriteMultiEntry>> entries =
          wire::DecodeRegionWriteMultiRequest(payload, fds);
      if (!entries.ok()) return {};
      // In order; the first bad entry ends the batch, earlier writes stay.
      for (const wire::RegionWriteMultiEntry& e : *entries) {
        if (!AccessOk(model, e.region, e.offset, e.data.size(), true)) return {};
        std::copy(e.data.begin(), e.data.end(), model.bar0.begin() + e.offset);
      }
      return {.ok = true};
    }
    case Command::kDeviceReset:
      if (!payload.empty()) return {};
      std::fill(model.bar0.begin(), model.bar0.end(), 0);
      // A reset device runs; any migration is over.
      model.mig_state = Model::kRunning;
      model.saving = false;
      model.incoming.clear();
      return {.ok = true};
    case Command::kMigDataRead: {
      const absl::StatusOr<wire::MigDataReadRequest> r =
          wire::DecodeMigDataReadRequest(payload, fds, model.max_data_xfer_size);
      if (!r.ok() || !model.migrates ||
          (model.mig_state != Model::kPreCopy && model.mig_state != Model::kStopCopy)) {
        return {};
      }
      const size_t n = std::min<size_t>(r->size, model.limit - model.cursor);
      model.expected_read.assign(model.snapshot.begin() + model.cursor,
                                 model.snapshot.begin() + model.cursor + n);
      model.cursor += n;
      return {.ok = true};
    }
    case Command::kMigDataWrite: {
      const absl::StatusOr<wire::MigDataWriteRequest> r =
          wire::DecodeMigDataWriteRequest(payload, fds, model.max_data_xfer_size);
      if (!r.ok() || !model.migrates || model.mig_state != Model::kResuming) return {};
      if (r->data.size() > model.bar0.size() - model.incoming.size()) return {.errnos = {EFBIG}};
      model.incoming.insert(model.incoming.end(), r->data.begin(), r->data.end());
      return {.ok = true};
    }
    case Command::kDmaMap:
      return PredictDmaMap(payload, fds, model);
    case Command::kDmaUnmap:
      return PredictDmaUnmap(payload, fds, model);
    case Command::kDeviceFeature:
      return PredictDeviceFeature(payload, fds, model);
    default:
      return {};  // Not implemented by this engine, or server-to-client.
  }
}

// The reply's header must answer `request`; returns the reply payload.
absl::Span<const uint8_t> CheckReplyHeader(const wire::Header& request,
                                           const OutboundMessage& reply, const Prediction& want) {
  VFU_FUZZ_CHECK(reply.bytes.size() >= kHeaderSize, "reply of ", reply.bytes.size(), " bytes");
  VFU_FUZZ_CHECK(reply.fds.empty(), "reply with ", reply.fds.size(), " fds");
  const wire::Header h = wire::DecodeHeader(reply.bytes);
  VFU_FUZZ_CHECK(h.msg_size == reply.bytes.size(), "reply msg_size ", h.msg_size, " of ",
                 reply.bytes.size(), " bytes");
  VFU_FUZZ_CHECK(h.is_reply() && h.msg_id == request.msg_id && h.command == request.command,
                 "reply header id ", h.msg_id, " cmd ", h.command, " flags ", h.flags, " for id ",
                 request.msg_id, " cmd ", request.command);
  VFU_FUZZ_CHECK((h.flags & ~(wire::kFlagsTypeMask | wire::kFlagError)) == 0, "reply flags 0x",
                 absl::Hex(h.flags));
  if (want.ok) {
    VFU_FUZZ_CHECK(!h.is_error() && h.error == 0, "command ", request.command, " (",
                   wire::CommandName(request.command), ") failed with errno ", h.error,
                   ", the model expects success");
  } else if (!want.either || h.is_error()) {
    VFU_FUZZ_CHECK(h.is_error(), "command ", request.command, " (",
                   wire::CommandName(request.command), ") succeeded, the model expects failure");
    VFU_FUZZ_CHECK(h.msg_size == kHeaderSize, "error reply of ", h.msg_size, " bytes");
    VFU_FUZZ_CHECK(std::find(want.errnos.begin(), want.errnos.end(),
                             static_cast<int>(h.error)) != want.errnos.end(),
                   "error reply with errno ", h.error, " to ", wire::CommandName(request.command));
  }
  return absl::MakeConstSpan(reply.bytes).subspan(kHeaderSize);
}

// Checks a success reply's payload against the request and the model.
void CheckReplyPayload(const InboundMessage& request, const Session::Result& result,
                       absl::Span<const uint8_t> reply, const Model& model) {
  const absl::Span<const uint8_t> payload = request.payload();
  switch (static_cast<Command>(request.header.command)) {
    case Command::kVersion: {
      const absl::StatusOr<wire::Version> v = wire::DecodeVersionReply(reply, 0);
      VFU_FUZZ_CHECK(v.ok(), "VERSION reply rejected: ", v.status().ToString());
      VFU_FUZZ_CHECK(result.negotiated.has_value() && *v == result.negotiated->reply,
                     "VERSION reply differs from the negotiation");
      const absl::Status accepted = wire::ValidateServerVersionReply(model.proposal, *v, 0);
      VFU_FUZZ_CHECK(accepted.ok(), "the client rejects the VERSION reply: ", accepted.ToString());
      break;
    }
    case Command::kDeviceGetInfo: {
      VFU_FUZZ_CHECK(
          reply.size() == wire::kDeviceInfoSize && reply.size() <= wire::LoadU32(payload, 0),
          "GET_INFO reply of ", reply.size(), " bytes");
      const absl::StatusOr<wire::DeviceInfo> info = wire::DecodeDeviceGetInfoReply(reply, 0);
      VFU_FUZZ_CHECK(info.ok() && info->num_regions == wire::kPciNumRegions &&
                         info->num_irqs == wire::kPciNumIrqs &&
                         info->flags == (VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET),
                     "GET_INFO reply ", Hex(reply));
      break;
    }
    case Command::kDeviceGetRegionInfo: {
      const uint32_t argsz = wire::LoadU32(payload, 0);
      const uint32_t index = wire::LoadU32(payload, 8);
      VFU_FUZZ_CHECK(reply.size() <= argsz, "REGION_INFO reply of ", reply.size(),
                     " bytes exceeds argsz ", argsz);
      const absl::StatusOr<wire::RegionInfoReply> info = wire::DecodeRegionInfoReply(reply, 0);
      VFU_FUZZ_CHECK(info.ok(), "REGION_INFO reply rejected: ", info.status().ToString());
      const uint64_t size = index == 0               ? model.bar0.size()
                            : index == kConfigRegion ? kConfigSize
                                                     : 0;
      const uint32_t flags = index == 0 ? (VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE)
                             : index == kConfigRegion ? VFIO_REGION_INFO_FLAG_READ
                                                      : 0;
      VFU_FUZZ_CHECK(info->index == index && info->size == size && info->flags == flags,
                     "REGION_INFO reply ", Hex(reply), " for region ", index);
      break;
    }
    case Command::kDeviceGetIrqInfo: {
      VFU_FUZZ_CHECK(
          reply.size() == wire::kIrqInfoSize && reply.size() <= wire::LoadU32(payload, 0),
          "IRQ_INFO reply of ", reply.size(), " bytes");
      const absl::StatusOr<wire::IrqInfo> info = wire::DecodeIrqInfoReply(reply, 0);
      VFU_FUZZ_CHECK(info.ok() && info->index == wire::LoadU32(payload, 8) && info->count == 0,
                     "IRQ_INFO reply ", Hex(reply));
      break;
    }
    case Command::kRegionRead: {
      const absl::StatusOr<wire::RegionAccessData> data = wire::DecodeRegionReadReply(reply, 0);
      VFU_FUZZ_CHECK(data.ok(), "REGION_READ reply rejected: ", data.status().ToString());
      const uint64_t offset = wire::LoadU64(payload, 0);
      const uint32_t region = wire::LoadU32(payload, 8);
      const uint32_t count = wire::LoadU32(payload, 12);
      VFU_FUZZ_CHECK(data->offset == offset && data->region == region && data->data.size() == count,
                     "REGION_READ reply header ", Hex(reply.first(16)));
      std::vector<uint8_t> want(count, 0);
      if (region == 0) {
        std::copy_n(model.bar0.begin() + offset, count, want.begin());
      }
      VFU_FUZZ_CHECK(data->data == absl::MakeConstSpan(want), "REGION_READ of region ", region,
                     " at ", offset, " returned ", Hex(data->data), ", model holds ", Hex(want));
      break;
    }
    case Command::kRegionWrite: {
      const absl::StatusOr<wire::RegionAccess> echo = wire::DecodeRegionWriteReply(reply, 0);
      VFU_FUZZ_CHECK(echo.ok() && echo->offset == wire::LoadU64(payload, 0) &&
                         echo->region == wire::LoadU32(payload, 8) &&
                         echo->count == wire::LoadU32(payload, 12),
                     "REGION_WRITE reply ", Hex(reply));
      break;
    }
    case Command::kRegionWriteMulti: {
      const absl::StatusOr<uint64_t> n = wire::DecodeRegionWriteMultiReply(reply, 0);
      VFU_FUZZ_CHECK(n.ok() && *n == wire::LoadU64(payload, 0), "WRITE_MULTI reply ", Hex(reply));
      break;
    }
    case Command::kDeviceReset:
    case Command::kDmaMap:
      VFU_FUZZ_CHECK(reply.empty(), wire::CommandName(request.header.command), " reply with ",
                     reply.size(), " bytes");
      break;
    case Command::kDmaUnmap: {
      const absl::StatusOr<wire::DmaUnmapReply> r = wire::DecodeDmaUnmapReply(reply, 0);
      VFU_FUZZ_CHECK(r.ok() && r->addr == wire::LoadU64(payload, 8) &&
                         r->size == wire::LoadU64(payload, 16),
                     "DMA_UNMAP reply ", Hex(reply));
      break;
    }
    case Command::kDeviceFeature: {
      const uint32_t flags = wire::LoadU32(payload, 4);
      if (flags & (wire::kDeviceFeatureProbe | wire::kDeviceFeatureSet)) {
        VFU_FUZZ_CHECK(wire::CheckDeviceFeatureEchoReply(reply, payload).ok(),
                       "DEVICE_FEATURE echo ", Hex(reply));
      } else {
        const absl::StatusOr<wire::DeviceFeatureGetReply> get =
            wire::DecodeDeviceFeatureGetReply(reply, 0);
        VFU_FUZZ_CHECK(get.ok(), "DEVICE_FEATURE GET reply ", Hex(reply));
        if (const auto* state = std::get_if<wire::FeatureMigState>(&get->data)) {
          VFU_FUZZ_CHECK(state->device_state == model.mig_state, "GET MIG_DEVICE_STATE says ",
                         state->device_state, ", model ", model.mig_state);
        } else if (const auto* size = std::get_if<wire::FeatureMigDataSize>(&get->data)) {
          const uint64_t want = model.saving ? model.limit - model.cursor : 0;
          VFU_FUZZ_CHECK(size->stop_copy_length == want, "MIG_DATA_SIZE says ",
                         size->stop_copy_length, ", model ", want);
        } else if (const auto* migration = std::get_if<wire::FeatureMigration>(&get->data)) {
          VFU_FUZZ_CHECK(migration->flags == (wire::kMigrationStopCopy | wire::kMigrationPreCopy),
                         "MIGRATION flags 0x", absl::Hex(migration->flags));
        }
      }
      break;
    }
    case Command::kMigDataRead: {
      const uint32_t size = wire::LoadU32(payload, 4);
      const absl::StatusOr<wire::MigDataReadReply> r = wire::DecodeMigDataReadReply(reply, 0, size);
      VFU_FUZZ_CHECK(r.ok(), "MIG_DATA_READ reply rejected: ", r.status().ToString());
      VFU_FUZZ_CHECK(r->data == absl::MakeConstSpan(model.expected_read), "MIG_DATA_READ returned ",
                     Hex(r->data), ", model expects ", Hex(model.expected_read));
      break;
    }
    case Command::kMigDataWrite:
      VFU_FUZZ_CHECK(reply.empty(), "MIG_DATA_WRITE reply with ", reply.size(), " bytes");
      break;
    default:
      VFU_FUZZ_CHECK(false, "command ", request.header.command, " succeeded");
  }
}

class SessionFuzzer {
 public:
  explicit SessionFuzzer(uint8_t control)
      : control_(control),
        device_((control & 128) ? 16 : 4096, (control & 64) != 0),
        session_(device_, context_, context_.table(), SessionOptions{.version = Policy(control)}, "fuzz") {
    model_.policy = Policy(control);
    model_.bar0.assign((control & 128) ? 16 : 4096, 0);
    model_.migrates = (control & 64) != 0;
  }

  // A well-formed VERSION command as QEMU would send it.
  void Negotiate() {
    wire::Version v;
    v.major = 0;
    v.minor = 2;
    v.capabilities.max_msg_fds = 16;
    v.capabilities.write_multiple = (control_ & 2) != 0;
    if (control_ & 64) v.capabilities.migration = wire::MigrationCapability{.pgsize = 4096};
    std::vector<uint8_t> bytes = wire::StartMessage();
    wire::EncodeVersion(v, wire::CapabilityMembers::All(), bytes);
    wire::FinishMessage(wire::CommandHeader(0, Command::kVersion), bytes);
    InboundMessage m;
    m.header = wire::DecodeHeader(bytes);
    m.bytes = std::move(bytes);
    Handle(std::move(m));
    VFU_FUZZ_CHECK(model_.negotiated, "the well-formed VERSION failed");
  }

  // Frames `stream` and handles each command; stops where the connection
  // would close.
  void Feed(absl::Span<const uint8_t> stream) {
    while (!closed_) {
      const wire::FrameSplit split = wire::SplitFrame(stream, limit_);
      if (split.status == wire::FrameStatus::kNeedMore ||
          split.status == wire::FrameStatus::kCorrupt) {
        return;
      }
      InboundMessage m;
      m.header = wire::DecodeHeader(stream);
      if (split.status == wire::FrameStatus::kOversized) {
        m.oversized = true;
      } else {
        m.bytes.assign(stream.begin(), stream.begin() + split.size);
      }
      stream.remove_prefix(std::min(split.size, stream.size()));
      if (m.header.is_command()) Handle(std::move(m));  // Replies, bad types: dropped.
    }
  }

  // The client goes away: the device is detached, no fd is left open.
  void Finish() {
    device_.set_quiesce_behavior(false, false);
    session_.Detach();
    VFU_FUZZ_CHECK(!device_.quiesce_open(), "quiesce left open after the detach");
    const int attached = model_.negotiated ? 1 : 0;
    VFU_FUZZ_CHECK(device_.attaches() == attached && device_.detaches() == attached, "attaches ",
                   device_.attaches(), " detaches ", device_.detaches());
    tracker_.CheckAllClosed();
  }

 private:
  static wire::ServerVersionPolicy Policy(uint8_t control) {
    wire::ServerVersionPolicy policy;
    policy.write_multiple = (control & 4) != 0;
    if (control & 8) policy.max_data_xfer_size = 256;
    if (control & 64) policy.migration_pgsize = 4096;
    return policy;
  }

  void Handle(InboundMessage m) {
    if ((control_ & 16) && (m.header.msg_id & 1) && tracker_.created() < kMaxFdsPerRun) {
      m.fds.emplace_back(tracker_.NewEventFd());
    }
    if ((control_ & 32) && (m.header.msg_id & 2)) m.fds_truncated = true;
    const bool quiesce_games = (control_ & 64) != 0;
    const bool defer = quiesce_games && (m.header.msg_id & 4) != 0;
    const bool fail = quiesce_games && (m.header.msg_id & 8) != 0;
    device_.set_quiesce_behavior(defer, fail);
    model_.fail_quiesce = fail;

    const bool was_negotiated = model_.negotiated;
    const bool needs_quiesce = model_.negotiated && !m.oversized && !m.fds_truncated &&
                               wire::IsKnownCommand(m.header.command) &&
                               AllowedInState(model_, m.header.command) &&
                               NeedsQuiesce(m, model_);
    const Prediction want = Predict(m, model_);
    const wire::Header header = m.header;
    InboundMessage request;  // what the checks need, without the fds
    request.header = m.header;
    request.bytes = m.bytes;
    Session::Result result = session_.Handle(std::move(m));
    VFU_FUZZ_CHECK((result.device_wait != nullptr) == (needs_quiesce && defer),
                   "command ", header.command, " parked ", result.device_wait != nullptr,
                   ", model ", needs_quiesce && defer);
    if (result.device_wait != nullptr) {
      VFU_FUZZ_CHECK(!result.reply.has_value() && !result.close_connection &&
                         session_.waiting_for_device(),
                     "a parked command has a result already");
      VFU_FUZZ_CHECK(device_.CompleteHeld() && result.device_wait->ready(),
                     "the device's answer did not reach the wait");
      result = session_.Continue();
      VFU_FUZZ_CHECK(result.device_wait == nullptr && !session_.waiting_for_device(),
                     "Continue() parked again");
    }
    VFU_FUZZ_CHECK(!device_.quiesce_open(), "quiesce left open after command ", header.command);

    VFU_FUZZ_CHECK(result.close_connection == want.close, "command ", header.command,
                   " close_connection ", result.close_connection, ", model ", want.close);
    VFU_FUZZ_CHECK(!result.twin_socket.valid(), "twin socket without asking");
    const bool negotiated_now = !was_negotiated && model_.negotiated;
    VFU_FUZZ_CHECK(result.negotiated.has_value() == negotiated_now &&
                       session_.negotiated() == model_.negotiated,
                   "negotiation state differs from the model");
    if (header.no_reply()) {
      VFU_FUZZ_CHECK(!result.reply.has_value(), "reply to a NO_REPLY command ", header.command);
    } else {
      VFU_FUZZ_CHECK(result.reply.has_value(), "no reply to command ", header.command);
      const absl::Span<const uint8_t> payload = CheckReplyHeader(header, *result.reply, want);
      const bool succeeded = !wire::DecodeHeader(result.reply->bytes).is_error();
      if (succeeded) CheckReplyPayload(request, result, payload, model_);
    }
    VFU_FUZZ_CHECK(device_.bar0() == model_.bar0, "BAR0 differs from the model after command ",
                   header.command, " (", wire::CommandName(header.command), ")");
    VFU_FUZZ_CHECK(static_cast<uint32_t>(session_.migration().state()) == model_.mig_state,
                   "migration state ", static_cast<uint32_t>(session_.migration().state()),
                   ", model ", model_.mig_state, " after ", wire::CommandName(header.command));

    if (negotiated_now) {
      // As the connection does: apply the limits, then attach the device.
      limit_ = result.negotiated->limits.max_incoming_message_size;
      session_.Attach();
    }
    if (result.close_connection) closed_ = true;
  }

  const uint8_t control_;
  FdTracker tracker_;
  Model model_;
  FuzzMigratingDevice device_;
  testing::LocalDmaContext context_;
  Session session_;
  size_t limit_ = kPreNegotiationMaxMessage;
  bool closed_ = false;
};

void Run(InputReader& in) {
  const uint8_t control = in.U8();
  SessionFuzzer fuzzer(control);
  if (control & 1) fuzzer.Negotiate();
  fuzzer.Feed(in.Rest());
  fuzzer.Finish();
}

}  // namespace
}  // namespace vfu::fuzz

VFU_FUZZ_ENTRY_POINT(vfu::fuzz::Run)
