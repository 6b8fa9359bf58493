// The DMA engine's programming interface: PCI identity, BAR0 register map
// and register values, shared by the device (dma_engine_device.h) and the
// code that drives it (dma_check.h, tests, tools). Constants only.
//
// BAR0: 4 KiB of 32-bit memory space, served by messages (not mappable).
// Registers are 32 bits, little-endian; any access size and alignment works,
// byte by byte. Reserved offsets read 0 and ignore writes, as do writes to
// read-only registers.
//
//   0x000-0x0ff  global registers
//     0x000 ID          RO    0x45414d44  "DMAE" in ASCII, lowest byte first
//     0x004 VERSION     RO    1           register file revision
//     0x008 CHANNELS    RO    4           number of channels
//     0x00c IRQ_STATUS  RW1C  0           bit n: a job of channel n ended
//                                         (done or error); writing 1 clears
//   0x100-0x1ff  channel n at 0x100 + n * 0x40
//     +0x00 SOURCE_LO       RW  0  source IOVA, bits 31:0
//     +0x04 SOURCE_HI       RW  0  source IOVA, bits 63:32
//     +0x08 DESTINATION_LO  RW  0  destination IOVA, bits 31:0
//     +0x0c DESTINATION_HI  RW  0  destination IOVA, bits 63:32
//     +0x10 LENGTH          RW  0  bytes to copy
//     +0x14 DOORBELL        WO  -  reads 0. Bit 0 START: an idle, done or
//                                  failed channel starts a job with the
//                                  SOURCE, DESTINATION and LENGTH of this
//                                  moment (a busy channel ignores it). Bit 1
//                                  ABORT: a busy channel stops its job at
//                                  its next chunk, ending it with
//                                  ERROR_ABORTED; a write with ABORT set
//                                  never starts a job
//     +0x18 STATUS          RO  0  0 idle, 1 busy, 2 done, 3 error
//     +0x1c ERROR           RO  0  why the last job failed (kError*)
//     +0x20 PROGRESS        RO  0  bytes the current or last job copied
//   0x800-0x83f  MSI-X table (4 entries), served by the framework
//   0xc00-0xc07  MSI-X pending bit array, served by the framework
//
// Interrupts: MSI-X vector n is raised when a job of channel n ends, done
// or failed (not when a reset or a disconnect abandons it).
#ifndef VFU_DEVICES_DMA_ENGINE_DMA_ENGINE_REGISTERS_H_
#define VFU_DEVICES_DMA_ENGINE_DMA_ENGINE_REGISTERS_H_

#include <cstdint>

namespace vfu::devices::dma_engine {

inline constexpr uint32_t kNumChannels = 4;
// Bytes moved per step of a job: the granularity of PROGRESS, ABORT, reset
// and unmap.
inline constexpr uint64_t kChunkSize = 64 * 1024;

// Placeholder: this project owns no PCI vendor ID. A product registers its
// own with the PCI-SIG and puts it here.
inline constexpr uint16_t kVendorId = 0xf00d;
inline constexpr uint16_t kDeviceId = 0x0002;
inline constexpr uint32_t kClassCode = 0x088000;  // system peripheral, other
inline constexpr uint8_t kRevision = 1;

inline constexpr uint64_t kBarSize = 4096;
inline constexpr uint32_t kMsixTableOffset = 0x800;
inline constexpr uint32_t kMsixPbaOffset = 0xc00;

// Global registers.
inline constexpr uint64_t kRegId = 0x000;
inline constexpr uint64_t kRegVersion = 0x004;
inline constexpr uint64_t kRegChannels = 0x008;
inline constexpr uint64_t kRegIrqStatus = 0x00c;

// Channel registers: ChannelRegister(n, one of these).
inline constexpr uint64_t kChannelBase = 0x100;
inline constexpr uint64_t kChannelStride = 0x40;
inline constexpr uint64_t kRegSourceLo = 0x00;
inline constexpr uint64_t kRegSourceHi = 0x04;
inline constexpr uint64_t kRegDestinationLo = 0x08;
inline constexpr uint64_t kRegDestinationHi = 0x0c;
inline constexpr uint64_t kRegLength = 0x10;
inline constexpr uint64_t kRegDoorbell = 0x14;
inline constexpr uint64_t kRegStatus = 0x18;
inline constexpr uint64_t kRegError = 0x1c;
inline constexpr uint64_t kRegProgress = 0x20;

// BAR0 offset of register `reg` of channel `channel`.
constexpr uint64_t ChannelRegister(uint32_t channel, uint64_t reg) {
  return kChannelBase + channel * kChannelStride + reg;
}

inline constexpr uint32_t kIdValue = 0x45414d44;  // "DMAE"
inline constexpr uint32_t kRegisterRevision = 1;

// DOORBELL bits.
inline constexpr uint32_t kDoorbellStart = 1u << 0;
inline constexpr uint32_t kDoorbellAbort = 1u << 1;

// STATUS values.
inline constexpr uint32_t kStatusIdle = 0;   // no job since reset
inline constexpr uint32_t kStatusBusy = 1;   // a job runs
inline constexpr uint32_t kStatusDone = 2;   // the last job copied every byte
inline constexpr uint32_t kStatusError = 3;  // the last job failed: see ERROR

// ERROR values.
inline constexpr uint32_t kErrorNone = 0;
// Reading the source failed: not mapped, not readable, or the client failed
// the DMA_READ.
inline constexpr uint32_t kErrorSourceFault = 1;
// Writing the destination failed: not mapped, not writable, or the client
// failed the DMA_WRITE.
inline constexpr uint32_t kErrorDestinationFault = 2;
// The DOORBELL ABORT bit stopped the job.
inline constexpr uint32_t kErrorAborted = 3;
// The client went away while a DMA message of the job was in flight or
// before its next chunk. (A job whose next chunk finds the client's memory
// already withdrawn by the disconnect reports the fault instead.)
inline constexpr uint32_t kErrorDetached = 4;
// The ranges overlap or wrap around the 64-bit address space.
inline constexpr uint32_t kErrorInvalid = 5;

}  // namespace vfu::devices::dma_engine

#endif  // VFU_DEVICES_DMA_ENGINE_DMA_ENGINE_REGISTERS_H_
