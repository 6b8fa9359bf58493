// Numbers of the vfio-user wire protocol that are not in <linux/vfio.h>:
// command numbers, header flags and the protocol's default limits.
#ifndef VFU_WIRE_CONSTANTS_H_
#define VFU_WIRE_CONSTANTS_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace vfu::wire {

// Command numbers (the `cmd` header field). 14 is unassigned.
enum class Command : uint16_t {
  kVersion = 1,
  kDmaMap = 2,
  kDmaUnmap = 3,
  kDeviceGetInfo = 4,
  kDeviceGetRegionInfo = 5,
  kDeviceGetRegionIoFds = 6,
  kDeviceGetIrqInfo = 7,
  kDeviceSetIrqs = 8,
  kRegionRead = 9,
  kRegionWrite = 10,
  kDmaRead = 11,
  kDmaWrite = 12,
  kDeviceReset = 13,
  kRegionWriteMulti = 15,
  kDeviceFeature = 16,
  kMigDataRead = 17,
  kMigDataWrite = 18,
};

// True for the command numbers above.
bool IsKnownCommand(uint16_t command);

// The protocol's name for `command` ("DMA_MAP"), or "UNKNOWN".
std::string_view CommandName(uint16_t command);
inline std::string_view CommandName(Command command) {
  return CommandName(static_cast<uint16_t>(command));
}

// Every message starts with a 16-byte header.
inline constexpr size_t kHeaderSize = 16;

// Header `flags`: bits 0-3 are the message type.
inline constexpr uint32_t kFlagsTypeMask = 0xf;
inline constexpr uint32_t kTypeCommand = 0x0;
inline constexpr uint32_t kTypeReply = 0x1;
// A command the receiver must not answer, not even with an error.
inline constexpr uint32_t kFlagNoReply = 0x10;
// A failed command's reply; `error` holds the errno.
inline constexpr uint32_t kFlagError = 0x20;

// Largest errno a peer may report; anything outside (0, kMaxErrno] in an
// error reply is read as EINVAL.
inline constexpr uint32_t kMaxErrno = 4096;

// Capability defaults when the peer does not state a value (PROTOCOL.md 3.3).
inline constexpr uint32_t kDefaultMaxMsgFds = 1;
inline constexpr uint64_t kDefaultMaxDataXferSize = 1 << 20;
inline constexpr uint32_t kDefaultMaxDmaMaps = 65535;
inline constexpr uint64_t kDefaultPgsizes = 4096;

// Hard caps on what a peer may announce, so nothing is sized from an
// absurd capability value.
inline constexpr uint32_t kMaxMsgFdsLimit = 1024;
inline constexpr uint64_t kMaxDataXferSizeLimit = 64ull << 20;

// Fixed part of the data-carrying commands (REGION_*/DMA_* payload prefix).
inline constexpr size_t kDataTransferPrefixSize = 16;

// The largest message a receiver that advertised `max_data_xfer_size` must be
// ready to accept: a REGION_WRITE or DMA_READ reply carrying that many bytes.
constexpr size_t MaxMessageSizeFor(uint64_t max_data_xfer_size) {
  return kHeaderSize + kDataTransferPrefixSize + max_data_xfer_size;
}

// Region and IRQ index counts of a vfio-pci device (see <linux/vfio.h>).
inline constexpr uint32_t kPciNumRegions = 9;
inline constexpr uint32_t kPciNumIrqs = 5;

// Type of a DEVICE_GET_REGION_IO_FDS sub-region entry.
enum class IoFdType : uint32_t {
  kIoeventfd = 0,
  kIoregionfd = 1,
  kShadowIoeventfd = 2,
};

}  // namespace vfu::wire

#endif  // VFU_WIRE_CONSTANTS_H_
