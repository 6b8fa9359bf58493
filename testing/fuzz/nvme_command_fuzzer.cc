// Fuzzes the NVMe controller's command parser (devices/nvme): a submission
// queue entry run through the admin or the NVM command set, with its PRPs
// walked through a fake client memory the input fills.
//
// Input: selector byte (bit 0: admin or NVM command set; bits 1-2: memory
// page size 4/8/16/64 KiB; bit 3: LBA size 512 or 4096), then the 64-byte
// submission entry, then the client memory: up to 64 KiB mapped at IOVA
// kMemoryBase (PRP lists, DSM ranges and data live there; anything outside
// is unmapped).
//
// Checks:
//  - every command completes with one of the status values the controller
//    defines;
//  - a PRP walk that succeeds covers exactly the transfer length, its
//    segments after the first start page aligned, no more of them than the
//    pages it touches; a walk reads no more list entries than those pages
//    and their chain pointers;
//  - the namespace file never changes size (nothing written past its end);
//  - fake client memory outside the mapped window is never touched (the
//    fake refuses, and ASan would see a stray access).
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "devices/nvme/admin_command_set.h"
#include "devices/nvme/guest_data.h"
#include "devices/nvme/nvm_command_set.h"
#include "devices/nvme/nvme_defs.h"
#include "devices/nvme/nvme_namespace.h"
#include "devices/nvme/prp_walker.h"
#include "testing/fuzz/fuzz_util.h"

namespace vfu::fuzz {
namespace {

using namespace vfu::nvme;  // NOLINT: the fuzzer speaks NVMe throughout

constexpr uint64_t kMemoryBase = 0x100000;
constexpr uint64_t kMemoryMax = 64 * 1024;
constexpr uint64_t kNamespaceBytes = 256 * 1024;

// Client memory: a window of bytes at kMemoryBase; DmaPin always says "no
// fd", so data takes the message path the fuzzer can see.
class FakeMemory : public DeviceContext {
 public:
  explicit FakeMemory(absl::Span<const uint8_t> bytes) : bytes_(bytes.begin(), bytes.end()) {}
  absl::Status DmaRead(uint64_t iova, absl::Span<uint8_t> out) override {
    if (!Inside(iova, out.size())) return absl::NotFoundError("unmapped");
    std::memcpy(out.data(), bytes_.data() + (iova - kMemoryBase), out.size());
    return absl::OkStatus();
  }
  absl::Status DmaWrite(uint64_t iova, absl::Span<const uint8_t> data) override {
    if (!Inside(iova, data.size())) return absl::NotFoundError("unmapped");
    std::memcpy(bytes_.data() + (iova - kMemoryBase), data.data(), data.size());
    return absl::OkStatus();
  }
  absl::StatusOr<DmaSgList> DmaPin(uint64_t, uint64_t, DmaDirection) override {
    return absl::FailedPreconditionError("no fd");
  }

 private:
  bool Inside(uint64_t iova, uint64_t n) const {
    return iova >= kMemoryBase && n <= bytes_.size() && iova - kMemoryBase <= bytes_.size() - n;
  }
  std::vector<uint8_t> bytes_;
};

// Queues as sets, so the admin command set's validation runs for real.
class FakeQueues : public AdminQueueHost {
 public:
  explicit FakeQueues(uint64_t page) : page_(page) {}
  bool CqExists(uint16_t qid) const override { return cqs_.count(qid) != 0; }
  bool SqExists(uint16_t qid) const override { return sqs_.count(qid) != 0; }
  bool CqInUse(uint16_t qid) const override { return in_use_.count(qid) != 0; }
  void CreateCq(uint16_t qid, uint64_t, uint32_t, uint16_t, bool) override { cqs_.insert(qid); }
  void CreateSq(uint16_t qid, uint64_t, uint32_t, uint16_t cqid) override {
    sqs_.insert(qid);
    in_use_.insert(cqid);
  }
  void DeleteSq(uint16_t qid) override { sqs_.erase(qid); }
  void DeleteCq(uint16_t qid) override { cqs_.erase(qid); }
  void SetShadowDoorbells(uint64_t, uint64_t) override {}
  uint64_t page_size() const override { return page_; }

