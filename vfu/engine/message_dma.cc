#include "vfu/engine/message_dma.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "vfu/base/status_macros.h"
#include "vfu/transport/message_buffer_pool.h"
#include "vfu/wire/errno_status.h"
#include "vfu/wire/header.h"

namespace vfu {
namespace {

// Checks the envelope of a reply to one of our commands.
absl::Status CheckReplyHeader(const InboundMessage& reply, wire::Command command) {
  const wire::Header& h = reply.header;
  if (!h.is_reply() || h.command != static_cast<uint16_t>(command)) {
    return wire::WireError(EINVAL, absl::StrCat("unexpected message answering ",
                                                wire::CommandName(command)));
  }
  if (h.is_error()) return wire::StatusFromReplyError(h.error, wire::CommandName(command));
  return absl::OkStatus();
}

uint64_t ChunkSize(const MessageDmaConfig& config) {
  return std::max<uint64_t>(1, config.max_transfer);
}

}  // namespace

absl::Status DmaReadViaMessages(ClientChannel& channel, const MessageDmaConfig& config,
                                uint64_t iova, absl::Span<uint8_t> out) {
  if (iova + out.size() < iova) return wire::WireError(EINVAL, "DMA range wraps around");
  const uint64_t chunk = ChunkSize(config);
  for (size_t done = 0; done < out.size();) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(chunk, out.size() - done));
    wire::DmaReadRequest request{.address = iova + done, .count = n};
    std::vector<uint8_t> message = wire::StartMessage(wire::kDmaTransferFixedSize);
    wire::EncodeDmaReadRequest(request, config.layout, message);
    wire::FinishMessage(wire::CommandHeader(0, wire::Command::kDmaRead), message);
    VFU_ASSIGN_OR_RETURN(InboundMessage reply,
                         channel.Call(std::move(message), absl::Now() + config.timeout));
    VFU_RETURN_IF_ERROR(CheckReplyHeader(reply, wire::Command::kDmaRead));
    VFU_ASSIGN_OR_RETURN(wire::DmaReadReply decoded,
                         wire::DecodeDmaReadReply(reply.payload(), reply.fds.size(),
                                                  config.layout, n));
    VFU_RETURN_IF_ERROR(wire::CheckDmaReplyEcho(request, decoded));
    std::memcpy(out.data() + done, decoded.data.data(), n);
    done += n;
    // The next large reply can be received into this buffer unzeroed.
    MessageBufferPool::Instance().Recycle(std::move(reply.bytes));
  }
  return absl::OkStatus();
}

absl::Status DmaWriteViaMessages(ClientChannel& channel, const MessageDmaConfig& config,
                                 uint64_t iova, absl::Span<const uint8_t> data) {
  if (iova + data.size() < iova) return wire::WireError(EINVAL, "DMA range wraps around");
  const uint64_t chunk = ChunkSize(config);
  for (size_t done = 0; done < data.size();) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(chunk, data.size() - done));
    wire::DmaWriteRequest request{.address = iova + done, .data = data.subspan(done, n)};
    std::vector<uint8_t> message = wire::StartMessage(wire::kDmaTransferFixedSize + n);
    wire::EncodeDmaWriteRequest(request, config.layout, message);
    wire::FinishMessage(wire::CommandHeader(0, wire::Command::kDmaWrite), message);
    VFU_ASSIGN_OR_RETURN(InboundMessage reply,
                         channel.Call(std::move(message), absl::Now() + config.timeout));
    VFU_RETURN_IF_ERROR(CheckReplyHeader(reply, wire::Command::kDmaWrite));
    VFU_ASSIGN_OR_RETURN(wire::DmaWriteReply decoded,
                         wire::DecodeDmaWriteReply(reply.payload(), reply.fds.size(),
                                                   config.layout));
    VFU_RETURN_IF_ERROR(wire::CheckDmaReplyEcho(request, decoded));
    done += n;
  }
  return absl::OkStatus();
}

}  // namespace vfu
