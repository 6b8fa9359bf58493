#include "vfu/engine/message_dma.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "vfu/base/status_macros.h"
#include "vfu/transport/message_buffer_pool.h"
#include "vfu/transport/reply_sink.h"
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

// Chunks from this size on ask for their data to be received straight into
// `out`. The transport receives only messages above 64 KiB in place; smaller
// ones arrive whole, and copying them costs little.
constexpr size_t kSinkMinimum = 64 * 1024;

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
    const absl::Span<uint8_t> dest = out.subspan(done, n);
    std::shared_ptr<ReplySink> sink;
    if (n >= kSinkMinimum) {
      sink = std::make_shared<ReplySink>(
          wire::kHeaderSize + wire::kDmaTransferFixedSize + n,
          wire::kHeaderSize + wire::DmaReadReplyDataOffset(config.layout), dest);
    }
    VFU_ASSIGN_OR_RETURN(InboundMessage reply, channel.Call(std::move(message),
                                                            absl::Now() + config.timeout, sink));
    VFU_RETURN_IF_ERROR(CheckReplyHeader(reply, wire::Command::kDmaRead));
    if (reply.sunk_bytes == n) {
      // The data is already in place; check what came around it.
      VFU_ASSIGN_OR_RETURN(wire::DmaReadReply decoded,
                           wire::DecodeDmaReadReplyWithoutData(reply.payload(), dest,
                                                               config.layout, n));
      VFU_RETURN_IF_ERROR(wire::CheckDmaReplyEcho(request, decoded));
    } else {
      VFU_ASSIGN_OR_RETURN(wire::DmaReadReply decoded,
                           wire::DecodeDmaReadReply(reply.payload(), reply.fds.size(),
                                                    config.layout, n));
      VFU_RETURN_IF_ERROR(wire::CheckDmaReplyEcho(request, decoded));
      std::memcpy(dest.data(), decoded.data.data(), n);
    }
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
    VFU_ASSIGN_OR_RETURN(InboundMessage reply, channel.Call(std::move(message),
                                                            absl::Now() + config.timeout,
                                                            /*sink=*/nullptr));
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