 private:
  uint64_t page_;
  std::set<uint16_t> cqs_, sqs_, in_use_;
};

// One namespace file per LBA size, made once.
NvmeNamespace& Namespace(uint32_t lba) {
  static NvmeNamespace* namespaces[2] = {nullptr, nullptr};
  NvmeNamespace*& ns = namespaces[lba == 4096];
  if (ns == nullptr) {
    char path[] = "/tmp/nvme-fuzz-XXXXXX";
    const int fd = ::mkstemp(path);
    VFU_FUZZ_CHECK(fd >= 0, "mkstemp");
    // Nothing unsafe can reach this file: the fuzzer checks that it never
    // grows, and it is unlinked at once.
    VFU_FUZZ_CHECK(::ftruncate(fd, kNamespaceBytes) == 0, "ftruncate");
    ::close(fd);
    absl::StatusOr<std::unique_ptr<NvmeNamespace>> opened = NvmeNamespace::Open(path, lba);
    ::unlink(path);
    VFU_FUZZ_CHECK(opened.ok(), opened.status().ToString());
    ns = opened->release();
  }
  return *ns;
}

bool KnownStatus(uint16_t status) {
  static const std::set<uint16_t> known = {
      kSuccess,           kInvalidOpcode,        kInvalidField,          kDataTransferError,
      kInternalError,     kInvalidNamespace,     kCommandSequenceError,  kInvalidPrpOffset,
      kLbaOutOfRange,     kCompletionQueueInvalid, kInvalidQueueId,      kInvalidQueueSize,
      kAerLimitExceeded,  kInvalidInterruptVector, kInvalidLogPage,      kInvalidQueueDeletion,
      kFeatureNotSaveable};
  return known.count(status) != 0;
}

void CheckWalk(const SubmissionEntry& sqe, uint64_t page, FakeMemory& memory) {
  // A length derived from the entry, as a read of NLB blocks would have.
  const uint64_t length = (uint64_t{sqe.cdw12 & 0xffff} + 1) * 512;
  std::vector<DataSegment> segments;
  uint64_t list_reads = 0;
  const uint16_t status = WalkPrps(
      sqe.prp1, sqe.prp2, length, page,
      [&](uint64_t iova, absl::Span<uint8_t> out) {
        list_reads += out.size();
        return memory.DmaRead(iova, out).ok();
      },
      segments);
  // One entry per data page after the first, plus a chain pointer per list
  // page: never more than twice the pages the transfer touches.
  const uint64_t pages = length / page + 2;
  VFU_FUZZ_CHECK(list_reads <= 8 * 2 * pages, "walk read more list than it needs");
  if (status != kSuccess) {
    VFU_FUZZ_CHECK(KnownStatus(status), absl::StrCat("walk status ", status));
    return;
  }
  uint64_t total = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    VFU_FUZZ_CHECK(segments[i].length > 0, "empty segment");
    if (i > 0) VFU_FUZZ_CHECK(segments[i].iova % page == 0, "segment not page aligned");
    total += segments[i].length;
  }
  VFU_FUZZ_CHECK(total == length, absl::StrCat("segments cover ", total, " of ", length));
  VFU_FUZZ_CHECK(segments.size() <= pages, "more segments than pages");
}

void Run(InputReader& input) {
  const uint8_t selector = input.U8();
  const bool admin = (selector & 1) != 0;
  static constexpr uint64_t kPages[4] = {4096, 8192, 16384, 65536};
  const uint64_t page = kPages[(selector >> 1) & 3];
  const uint32_t lba = (selector & 8) != 0 ? 4096 : 512;
  SubmissionEntry sqe = {};
  absl::Span<const uint8_t> entry = input.Take(sizeof sqe);
  if (!entry.empty()) std::memcpy(&sqe, entry.data(), entry.size());
  absl::Span<const uint8_t> rest = input.Rest();
  FakeMemory memory(rest.subspan(0, std::min<size_t>(rest.size(), kMemoryMax)));

  CheckWalk(sqe, page, memory);

  NvmeNamespace& ns = Namespace(lba);
  GuestData guest;
  uint16_t status;
  if (admin) {
    FakeQueues queues(page);
    AdminCommandSet commands({"FUZZ", "", "", 1}, {&ns}, queues);
    AdminCommandSet::Result result = commands.Execute(sqe, memory, guest);
    status = result.status;
  } else {
    NvmCommandSet commands({&ns});
    status = commands.Execute(sqe, memory, page, /*write_cache_enabled=*/true, guest);
  }
  VFU_FUZZ_CHECK(KnownStatus(status), absl::StrCat("status 0x", absl::Hex(status)));
  struct stat st;
  VFU_FUZZ_CHECK(::fstat(ns.fd(), &st) == 0, "fstat");
  VFU_FUZZ_CHECK(static_cast<uint64_t>(st.st_size) == kNamespaceBytes, "namespace file grew");
}

}  // namespace
}  // namespace vfu::fuzz

VFU_FUZZ_ENTRY_POINT(vfu::fuzz::Run)
