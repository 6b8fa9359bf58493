#include "tools/inspect/command.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "devices/dma_engine/dma_check.h"
#include "tools/inspect/device_snapshot.h"
#include "tools/inspect/hex_dump.h"
#include "tools/inspect/listing.h"
#include "tools/inspect/region_io.h"
#include "tools/inspect/spec_from_device.h"
#include "vfu/base/status_macros.h"

namespace vfu::inspect {
namespace {

absl::StatusOr<uint64_t> ParseNumber(const std::string& text, const char* what) {
  uint64_t value = 0;
  bool ok = false;
  if (absl::StartsWithIgnoreCase(text, "0x")) {
    ok = text.size() > 2 && absl::SimpleHexAtoi(text.substr(2), &value);
  } else {
    ok = !text.empty() && absl::SimpleAtoi(text, &value);
  }
  if (!ok || text.find_first_of("+- ") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " \"", text, "\" is not a number (decimal or 0x hex)"));
  }
  return value;
}

absl::Status ParseRegionAndOffset(absl::Span<const std::string> args, Command& command) {
  VFU_ASSIGN_OR_RETURN(uint64_t region, ParseNumber(args[2], "REGION"));
  if (region > UINT32_MAX) {
    return absl::InvalidArgumentError(absl::StrCat("REGION ", region, " is above 2^32 - 1"));
  }
  command.region = static_cast<uint32_t>(region);
  VFU_ASSIGN_OR_RETURN(command.offset, ParseNumber(args[3], "OFFSET"));
  return absl::OkStatus();
}

// The region's size from DEVICE_GET_REGION_INFO; OutOfRange when
// [offset, offset + size) does not lie inside it.
absl::Status CheckRange(Client& client, const Command& command, uint64_t size) {
  VFU_ASSIGN_OR_RETURN(wire::DeviceInfo info, client.GetDeviceInfo());
  if (command.region >= info.num_regions) {
    return absl::OutOfRangeError(absl::StrFormat("region %d: the device has %d regions",
                                                 command.region, info.num_regions));
  }
  VFU_ASSIGN_OR_RETURN(RegionInfo region, client.GetRegionInfo(command.region));
  const uint64_t region_size = region.info.size;
  if (command.offset > region_size || size > region_size - command.offset) {
    return absl::OutOfRangeError(absl::StrFormat(
        "region %d is %d bytes; [0x%x, 0x%x) lies outside it", command.region, region_size,
        command.offset, command.offset + size));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Command> ParseCommand(absl::Span<const std::string> args, bool spec) {
  if (args.empty()) return absl::InvalidArgumentError("no SOCKET given");
  Command command;
  const std::string& verb = args[0];
  if (verb == "read" || verb == "write") {
    if (spec) return absl::InvalidArgumentError(absl::StrCat("--spec does not apply to ", verb));
    if (args.size() != 5) {
      return absl::InvalidArgumentError(absl::StrCat(
          verb, " takes SOCKET REGION OFFSET ", verb == "read" ? "SIZE" : "HEXBYTES", "; got ",
          args.size() - 1, " arguments"));
    }
    command.socket_path = args[1];
    VFU_RETURN_IF_ERROR(ParseRegionAndOffset(args, command));
    if (verb == "read") {
      command.kind = Command::Kind::kRead;
      VFU_ASSIGN_OR_RETURN(command.size, ParseNumber(args[4], "SIZE"));
      if (command.size == 0 || command.size > kMaxReadSize) {
        return absl::InvalidArgumentError(
            absl::StrCat("SIZE ", command.size, " must lie in 1..", kMaxReadSize));
      }
    } else {
      command.kind = Command::Kind::kWrite;
      VFU_ASSIGN_OR_RETURN(command.data, ParseHexBytes(args[4]));
    }
    return command;
  }
  if (verb == "dma-check") {
    if (spec) return absl::InvalidArgumentError("--spec does not apply to dma-check");
    if (args.size() < 2 || args.size() > 3 ||
        (args.size() == 3 && args[2] != "fd" && args[2] != "messages")) {
      return absl::InvalidArgumentError("dma-check takes SOCKET [fd|messages]");
    }
    command.kind = Command::Kind::kDmaCheck;
    command.socket_path = args[1];
    command.dma_by_messages = args.size() == 3 && args[2] == "messages";
    return command;
  }
  if (args.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown command \"", verb, "\" (a listing takes just SOCKET; see --help)"));
  }
  command.kind = spec ? Command::Kind::kSpec : Command::Kind::kListing;
  command.socket_path = verb;
  return command;
}

