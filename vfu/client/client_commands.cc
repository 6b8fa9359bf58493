// The typed commands of Client (PROTOCOL.md 4): each encodes its request
// with the wire codec, calls, and checks and decodes the reply.
#include <linux/vfio.h>

#include <cstdint>
#include <limits>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "vfu/base/status_macros.h"
#include "vfu/client/client.h"
#include "vfu/transport/message_buffer_pool.h"
#include "vfu/wire/dma_unmap.h"
#include "vfu/wire/region_access.h"

namespace vfu {
namespace {

// How often GET_REGION_INFO / GET_REGION_IO_FDS follow a larger argsz before
// giving up (a server whose answer keeps growing), and the largest argsz
// followed (lvu's limit for IO_FDS; region capabilities are far smaller).
constexpr int kMaxArgszAttempts = 4;
constexpr uint32_t kMaxFollowedArgsz = 1u << 20;

absl::Status Malformed(std::string_view what, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(what, " reply: ", why));
}

// A reply must never exceed the argsz it answers (QEMU sizes its buffer
// from it, PROTOCOL.md 2.4).
absl::Status CheckFitsArgsz(std::string_view what, const Reply& reply, uint32_t argsz) {
  if (reply.payload().size() > argsz) {
    return Malformed(what, absl::StrCat(reply.payload().size(),
                                        " payload bytes exceed the request's argsz ", argsz));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<wire::DeviceInfo> Client::GetDeviceInfo() {
  std::vector<uint8_t> payload;
  wire::EncodeDeviceGetInfoRequest(wire::DeviceInfo{}, payload);
  VFU_ASSIGN_OR_RETURN(Reply reply, Call(wire::Command::kDeviceGetInfo, payload));
  return wire::DecodeDeviceGetInfoReply(reply.payload(), reply.fds.size());
}

absl::StatusOr<RegionInfo> Client::GetRegionInfo(uint32_t index) {
  uint32_t argsz = wire::kRegionInfoSize;
  for (int attempt = 0; attempt < kMaxArgszAttempts; ++attempt) {
    std::vector<uint8_t> payload;
    wire::EncodeRegionInfoRequest({.argsz = argsz, .index = index}, payload);
    VFU_ASSIGN_OR_RETURN(Reply reply, Call(wire::Command::kDeviceGetRegionInfo, payload));
    VFU_RETURN_IF_ERROR(CheckFitsArgsz("DEVICE_GET_REGION_INFO", reply, argsz));
    VFU_ASSIGN_OR_RETURN(wire::RegionInfoReply info,
                         wire::DecodeRegionInfoReply(reply.payload(), reply.fds.size()));
    if (info.index != index) {
      return Malformed("DEVICE_GET_REGION_INFO",
                       absl::StrCat("index ", info.index, " for a request of ", index));
    }
    if (info.argsz > argsz) {
      // Truncated: the capabilities (and the fd) come with a complete reply.
      if (info.argsz > kMaxFollowedArgsz) {
        return Malformed("DEVICE_GET_REGION_INFO", absl::StrCat("argsz ", info.argsz));
      }
      argsz = info.argsz;
      continue;
    }
    RegionInfo result;
    result.info = std::move(info);
    if (!reply.fds.empty()) result.fd = std::move(reply.fds.front());
    return result;
  }
  return Malformed("DEVICE_GET_REGION_INFO",
                   absl::StrCat("still truncated after ", kMaxArgszAttempts, " attempts"));
}

absl::StatusOr<RegionIoFds> Client::GetRegionIoFds(uint32_t index) {
  uint32_t argsz = wire::kRegionIoFdsHeaderSize;
  for (int attempt = 0; attempt < kMaxArgszAttempts; ++attempt) {
    std::vector<uint8_t> payload;
    wire::EncodeRegionIoFdsRequest({.argsz = argsz, .index = index}, payload);
    VFU_ASSIGN_OR_RETURN(Reply reply, Call(wire::Command::kDeviceGetRegionIoFds, payload));
    VFU_RETURN_IF_ERROR(CheckFitsArgsz("DEVICE_GET_REGION_IO_FDS", reply, argsz));
    VFU_ASSIGN_OR_RETURN(wire::RegionIoFdsReply decoded,
                         wire::DecodeRegionIoFdsReply(reply.payload(), reply.fds.size()));
    if (decoded.index != index) {
      return Malformed("DEVICE_GET_REGION_IO_FDS",
                       absl::StrCat("index ", decoded.index, " for a request of ", index));
    }
    if (decoded.header_only()) {
      if (decoded.argsz <= argsz || decoded.argsz > kMaxFollowedArgsz) {
        return Malformed("DEVICE_GET_REGION_IO_FDS",
                         absl::StrCat("header only, argsz ", decoded.argsz,
                                      " for a request of ", argsz));
      }
      argsz = decoded.argsz;
      continue;
    }
    return RegionIoFds{.reply = std::move(decoded), .fds = std::move(reply.fds)};
  }
  return Malformed("DEVICE_GET_REGION_IO_FDS",
                   absl::StrCat("still header only after ", kMaxArgszAttempts, " attempts"));
}

absl::StatusOr<wire::IrqInfo> Client::GetIrqInfo(uint32_t index) {
  std::vector<uint8_t> payload;
  wire::EncodeIrqInfoRequest({.argsz = wire::kIrqInfoSize, .index = index}, payload);
  VFU_ASSIGN_OR_RETURN(Reply reply, Call(wire::Command::kDeviceGetIrqInfo, payload));
  VFU_ASSIGN_OR_RETURN(wire::IrqInfo info,
                       wire::DecodeIrqInfoReply(reply.payload(), reply.fds.size()));
  if (info.index != index) {
    return Malformed("DEVICE_GET_IRQ_INFO",
                     absl::StrCat("index ", info.index, " for a request of ", index));
  }
  return info;
}

absl::Status Client::SetIrqs(const wire::SetIrqsRequest& request, std::vector<UniqueFd> fds) {
  wire::SetIrqsRequest sized = request;
  sized.argsz = static_cast<uint32_t>(wire::kSetIrqsFixedSize + request.data.size());
  std::vector<uint8_t> payload;
  wire::EncodeSetIrqsRequest(sized, payload);
  return Call(wire::Command::kDeviceSetIrqs, payload, std::move(fds)).status();
}

absl::Status Client::SetIrqEventfds(uint32_t index, uint32_t start,
                                    std::vector<UniqueFd> eventfds) {
  if (eventfds.empty()) return absl::InvalidArgumentError("SetIrqEventfds: no vectors");
  const uint32_t max_fds = server_capabilities().max_msg_fds;
  const absl::Time deadline = DefaultDeadline();
  std::vector<uint16_t> sent;
  absl::Status result;
  // Runs of valid fds (at most max_fds each) install, runs of invalid ones
  // de-assign (EVENTFD with no fds), as QEMU splits them.
  for (size_t i = 0; i < eventfds.size() && result.ok();) {
    const bool install = eventfds[i].valid();
    if (install && max_fds == 0) {
      result = absl::FailedPreconditionError("the server accepts no fds (max_msg_fds 0)");
      break;
    }
    size_t end = i + 1;
    while (end < eventfds.size() && eventfds[end].valid() == install &&
           (!install || end - i < max_fds)) {
      ++end;
    }
    wire::SetIrqsRequest request{
        .argsz = wire::kSetIrqsFixedSize,
        .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
        .index = index,
        .start = static_cast<uint32_t>(start + i),
        .count = static_cast<uint32_t>(end - i),
    };
    std::vector<UniqueFd> fds;
    if (install) {
      for (size_t j = i; j < end; ++j) fds.push_back(std::move(eventfds[j]));
    }
    std::vector<uint8_t> payload;
    wire::EncodeSetIrqsRequest(request, payload);
    absl::StatusOr<uint16_t> id = SendWithDeadline(wire::Command::kDeviceSetIrqs, payload,
                                                   std::move(fds), /*no_reply=*/false, deadline);
    if (id.ok()) {
      sent.push_back(*id);
    } else {
      result = id.status();
    }
    i = end;
  }
  // Collect every reply, even after a failure, so no ID is left behind.
  for (uint16_t id : sent) {
    absl::StatusOr<Reply> reply = Await(id, deadline);
    if (!reply.ok()) {
      if (reply.status().code() == absl::StatusCode::kDeadlineExceeded) Abandon(id);
      if (result.ok()) result = reply.status();
    }
  }
  return result;
}

absl::Status Client::DisableIrqs(uint32_t index) {
  return SetIrqs({.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                  .index = index,
                  .start = 0,
                  .count = 0});
}

absl::StatusOr<std::vector<uint8_t>> Client::RegionRead(uint32_t index, uint64_t offset,
                                                        uint32_t count) {
  if (count > server_capabilities().max_data_xfer_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("REGION_READ of ", count, " bytes, above the server's max_data_xfer_size ",
                     server_capabilities().max_data_xfer_size));
  }
  std::vector<uint8_t> payload;
  wire::EncodeRegionReadRequest({.offset = offset, .region = index, .count = count}, payload);
  VFU_ASSIGN_OR_RETURN(Reply reply, Call(wire::Command::kRegionRead, payload));
  VFU_ASSIGN_OR_RETURN(wire::RegionAccessData data,
                       wire::DecodeRegionReadReply(reply.payload(), reply.fds.size()));
  if (data.offset != offset || data.region != index) {
    return Malformed("REGION_READ", absl::StrCat("echoes region ", data.region, " offset 0x",
                                                 absl::Hex(data.offset)));
  }
  if (data.data.size() > count) {
    return Malformed("REGION_READ",
                     absl::StrCat(data.data.size(), " bytes for a read of ", count));
  }
  std::vector<uint8_t> result(data.data.begin(), data.data.end());
  MessageBufferPool::Instance().Recycle(std::move(reply.bytes));
  return result;
}

absl::Status Client::RegionWrite(uint32_t index, uint64_t offset,
                                 absl::Span<const uint8_t> data, bool posted) {
  if (data.size() > server_capabilities().max_data_xfer_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "REGION_WRITE of ", data.size(), " bytes, above the server's max_data_xfer_size ",
        server_capabilities().max_data_xfer_size));
  }
  std::vector<uint8_t> payload;
  payload.reserve(wire::kRegionAccessPrefixSize + data.size());
  wire::EncodeRegionWriteRequest({.offset = offset, .region = index, .data = data}, payload);
  if (posted) return SendNoReply(wire::Command::kRegionWrite, payload);
  VFU_ASSIGN_OR_RETURN(Reply reply, Call(wire::Command::kRegionWrite, payload));
  VFU_ASSIGN_OR_RETURN(wire::RegionAccess written,
                       wire::DecodeRegionWriteReply(reply.payload(), reply.fds.size()));
  if (written.offset != offset || written.region != index) {
    return Malformed("REGION_WRITE", absl::StrCat("echoes region ", written.region, " offset 0x",
                                                  absl::Hex(written.offset)));
  }
  if (written.count != data.size()) {
    return Malformed("REGION_WRITE",
                     absl::StrCat(written.count, " bytes written of ", data.size()));
  }
  return absl::OkStatus();
}

