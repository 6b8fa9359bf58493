// The inspect command line: parsing it into a Command, and running one
// against a socket. The binary (inspect_main.cc) only adds flag parsing and
// exit codes, so tests drive every subcommand in-process.
//
//   inspect SOCKET                              lspci-style listing
//   inspect --spec SOCKET                       vfu.proto.DeviceSpec text
//   inspect read SOCKET REGION OFFSET SIZE      hex dump of a region range
//   inspect write SOCKET REGION OFFSET HEXBYTES write bytes to a region
//   inspect dma-check SOCKET [fd|messages]       run a DMA engine job and
//                                               check the copied bytes
#ifndef VFU_TOOLS_INSPECT_COMMAND_H_
#define VFU_TOOLS_INSPECT_COMMAND_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "vfu/client/client.h"

namespace vfu::inspect {

// Largest `inspect read`: enough for any config space or register block,
// small enough for a terminal.
inline constexpr uint64_t kMaxReadSize = 16 << 20;

struct Command {
  enum class Kind { kListing, kSpec, kRead, kWrite, kDmaCheck };
  Kind kind = Kind::kListing;
  std::string socket_path;
  // kRead / kWrite.
  uint32_t region = 0;
  uint64_t offset = 0;
  uint64_t size = 0;          // kRead
  std::vector<uint8_t> data;  // kWrite
  bool dma_by_messages = false;  // kDmaCheck: fd-less memory
};

// Parses the positional arguments (flags already removed); `spec` is the
// --spec flag. Numbers are decimal or 0x-prefixed hex. InvalidArgument
// saying what is wrong for anything else.
absl::StatusOr<Command> ParseCommand(absl::Span<const std::string> args, bool spec);

// Connects to command.socket_path and runs the command; returns what to
// print. Errors are the connection's (prefixed with the path), the
// server's, or OutOfRange for a read or write outside the region.
absl::StatusOr<std::string> RunCommand(const Command& command, const ClientOptions& options = {});

// Runs `command` over an existing connection (command.socket_path only
// names the device in the output), so several commands can share one.
absl::StatusOr<std::string> RunCommandOn(Client& client, const Command& command);

// The --help text.
std::string UsageText();

}  // namespace vfu::inspect

#endif  // VFU_TOOLS_INSPECT_COMMAND_H_
