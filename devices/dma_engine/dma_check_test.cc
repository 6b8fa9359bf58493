// RunDmaCheck against a DMA engine served in this process: both memory
// kinds pass, a device that does not finish in time gives a failed report,
// bad requests are refused, and the check leaves the client as it found it.
#include "devices/dma_engine/dma_check.h"

#include <cstdint>
#include <memory>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "devices/dma_engine/dma_engine_test_fixture.h"

namespace vfu::devices::dma_engine {
namespace {

using ::vfu::testing::StatusIs;
using DmaCheckTest = DmaEngineTest;

// `options` waiting for the job as long as the tests wait for anything
// (the check's default, 10 s, would assume a speed).
DmaCheckOptions Patient(DmaCheckOptions options) {
  options.timeout = absl::Milliseconds(kWaitTimeoutMs);
  return options;
}

TEST_F(DmaCheckTest, FdBackedPasses) {
  ASSERT_OK_AND_ASSIGN(DmaCheckReport report,
                       RunDmaCheck(*client_, Patient({.memory = DmaCheckMemory::kFdBacked})));
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_TRUE(report.interrupt);
  EXPECT_EQ(report.status, kStatusDone);
  EXPECT_EQ(report.progress, 1u << 20);
  EXPECT_FALSE(report.first_mismatch.has_value());
  // Direct: no byte crossed the socket.
  EXPECT_EQ(report.message_read_bytes, 0u);
  EXPECT_EQ(report.message_write_bytes, 0u);
  EXPECT_TRUE(absl::EndsWith(FormatDmaCheckReport(report), ": ok")) << FormatDmaCheckReport(report);
}

TEST_F(DmaCheckTest, MessagesPass) {
  ASSERT_OK_AND_ASSIGN(DmaCheckReport report,
                       RunDmaCheck(*client_, Patient({.memory = DmaCheckMemory::kMessages})));
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_EQ(report.message_read_bytes, 1u << 20);
  EXPECT_EQ(report.message_write_bytes, 1u << 20);
  EXPECT_TRUE(absl::StrContains(FormatDmaCheckReport(report), "messages"));
}

// Any length the LENGTH register holds, on any channel.
TEST_F(DmaCheckTest, OddLengthOnLastChannel) {
  for (DmaCheckMemory memory : {DmaCheckMemory::kFdBacked, DmaCheckMemory::kMessages}) {
    ASSERT_OK_AND_ASSIGN(
        DmaCheckReport report,
        RunDmaCheck(*client_,
                    Patient({.memory = memory, .bytes = 3 * kChunkSize + 5, .channel = 3})));
    EXPECT_TRUE(report.ok) << report.problem;
    EXPECT_EQ(report.channel, 3u);
  }
}

// The mapping, the eventfd and a serving thread it started are gone
// afterwards: the same IOVA can be checked again, the vector raises
// nothing, and the client can start its own serving thread.
TEST_F(DmaCheckTest, CleansUp) {
  const DmaCheckOptions options = Patient({.memory = DmaCheckMemory::kMessages, .channel = 1});
  ASSERT_OK_AND_ASSIGN(DmaCheckReport first, RunDmaCheck(*client_, options));
  ASSERT_OK_AND_ASSIGN(DmaCheckReport second, RunDmaCheck(*client_, options));
  EXPECT_TRUE(first.ok && second.ok) << first.problem << second.problem;
  EXPECT_OK(client_->StartServingThread());
  ASSERT_OK(client_->DmaMapMemory(options.iova, NewBuffer(2 << 20)));
  EXPECT_FALSE(device_.IrqEnabled(kMsixIrq, 1));
}

// A serving thread the caller runs keeps running.
TEST_F(DmaCheckTest, LeavesACallersServingThreadRunning) {
  ASSERT_OK(client_->StartServingThread());
  ASSERT_OK_AND_ASSIGN(DmaCheckReport report,
                       RunDmaCheck(*client_, Patient({.memory = DmaCheckMemory::kMessages})));
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_THAT(client_->StartServingThread(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

// A job that does not end in time is a failed report, not an error; the
// check stops the job before taking its memory away.
TEST_F(DmaCheckTest, NoInterruptInTimeIsAFailedReport) {
  // The job cannot end before the check gives up: the client holds its DMA
  // requests until the device has the check's ABORT (the unmap that follows
  // waits for the DMA in flight, so they must be answered then).
  client_->HoldServerCommands();
  Client* client = client_.get();
  device_.SetWriteObserver([client](uint64_t offset, absl::Span<const uint8_t> data) {
    if (offset == ChannelRegister(0, kRegDoorbell) && !data.empty() &&
        (data[0] & kDoorbellAbort) != 0) {
      client->ReleaseServerCommands();
    }
  });
  ASSERT_OK_AND_ASSIGN(DmaCheckReport report,
                       RunDmaCheck(*client_, {.memory = DmaCheckMemory::kMessages,
                                              .bytes = 8 << 20,
                                              .timeout = absl::ZeroDuration()}));
  device_.SetWriteObserver(nullptr);
  EXPECT_FALSE(report.ok);
  EXPECT_FALSE(report.interrupt);
  EXPECT_EQ(report.status, kStatusBusy);
  EXPECT_EQ(report.progress, 0u);
  EXPECT_TRUE(absl::StrContains(report.problem, "no completion interrupt")) << report.problem;
  EXPECT_TRUE(absl::StrContains(FormatDmaCheckReport(report), "FAILED"));
  // The job ends, aborted at the step after its first DMA_READ, and the
  // channel works.
  EXPECT_EQ(WaitWhileBusy(0), kStatusError);
  EXPECT_EQ(Error(0), kErrorAborted);
  ASSERT_OK_AND_ASSIGN(DmaCheckReport again, RunDmaCheck(*client_, Patient({})));
  EXPECT_TRUE(again.ok) << again.problem;
}

TEST_F(DmaCheckTest, RefusesBadOptions) {
  EXPECT_THAT(RunDmaCheck(*client_, {.bytes = 0}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(RunDmaCheck(*client_, {.bytes = uint64_t{1} << 32}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(RunDmaCheck(*client_, {.iova = 0x1001}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(RunDmaCheck(*client_, {.iova = ~uint64_t{0} & ~uint64_t{0xfff}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(RunDmaCheck(*client_, {.channel = kNumChannels}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

// An IOVA range the client already uses is the server's EEXIST; the check
// undoes what it had set up and a check elsewhere still passes.
TEST_F(DmaCheckTest, IovaInUse) {
  ASSERT_OK(client_->DmaMapMemory(uint64_t{1} << 36, NewBuffer(4096)));
  EXPECT_THAT(RunDmaCheck(*client_, {}), StatusIs(absl::StatusCode::kAlreadyExists));
  ASSERT_OK_AND_ASSIGN(DmaCheckReport report,
                       RunDmaCheck(*client_, Patient({.iova = uint64_t{1} << 37})));
  EXPECT_TRUE(report.ok) << report.problem;
}

// Any other PCI device: BAR0 is plain memory, reading zeros.
PciDeviceSpec OtherDeviceSpec() {
  PciDeviceSpec spec;
  spec.identity = {.vendor_id = kVendorId, .device_id = 0x7777};
  spec.bars[0].size = kBarSize;
  spec.bars[0].backed_by_memory = true;
  return spec;
}

// Something that is not a DMA engine is refused before anything is set up.
TEST(DmaCheckOtherDeviceTest, RefusesOtherDevices) {
  ::vfu::testing::ScopedTempDir dir;
  PciDevice device(OtherDeviceSpec());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Server> server, Server::Create());
  ASSERT_OK(server->AddDevice(dir.File("m.sock"), device));
  ASSERT_OK(server->Start());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::Connect(dir.File("m.sock")));
  EXPECT_THAT(RunDmaCheck(*client, {}), StatusIs(absl::StatusCode::kFailedPrecondition));
  client.reset();
  server->Stop();
}

}  // namespace
}  // namespace vfu::devices::dma_engine
