// NVMe 1.4 constants and the two queue entry layouts, as the controller and
// its drivers (tools/nvme) share them: register offsets and fields, opcodes,
// status codes, feature and log identifiers. Constants only; no behaviour.
//
// Status values are the 15-bit status field of a completion without the
// phase tag: DNR << 14 | M << 13 | SCT << 8 | SC (MakeStatus).
#ifndef VFU_DEVICES_NVME_NVME_DEFS_H_
#define VFU_DEVICES_NVME_NVME_DEFS_H_

#include <cstdint>

namespace vfu::nvme {

// ---- PCI identity ----
inline constexpr uint16_t kVendorId = 0xf00d;  // placeholder, as the other devices
inline constexpr uint16_t kDeviceId = 0x0010;
inline constexpr uint32_t kClassCode = 0x010802;  // mass storage / NVM / NVMe
inline constexpr uint8_t kRevision = 1;

// ---- BAR 0: controller registers, doorbells, then the MSI-X table/PBA ----
inline constexpr uint64_t kRegCap = 0x00;
inline constexpr uint64_t kRegVs = 0x08;
inline constexpr uint64_t kRegIntms = 0x0c;
inline constexpr uint64_t kRegIntmc = 0x10;
inline constexpr uint64_t kRegCc = 0x14;
inline constexpr uint64_t kRegCsts = 0x1c;
inline constexpr uint64_t kRegNssr = 0x20;
inline constexpr uint64_t kRegAqa = 0x24;
inline constexpr uint64_t kRegAsq = 0x28;
inline constexpr uint64_t kRegAcq = 0x30;
inline constexpr uint64_t kRegCmbloc = 0x38;
inline constexpr uint64_t kRegCmbsz = 0x3c;
inline constexpr uint64_t kDoorbellBase = 0x1000;

// Queue identifiers 0 (admin) .. kMaxIoQueues; a driver sees kMaxIoQueues
// I/O submission and completion queues.
inline constexpr uint32_t kMaxIoQueues = 64;
// 4-byte doorbells (CAP.DSTRD = 0): SQ y tail at 0x1000 + 8y, CQ y head at
// 0x1000 + 8y + 4.
inline constexpr uint64_t SqTailDoorbell(uint32_t qid) { return kDoorbellBase + 8 * qid; }
inline constexpr uint64_t CqHeadDoorbell(uint32_t qid) { return kDoorbellBase + 8 * qid + 4; }
inline constexpr uint64_t kDoorbellEnd = kDoorbellBase + 8 * (kMaxIoQueues + 1);
// I/O queues 1 .. kIoeventfdQueues offer their SQ tail and CQ head
// doorbells as ioeventfds: 16 fds, what QEMU accepts in one message.
inline constexpr uint32_t kIoeventfdQueues = 8;
// MSI-X: one vector per completion queue (admin = 0).
inline constexpr uint16_t kMsixVectors = kMaxIoQueues + 1;
inline constexpr uint32_t kMsixTableOffset = 0x2000;
inline constexpr uint32_t kMsixPbaOffset = 0x3000;
inline constexpr uint64_t kBar0Size = 0x4000;

// CAP fields.
inline constexpr uint32_t kMaxQueueEntries = 4096;  // MQES + 1
inline constexpr uint64_t kCapMqes = kMaxQueueEntries - 1;
inline constexpr uint64_t kCapCqr = uint64_t{1} << 16;
inline constexpr uint64_t kCapTimeout = uint64_t{15} << 24;  // 7.5 s, in 500 ms units
inline constexpr uint64_t kCapCssNvm = uint64_t{1} << 37;
inline constexpr uint32_t kMpsMin = 0;  // 4 KiB
inline constexpr uint32_t kMpsMax = 4;  // 64 KiB
inline constexpr uint64_t kCapValue = kCapMqes | kCapCqr | kCapTimeout | kCapCssNvm |
                                      (uint64_t{kMpsMin} << 48) | (uint64_t{kMpsMax} << 52);
inline constexpr uint32_t kVersion14 = 0x00010400;

// CC fields.
inline constexpr uint32_t kCcEnable = 1u << 0;
inline constexpr uint32_t CcCss(uint32_t cc) { return (cc >> 4) & 7; }
inline constexpr uint32_t CcMps(uint32_t cc) { return (cc >> 7) & 0xf; }
inline constexpr uint32_t CcShn(uint32_t cc) { return (cc >> 14) & 3; }
inline constexpr uint32_t CcIosqes(uint32_t cc) { return (cc >> 16) & 0xf; }
inline constexpr uint32_t CcIocqes(uint32_t cc) { return (cc >> 20) & 0xf; }
inline constexpr uint32_t kCcWritableMask = 0x00fffff1;
inline constexpr uint32_t kShnNone = 0;
// CSTS fields.
inline constexpr uint32_t kCstsReady = 1u << 0;
inline constexpr uint32_t kCstsFatal = 1u << 1;
inline constexpr uint32_t kCstsShstShift = 2;
inline constexpr uint32_t kShstNormal = 0;
inline constexpr uint32_t kShstOccurring = 1;
inline constexpr uint32_t kShstComplete = 2;
// AQA: ASQS 11:0, ACQS 27:16 (0-based).
inline constexpr uint32_t kAqaMask = 0x0fff0fff;

// ---- Entries ----
inline constexpr uint32_t kSqEntrySize = 64;
inline constexpr uint32_t kCqEntrySize = 16;
inline constexpr uint32_t kSqEntrySizeLog2 = 6;
inline constexpr uint32_t kCqEntrySizeLog2 = 4;

// A submission queue entry as it lies in memory (little-endian host).
struct SubmissionEntry {
  uint8_t opcode;
  uint8_t flags;  // FUSE 1:0, PSDT 7:6
  uint16_t cid;
  uint32_t nsid;
  uint32_t cdw2;
  uint32_t cdw3;
  uint64_t mptr;
  uint64_t prp1;
  uint64_t prp2;
  uint32_t cdw10;
  uint32_t cdw11;
  uint32_t cdw12;
  uint32_t cdw13;
  uint32_t cdw14;
  uint32_t cdw15;
};
static_assert(sizeof(SubmissionEntry) == kSqEntrySize);

// A completion queue entry. `status` holds the phase tag in bit 0 and the
// status field (MakeStatus) in bits 15:1.
struct CompletionEntry {
  uint32_t dw0;
  uint32_t dw1;
  uint16_t sq_head;
  uint16_t sq_id;
  uint16_t cid;
  uint16_t status;
};
static_assert(sizeof(CompletionEntry) == kCqEntrySize);

// ---- Status codes (status field without phase) ----
inline constexpr uint16_t kDnr = 1u << 14;
inline constexpr uint16_t MakeStatus(uint16_t sct, uint16_t sc, bool dnr = true) {
  return static_cast<uint16_t>((dnr ? kDnr : 0) | (sct << 8) | sc);
}
inline constexpr uint16_t StatusSct(uint16_t status) { return (status >> 8) & 7; }
inline constexpr uint16_t StatusSc(uint16_t status) { return status & 0xff; }

inline constexpr uint16_t kSuccess = 0;
inline constexpr uint16_t kInvalidOpcode = MakeStatus(0, 0x01);
inline constexpr uint16_t kInvalidField = MakeStatus(0, 0x02);
inline constexpr uint16_t kDataTransferError = MakeStatus(0, 0x04, /*dnr=*/false);
inline constexpr uint16_t kInternalError = MakeStatus(0, 0x06, /*dnr=*/false);
inline constexpr uint16_t kAbortRequested = MakeStatus(0, 0x07, /*dnr=*/false);
inline constexpr uint16_t kAbortedSqDeletion = MakeStatus(0, 0x08, /*dnr=*/false);
inline constexpr uint16_t kInvalidNamespace = MakeStatus(0, 0x0b);
inline constexpr uint16_t kCommandSequenceError = MakeStatus(0, 0x0c);
inline constexpr uint16_t kInvalidPrpOffset = MakeStatus(0, 0x13);
inline constexpr uint16_t kLbaOutOfRange = MakeStatus(0, 0x80);
inline constexpr uint16_t kCompletionQueueInvalid = MakeStatus(1, 0x00);
inline constexpr uint16_t kInvalidQueueId = MakeStatus(1, 0x01);
inline constexpr uint16_t kInvalidQueueSize = MakeStatus(1, 0x02);
inline constexpr uint16_t kAbortLimitExceeded = MakeStatus(1, 0x03);
inline constexpr uint16_t kAerLimitExceeded = MakeStatus(1, 0x05);
inline constexpr uint16_t kInvalidInterruptVector = MakeStatus(1, 0x08);
inline constexpr uint16_t kInvalidLogPage = MakeStatus(1, 0x09);
inline constexpr uint16_t kInvalidQueueDeletion = MakeStatus(1, 0x0c);
inline constexpr uint16_t kFeatureNotSaveable = MakeStatus(1, 0x0d);

// ---- Admin opcodes ----
inline constexpr uint8_t kAdminDeleteSq = 0x00;
inline constexpr uint8_t kAdminCreateSq = 0x01;
inline constexpr uint8_t kAdminGetLogPage = 0x02;
inline constexpr uint8_t kAdminDeleteCq = 0x04;
inline constexpr uint8_t kAdminCreateCq = 0x05;
inline constexpr uint8_t kAdminIdentify = 0x06;
inline constexpr uint8_t kAdminAbort = 0x08;
inline constexpr uint8_t kAdminSetFeatures = 0x09;
inline constexpr uint8_t kAdminGetFeatures = 0x0a;
inline constexpr uint8_t kAdminAsyncEvent = 0x0c;
inline constexpr uint8_t kAdminKeepAlive = 0x18;
inline constexpr uint8_t kAdminDoorbellBufferConfig = 0x7c;

// Identify CNS values.
inline constexpr uint32_t kCnsNamespace = 0x00;
inline constexpr uint32_t kCnsController = 0x01;
inline constexpr uint32_t kCnsActiveNamespaces = 0x02;
inline constexpr uint32_t kCnsNamespaceDescriptors = 0x03;
inline constexpr uint32_t kIdentifySize = 4096;

// Feature identifiers.
inline constexpr uint8_t kFeatArbitration = 0x01;
inline constexpr uint8_t kFeatTemperatureThreshold = 0x04;
inline constexpr uint8_t kFeatVolatileWriteCache = 0x06;
inline constexpr uint8_t kFeatNumberOfQueues = 0x07;
inline constexpr uint8_t kFeatInterruptCoalescing = 0x08;
inline constexpr uint8_t kFeatInterruptVectorConfig = 0x09;
inline constexpr uint8_t kFeatAsyncEventConfig = 0x0b;

// Log pages.
inline constexpr uint8_t kLogError = 0x01;
inline constexpr uint8_t kLogSmart = 0x02;
inline constexpr uint8_t kLogFirmwareSlot = 0x03;
inline constexpr uint32_t kErrorLogEntries = 4;  // ELPE + 1
inline constexpr uint32_t kErrorLogEntrySize = 64;

// Asynchronous events (completion DW0).
inline constexpr uint32_t kAerTypeError = 0;
inline constexpr uint32_t kAerInfoInvalidDoorbell = 0x00;
inline constexpr uint32_t kAerInfoInvalidDoorbellValue = 0x01;
inline constexpr uint32_t kAerLimit = 4;  // AERL + 1
inline constexpr uint32_t AerResult(uint32_t type, uint32_t info, uint32_t log) {
  return type | (info << 8) | (log << 16);
}

// ---- NVM opcodes ----
inline constexpr uint8_t kNvmFlush = 0x00;
inline constexpr uint8_t kNvmWrite = 0x01;
inline constexpr uint8_t kNvmRead = 0x02;
inline constexpr uint8_t kNvmWriteZeroes = 0x08;
inline constexpr uint8_t kNvmDatasetManagement = 0x09;
inline constexpr uint32_t kRwFua = 1u << 30;
inline constexpr uint32_t kDsmDeallocate = 1u << 2;
inline constexpr uint32_t kDsmRangeSize = 16;
inline constexpr uint32_t kDsmMaxRanges = 256;

// Largest transfer: 2^kMdts pages of the minimum page size (1 MiB).
inline constexpr uint8_t kMdts = 8;
inline constexpr uint64_t kMaxTransferBytes = (uint64_t{1} << kMdts) * 4096;

}  // namespace vfu::nvme

#endif  // VFU_DEVICES_NVME_NVME_DEFS_H_
