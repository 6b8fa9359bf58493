// Admin commands end to end: Identify, queue creation and deletion with
// every status code, features, log pages, asynchronous events, Abort and
// unknown opcodes.
#include <cstring>

#include "devices/nvme/nvme_test_fixture.h"

namespace vfu::nvme {
namespace {

class AdminCommandSetTest : public NvmeTest {
 protected:
  void SetUp() override {
    NvmeTestConfig config;
    config.namespaces = 2;
    Start(config);
    ASSERT_OK(driver_->Enable());
  }

  SubmissionEntry Command(uint8_t opcode, uint32_t cdw10 = 0, uint32_t cdw11 = 0) {
    SubmissionEntry sqe = {};
    sqe.opcode = opcode;
    sqe.cdw10 = cdw10;
    sqe.cdw11 = cdw11;
    return sqe;
  }
  SubmissionEntry CreateCq(uint16_t qid, uint32_t entries, uint32_t flags = 3,
                           uint16_t vector = 1) {
    SubmissionEntry sqe = Command(kAdminCreateCq, qid | ((entries - 1) << 16),
                                  flags | (uint32_t{vector} << 16));
    sqe.prp1 = driver_->Allocate(entries * kCqEntrySize);
    return sqe;
  }
  SubmissionEntry CreateSq(uint16_t qid, uint32_t entries, uint16_t cqid, uint32_t flags = 1) {
    SubmissionEntry sqe =
        Command(kAdminCreateSq, qid | ((entries - 1) << 16), flags | (uint32_t{cqid} << 16));
    sqe.prp1 = driver_->Allocate(entries * kSqEntrySize);
    return sqe;
  }
  template <typename T>
  static T Get(const std::vector<uint8_t>& page, size_t offset) {
    T value;
    std::memcpy(&value, page.data() + offset, sizeof value);
    return value;
  }
  // Get Log Page of `dwords` into a fresh buffer.
  uint16_t GetLog(uint8_t lid, uint32_t dwords, std::vector<uint8_t>& out, uint64_t offset = 0) {
    SubmissionEntry sqe = Command(kAdminGetLogPage, lid | ((dwords - 1) << 16));
    sqe.nsid = 0xffffffff;
    sqe.cdw12 = static_cast<uint32_t>(offset);
    const uint64_t buffer = driver_->Allocate(dwords * 4);
    driver_->SetPrps(sqe, buffer, dwords * 4, driver_->Allocate(4096));
    const uint16_t status = AdminStatus(sqe);
    out.assign(driver_->Host(buffer), driver_->Host(buffer) + dwords * 4);
    return status;
  }
};

TEST_F(AdminCommandSetTest, IdentifyControllerDescribesTheController) {
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> id, driver_->Identify(kCnsController));
  EXPECT_EQ(Get<uint16_t>(id, 0), kVendorId);
  EXPECT_NE(id[4], ' ') << "serial number set";
  EXPECT_EQ(std::string(id.begin() + 24, id.begin() + 43), "vfu NVMe controller");
  EXPECT_EQ(id[77], kMdts);
  EXPECT_EQ(Get<uint32_t>(id, 80), kVersion14);
  EXPECT_EQ(id[512], 0x66);
  EXPECT_EQ(id[513], 0x44);
  EXPECT_EQ(Get<uint32_t>(id, 516), 2u) << "NN";
  EXPECT_EQ(Get<uint16_t>(id, 520) & 0xc, 0xc) << "DSM and Write Zeroes";
  EXPECT_EQ(id[525] & 1, 1) << "volatile write cache";
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&id[768]), 4), "nqn.");
}

TEST_F(AdminCommandSetTest, TwoControllersHaveDifferentSerials) {
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> first, driver_->Identify(kCnsController));
  NvmeTestConfig config;
  Start(config);
  ASSERT_OK(driver_->Enable());
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> second, driver_->Identify(kCnsController));
  EXPECT_NE(std::string(first.begin() + 4, first.begin() + 24),
            std::string(second.begin() + 4, second.begin() + 24));
}

TEST_F(AdminCommandSetTest, IdentifyNamespaceGivesSizeAndFormat) {
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> ns, driver_->Identify(kCnsNamespace, 2));
  EXPECT_EQ(Get<uint64_t>(ns, 0), config_.namespace_bytes / 512);
  EXPECT_EQ(Get<uint64_t>(ns, 8), config_.namespace_bytes / 512);
  EXPECT_EQ(ns[25], 0) << "one LBA format";
  EXPECT_EQ((Get<uint32_t>(ns, 128) >> 16) & 0xff, 9u) << "512-byte LBAs";
  EXPECT_EQ(ns[33] & 7, 1) << "deallocated blocks read zeros";
}

