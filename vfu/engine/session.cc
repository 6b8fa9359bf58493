#include "vfu/engine/session.h"

#include <fcntl.h>
#include <linux/vfio.h>
#include <sys/socket.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "vfu/base/check.h"
#include "vfu/base/log.h"
#include "vfu/base/status_macros.h"
#include "vfu/wire/device_feature.h"
#include "vfu/wire/device_info.h"
#include "vfu/wire/dma_unmap.h"
#include "vfu/wire/errno_status.h"
#include "vfu/wire/irq.h"
#include "vfu/wire/region_access.h"
#include "vfu/wire/region_info.h"
#include "vfu/wire/version.h"

namespace vfu {
namespace {

using wire::Command;
using wire::WireError;

// Commands that may legitimately carry fds (PROTOCOL.md 2.5).
bool TakesFds(uint16_t command) {
  switch (static_cast<Command>(command)) {
    case Command::kDmaMap:
    case Command::kDeviceSetIrqs:
      return true;
    default:
      return false;
  }
}

}  // namespace

Session::Session(Device& device, std::shared_ptr<DeviceContext> context, DmaMapTable& dma,
                 SessionOptions options, std::string name)
    : device_(device),
      context_(std::move(context)),
      own_migration_(options.migration == nullptr ? std::make_unique<MigrationEngine>(device)
                                                  : nullptr),
      migration_(options.migration != nullptr ? options.migration : own_migration_.get()),
      dma_(dma),
      options_(std::move(options)),
      name_(std::move(name)) {}

Session::Session(Device& device, DeviceContext& context, DmaMapTable& dma,
                 SessionOptions options, std::string name)
    // Aliasing constructor with no owner: a handle that does not own.
    : Session(device, std::shared_ptr<DeviceContext>(std::shared_ptr<void>(), &context), dma,
              std::move(options), std::move(name)) {}

absl::Status Session::Admit(const InboundMessage& message, Result& result) const {
  const wire::Header& header = message.header;
  if (message.oversized) {
    return WireError(EINVAL, absl::StrCat("message of ", header.msg_size,
                                          " bytes exceeds the limit"));
  }
  if (message.fds_truncated) {
    return WireError(EINVAL, "more fds than the server accepts in one message");
  }
  if (!wire::IsKnownCommand(header.command)) {
    return WireError(EINVAL, absl::StrCat("unknown command ", header.command));
  }
  if (!negotiated_ && header.command != static_cast<uint16_t>(Command::kVersion)) {
    result.close_connection = true;
    return WireError(EINVAL, "the first command must be VERSION");
  }
  if (negotiated_) return migration_->CheckAllowed(static_cast<Command>(header.command));
  return absl::OkStatus();
}

std::optional<QuiesceReason> Session::QuiesceFor(const InboundMessage& message) const {
  switch (static_cast<Command>(message.header.command)) {
    case Command::kDmaMap:
      return QuiesceReason::kDmaMap;
    case Command::kDmaUnmap:
      return QuiesceReason::kDmaUnmap;
    case Command::kDeviceReset:
      return QuiesceReason::kReset;
    case Command::kRegionWrite: {
      absl::StatusOr<wire::RegionAccessData> write = wire::DecodeRegionWriteRequest(
          message.payload(), message.fds.size(),
          negotiated_->reply.capabilities.max_data_xfer_size);
      if (write.ok() && device_.IsFunctionLevelReset(write->region, write->offset, write->data)) {
        return QuiesceReason::kFunctionReset;
      }
      return std::nullopt;
    }
    case Command::kRegionWriteMulti: {
      if (!negotiated_->write_multiple()) return std::nullopt;
      absl::StatusOr<std::vector<wire::RegionWriteMultiEntry>> entries =
          wire::DecodeRegionWriteMultiRequest(message.payload(), message.fds.size());
      if (!entries.ok()) return std::nullopt;
      for (const wire::RegionWriteMultiEntry& e : *entries) {
        if (device_.IsFunctionLevelReset(e.region, e.offset, e.data)) {
          return QuiesceReason::kFunctionReset;
        }
      }
      return std::nullopt;
    }
    case Command::kDeviceFeature: {
      absl::StatusOr<wire::DeviceFeatureRequest> request =
          wire::DecodeDeviceFeatureRequest(message.payload(), message.fds.size());
      if (!request.ok() || request->is_probe() || !request->is_set()) return std::nullopt;
      switch (request->feature()) {
        case wire::DeviceFeature::kDmaLoggingStart:
        case wire::DeviceFeature::kDmaLoggingStop:
          return QuiesceReason::kDmaLogging;
        case wire::DeviceFeature::kMigDeviceState: {
          // Only a real change: a same-state SET or a refused one does not
          // disturb the device.
          absl::StatusOr<std::vector<MigrationState>> path = migration_->Plan(
              std::get<wire::FeatureMigState>(request->data).device_state);
          if (path.ok() && !path->empty()) return QuiesceReason::kMigration;
          return std::nullopt;
        }
        default:
          return std::nullopt;
      }
    }
    default:
      return std::nullopt;
  }
}

Session::Result Session::Handle(InboundMessage message) {
  Result result;
  if (pending_) {
    // The runtime must wait for the device; answer rather than reorder.
    return Run(std::move(message),
               WireError(EBUSY, "a command is still waiting for the device"), std::move(result));
  }
  absl::Status status = Admit(message, result);
  if (status.ok()) {
    if (std::optional<QuiesceReason> reason = QuiesceFor(message)) {
      auto wait = std::make_shared<DeviceWait>();
      device_.Quiesce(*reason, DeviceWait::MakeDone(wait));
      if (!wait->ready()) {
        pending_.emplace(PendingCommand{std::move(message), wait, *reason});
        result.device_wait = std::move(wait);
        return result;
      }
      return RunQuiesced(std::move(message), *reason, wait->status(), std::move(result));
    }
  }
  return Run(std::move(message), std::move(status), std::move(result));
}

Session::Result Session::Continue() {
  VFU_CHECK(pending_.has_value() && pending_->wait->ready(),
            "Continue() without a command whose device wait is ready");
  PendingCommand pending = std::move(*pending_);
  pending_.reset();
  return RunQuiesced(std::move(pending.message), pending.reason, pending.wait->status(),
                     Result{});
}

Session::Result Session::Abandon() {
  VFU_CHECK(pending_.has_value(), "Abandon() without a command waiting for the device");
  PendingCommand pending = std::move(*pending_);
  pending_.reset();
  pending.wait->DropCallback();
  VFU_LOG_RATE_LIMITED(kWarning, name_, ": the device did not quiesce for ",
                       wire::CommandName(pending.message.header.command),
                       " in time; giving up on it");
  return Run(std::move(pending.message),
             WireError(ETIMEDOUT, "the device did not quiesce in time"), Result{});
}

Session::Result Session::RunQuiesced(InboundMessage message, QuiesceReason reason,
                                     absl::Status quiesced, Result result) {
  if (!quiesced.ok()) {
    // No Unquiesce: the device never quiesced.
    return Run(std::move(message),
               WireError(wire::ReplyErrno(quiesced),
                         absl::StrCat("device quiesce failed: ", quiesced.message())),
               std::move(result));
  }
  bool succeeded = false;
  result = Run(std::move(message), absl::OkStatus(), std::move(result), &succeeded);
  device_.Unquiesce();
  // From the command's outcome, not its reply: a NO_REPLY write has none.
  result.function_reset = reason == QuiesceReason::kFunctionReset && succeeded;
  return result;
}

Session::Result Session::Run(InboundMessage message, absl::Status status, Result result,
                             bool* succeeded) {
  const wire::Header header = message.header;
  std::vector<uint8_t> reply;
  if (spares_ != nullptr) {
    reply = spares_->Take();
    reply.resize(wire::kHeaderSize);
  } else {
    reply = wire::StartMessage();
  }
  std::vector<UniqueFd> reply_fds;
  if (status.ok()) status = Dispatch(message, result, reply, reply_fds);

  if (!message.fds.empty() && !TakesFds(header.command) &&
      header.command != static_cast<uint16_t>(Command::kVersion)) {
    VFU_LOG_RATE_LIMITED(kWarning, name_, ": closing ", message.fds.size(),
                         " unexpected fds sent with ", wire::CommandName(header.command));
  }
  // Whatever fds a handler did not take close with `message`.
  if (spares_ != nullptr) spares_->Give(std::move(message.bytes));
  if (succeeded != nullptr) *succeeded = status.ok();

  if (!status.ok()) {
    // Row 9: the first message must be a good VERSION; whatever else comes
    // first ends the connection after the error reply.
    if (!negotiated_) result.close_connection = true;
    VFU_LOG_RATE_LIMITED(kWarning, name_, ": ", wire::CommandName(header.command), " (id ",
                         header.msg_id, ") failed: ", status.message());
    if (!header.no_reply()) {
      result.reply = OutboundMessage{wire::ErrorReply(header, wire::ReplyErrno(status)), {}};
    } else {
      result.reply.reset();
    }
    return result;
  }
  if (header.no_reply()) {
    result.reply.reset();
    return result;
  }
  wire::FinishMessage(wire::ReplyHeader(header), reply);
  if (!result.reply) result.reply.emplace();
  result.reply->bytes = std::move(reply);
  for (UniqueFd& fd : reply_fds) result.reply->fds.push_back(std::move(fd));
  return result;
}

absl::Status Session::Dispatch(InboundMessage& message, Result& result,
                               std::vector<uint8_t>& reply, std::vector<UniqueFd>& reply_fds) {
  const wire::Header& header = message.header;
  switch (static_cast<Command>(header.command)) {
    case Command::kVersion:
      return HandleVersion(message, result, reply);
    case Command::kDeviceGetInfo:
      return HandleGetInfo(message, reply);
    case Command::kDeviceGetRegionInfo:
      return HandleGetRegionInfo(message, reply, reply_fds);
    case Command::kDeviceGetRegionIoFds:
      return HandleGetRegionIoFds(message, reply, reply_fds);
    case Command::kDeviceGetIrqInfo:
      return HandleGetIrqInfo(message, reply);
    case Command::kRegionRead:
      return HandleRegionRead(message, reply);
    case Command::kRegionWrite:
      return HandleRegionWrite(message, reply);
    case Command::kRegionWriteMulti:
      return HandleRegionWriteMulti(message, reply);
    case Command::kDeviceReset:
      return HandleReset(message);
    case Command::kDeviceSetIrqs:
      return HandleSetIrqs(message);
    case Command::kDmaMap:
      return HandleDmaMap(message);
    case Command::kDmaUnmap:
      return HandleDmaUnmap(message, reply);
    case Command::kDeviceFeature:
      return HandleDeviceFeature(message, reply);
    case Command::kMigDataRead:
      return HandleMigDataRead(message, reply);
    case Command::kMigDataWrite:
      return HandleMigDataWrite(message);
    case Command::kDmaRead:
    case Command::kDmaWrite:
      return WireError(EINVAL, absl::StrCat(wire::CommandName(header.command),
                                            " is a server-to-client command"));
    default:
      return WireError(EINVAL, absl::StrCat(wire::CommandName(header.command),
                                            " is not supported by this server"));
  }
}

absl::Status Session::HandleVersion(InboundMessage& message, Result& result,
                                    std::vector<uint8_t>& reply) {
  if (negotiated_) return WireError(EINVAL, "VERSION after negotiation");
  // Any failure of the first VERSION ends the connection (PROTOCOL.md 3.2).
  result.close_connection = true;
  VFU_ASSIGN_OR_RETURN(wire::Version client,
                       wire::DecodeVersionRequest(message.payload(), message.fds.size()));
  VFU_ASSIGN_OR_RETURN(wire::NegotiatedVersion negotiated,
                       wire::NegotiateVersion(client, options_.version));
  if (negotiated.twin_socket()) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) {
      return WireError(errno, "socketpair for the twin socket");
    }
    result.twin_socket = UniqueFd(pair[0]);
    result.reply.emplace();
    result.reply->fds.emplace_back(pair[1]);
  }
  wire::EncodeVersionReply(negotiated, reply);
  result.close_connection = false;
  result.negotiated = negotiated;
  negotiated_ = std::move(negotiated);
  VFU_LOG_RATE_LIMITED(kInfo, name_, ": client negotiated version ", negotiated_->reply.major, ".",
                       negotiated_->reply.minor,
                       negotiated_->twin_socket() ? " with twin socket" : "");
  return absl::OkStatus();
}

