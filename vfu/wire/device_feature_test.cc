#include "vfu/wire/device_feature.h"

#include <cerrno>
#include <cstdint>
#include <variant>
#include <vector>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/wire_matchers.h"

namespace vfu::wire {
namespace {

using ::vfu::testing::FailsWithErrno;
using ::vfu::testing::HexBytes;
using ::vfu::testing::IsOk;

// Golden bytes written from PROTOCOL.md 4.12's offsets, not from our encoder.
// flags = feature index | GET 0x10000 / SET 0x20000 / PROBE 0x40000.
//
// GET MIGRATION: argsz 16, flags 0x00010001.
const char kGetMigration[] = "10000000 | 01000100";
// Its reply: argsz 16, flags echoed, data flags STOP_COPY|PRE_COPY (5).
const char kGetMigrationReply[] = "10000000 | 01000100 | 0500000000000000";
// SET MIG_DEVICE_STATE to STOP_COPY (3): argsz 16, flags 0x00020002,
// device_state 3, data_fd 0.
const char kSetMigState[] = "10000000 | 02000200 | 03000000 | 00000000";
// GET MIG_DEVICE_STATE reply: argsz 16, flags 0x00010002, RUNNING (2).
const char kGetMigStateReply[] = "10000000 | 02000100 | 02000000 | 00000000";
// SET DMA_LOGGING_START: argsz 56 (8 + 16 + 2 * 16), flags 0x00020006,
// page_size 0x1000, num_ranges 2, reserved 0,
// ranges {0x100000, 0x10000} and {0x200000, 0x2000}.
const char kStartLogging[] =
    "38000000 | 06000200 | 0010000000000000 | 02000000 | 00000000 | "
    "0000100000000000 | 0000010000000000 | 0000200000000000 | 0020000000000000";
// SET DMA_LOGGING_STOP without data: argsz 8, flags 0x00020007.
const char kStopLogging[] = "08000000 | 07000200";
// GET DMA_LOGGING_REPORT: argsz 40 (8 + 24 + one 8-byte bitmap word),
// flags 0x00010008, iova 0x100000, length 0x10000 (16 pages), page_size 0x1000.
const char kGetReport[] =
    "28000000 | 08000100 | 0000100000000000 | 0000010000000000 | 0010000000000000";
// Its reply: argsz 40, the same 24 bytes, then pages 0 and 1 dirty.
const char kGetReportReply[] =
    "28000000 | 08000100 | 0000100000000000 | 0000010000000000 | 0010000000000000 | "
    "0300000000000000";
// PROBE MIGRATION for GET: argsz 8, flags 0x00050001.
const char kProbeMigrationGet[] = "08000000 | 01000500";

constexpr uint32_t kGet = kDeviceFeatureGet;
constexpr uint32_t kSet = kDeviceFeatureSet;
constexpr uint32_t kProbe = kDeviceFeatureProbe;

std::vector<uint8_t> Encoded(const DeviceFeatureRequest& r) {
  std::vector<uint8_t> out;
  EncodeDeviceFeatureRequest(r, out);
  return out;
}

std::vector<uint8_t> Encoded(const DeviceFeatureGetReply& r) {
  std::vector<uint8_t> out;
  EncodeDeviceFeatureGetReply(r, out);
  return out;
}

// Builds a request payload from argsz, flags and raw data bytes.
std::vector<uint8_t> Request(uint32_t argsz, uint32_t flags, std::vector<uint8_t> data = {}) {
  std::vector<uint8_t> out;
  EncodeDeviceFeatureRequest({.argsz = argsz, .flags = flags, .data = std::monostate()}, out);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

// GET MIGRATION decodes from its golden bytes (no data) and encodes back.
TEST(DeviceFeatureTest, GetMigrationMatchesGoldenBothWays) {
  ASSERT_OK_AND_ASSIGN(DeviceFeatureRequest r,
                       DecodeDeviceFeatureRequest(HexBytes(kGetMigration), 0));
  EXPECT_EQ(r.argsz, 16u);
  EXPECT_EQ(r.feature(), DeviceFeature::kMigration);
  EXPECT_TRUE(r.is_get());
  EXPECT_FALSE(r.is_set());
  EXPECT_FALSE(r.is_probe());
  EXPECT_TRUE(std::holds_alternative<std::monostate>(r.data));
  EXPECT_EQ(Encoded(r), HexBytes(kGetMigration));
}

// The GET MIGRATION reply matches its golden bytes both ways; the encoder
// fills in argsz = 16 by itself.
TEST(DeviceFeatureTest, GetMigrationReplyMatchesGoldenBothWays) {
  const DeviceFeatureGetReply reply{
      .flags = DeviceFeatureFlags(DeviceFeature::kMigration, kGet),
      .data = FeatureMigration{.flags = kMigrationStopCopy | kMigrationPreCopy}};
  EXPECT_EQ(Encoded(reply), HexBytes(kGetMigrationReply));
  ASSERT_OK_AND_ASSIGN(DeviceFeatureGetReply back,
                       DecodeDeviceFeatureGetReply(HexBytes(kGetMigrationReply), 0));
  EXPECT_EQ(back, reply);
}

// SET MIG_DEVICE_STATE carries device_state at data offset 0.
TEST(DeviceFeatureTest, SetMigStateMatchesGoldenBothWays) {
  ASSERT_OK_AND_ASSIGN(DeviceFeatureRequest r,
                       DecodeDeviceFeatureRequest(HexBytes(kSetMigState), 0));
  EXPECT_EQ(r.feature(), DeviceFeature::kMigDeviceState);
  EXPECT_TRUE(r.is_set());
  ASSERT_TRUE(std::holds_alternative<FeatureMigState>(r.data));
  EXPECT_EQ(std::get<FeatureMigState>(r.data).device_state, 3u);
  EXPECT_EQ(std::get<FeatureMigState>(r.data).data_fd, 0u);
  EXPECT_EQ(Encoded(r), HexBytes(kSetMigState));
}

// The GET MIG_DEVICE_STATE reply matches its golden bytes both ways.
TEST(DeviceFeatureTest, GetMigStateReplyMatchesGoldenBothWays) {
  const DeviceFeatureGetReply reply{
      .flags = DeviceFeatureFlags(DeviceFeature::kMigDeviceState, kGet),
      .data = FeatureMigState{.device_state = 2, .data_fd = 0}};
  EXPECT_EQ(Encoded(reply), HexBytes(kGetMigStateReply));
  ASSERT_OK_AND_ASSIGN(DeviceFeatureGetReply back,
                       DecodeDeviceFeatureGetReply(HexBytes(kGetMigStateReply), 0));
  EXPECT_EQ(back, reply);
}

// DMA_LOGGING_START's control structure and ranges sit at their offsets.
TEST(DeviceFeatureTest, StartLoggingMatchesGoldenBothWays) {
  ASSERT_OK_AND_ASSIGN(DeviceFeatureRequest r,
                       DecodeDeviceFeatureRequest(HexBytes(kStartLogging), 0));
  EXPECT_EQ(r.argsz, 56u);
  EXPECT_EQ(r.feature(), DeviceFeature::kDmaLoggingStart);
  ASSERT_TRUE(std::holds_alternative<DmaLoggingControl>(r.data));
  const DmaLoggingControl& control = std::get<DmaLoggingControl>(r.data);
  EXPECT_EQ(control.page_size, 0x1000u);
  ASSERT_EQ(control.ranges.size(), 2u);
  EXPECT_EQ(control.ranges[0], (DmaLoggingRange{.iova = 0x100000, .length = 0x10000}));
  EXPECT_EQ(control.ranges[1], (DmaLoggingRange{.iova = 0x200000, .length = 0x2000}));
  EXPECT_EQ(Encoded(r), HexBytes(kStartLogging));
}

// DMA_LOGGING_STOP decodes without data and encodes back.
TEST(DeviceFeatureTest, StopLoggingMatchesGoldenBothWays) {
  ASSERT_OK_AND_ASSIGN(DeviceFeatureRequest r,
                       DecodeDeviceFeatureRequest(HexBytes(kStopLogging), 0));
  EXPECT_EQ(r.feature(), DeviceFeature::kDmaLoggingStop);
  EXPECT_TRUE(r.is_set());
  EXPECT_TRUE(std::holds_alternative<std::monostate>(r.data));
  EXPECT_EQ(Encoded(r), HexBytes(kStopLogging));
}

// GET DMA_LOGGING_REPORT carries iova, length and page_size.
TEST(DeviceFeatureTest, GetReportMatchesGoldenBothWays) {
  ASSERT_OK_AND_ASSIGN(DeviceFeatureRequest r,
                       DecodeDeviceFeatureRequest(HexBytes(kGetReport), 0));
  EXPECT_EQ(r.feature(), DeviceFeature::kDmaLoggingReport);
  ASSERT_TRUE(std::holds_alternative<DmaLoggingReport>(r.data));
  const DmaLoggingReport& report = std::get<DmaLoggingReport>(r.data);
  EXPECT_EQ(report.iova, 0x100000u);
  EXPECT_EQ(report.length, 0x10000u);
  EXPECT_EQ(report.page_size, 0x1000u);
  EXPECT_TRUE(report.bitmap.empty());
  EXPECT_EQ(Encoded(r), HexBytes(kGetReport));
}

// The report reply matches its golden bytes both ways; the bitmap is a view
// of the payload at offset 32.
TEST(DeviceFeatureTest, GetReportReplyMatchesGoldenBothWays) {
  const std::vector<uint8_t> bitmap = HexBytes("0300000000000000");
  const DeviceFeatureGetReply reply{
      .flags = DeviceFeatureFlags(DeviceFeature::kDmaLoggingReport, kGet),
      .data = DmaLoggingReport{
          .iova = 0x100000, .length = 0x10000, .page_size = 0x1000, .bitmap = bitmap}};
  EXPECT_EQ(Encoded(reply), HexBytes(kGetReportReply));
  const std::vector<uint8_t> golden = HexBytes(kGetReportReply);
  ASSERT_OK_AND_ASSIGN(DeviceFeatureGetReply back, DecodeDeviceFeatureGetReply(golden, 0));
  EXPECT_EQ(back, reply);
  ASSERT_TRUE(std::holds_alternative<DmaLoggingReport>(back.data));
  EXPECT_EQ(std::get<DmaLoggingReport>(back.data).bitmap.data(), golden.data() + 32);
}

// PROBE decodes with no data and its reply is the request echoed.
TEST(DeviceFeatureTest, ProbeMatchesGoldenAndEchoes) {
  const std::vector<uint8_t> golden = HexBytes(kProbeMigrationGet);
  ASSERT_OK_AND_ASSIGN(DeviceFeatureRequest r, DecodeDeviceFeatureRequest(golden, 0));
  EXPECT_TRUE(r.is_probe());
  EXPECT_TRUE(r.is_get());
  EXPECT_EQ(r.feature(), DeviceFeature::kMigration);
  EXPECT_EQ(Encoded(r), golden);
  std::vector<uint8_t> reply;
  EncodeDeviceFeatureEchoReply(golden, reply);
  EXPECT_EQ(reply, golden);
  EXPECT_THAT(CheckDeviceFeatureEchoReply(reply, golden), IsOk());
}

// Encode then decode gives back the same request for every data alternative.
TEST(DeviceFeatureTest, RequestRoundTrips) {
  const std::vector<DeviceFeatureRequest> requests = {
      {.argsz = 16,
       .flags = DeviceFeatureFlags(DeviceFeature::kMigDeviceState, kGet),
       .data = std::monostate()},
      {.argsz = 100,
       .flags = DeviceFeatureFlags(DeviceFeature::kMigDeviceState, kSet),
       .data = FeatureMigState{.device_state = 6, .data_fd = 0}},
      {.argsz = 24,
       .flags = DeviceFeatureFlags(DeviceFeature::kDmaLoggingStart, kSet),
       .data = DmaLoggingControl{.page_size = 1 << 21, .ranges = {}}},
      {.argsz = 8 + 16 + 3 * 16,
       .flags = DeviceFeatureFlags(DeviceFeature::kDmaLoggingStart, kSet),
       .data = DmaLoggingControl{.page_size = 4096,
                                 .ranges = {{.iova = 0, .length = 1},
                                            {.iova = 1ull << 40, .length = 1ull << 30},
                                            {.iova = ~0ull, .length = ~0ull}}}},
      {.argsz = 4096,
       .flags = DeviceFeatureFlags(DeviceFeature::kDmaLoggingReport, kGet),
       .data = DmaLoggingReport{
           .iova = 1ull << 32, .length = 1ull << 24, .page_size = 1 << 16, .bitmap = {}}},
      {.argsz = 8,
       .flags = DeviceFeatureFlags(DeviceFeature::kMigDeviceState, kProbe | kGet | kSet),
       .data = std::monostate()},
  };
  for (const DeviceFeatureRequest& request : requests) {
    SCOPED_TRACE(request.flags);
    ASSERT_OK_AND_ASSIGN(DeviceFeatureRequest back,
                         DecodeDeviceFeatureRequest(Encoded(request), 0));
    EXPECT_EQ(back, request);
  }
}

// Section 10 row 4: payload shorter than the 8-byte header.
TEST(DeviceFeatureTest, ShortPayloadIsEinval) {
  EXPECT_THAT(DecodeDeviceFeatureRequest({}, 0), FailsWithErrno(EINVAL));
  std::vector<uint8_t> bytes = HexBytes(kGetMigration);
  bytes.pop_back();
  EXPECT_THAT(DecodeDeviceFeatureRequest(bytes, 0), FailsWithErrno(EINVAL));
}

// Section 10 row 4: feature data shorter than the feature's structure.
TEST(DeviceFeatureTest, ShortFeatureDataIsEinval) {
  std::vector<uint8_t> state = HexBytes(kSetMigState);
  state.pop_back();
  EXPECT_THAT(DecodeDeviceFeatureRequest(state, 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeDeviceFeatureRequest(
                  Request(64, DeviceFeatureFlags(DeviceFeature::kMigDeviceState, kSet)), 0),
              FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeDeviceFeatureRequest(
                  Request(64, DeviceFeatureFlags(DeviceFeature::kDmaLoggingStart, kSet),
                          HexBytes("0010000000000000 | 00000000 | 000000")),
                  0),
              FailsWithErrno(EINVAL));
  std::vector<uint8_t> report = HexBytes(kGetReport);
  report.pop_back();
  EXPECT_THAT(DecodeDeviceFeatureRequest(report, 0), FailsWithErrno(EINVAL));
}

// Section 10 row 5: GET argsz below the reply size (16, or 32 + bitmap).
TEST(DeviceFeatureTest, GetArgszBelowReplySizeIsEinval) {
  EXPECT_THAT(DecodeDeviceFeatureRequest(
                  Request(15, DeviceFeatureFlags(DeviceFeature::kMigration, kGet)), 0),
              FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeDeviceFeatureRequest(
                  Request(15, DeviceFeatureFlags(DeviceFeature::kMigDeviceState, kGet)), 0),
              FailsWithErrno(EINVAL));
  std::vector<uint8_t> report = HexBytes(kGetReport);
  report[0] = 39;  // argsz 39 < 8 + 24 + 8
  EXPECT_THAT(DecodeDeviceFeatureRequest(report, 0), FailsWithErrno(EINVAL));
}

// Section 10 row 5: SET or PROBE argsz below the request size (the echo).
TEST(DeviceFeatureTest, SetOrProbeArgszBelowRequestSizeIsEinval) {
  std::vector<uint8_t> state = HexBytes(kSetMigState);
  state[0] = 15;
  EXPECT_THAT(DecodeDeviceFeatureRequest(state, 0), FailsWithErrno(EINVAL));
  std::vector<uint8_t> probe = HexBytes(kProbeMigrationGet);
  probe[0] = 7;
  EXPECT_THAT(DecodeDeviceFeatureRequest(probe, 0), FailsWithErrno(EINVAL));
}

// Section 10 row 30: unknown feature indexes are EINVAL.
TEST(DeviceFeatureTest, UnknownFeatureIsEinval) {
  for (uint32_t index : {0u, 3u, 5u, 10u, 0xffffu}) {
    SCOPED_TRACE(index);
    EXPECT_THAT(DecodeDeviceFeatureRequest(Request(64, index | kProbe), 0),
                FailsWithErrno(EINVAL));
    EXPECT_THAT(DecodeDeviceFeatureRequest(Request(64, index | kGet), 0),
                FailsWithErrno(EINVAL));
  }
}

// MIG_DATA_SIZE (9, the kernel's feature): GET with a 16-byte reply, no SET.
TEST(DeviceFeatureTest, MigDataSizeGetRoundTrips) {
  const uint32_t get = DeviceFeatureFlags(DeviceFeature::kMigDataSize, kGet);
  ASSERT_OK_AND_ASSIGN(DeviceFeatureRequest r,
                       DecodeDeviceFeatureRequest(Request(16, get), 0));
  EXPECT_EQ(r.feature(), DeviceFeature::kMigDataSize);
  EXPECT_THAT(DecodeDeviceFeatureRequest(Request(15, get), 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeDeviceFeatureRequest(
                  Request(64, DeviceFeatureFlags(DeviceFeature::kMigDataSize, kSet),
                          HexBytes("0000000000000000")),
                  0),
              FailsWithErrno(EINVAL));
  const DeviceFeatureGetReply reply{.flags = get,
                                    .data = FeatureMigDataSize{.stop_copy_length = 0x123456789}};
  const std::vector<uint8_t> bytes = Encoded(reply);
  EXPECT_EQ(bytes.size(), 16u);
  ASSERT_OK_AND_ASSIGN(DeviceFeatureGetReply back, DecodeDeviceFeatureGetReply(bytes, 0));
  EXPECT_EQ(back, reply);
}

// Section 10 row 30: an operation the feature does not have is EINVAL, also
// under PROBE.
TEST(DeviceFeatureTest, UnsupportedOperationIsEinval) {
  const std::vector<uint8_t> state_data = HexBytes("0200000000000000");
  EXPECT_THAT(DecodeDeviceFeatureRequest(
                  Request(64, DeviceFeatureFlags(DeviceFeature::kMigration, kSet), state_data),
                  0),
              FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeDeviceFeatureRequest(
                  Request(64, DeviceFeatureFlags(DeviceFeature::kDmaLoggingStart, kGet)), 0),
              FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeDeviceFeatureRequest(
                  Request(64, DeviceFeatureFlags(DeviceFeature::kDmaLoggingStop, kGet)), 0),
              FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeDeviceFeatureRequest(
                  Request(64, DeviceFeatureFlags(DeviceFeature::kDmaLoggingReport, kSet)), 0),
              FailsWithErrno(EINVAL));
  EXPECT_THAT(
      DecodeDeviceFeatureRequest(
          Request(64, DeviceFeatureFlags(DeviceFeature::kMigration, kProbe | kSet)), 0),
      FailsWithErrno(EINVAL));
}

// Section 10 row 30: GET and SET together without PROBE are EINVAL; with
// PROBE they ask about both and are fine.
TEST(DeviceFeatureTest, GetAndSetWithoutProbeIsEinval) {
  const uint32_t flags = DeviceFeatureFlags(DeviceFeature::kMigDeviceState, kGet | kSet);
  EXPECT_THAT(DecodeDeviceFeatureRequest(Request(64, flags, HexBytes("0200000000000000")), 0),
              FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeDeviceFeatureRequest(Request(64, flags | kProbe), 0), IsOk());
}

// Section 10 row 30: no operation bit at all is EINVAL.
TEST(DeviceFeatureTest, NoOperationIsEinval) {
  EXPECT_THAT(DecodeDeviceFeatureRequest(
                  Request(64, static_cast<uint32_t>(DeviceFeature::kMigration)), 0),
              FailsWithErrno(EINVAL));
}

// Flag bits above PROBE are unknown and EINVAL (as in the kernel).
TEST(DeviceFeatureTest, UnknownFlagBitIsEinval) {
  for (uint32_t bit : {1u << 19, 1u << 31}) {
    EXPECT_THAT(DecodeDeviceFeatureRequest(
                    Request(64, DeviceFeatureFlags(DeviceFeature::kMigration, kGet) | bit), 0),
                FailsWithErrno(EINVAL));
  }
}

// Section 10 row 32: DMA_LOGGING_START with page size 0 is EINVAL.
TEST(DeviceFeatureTest, StartWithZeroPageSizeIsEinval) {
  EXPECT_THAT(DecodeDeviceFeatureRequest(
                  Request(64, DeviceFeatureFlags(DeviceFeature::kDmaLoggingStart, kSet),
                          HexBytes("0000000000000000 | 00000000 | 00000000")),
                  0),
              FailsWithErrno(EINVAL));
}

// The ranges must fill the data exactly: too few, too many, a torn range or
// a huge num_ranges (which must fail before anything is allocated).
TEST(DeviceFeatureTest, RangeCountMismatchIsEinval) {
  const uint32_t flags = DeviceFeatureFlags(DeviceFeature::kDmaLoggingStart, kSet);
  const char kRange[] = "0000100000000000 | 0000010000000000";
  const std::vector<uint8_t> one_range = HexBytes(kRange);
  auto with = [&](const char* fixed, int ranges, size_t extra) {
    std::vector<uint8_t> data = HexBytes(fixed);
    for (int i = 0; i < ranges; ++i) data.insert(data.end(), one_range.begin(), one_range.end());
    data.insert(data.end(), extra, 0);
    return Request(1024, flags, data);
  };
  const char kTwo[] = "0010000000000000 | 02000000 | 00000000";
  EXPECT_THAT(DecodeDeviceFeatureRequest(with(kTwo, 2, 0), 0), IsOk());
  EXPECT_THAT(DecodeDeviceFeatureRequest(with(kTwo, 1, 0), 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeDeviceFeatureRequest(with(kTwo, 3, 0), 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeDeviceFeatureRequest(with(kTwo, 1, 8), 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeDeviceFeatureRequest(with(kTwo, 2, 1), 0), FailsWithErrno(EINVAL));
  const char kHuge[] = "0010000000000000 | ffffffff | 00000000";
  EXPECT_THAT(DecodeDeviceFeatureRequest(with(kHuge, 1, 0), 0), FailsWithErrno(EINVAL));
}

// Section 10 row 29: a report page size of 0 or not a power of two is EINVAL.
TEST(DeviceFeatureTest, ReportBadPageSizeIsEinval) {
  const uint32_t flags = DeviceFeatureFlags(DeviceFeature::kDmaLoggingReport, kGet);
  EXPECT_THAT(DecodeDeviceFeatureRequest(
                  Request(1024, flags,
                          HexBytes("0000100000000000 | 0000010000000000 | 0000000000000000")),
                  0),
              FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeDeviceFeatureRequest(
                  Request(1024, flags,
                          HexBytes("0000100000000000 | 0000010000000000 | 0018000000000000")),
                  0),
              FailsWithErrno(EINVAL));
}

// DMA_LOGGING_STOP's data is ignored, whatever it holds.
TEST(DeviceFeatureTest, StopIgnoresData) {
  ASSERT_OK_AND_ASSIGN(
      DeviceFeatureRequest r,
      DecodeDeviceFeatureRequest(
          Request(64, DeviceFeatureFlags(DeviceFeature::kDmaLoggingStop, kSet),
                  HexBytes("0010000000000000 | 05000000 | 00000000 | 01")),
          0));
  EXPECT_TRUE(std::holds_alternative<std::monostate>(r.data));
}

// Section 10 row 16: fds are not the decoder's concern.
TEST(DeviceFeatureTest, FdsAreIgnored) {
  EXPECT_THAT(DecodeDeviceFeatureRequest(HexBytes(kGetMigration), 4), IsOk());
}

// A GET reply must be a GET of a GET-able feature, argsz must equal its
// size, and its data must have the feature's exact size.
TEST(DeviceFeatureTest, MalformedGetReplyIsEinval) {
  std::vector<uint8_t> bytes = HexBytes(kGetMigrationReply);
  bytes[0] = 17;  // argsz != payload size
  EXPECT_THAT(DecodeDeviceFeatureGetReply(bytes, 0), FailsWithErrno(EINVAL));
  bytes = HexBytes(kGetMigrationReply);
  bytes.push_back(0);
  bytes[0] = 17;  // consistent argsz, but 9 data bytes
  EXPECT_THAT(DecodeDeviceFeatureGetReply(bytes, 0), FailsWithErrno(EINVAL));
  bytes = HexBytes(kGetMigrationReply);
  bytes[6] = 0x05;  // GET | PROBE
  EXPECT_THAT(DecodeDeviceFeatureGetReply(bytes, 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeDeviceFeatureGetReply(HexBytes("10000000 | 06000100 | 0500000000000000"),
                                          0),
              FailsWithErrno(EINVAL));  // DMA_LOGGING_START has no GET
  EXPECT_THAT(DecodeDeviceFeatureGetReply(HexBytes("10000000 | 010001"), 0),
              FailsWithErrno(EINVAL));  // 7 bytes
}

// A report reply whose bitmap is not DirtyBitmapSize(length, page_size)
// bytes long is EINVAL.
TEST(DeviceFeatureTest, ReportReplyWrongBitmapSizeIsEinval) {
  std::vector<uint8_t> bytes = HexBytes(kGetReportReply);
  bytes.insert(bytes.end(), 8, 0);
  bytes[0] = 48;
  EXPECT_THAT(DecodeDeviceFeatureGetReply(bytes, 0), FailsWithErrno(EINVAL));
  bytes = HexBytes(kGetReportReply);
  bytes.resize(32);
  bytes[0] = 32;
  EXPECT_THAT(DecodeDeviceFeatureGetReply(bytes, 0), FailsWithErrno(EINVAL));
}

// A SET/PROBE reply that differs from the request in any byte is EINVAL.
TEST(DeviceFeatureTest, EchoMismatchIsEinval) {
  const std::vector<uint8_t> request = HexBytes(kSetMigState);
  std::vector<uint8_t> reply = request;
  reply[8] = 4;
  EXPECT_THAT(CheckDeviceFeatureEchoReply(reply, request), FailsWithErrno(EINVAL));
  reply = request;
  reply.pop_back();
  EXPECT_THAT(CheckDeviceFeatureEchoReply(reply, request), FailsWithErrno(EINVAL));
}

}  // namespace
}  // namespace vfu::wire