TEST_F(AdminCommandSetTest, IdentifyNamespaceOf4096ByteLbas) {
  NvmeTestConfig config;
  config.lba_size = 4096;
  Start(config);
  ASSERT_OK(driver_->Enable());
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> ns, driver_->Identify(kCnsNamespace, 1));
  EXPECT_EQ(Get<uint64_t>(ns, 0), config.namespace_bytes / 4096);
  EXPECT_EQ((Get<uint32_t>(ns, 128) >> 16) & 0xff, 12u);
}

TEST_F(AdminCommandSetTest, IdentifyOfUnknownNamespaceIsInvalidNamespace) {
  SubmissionEntry sqe = Command(kAdminIdentify, kCnsNamespace);
  sqe.prp1 = driver_->scratch_list();
  sqe.nsid = 3;
  EXPECT_EQ(AdminStatus(sqe), kInvalidNamespace);
  sqe.nsid = 0;
  EXPECT_EQ(AdminStatus(sqe), kInvalidNamespace);
}

TEST_F(AdminCommandSetTest, ActiveNamespaceListStartsAfterNsid) {
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> list, driver_->Identify(kCnsActiveNamespaces, 0));
  EXPECT_EQ(Get<uint32_t>(list, 0), 1u);
  EXPECT_EQ(Get<uint32_t>(list, 4), 2u);
  EXPECT_EQ(Get<uint32_t>(list, 8), 0u);
  ASSERT_OK_AND_ASSIGN(list, driver_->Identify(kCnsActiveNamespaces, 1));
  EXPECT_EQ(Get<uint32_t>(list, 0), 2u);
  EXPECT_EQ(Get<uint32_t>(list, 4), 0u);
}

TEST_F(AdminCommandSetTest, NamespaceDescriptorsCarryAnEui64) {
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> list, driver_->Identify(kCnsNamespaceDescriptors, 1));
  EXPECT_EQ(list[0], 1) << "EUI-64";
  EXPECT_EQ(list[1], 8);
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> ns, driver_->Identify(kCnsNamespace, 1));
  EXPECT_EQ(Get<uint64_t>(list, 4), Get<uint64_t>(ns, 120));
}

TEST_F(AdminCommandSetTest, UnknownCnsIsInvalidField) {
  SubmissionEntry sqe = Command(kAdminIdentify, 0x55);
  sqe.prp1 = driver_->scratch_list();
  EXPECT_EQ(AdminStatus(sqe), kInvalidField);
}

TEST_F(AdminCommandSetTest, CreateCompletionQueueChecksEveryField) {
  EXPECT_EQ(AdminStatus(CreateCq(0, 16)), kInvalidQueueId);
  EXPECT_EQ(AdminStatus(CreateCq(kMaxIoQueues + 1, 16)), kInvalidQueueId);
  EXPECT_EQ(AdminStatus(CreateCq(1, 1)), kInvalidQueueSize);
  EXPECT_EQ(AdminStatus(CreateCq(1, kMaxQueueEntries + 1)), kInvalidQueueSize);
  SubmissionEntry misaligned = CreateCq(1, 16);
  misaligned.prp1 += 512;
  EXPECT_EQ(AdminStatus(misaligned), kInvalidPrpOffset);
  EXPECT_EQ(AdminStatus(CreateCq(1, 16, 3, kMsixVectors)), kInvalidInterruptVector);
  EXPECT_EQ(AdminStatus(CreateCq(1, 16, /*flags=*/2)), kInvalidField) << "PC = 0";
  EXPECT_EQ(AdminStatus(CreateCq(1, 16)), kSuccess);
  EXPECT_EQ(AdminStatus(CreateCq(1, 16)), kInvalidQueueId) << "exists";
}