void Session::Attach() {
  if (attached_) return;
  attached_ = true;
  if (negotiated_) {
    const wire::Capabilities& caps = negotiated_->reply.capabilities;
    // Only what was negotiated; the server's own caps (bytes, pin wait) stay.
    DmaMapLimits limits = dma_.limits();
    limits.max_maps = caps.max_dma_maps;
    limits.page_sizes = caps.pgsizes;
    dma_.set_limits(limits);
  }
  device_.OnAttach(context_);
}

void Session::Detach() {
  if (pending_) {
    // The runtime normally finishes it first; the client is gone, so its
    // reply goes nowhere.
    if (pending_->wait->WaitFor(options_.detach_quiesce_timeout)) {
      Continue();
    } else {
      Abandon();
    }
  }
  if (!attached_) return;
  attached_ = false;
  auto wait = std::make_shared<DeviceWait>();
  device_.Quiesce(QuiesceReason::kLostConnection, DeviceWait::MakeDone(wait));
  if (!wait->WaitFor(options_.detach_quiesce_timeout)) {
    VFU_LOG_RATE_LIMITED(kWarning, name_, ": the device did not quiesce within ",
                         absl::FormatDuration(options_.detach_quiesce_timeout),
                         " of its client leaving; releasing the client's resources anyway");
  } else if (!wait->status().ok()) {
    VFU_LOG_RATE_LIMITED(kWarning, name_, ": the device failed to quiesce as its client left: ",
                         wait->status().message());
  }
  const bool quiesced = wait->ready() && wait->status().ok();
  // PROTOCOL.md section 8: the client's mappings go with it (after any
  // device thread still copying has finished with them).
  const wire::DmaUnmapRequest unmap_all{.flags = wire::kDmaUnmapFlagAll};
  device_.BeforeDmaUnmap(unmap_all);
  absl::StatusOr<std::vector<DmaRange>> removed = dma_.Unmap(unmap_all, nullptr);
  if (removed.ok()) {
    for (const DmaRange& range : *removed) device_.OnDmaUnmapped(range);
  }
  dma_.UnmapAll();  // also stops dirty logging
  device_.OnDetach();
  if (quiesced) device_.Unquiesce();
}