absl::StatusOr<std::string> RunCommand(const Command& command, const ClientOptions& options) {
  absl::StatusOr<std::unique_ptr<Client>> connected =
      Client::Connect(command.socket_path, options);
  if (!connected.ok()) {
    // A vfio-user server serves one client at a time and closes the others.
    const char* hint = absl::IsUnavailable(connected.status())
                           ? " (is another client attached to the device?)"
                           : "";
    return absl::Status(connected.status().code(),
                        absl::StrCat("connecting to ", command.socket_path, ": ",
                                     connected.status().message(), hint));
  }
  return RunCommandOn(**connected, command);
}

absl::StatusOr<std::string> RunCommandOn(Client& client, const Command& command) {
  switch (command.kind) {
    case Command::Kind::kListing: {
      VFU_ASSIGN_OR_RETURN(DeviceSnapshot device, ProbeDevice(client, command.socket_path));
      return FormatListing(device);
    }
    case Command::Kind::kSpec: {
      VFU_ASSIGN_OR_RETURN(DeviceSnapshot device, ProbeDevice(client, command.socket_path));
      VFU_ASSIGN_OR_RETURN(SpecResult result, SpecFromDevice(device));
      return FormatSpecText(device, result);
    }
    case Command::Kind::kRead: {
      VFU_RETURN_IF_ERROR(CheckRange(client, command, command.size));
      VFU_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                           ReadRegionRange(client, command.region, command.offset, command.size));
      return HexDump(bytes, command.offset);
    }
    case Command::Kind::kWrite: {
      VFU_RETURN_IF_ERROR(CheckRange(client, command, command.data.size()));
      VFU_RETURN_IF_ERROR(
          WriteRegionRange(client, command.region, command.offset, command.data));
      return absl::StrFormat("wrote %d bytes to region %d at 0x%x\n", command.data.size(),
                             command.region, command.offset);
    }
    case Command::Kind::kDmaCheck: {
      devices::DmaCheckOptions options;
      options.memory = command.dma_by_messages ? devices::DmaCheckMemory::kMessages
                                               : devices::DmaCheckMemory::kFdBacked;
      VFU_ASSIGN_OR_RETURN(devices::DmaCheckReport report, devices::RunDmaCheck(client, options));
      std::string line = devices::FormatDmaCheckReport(report) + "\n";
      if (!report.ok) return absl::InternalError(line);
      return line;
    }
  }
  return absl::InternalError("unknown command kind");
}

std::string UsageText() {
  return R"(inspect: show a vfio-user device, from its socket.

Usage:
  inspect [--timeout=5s] SOCKET
      List the device as lspci -vvv does: IDs, class, command and status,
      BARs (sizes from the vfio region info), ROM, device-specific regions,
      capabilities, interrupts, and warnings where config space and the
      vfio info disagree. Sends only read-only commands.
  inspect --spec SOCKET
      Print the device as a vfu.proto.DeviceSpec text proto; what the spec
      cannot say is listed in "# note:" comments.
  inspect read SOCKET REGION OFFSET SIZE
      Hex dump of SIZE bytes at OFFSET of region REGION.
  inspect write SOCKET REGION OFFSET HEXBYTES
      Write bytes ("de ad be ef", "deadbeef" or "de:ad:be:ef") at OFFSET of
      region REGION. This changes the device: use with care.
  inspect dma-check SOCKET [fd|messages]
      For a DMA engine (devices/dma_engine): share memory with the device
      (with an fd, or without one so the device must use DMA_READ/DMA_WRITE
      messages), run a copy job, wait for its MSI-X interrupt and check the
      bytes.

Numbers are decimal or 0x-prefixed hex. Regions: 0-5 BARs, 6 ROM, 7 config
space, 8 VGA, 9 and up device-specific.

Flags:
  --spec        print a DeviceSpec instead of the listing
  --timeout=D   deadline of each request (default 5s)
  --help        this text

Exit status: 0 on success, 1 when the device or socket fails, 2 for a
malformed command line.
)";
}

}  // namespace vfu::inspect