TEST_F(AdminCommandSetTest, CreateSubmissionQueueChecksEveryField) {
  EXPECT_EQ(AdminStatus(CreateSq(1, 16, 1)), kCompletionQueueInvalid);
  ASSERT_EQ(AdminStatus(CreateCq(1, 16)), kSuccess);
  EXPECT_EQ(AdminStatus(CreateSq(1, 16, 0)), kCompletionQueueInvalid);
  EXPECT_EQ(AdminStatus(CreateSq(0, 16, 1)), kInvalidQueueId);
  EXPECT_EQ(AdminStatus(CreateSq(kMaxIoQueues + 1, 16, 1)), kInvalidQueueId);
  EXPECT_EQ(AdminStatus(CreateSq(1, 1, 1)), kInvalidQueueSize);
  SubmissionEntry misaligned = CreateSq(1, 16, 1);
  misaligned.prp1 += 64;
  EXPECT_EQ(AdminStatus(misaligned), kInvalidPrpOffset);
  EXPECT_EQ(AdminStatus(CreateSq(1, 16, 1, /*flags=*/0)), kInvalidField) << "PC = 0";
  EXPECT_EQ(AdminStatus(CreateSq(1, 16, 1)), kSuccess);
  EXPECT_EQ(AdminStatus(CreateSq(1, 16, 1)), kInvalidQueueId) << "exists";
}

TEST_F(AdminCommandSetTest, DeleteChecksQueuesAndCompletionQueueUse) {
  EXPECT_EQ(AdminStatus(Command(kAdminDeleteSq, 0)), kInvalidQueueId);
  EXPECT_EQ(AdminStatus(Command(kAdminDeleteSq, 1)), kInvalidQueueId);
  EXPECT_EQ(AdminStatus(Command(kAdminDeleteCq, 0)), kInvalidQueueId);
  EXPECT_EQ(AdminStatus(Command(kAdminDeleteCq, 1)), kInvalidQueueId);
  ASSERT_EQ(AdminStatus(CreateCq(1, 16)), kSuccess);
  ASSERT_EQ(AdminStatus(CreateSq(1, 16, 1)), kSuccess);
  EXPECT_EQ(AdminStatus(Command(kAdminDeleteCq, 1)), kInvalidQueueDeletion);
  EXPECT_EQ(AdminStatus(Command(kAdminDeleteSq, 1)), kSuccess);
  EXPECT_EQ(AdminStatus(Command(kAdminDeleteCq, 1)), kSuccess);
  EXPECT_EQ(AdminStatus(CreateCq(1, 16)), kSuccess) << "the ID is free again";
}

TEST_F(AdminCommandSetTest, NumberOfQueuesLimitsQueueIdsAndLocksAfterCreation) {
  uint32_t dw0 = 0;
  EXPECT_EQ(AdminStatus(Command(kAdminSetFeatures, kFeatNumberOfQueues, 0xffff0000), &dw0),
            kInvalidField);
  ASSERT_EQ(AdminStatus(Command(kAdminSetFeatures, kFeatNumberOfQueues, 0x00010001), &dw0),
            kSuccess);
  EXPECT_EQ(dw0, 0x00010001u) << "two of each allocated";
  ASSERT_EQ(AdminStatus(Command(kAdminGetFeatures, kFeatNumberOfQueues), &dw0), kSuccess);
  EXPECT_EQ(dw0, 0x00010001u);
  EXPECT_EQ(AdminStatus(CreateCq(3, 16)), kInvalidQueueId) << "beyond the allocation";
  ASSERT_EQ(AdminStatus(CreateCq(2, 16)), kSuccess);
  EXPECT_EQ(AdminStatus(Command(kAdminSetFeatures, kFeatNumberOfQueues, 0)),
            kCommandSequenceError);
  // Asking for more than exists gets the maximum.
  ASSERT_OK(driver_->Disable());
  ASSERT_OK(driver_->Enable());
  ASSERT_EQ(AdminStatus(Command(kAdminSetFeatures, kFeatNumberOfQueues, 0x03ff03ff), &dw0),
            kSuccess);
  EXPECT_EQ(dw0 & 0xffff, kMaxIoQueues - 1);
}