absl::Status Session::HandleGetInfo(const InboundMessage& message, std::vector<uint8_t>& reply) {
  // Decoded only to validate it: the reply does not depend on it.
  VFU_RETURN_IF_ERROR(
      wire::DecodeDeviceGetInfoRequest(message.payload(), message.fds.size()).status());
  wire::DeviceInfo info;
  info.flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
  info.num_regions = device_.num_regions();
  info.num_irqs = device_.num_irqs();
  wire::EncodeDeviceGetInfoReply(info, reply);
  return absl::OkStatus();
}

absl::Status Session::HandleGetRegionInfo(const InboundMessage& message,
                                          std::vector<uint8_t>& reply,
                                          std::vector<UniqueFd>& reply_fds) {
  VFU_ASSIGN_OR_RETURN(wire::RegionInfoRequest request,
                       wire::DecodeRegionInfoRequest(message.payload(), message.fds.size()));
  if (request.index >= device_.num_regions()) {
    return WireError(EINVAL, absl::StrCat("region index ", request.index, " out of range"));
  }
  RegionDescription region = device_.DescribeRegion(request.index);
  wire::RegionInfoReply info;
  info.index = request.index;
  info.size = region.size;
  if (region.size > 0) {
    info.flags = (region.readable ? VFIO_REGION_INFO_FLAG_READ : 0) |
                 (region.writable ? VFIO_REGION_INFO_FLAG_WRITE : 0);
  }
  const bool mappable = region.size > 0 && region.mmap_fd >= 0 && !region.mmap_areas.empty();
  if (mappable) {
    info.flags |= VFIO_REGION_INFO_FLAG_MMAP;
    info.offset = region.fd_offset;
    // One area covering the region needs no sparse capability.
    const bool whole = region.mmap_areas.size() == 1 && region.mmap_areas[0].offset == 0 &&
                       region.mmap_areas[0].size == region.size;
    if (!whole) info.sparse_mmap = region.mmap_areas;
  }
  if (region.type) info.type = region.type;
  if (info.sparse_mmap || info.type) info.flags |= VFIO_REGION_INFO_FLAG_CAPS;
  const wire::RegionInfoReplyKind kind = wire::EncodeRegionInfoReply(info, request.argsz, reply);
  // The fd travels only with a complete reply: a client that sent a short
  // argsz asks again with the size the reply reports (PROTOCOL.md 4.4).
  if (mappable && kind == wire::RegionInfoReplyKind::kComplete) {
    const int copy = ::fcntl(region.mmap_fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) return WireError(errno, "duplicating the region fd");
    reply_fds.emplace_back(copy);
  }
  return absl::OkStatus();
}

