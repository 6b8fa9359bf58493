#include "vfu/wire/irq.h"

#include <linux/vfio.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/wire_matchers.h"

namespace vfu::wire {
namespace {

using ::vfu::testing::FailsWithErrno;
using ::vfu::testing::HexBytes;

constexpr uint32_t kNone = VFIO_IRQ_SET_DATA_NONE;
constexpr uint32_t kBool = VFIO_IRQ_SET_DATA_BOOL;
constexpr uint32_t kEventfd = VFIO_IRQ_SET_DATA_EVENTFD;
constexpr uint32_t kMask = VFIO_IRQ_SET_ACTION_MASK;
constexpr uint32_t kUnmask = VFIO_IRQ_SET_ACTION_UNMASK;
constexpr uint32_t kTrigger = VFIO_IRQ_SET_ACTION_TRIGGER;

// Golden GET_IRQ_INFO from PROTOCOL.md 4.6: a request for index 2 (MSI-X),
// and its reply EVENTFD|NORESIZE (9) with 2048 vectors.
const char kGoldenInfoRequest[] = "10000000 | 00000000 | 02000000 | 00000000";
const char kGoldenInfoReply[] = "10000000 | 09000000 | 02000000 | 00080000";

// Golden SET_IRQS from 4.7: QEMU installing 3 MSI-X eventfds
// (TRIGGER|EVENTFD = 0x24, index 2, start 0, count 3, argsz 20, no data).
const char kGoldenSetEventfds[] = "14000000 | 24000000 | 02000000 | 00000000 | 03000000";
// UNMASK|BOOL (0x12) of INTx vectors 0-1 with data {1, 0}: argsz 22.
const char kGoldenSetBool[] = "16000000 | 12000000 | 00000000 | 00000000 | 02000000 | 01 00";

// The golden GET_IRQ_INFO request decodes field by field.
TEST(IrqInfoTest, DecodesGoldenRequest) {
  ASSERT_OK_AND_ASSIGN(IrqInfo r, DecodeIrqInfoRequest(HexBytes(kGoldenInfoRequest), 0));
  EXPECT_EQ(r, (IrqInfo{.argsz = 16, .flags = 0, .index = 2, .count = 0}));
}

// The request encoder reproduces the golden bytes.
TEST(IrqInfoTest, EncodesGoldenRequest) {
  std::vector<uint8_t> out;
  EncodeIrqInfoRequest({.argsz = 16, .index = 2}, out);
  EXPECT_EQ(out, HexBytes(kGoldenInfoRequest));
}

// The golden reply decodes with each field at its documented offset.
TEST(IrqInfoTest, DecodesGoldenReply) {
  ASSERT_OK_AND_ASSIGN(IrqInfo r, DecodeIrqInfoReply(HexBytes(kGoldenInfoReply), 0));
  EXPECT_EQ(r.argsz, 16u);
  EXPECT_EQ(r.flags, static_cast<uint32_t>(VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE));
  EXPECT_EQ(r.index, static_cast<uint32_t>(VFIO_PCI_MSIX_IRQ_INDEX));
  EXPECT_EQ(r.count, 2048u);
}

// The reply encoder reproduces the golden bytes.
TEST(IrqInfoTest, EncodesGoldenReply) {
  std::vector<uint8_t> out;
  EncodeIrqInfoReply({.argsz = 16,
                      .flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE,
                      .index = VFIO_PCI_MSIX_IRQ_INDEX,
                      .count = 2048},
                     out);
  EXPECT_EQ(out, HexBytes(kGoldenInfoReply));
}

// Distinct field values survive a round trip in both directions.
TEST(IrqInfoTest, RoundTrips) {
  IrqInfo info{.argsz = 0x100, .flags = 7, .index = 4, .count = 0x01020304};
  std::vector<uint8_t> request;
  EncodeIrqInfoRequest(info, request);
  ASSERT_OK_AND_ASSIGN(IrqInfo back, DecodeIrqInfoRequest(request, 0));
  EXPECT_EQ(back, info);
  std::vector<uint8_t> reply;
  EncodeIrqInfoReply(info, reply);
  ASSERT_OK_AND_ASSIGN(IrqInfo reply_back, DecodeIrqInfoReply(reply, 0));
  EXPECT_EQ(reply_back, info);
}

// Section 10 row 4: a GET_IRQ_INFO payload shorter than 16 bytes.
TEST(IrqInfoTest, ShortPayloadIsEinval) {
  std::vector<uint8_t> bytes = HexBytes(kGoldenInfoRequest);
  bytes.pop_back();
  EXPECT_THAT(DecodeIrqInfoRequest(bytes, 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeIrqInfoReply(bytes, 0), FailsWithErrno(EINVAL));
}

// Section 10 row 5: GET_IRQ_INFO argsz below 16.
TEST(IrqInfoTest, SmallArgszIsEinval) {
  std::vector<uint8_t> bytes = HexBytes("0f000000 | 00000000 | 02000000 | 00000000");
  EXPECT_THAT(DecodeIrqInfoRequest(bytes, 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeIrqInfoReply(bytes, 0), FailsWithErrno(EINVAL));
}

std::vector<uint8_t> Encoded(const SetIrqsRequest& r) {
  std::vector<uint8_t> out;
  EncodeSetIrqsRequest(r, out);
  return out;
}

SetIrqsRequest Request(uint32_t flags, uint32_t index, uint32_t start, uint32_t count) {
  return SetIrqsRequest{.argsz = 20, .flags = flags, .index = index, .start = start,
                        .count = count};
}

// The golden eventfd request decodes with its three fds.
TEST(SetIrqsTest, DecodesGoldenEventfds) {
  ASSERT_OK_AND_ASSIGN(SetIrqsRequest r, DecodeSetIrqsRequest(HexBytes(kGoldenSetEventfds), 3));
  EXPECT_EQ(r, Request(kEventfd | kTrigger, VFIO_PCI_MSIX_IRQ_INDEX, 0, 3));
  EXPECT_TRUE(r.data.empty());
}

// The encoder reproduces the golden eventfd request.
TEST(SetIrqsTest, EncodesGoldenEventfds) {
  EXPECT_EQ(Encoded(Request(kEventfd | kTrigger, 2, 0, 3)), HexBytes(kGoldenSetEventfds));
}

// The golden BOOL request decodes, its data a view of the payload's tail.
TEST(SetIrqsTest, DecodesGoldenBool) {
  std::vector<uint8_t> bytes = HexBytes(kGoldenSetBool);
  ASSERT_OK_AND_ASSIGN(SetIrqsRequest r, DecodeSetIrqsRequest(bytes, 0));
  EXPECT_EQ(r.argsz, 22u);
  EXPECT_EQ(r.flags, kBool | kUnmask);
  EXPECT_EQ(r.count, 2u);
  EXPECT_EQ(r.data.data(), bytes.data() + 20);
  EXPECT_EQ(std::vector<uint8_t>(r.data.begin(), r.data.end()), (std::vector<uint8_t>{1, 0}));
}

// The encoder appends BOOL data after the 20-byte struct.
TEST(SetIrqsTest, EncodesGoldenBool) {
  const uint8_t data[] = {1, 0};
  SetIrqsRequest r = Request(kBool | kUnmask, 0, 0, 2);
  r.argsz = 22;
  r.data = data;
  EXPECT_EQ(Encoded(r), HexBytes(kGoldenSetBool));
}

// Encode then decode gives back the request, data included.
TEST(SetIrqsTest, RoundTrips) {
  const uint8_t data[] = {1, 1, 0, 1};
  SetIrqsRequest r = Request(kBool | kMask, VFIO_PCI_MSIX_IRQ_INDEX, 100, 4);
  r.argsz = 24;
  r.data = data;
  std::vector<uint8_t> bytes = Encoded(r);
  ASSERT_OK_AND_ASSIGN(SetIrqsRequest back, DecodeSetIrqsRequest(bytes, 0));
  EXPECT_EQ(back, r);
}

// The forms PROTOCOL.md 4.7 lists as valid all decode.
TEST(SetIrqsTest, AcceptsEveryDocumentedForm) {
  EXPECT_OK(DecodeSetIrqsRequest(Encoded(Request(kEventfd | kTrigger, 1, 0, 4)), 0));  // de-assign
  EXPECT_OK(DecodeSetIrqsRequest(Encoded(Request(kNone | kTrigger, 1, 0, 0)), 0));  // disable all
  EXPECT_OK(DecodeSetIrqsRequest(Encoded(Request(kNone | kTrigger, 2, 5, 1)), 0));  // loopback
  EXPECT_OK(DecodeSetIrqsRequest(Encoded(Request(kNone | kMask, 0, 0, 1)), 0));
  EXPECT_OK(DecodeSetIrqsRequest(Encoded(Request(kEventfd | kUnmask, 0, 0, 1)), 1));
  EXPECT_OK(DecodeSetIrqsRequest(Encoded(Request(kEventfd | kTrigger, 3, 0, 1)), 1));  // ERR
  EXPECT_OK(DecodeSetIrqsRequest(Encoded(Request(kNone | kTrigger, 4, 0, 0)), 0));  // REQ off
}

// Section 10 row 4: payload shorter than 20 bytes.
TEST(SetIrqsTest, ShortPayloadIsEinval) {
  std::vector<uint8_t> bytes = HexBytes(kGoldenSetEventfds);
  bytes.pop_back();
  EXPECT_THAT(DecodeSetIrqsRequest(bytes, 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeSetIrqsRequest({}, 0), FailsWithErrno(EINVAL));
}

// Section 10 row 5: argsz below 20.
TEST(SetIrqsTest, SmallArgszIsEinval) {
  SetIrqsRequest r = Request(kNone | kTrigger, 0, 0, 1);
  r.argsz = 19;
  EXPECT_THAT(DecodeSetIrqsRequest(Encoded(r), 0), FailsWithErrno(EINVAL));
}

// Section 10 row 22: index >= 5.
TEST(SetIrqsTest, IndexOutOfRangeIsEinval) {
  EXPECT_THAT(DecodeSetIrqsRequest(Encoded(Request(kNone | kTrigger, 5, 0, 1)), 0),
              FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeSetIrqsRequest(Encoded(Request(kNone | kTrigger, ~0u, 0, 1)), 0),
              FailsWithErrno(EINVAL));
}

// Section 10 row 22: not exactly one action bit or one data bit, or an
// unknown bit.
TEST(SetIrqsTest, BadFlagsAreEinval) {
  for (uint32_t flags : {kNone, kTrigger, kNone | kBool | kTrigger, kNone | kMask | kUnmask,
                         kNone | kTrigger | 0x40u, kNone | kTrigger | 0x80000000u, 0u}) {
    EXPECT_THAT(DecodeSetIrqsRequest(Encoded(Request(flags, 1, 0, 1)), 0), FailsWithErrno(EINVAL))
        << "flags 0x" << std::hex << flags;
  }
}

// Section 10 row 22: count == 0 other than TRIGGER|NONE with start 0.
TEST(SetIrqsTest, CountZeroMisusedIsEinval) {
  for (uint32_t flags : {kNone | kMask, kNone | kUnmask, kEventfd | kTrigger, kBool | kTrigger}) {
    EXPECT_THAT(DecodeSetIrqsRequest(Encoded(Request(flags, 1, 0, 0)), 0), FailsWithErrno(EINVAL))
        << "flags 0x" << std::hex << flags;
  }
  EXPECT_THAT(DecodeSetIrqsRequest(Encoded(Request(kNone | kTrigger, 1, 1, 0)), 0),
              FailsWithErrno(EINVAL));
}

// Section 10 row 22: ERR and REQ with an action other than TRIGGER or more
// than one vector.
TEST(SetIrqsTest, ErrAndReqRestrictionsAreEinval) {
  for (uint32_t index : {VFIO_PCI_ERR_IRQ_INDEX, VFIO_PCI_REQ_IRQ_INDEX}) {
    EXPECT_THAT(DecodeSetIrqsRequest(Encoded(Request(kNone | kMask, index, 0, 1)), 0),
                FailsWithErrno(EINVAL));
    EXPECT_THAT(DecodeSetIrqsRequest(Encoded(Request(kNone | kUnmask, index, 0, 1)), 0),
                FailsWithErrno(EINVAL));
    EXPECT_THAT(DecodeSetIrqsRequest(Encoded(Request(kEventfd | kTrigger, index, 0, 2)), 2),
                FailsWithErrno(EINVAL));
  }
}

// Section 10 row 22: BOOL payload other than exactly 20 + count.
TEST(SetIrqsTest, BoolPayloadSizeMismatchIsEinval) {
  std::vector<uint8_t> short_data = HexBytes(kGoldenSetBool);
  short_data.pop_back();
  EXPECT_THAT(DecodeSetIrqsRequest(short_data, 0), FailsWithErrno(EINVAL));
  std::vector<uint8_t> long_data = HexBytes(kGoldenSetBool);
  long_data.push_back(1);
  EXPECT_THAT(DecodeSetIrqsRequest(long_data, 0), FailsWithErrno(EINVAL));
  // A count near 2^32 with no data is refused too.
  std::vector<uint8_t> huge = Encoded(Request(kBool | kMask, 2, 0, 0xffffffec));
  EXPECT_THAT(DecodeSetIrqsRequest(huge, 0), FailsWithErrno(EINVAL));
}

// Section 10 row 22: fds with a data type other than EVENTFD.
TEST(SetIrqsTest, FdsWithoutEventfdAreEinval) {
  EXPECT_THAT(DecodeSetIrqsRequest(Encoded(Request(kNone | kTrigger, 1, 0, 1)), 1),
              FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeSetIrqsRequest(HexBytes(kGoldenSetBool), 2), FailsWithErrno(EINVAL));
}

// Section 10 row 22: an fd count that is neither 0 nor `count`.
TEST(SetIrqsTest, FdCountMismatchIsEinval) {
  EXPECT_THAT(DecodeSetIrqsRequest(HexBytes(kGoldenSetEventfds), 2), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeSetIrqsRequest(HexBytes(kGoldenSetEventfds), 4), FailsWithErrno(EINVAL));
  EXPECT_OK(DecodeSetIrqsRequest(HexBytes(kGoldenSetEventfds), 0));
}

// PROTOCOL.md 4.7: start + count must not overflow.
TEST(SetIrqsTest, StartPlusCountOverflowIsEinval) {
  EXPECT_THAT(DecodeSetIrqsRequest(Encoded(Request(kNone | kMask, 2, 0xffffffff, 1)), 0),
              FailsWithErrno(EINVAL));
  EXPECT_OK(DecodeSetIrqsRequest(Encoded(Request(kNone | kMask, 2, 0xfffffffe, 1)), 0));
}

// Section 10 row 22: start >= vectors, and start + count > vectors.
TEST(SetIrqsTest, RangeBeyondVectorsIsEinval) {
  EXPECT_THAT(CheckSetIrqsRange(Request(kNone | kMask, 2, 8, 1), 8), FailsWithErrno(EINVAL));
  EXPECT_THAT(CheckSetIrqsRange(Request(kNone | kMask, 2, 6, 3), 8), FailsWithErrno(EINVAL));
  EXPECT_THAT(CheckSetIrqsRange(Request(kNone | kMask, 0, 0, 1), 0), FailsWithErrno(EINVAL));
  // Values the decoder would refuse must not wrap here either.
  EXPECT_THAT(CheckSetIrqsRange(Request(kNone | kMask, 2, 1, 0xffffffff), 8),
              FailsWithErrno(EINVAL));
}

// A range that ends exactly at the last vector is accepted.
TEST(SetIrqsTest, RangeUpToLastVectorIsOk) {
  EXPECT_OK(CheckSetIrqsRange(Request(kNone | kMask, 2, 6, 2), 8));
  EXPECT_OK(CheckSetIrqsRange(Request(kEventfd | kTrigger, 2, 0, 2048), 2048));
}

// PROTOCOL.md 4.7: "disable all" is a no-op success even with 0 vectors
// (where lvu fails), and count 0 with start != 0 stays invalid.
TEST(SetIrqsTest, DisableAllOnEmptyIndexIsOk) {
  EXPECT_OK(CheckSetIrqsRange(Request(kNone | kTrigger, 1, 0, 0), 0));
  EXPECT_OK(CheckSetIrqsRange(Request(kNone | kTrigger, 1, 0, 0), 32));
  EXPECT_THAT(CheckSetIrqsRange(Request(kNone | kTrigger, 1, 3, 0), 32), FailsWithErrno(EINVAL));
}

}  // namespace
}  // namespace vfu::wire