TEST_F(AdminCommandSetTest, FeaturesKeepTheirValues) {
  uint32_t dw0 = 0;
  ASSERT_EQ(AdminStatus(Command(kAdminSetFeatures, kFeatVolatileWriteCache, 0)), kSuccess);
  ASSERT_EQ(AdminStatus(Command(kAdminGetFeatures, kFeatVolatileWriteCache), &dw0), kSuccess);
  EXPECT_EQ(dw0, 0u);
  ASSERT_EQ(AdminStatus(Command(kAdminGetFeatures, kFeatVolatileWriteCache | (1 << 8)), &dw0),
            kSuccess);
  EXPECT_EQ(dw0, 1u) << "default";
  ASSERT_EQ(AdminStatus(Command(kAdminSetFeatures, kFeatArbitration, 0x01020307)), kSuccess);
  ASSERT_EQ(AdminStatus(Command(kAdminGetFeatures, kFeatArbitration), &dw0), kSuccess);
  EXPECT_EQ(dw0, 0x01020307u);
  ASSERT_EQ(AdminStatus(Command(kAdminSetFeatures, kFeatInterruptCoalescing, 0x0a07)), kSuccess);
  ASSERT_EQ(AdminStatus(Command(kAdminGetFeatures, kFeatInterruptCoalescing), &dw0), kSuccess);
  EXPECT_EQ(dw0, 0x0a07u);
  ASSERT_EQ(AdminStatus(Command(kAdminSetFeatures, kFeatInterruptVectorConfig, 5 | (1 << 16))),
            kSuccess);
  ASSERT_EQ(AdminStatus(Command(kAdminGetFeatures, kFeatInterruptVectorConfig, 5), &dw0),
            kSuccess);
  EXPECT_EQ(dw0, 5u | (1u << 16));
  EXPECT_EQ(AdminStatus(Command(kAdminGetFeatures, kFeatInterruptVectorConfig, kMsixVectors)),
            kInvalidField);
  ASSERT_EQ(AdminStatus(Command(kAdminSetFeatures, kFeatAsyncEventConfig, 0x1ff)), kSuccess);
  ASSERT_EQ(AdminStatus(Command(kAdminGetFeatures, kFeatAsyncEventConfig), &dw0), kSuccess);
  EXPECT_EQ(dw0, 0x1ffu);
  ASSERT_EQ(AdminStatus(Command(kAdminSetFeatures, kFeatTemperatureThreshold, 350)), kSuccess);
  ASSERT_EQ(AdminStatus(Command(kAdminGetFeatures, kFeatTemperatureThreshold), &dw0), kSuccess);
  EXPECT_EQ(dw0 & 0xffff, 350u);
  EXPECT_EQ(AdminStatus(Command(kAdminSetFeatures, kFeatTemperatureThreshold, 350 | (1 << 16))),
            kInvalidField) << "no sensor 1";
}

TEST_F(AdminCommandSetTest, FeatureErrors) {
  EXPECT_EQ(AdminStatus(Command(kAdminGetFeatures, 0x7f)), kInvalidField);
  EXPECT_EQ(AdminStatus(Command(kAdminSetFeatures, 0x7f)), kInvalidField);
  EXPECT_EQ(AdminStatus(Command(kAdminSetFeatures, kFeatArbitration | (1u << 31))),
            kFeatureNotSaveable);
  uint32_t dw0 = 0;
  ASSERT_EQ(AdminStatus(Command(kAdminGetFeatures, kFeatArbitration | (3 << 8)), &dw0), kSuccess);
  EXPECT_EQ(dw0, 1u << 2) << "changeable, not saveable";
}

TEST_F(AdminCommandSetTest, SmartLogCountsIo) {
  ASSERT_OK(driver_->CreateIoQueuePair(1, 16));
  const uint64_t buffer = driver_->Allocate(4096);
  ASSERT_EQ(IoStatus(1, driver_->WriteCommand(1, 0, 8, buffer, 4096)), kSuccess);
  ASSERT_EQ(IoStatus(1, driver_->ReadCommand(1, 0, 8, buffer, 4096)), kSuccess);
  ASSERT_EQ(IoStatus(1, driver_->ReadCommand(2, 0, 8, buffer, 4096)), kSuccess);
  std::vector<uint8_t> log;
  ASSERT_EQ(GetLog(kLogSmart, 128, log), kSuccess);
  EXPECT_EQ(Get<uint16_t>(log, 1), 300) << "temperature, K";
  EXPECT_EQ(log[3], 100) << "spare";
  EXPECT_EQ(Get<uint64_t>(log, 32), 1u) << "data units read (rounded up)";
  EXPECT_EQ(Get<uint64_t>(log, 64), 2u) << "read commands";
  EXPECT_EQ(Get<uint64_t>(log, 80), 1u) << "write commands";
}