absl::Status Session::HandleGetIrqInfo(const InboundMessage& message,
                                       std::vector<uint8_t>& reply) {
  VFU_ASSIGN_OR_RETURN(wire::IrqInfo request,
                       wire::DecodeIrqInfoRequest(message.payload(), message.fds.size()));
  if (request.index >= device_.num_irqs()) {
    return WireError(EINVAL, absl::StrCat("IRQ index ", request.index, " out of range"));
  }
  wire::IrqInfo info;
  info.index = request.index;
  info.count = device_.IrqCount(request.index);
  info.flags = device_.IrqInfoFlags(request.index);
  wire::EncodeIrqInfoReply(info, reply);
  return absl::OkStatus();
}

absl::Status Session::CheckAccess(uint32_t index, uint64_t offset, uint64_t count,
                                  bool write) const {
  if (index >= device_.num_regions()) {
    return WireError(EINVAL, absl::StrCat("region index ", index, " out of range"));
  }
  RegionDescription region = device_.DescribeRegion(index);
  if (region.size == 0) {
    return WireError(EINVAL, absl::StrCat("region ", index, " is not implemented"));
  }
  if (write ? !region.writable : !region.readable) {
    return WireError(EINVAL, absl::StrCat("region ", index, " is not ",
                                          write ? "writable" : "readable"));
  }
  if (count > UINT32_MAX) return WireError(EINVAL, "access too large");
  return wire::CheckRegionAccess(offset, static_cast<uint32_t>(count), region.size);
}