absl::Status Client::DmaMap(uint64_t iova, uint64_t size, uint32_t flags, UniqueFd fd,
                            uint64_t file_offset) {
  std::vector<uint8_t> payload;
  wire::EncodeDmaMapRequest(
      {.flags = flags, .offset = file_offset, .addr = iova, .size = size}, payload);
  std::vector<UniqueFd> fds;
  if (fd.valid()) fds.push_back(std::move(fd));
  return Call(wire::Command::kDmaMap, payload, std::move(fds)).status();
}

absl::Status Client::DmaMapMemory(uint64_t iova, absl::Span<uint8_t> memory, uint32_t flags) {
  // Registered first: the server may DMA as soon as it has mapped.
  VFU_RETURN_IF_ERROR(AddDmaMemory(iova, memory, flags));
  absl::Status status = DmaMap(iova, memory.size(), flags);
  if (!status.ok()) RemoveDmaMemory(iova).IgnoreError();
  return status;
}

absl::Status Client::DmaUnmap(uint64_t iova, uint64_t size) {
  wire::DmaUnmapRequest request;
  request.addr = iova;
  request.size = size;
  std::vector<uint8_t> payload;
  wire::EncodeDmaUnmapRequest(request, payload);
  VFU_ASSIGN_OR_RETURN(Reply reply, Call(wire::Command::kDmaUnmap, payload));
  {
    // The server has let go of the range: stop serving it.
    absl::MutexLock lock(&mu_);
    OwnBorrowedBytesLocked();
    memory_.RemoveWithin(iova, size);
  }
  VFU_ASSIGN_OR_RETURN(wire::DmaUnmapReply echo,
                       wire::DecodeDmaUnmapReply(reply.payload(), reply.fds.size()));
  if (echo.addr != iova || echo.size != size) {
    return Malformed("DMA_UNMAP", absl::StrCat("echoes 0x", absl::Hex(echo.addr), " size ",
                                               echo.size));
  }
  return absl::OkStatus();
}

absl::Status Client::DmaUnmapAll() {
  wire::DmaUnmapRequest request;
  request.flags = wire::kDmaUnmapFlagAll;
  std::vector<uint8_t> payload;
  wire::EncodeDmaUnmapRequest(request, payload);
  VFU_ASSIGN_OR_RETURN(Reply reply, Call(wire::Command::kDmaUnmap, payload));
  {
    absl::MutexLock lock(&mu_);
    OwnBorrowedBytesLocked();
    memory_.Clear();
  }
  return wire::DecodeDmaUnmapReply(reply.payload(), reply.fds.size()).status();
}

absl::Status Client::Reset() {
  return Call(wire::Command::kDeviceReset, {}).status();
}

}  // namespace vfu