TEST_F(AdminCommandSetTest, FirmwareAndErrorLogs) {
  std::vector<uint8_t> log;
  ASSERT_EQ(GetLog(kLogFirmwareSlot, 128, log), kSuccess);
  EXPECT_EQ(log[0], 1);
  EXPECT_EQ(std::string(log.begin() + 8, log.begin() + 11), "1.0");
  ASSERT_EQ(GetLog(kLogError, 64, log), kSuccess);
  EXPECT_EQ(Get<uint64_t>(log, 0), 0u) << "no errors recorded";
  // An offset inside the log, and past it.
  ASSERT_EQ(GetLog(kLogFirmwareSlot, 2, log, 8), kSuccess);
  EXPECT_EQ(std::string(log.begin(), log.begin() + 3), "1.0");
  EXPECT_EQ(GetLog(kLogFirmwareSlot, 2, log, 4096), kInvalidField);
  EXPECT_EQ(GetLog(0x42, 2, log), kInvalidLogPage);
}

TEST_F(AdminCommandSetTest, AsyncEventReportsAnInvalidDoorbell) {
  SubmissionEntry aer = Command(kAdminAsyncEvent);
  aer.cid = 0x4242;
  ASSERT_OK(driver_->Submit(0, aer));
  // A doorbell of a queue that does not exist.
  ASSERT_OK(driver_->Write32(SqTailDoorbell(7), 1));
  // The event's completion comes while another command waits.
  std::optional<Completion> event;
  const absl::Time deadline = absl::Now() + kTestTimeout;
  while (!event && absl::Now() < deadline) {
    ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> id, driver_->Identify(kCnsController));
    event = driver_->TakeStray();
  }
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(event->cid, 0x4242);
  EXPECT_EQ(event->status, kSuccess);
  EXPECT_EQ(event->dw0, AerResult(kAerTypeError, kAerInfoInvalidDoorbell, kLogError));
}

TEST_F(AdminCommandSetTest, AsyncEventQueuedBeforeTheRequestCompletesItAtOnce) {
  ASSERT_OK(driver_->Write32(CqHeadDoorbell(0), 5000));  // out of range
  // The event may still be on its way to the admin thread: run commands
  // until a request completes with it.
  uint32_t dw0 = 0;
  EXPECT_EQ(AdminStatus(Command(kAdminAsyncEvent), &dw0), kSuccess);
  EXPECT_EQ(dw0, AerResult(kAerTypeError, kAerInfoInvalidDoorbellValue, kLogError));
}

TEST_F(AdminCommandSetTest, TooManyAsyncEventRequestsIsAerLimitExceeded) {
  for (uint32_t i = 0; i < kAerLimit; ++i) {
    SubmissionEntry aer = Command(kAdminAsyncEvent);
    aer.cid = static_cast<uint16_t>(0x100 + i);
    ASSERT_OK(driver_->Submit(0, aer));
  }
  EXPECT_EQ(AdminStatus(Command(kAdminAsyncEvent)), kAerLimitExceeded);
}

TEST_F(AdminCommandSetTest, AbortAnswersNotAborted) {
  uint32_t dw0 = 0;
  EXPECT_EQ(AdminStatus(Command(kAdminAbort, 0x00050001), &dw0), kSuccess);
  EXPECT_EQ(dw0 & 1, 1u);
}

TEST_F(AdminCommandSetTest, UnknownOpcodesAndSglsAreRefused) {
  EXPECT_EQ(AdminStatus(Command(0x7f)), kInvalidOpcode);
  EXPECT_EQ(AdminStatus(Command(kAdminKeepAlive)), kInvalidOpcode);
  EXPECT_EQ(AdminStatus(Command(0x80)), kInvalidOpcode) << "Format NVM";
  SubmissionEntry sgl = Command(kAdminIdentify, kCnsController);
  sgl.flags = 1 << 6;
  EXPECT_EQ(AdminStatus(sgl), kInvalidField);
}

TEST_F(AdminCommandSetTest, CompletionsCarrySqHeadAndId) {
  ASSERT_OK_AND_ASSIGN(Completion done, driver_->Run(0, Command(kAdminAbort)));
  EXPECT_EQ(done.sq_id, 0);
  EXPECT_EQ(done.sq_head, 1);
  ASSERT_OK_AND_ASSIGN(done, driver_->Run(0, Command(kAdminAbort)));
  EXPECT_EQ(done.sq_head, 2);
}

}  // namespace
}  // namespace vfu::nvme