absl::Status Session::HandleRegionRead(const InboundMessage& message,
                                       std::vector<uint8_t>& reply) {
  const uint64_t max = negotiated_->reply.capabilities.max_data_xfer_size;
  VFU_ASSIGN_OR_RETURN(wire::RegionAccess request,
                       wire::DecodeRegionReadRequest(message.payload(), message.fds.size(), max));
  VFU_RETURN_IF_ERROR(CheckAccess(request.region, request.offset, request.count, false));
  read_buffer_.resize(request.count);
  if (request.count > 0) {
    VFU_RETURN_IF_ERROR(device_.ReadRegion(request.region, request.offset,
                                           absl::MakeSpan(read_buffer_)));
  }
  wire::EncodeRegionReadReply(request, read_buffer_, reply);
  return absl::OkStatus();
}

absl::Status Session::HandleRegionWrite(const InboundMessage& message,
                                        std::vector<uint8_t>& reply) {
  const uint64_t max = negotiated_->reply.capabilities.max_data_xfer_size;
  VFU_ASSIGN_OR_RETURN(wire::RegionAccessData request,
                       wire::DecodeRegionWriteRequest(message.payload(), message.fds.size(), max));
  VFU_RETURN_IF_ERROR(CheckAccess(request.region, request.offset, request.data.size(), true));
  if (!request.data.empty()) {
    VFU_RETURN_IF_ERROR(device_.WriteRegion(request.region, request.offset, request.data));
  }
  wire::EncodeRegionWriteReply(
      wire::RegionAccess{.offset = request.offset,
                         .region = request.region,
                         .count = static_cast<uint32_t>(request.data.size())},
      reply);
  return absl::OkStatus();
}

absl::Status Session::HandleRegionWriteMulti(const InboundMessage& message,
                                             std::vector<uint8_t>& reply) {
  if (!negotiated_->write_multiple()) {
    return WireError(EINVAL, "REGION_WRITE_MULTI without write_multiple negotiated");
  }
  VFU_ASSIGN_OR_RETURN(
      std::vector<wire::RegionWriteMultiEntry> entries,
      wire::DecodeRegionWriteMultiRequest(message.payload(), message.fds.size()));
  // Applied in order; the first failure ends the batch and fails the
  // command (the writes before it stay done).
  for (const wire::RegionWriteMultiEntry& e : entries) {
    VFU_RETURN_IF_ERROR(CheckAccess(e.region, e.offset, e.data.size(), true));
    VFU_RETURN_IF_ERROR(device_.WriteRegion(e.region, e.offset, e.data));
  }
  wire::EncodeRegionWriteMultiReply(entries.size(), reply);
  return absl::OkStatus();
}

absl::Status Session::HandleReset(const InboundMessage& message) {
  if (!message.payload().empty()) {
    return WireError(EINVAL, "DEVICE_RESET carries no payload");
  }
  VFU_RETURN_IF_ERROR(device_.Reset());
  // A reset device runs: any migration is over (see the header).
  migration_->ResetToRunning();
  return absl::OkStatus();
}

absl::Status Session::HandleSetIrqs(InboundMessage& message) {
  VFU_ASSIGN_OR_RETURN(wire::SetIrqsRequest request,
                       wire::DecodeSetIrqsRequest(message.payload(), message.fds.size()));
  if (request.index >= device_.num_irqs()) {
    return WireError(EINVAL, absl::StrCat("IRQ index ", request.index, " out of range"));
  }
  VFU_RETURN_IF_ERROR(wire::CheckSetIrqsRange(request, device_.IrqCount(request.index)));
  return device_.SetIrqs(request, message.fds);
}

}  // namespace vfu
