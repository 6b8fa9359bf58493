#include "vfu/wire/dma_transfer.h"

#include <cerrno>
#include <cstdint>
#include <limits>
#include <vector>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/wire_matchers.h"

namespace vfu::wire {
namespace {

using ::vfu::testing::FailsWithErrno;
using ::vfu::testing::HexBytes;
using ::vfu::testing::IsOk;

constexpr DmaTransferLayout kSpec = DmaTransferLayout::kSpec;
constexpr DmaTransferLayout kQemu = DmaTransferLayout::kQemu;
constexpr uint64_t kMaxXfer = 1 << 20;
constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();

// Golden bytes written from PROTOCOL.md 4.10's offsets, not from our encoder:
// address 0x1000, count 4, data de ad be ef.
// Spec layout: address u64 @0, count u64 @8, data @16.
const char kSpecReadRequest[] = "0010000000000000 | 0400000000000000";
const char kSpecReadReply[] = "0010000000000000 | 0400000000000000 | deadbeef";
const char kSpecWriteRequest[] = "0010000000000000 | 0400000000000000 | deadbeef";
const char kSpecWriteReply[] = "0010000000000000 | 0400000000000000";
// QEMU layout: address u64 @0, count u32 @8, data @12, then the 4 bytes of
// tail padding of QEMU's 16-byte struct (msg_size = 32 + count).
const char kQemuReadRequest[] = "0010000000000000 | 04000000 | 00000000";
const char kQemuReadReply[] = "0010000000000000 | 04000000 | deadbeef | 00000000";
const char kQemuWriteRequest[] = "0010000000000000 | 04000000 | deadbeef | 00000000";

const std::vector<uint8_t> kData = {0xde, 0xad, 0xbe, 0xef};

std::vector<uint8_t> Bytes(absl::Span<const uint8_t> span) {
  return std::vector<uint8_t>(span.begin(), span.end());
}

// Spec-layout requests decode from their golden vectors.
TEST(DmaTransferTest, DecodesGoldenSpecRequests) {
  ASSERT_OK_AND_ASSIGN(DmaReadRequest read,
                       DecodeDmaReadRequest(HexBytes(kSpecReadRequest), 0, kSpec, kMaxXfer));
  EXPECT_EQ(read.address, 0x1000u);
  EXPECT_EQ(read.count, 4u);
  const std::vector<uint8_t> write_bytes = HexBytes(kSpecWriteRequest);
  ASSERT_OK_AND_ASSIGN(DmaWriteRequest write,
                       DecodeDmaWriteRequest(write_bytes, 0, kSpec, kMaxXfer));
  EXPECT_EQ(write.address, 0x1000u);
  EXPECT_EQ(Bytes(write.data), kData);
  EXPECT_EQ(write.data.data(), write_bytes.data() + 16);  // a view, at offset 16
}

// Spec-layout replies decode from their golden vectors.
TEST(DmaTransferTest, DecodesGoldenSpecReplies) {
  const std::vector<uint8_t> read_bytes = HexBytes(kSpecReadReply);
  ASSERT_OK_AND_ASSIGN(DmaReadReply read, DecodeDmaReadReply(read_bytes, 0, kSpec, kMaxXfer));
  EXPECT_EQ(read.address, 0x1000u);
  EXPECT_EQ(read.count(), 4u);
  EXPECT_EQ(Bytes(read.data), kData);
  EXPECT_EQ(read.data.data(), read_bytes.data() + 16);
  ASSERT_OK_AND_ASSIGN(DmaWriteReply write,
                       DecodeDmaWriteReply(HexBytes(kSpecWriteReply), 0, kSpec));
  EXPECT_EQ(write.address, 0x1000u);
  EXPECT_EQ(write.count, 4u);
  EXPECT_TRUE(write.echoed);
}

// QEMU-layout messages decode with count at 8 (u32) and data at 12.
TEST(DmaTransferTest, DecodesGoldenQemuMessages) {
  ASSERT_OK_AND_ASSIGN(DmaReadRequest read_request,
                       DecodeDmaReadRequest(HexBytes(kQemuReadRequest), 0, kQemu, kMaxXfer));
  EXPECT_EQ(read_request, (DmaReadRequest{.address = 0x1000, .count = 4}));

  const std::vector<uint8_t> reply_bytes = HexBytes(kQemuReadReply);
  ASSERT_OK_AND_ASSIGN(DmaReadReply read_reply,
                       DecodeDmaReadReply(reply_bytes, 0, kQemu, kMaxXfer));
  EXPECT_EQ(read_reply.address, 0x1000u);
  EXPECT_EQ(Bytes(read_reply.data), kData);
  EXPECT_EQ(read_reply.data.data(), reply_bytes.data() + 12);

  const std::vector<uint8_t> write_bytes = HexBytes(kQemuWriteRequest);
  ASSERT_OK_AND_ASSIGN(DmaWriteRequest write_request,
                       DecodeDmaWriteRequest(write_bytes, 0, kQemu, kMaxXfer));
  EXPECT_EQ(write_request.address, 0x1000u);
  EXPECT_EQ(Bytes(write_request.data), kData);
  EXPECT_EQ(write_request.data.data(), write_bytes.data() + 12);

  ASSERT_OK_AND_ASSIGN(DmaWriteReply write_reply, DecodeDmaWriteReply({}, 0, kQemu));
  EXPECT_FALSE(write_reply.echoed);
}

// Each encoder reproduces its golden vector in both layouts.
TEST(DmaTransferTest, EncodesGoldenBytes) {
  const DmaReadRequest read_request{.address = 0x1000, .count = 4};
  const DmaReadReply read_reply{.address = 0x1000, .data = kData};
  const DmaWriteRequest write_request{.address = 0x1000, .data = kData};
  const DmaWriteReply write_reply{.address = 0x1000, .count = 4, .echoed = true};
  struct Case {
    DmaTransferLayout layout;
    const char* read_request;
    const char* read_reply;
    const char* write_request;
    const char* write_reply;
  };
  for (const Case& c : {Case{kSpec, kSpecReadRequest, kSpecReadReply, kSpecWriteRequest,
                             kSpecWriteReply},
                        Case{kQemu, kQemuReadRequest, kQemuReadReply, kQemuWriteRequest, ""}}) {
    SCOPED_TRACE(c.layout == kSpec ? "spec" : "qemu");
    std::vector<uint8_t> out;
    EncodeDmaReadRequest(read_request, c.layout, out);
    EXPECT_EQ(out, HexBytes(c.read_request));
    out.clear();
    EncodeDmaReadReply(read_reply, c.layout, out);
    EXPECT_EQ(out, HexBytes(c.read_reply));
    out.clear();
    EncodeDmaWriteRequest(write_request, c.layout, out);
    EXPECT_EQ(out, HexBytes(c.write_request));
    out.clear();
    EncodeDmaWriteReply(write_reply, c.layout, out);
    EXPECT_EQ(out, HexBytes(c.write_reply));
  }
}

// Encode then decode gives back the same messages in both layouts.
TEST(DmaTransferTest, RoundTrips) {
  std::vector<uint8_t> data(300);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7);
  for (DmaTransferLayout layout : {kSpec, kQemu}) {
    SCOPED_TRACE(layout == kSpec ? "spec" : "qemu");
    std::vector<uint8_t> out;
    const DmaReadRequest read_request{.address = 0xfffff000, .count = 300};
    EncodeDmaReadRequest(read_request, layout, out);
    ASSERT_OK_AND_ASSIGN(DmaReadRequest rr, DecodeDmaReadRequest(out, 0, layout, kMaxXfer));
    EXPECT_EQ(rr, read_request);

    out.clear();
    const DmaReadReply read_reply{.address = 1ull << 40, .data = data};
    EncodeDmaReadReply(read_reply, layout, out);
    ASSERT_OK_AND_ASSIGN(DmaReadReply rp, DecodeDmaReadReply(out, 0, layout, kMaxXfer));
    EXPECT_EQ(rp, read_reply);

    out.clear();
    const DmaWriteRequest write_request{.address = 42, .data = data};
    EncodeDmaWriteRequest(write_request, layout, out);
    ASSERT_OK_AND_ASSIGN(DmaWriteRequest wr, DecodeDmaWriteRequest(out, 0, layout, kMaxXfer));
    EXPECT_EQ(wr, write_request);

    out.clear();
    const DmaWriteReply write_reply{.address = 42, .count = 300, .echoed = layout == kSpec};
    EncodeDmaWriteReply(write_reply, layout, out);
    ASSERT_OK_AND_ASSIGN(DmaWriteReply wp, DecodeDmaWriteReply(out, 0, layout));
    if (layout == kSpec) {
      EXPECT_EQ(wp, write_reply);
    } else {
      EXPECT_FALSE(wp.echoed);
    }
  }
}

// The DMA_READ reply in pieces (head, data from elsewhere, tail) is byte for
// byte the reply encoded whole, in both layouts.
TEST(DmaTransferTest, ReadReplyHeadDataTailMatchWholeReply) {
  std::vector<uint8_t> data(37);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i + 1);
  for (DmaTransferLayout layout : {kSpec, kQemu}) {
    SCOPED_TRACE(layout == kSpec ? "spec" : "qemu");
    std::vector<uint8_t> whole;
    EncodeDmaReadReply({.address = 0x1234567890, .data = data}, layout, whole);
    std::vector<uint8_t> pieces;
    EncodeDmaReadReplyHead(0x1234567890, data.size(), layout, pieces);
    pieces.insert(pieces.end(), data.begin(), data.end());
    absl::Span<const uint8_t> tail = DmaReadReplyTail(layout);
    pieces.insert(pieces.end(), tail.begin(), tail.end());
    EXPECT_EQ(pieces, whole);
    EXPECT_EQ(tail.size(), layout == kSpec ? 0u : 4u);
  }
}

// A reply whose data was received elsewhere decodes from what is left, in
// both layouts, as the whole reply does.
TEST(DmaTransferTest, ReadReplyDecodesWithoutItsData) {
  std::vector<uint8_t> data(37);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i + 1);
  for (DmaTransferLayout layout : {kSpec, kQemu}) {
    SCOPED_TRACE(layout == kSpec ? "spec" : "qemu");
    std::vector<uint8_t> whole;
    EncodeDmaReadReply({.address = 0xabc000, .data = data}, layout, whole);
    const size_t offset = DmaReadReplyDataOffset(layout);
    EXPECT_EQ(std::vector<uint8_t>(whole.begin() + offset, whole.begin() + offset + data.size()),
              data);
    std::vector<uint8_t> rest(whole.begin(), whole.begin() + offset);
    rest.insert(rest.end(), whole.begin() + offset + data.size(), whole.end());

    absl::StatusOr<DmaReadReply> reply =
        DecodeDmaReadReplyWithoutData(rest, data, layout, kMaxXfer);
    ASSERT_THAT(reply, IsOk());
    EXPECT_EQ(reply->address, 0xabc000u);
    EXPECT_EQ(reply->data.data(), data.data());
    EXPECT_EQ(reply->count(), data.size());

    // The count must name exactly the bytes received elsewhere, within the
    // limit, and nothing else may be left over.
    EXPECT_THAT(DecodeDmaReadReplyWithoutData(rest, absl::MakeSpan(data).first(36), layout,
                                              kMaxXfer),
                FailsWithErrno(EINVAL));
    EXPECT_THAT(DecodeDmaReadReplyWithoutData(rest, data, layout, 36), FailsWithErrno(EINVAL));
    std::vector<uint8_t> longer = rest;
    longer.push_back(0);
    EXPECT_THAT(DecodeDmaReadReplyWithoutData(longer, data, layout, kMaxXfer),
                FailsWithErrno(EINVAL));
    EXPECT_THAT(DecodeDmaReadReplyWithoutData(absl::MakeSpan(rest).first(15), data, layout,
                                              kMaxXfer),
                FailsWithErrno(ECONNRESET));
  }
}

// A zero-byte transfer is still well formed: 16 bytes, no data.
TEST(DmaTransferTest, ZeroCountIsValid) {
  std::vector<uint8_t> out;
  EncodeDmaWriteRequest(DmaWriteRequest{.address = 7, .data = {}}, kSpec, out);
  ASSERT_OK_AND_ASSIGN(DmaWriteRequest r, DecodeDmaWriteRequest(out, 0, kSpec, kMaxXfer));
  EXPECT_EQ(r.count(), 0u);
}

// Requests shorter than 16 bytes are EINVAL in both layouts (QEMU also
// answers EINVAL to "too short").
TEST(DmaTransferTest, ShortRequestIsEinval) {
  for (DmaTransferLayout layout : {kSpec, kQemu}) {
    std::vector<uint8_t> bytes(15);
    EXPECT_THAT(DecodeDmaReadRequest(bytes, 0, layout, kMaxXfer), FailsWithErrno(EINVAL));
    EXPECT_THAT(DecodeDmaWriteRequest(bytes, 0, layout, kMaxXfer), FailsWithErrno(EINVAL));
    EXPECT_THAT(DecodeDmaReadRequest({}, 0, layout, kMaxXfer), FailsWithErrno(EINVAL));
  }
}

// A DMA_READ request must be exactly 16 bytes.
TEST(DmaTransferTest, LongReadRequestIsEinval) {
  std::vector<uint8_t> bytes = HexBytes(kSpecReadRequest);
  bytes.push_back(0);
  EXPECT_THAT(DecodeDmaReadRequest(bytes, 0, kSpec, kMaxXfer), FailsWithErrno(EINVAL));
}

// A DMA_WRITE request's payload must be exactly 16 + count, both ways.
TEST(DmaTransferTest, WriteRequestSizeMismatchIsEinval) {
  for (DmaTransferLayout layout : {kSpec, kQemu}) {
    const char* golden = layout == kSpec ? kSpecWriteRequest : kQemuWriteRequest;
    std::vector<uint8_t> bytes = HexBytes(golden);
    bytes.pop_back();
    EXPECT_THAT(DecodeDmaWriteRequest(bytes, 0, layout, kMaxXfer), FailsWithErrno(EINVAL));
    bytes = HexBytes(golden);
    bytes.push_back(0);
    EXPECT_THAT(DecodeDmaWriteRequest(bytes, 0, layout, kMaxXfer), FailsWithErrno(EINVAL));
  }
}

// count above the caller's max_data_xfer_size is EINVAL; at the limit it is
// fine.
TEST(DmaTransferTest, CountAboveLimitIsEinval) {
  for (DmaTransferLayout layout : {kSpec, kQemu}) {
    SCOPED_TRACE(layout == kSpec ? "spec" : "qemu");
    const std::vector<uint8_t> read_request =
        HexBytes(layout == kSpec ? kSpecReadRequest : kQemuReadRequest);
    const std::vector<uint8_t> read_reply =
        HexBytes(layout == kSpec ? kSpecReadReply : kQemuReadReply);
    const std::vector<uint8_t> write_request =
        HexBytes(layout == kSpec ? kSpecWriteRequest : kQemuWriteRequest);
    EXPECT_THAT(DecodeDmaReadRequest(read_request, 0, layout, 4), IsOk());
    EXPECT_THAT(DecodeDmaReadReply(read_reply, 0, layout, 4), IsOk());
    EXPECT_THAT(DecodeDmaWriteRequest(write_request, 0, layout, 4), IsOk());
    EXPECT_THAT(DecodeDmaReadRequest(read_request, 0, layout, 3), FailsWithErrno(EINVAL));
    EXPECT_THAT(DecodeDmaReadReply(read_reply, 0, layout, 3), FailsWithErrno(EINVAL));
    EXPECT_THAT(DecodeDmaWriteRequest(write_request, 0, layout, 3), FailsWithErrno(EINVAL));
  }
}

// Section 10 row 36: a reply shorter than its layout needs is ECONNRESET.
TEST(DmaTransferTest, ShortReplyIsEconnreset) {
  for (DmaTransferLayout layout : {kSpec, kQemu}) {
    std::vector<uint8_t> bytes = HexBytes(layout == kSpec ? kSpecReadReply : kQemuReadReply);
    bytes.pop_back();  // data one byte short of count
    EXPECT_THAT(DecodeDmaReadReply(bytes, 0, layout, kMaxXfer), FailsWithErrno(ECONNRESET));
    bytes.resize(15);  // not even the fixed part
    EXPECT_THAT(DecodeDmaReadReply(bytes, 0, layout, kMaxXfer), FailsWithErrno(ECONNRESET));
  }
  std::vector<uint8_t> write_reply = HexBytes(kSpecWriteReply);
  write_reply.pop_back();
  EXPECT_THAT(DecodeDmaWriteReply(write_reply, 0, kSpec), FailsWithErrno(ECONNRESET));
}

// A reply longer than it should be is EINVAL (msg_size must be exact).
TEST(DmaTransferTest, LongReplyIsEinval) {
  std::vector<uint8_t> bytes = HexBytes(kSpecReadReply);
  bytes.push_back(0);
  EXPECT_THAT(DecodeDmaReadReply(bytes, 0, kSpec, kMaxXfer), FailsWithErrno(EINVAL));
  bytes = HexBytes(kSpecWriteReply);
  bytes.push_back(0);
  EXPECT_THAT(DecodeDmaWriteReply(bytes, 0, kSpec), FailsWithErrno(EINVAL));
  // QEMU answers DMA_WRITE with a bare header; a payload means a spec client.
  EXPECT_THAT(DecodeDmaWriteReply(HexBytes(kSpecWriteReply), 0, kQemu), FailsWithErrno(EINVAL));
}

// A count near 2^64 with no limit cannot wrap the size check (16 + count
// would be 0 for the second vector).
TEST(DmaTransferTest, HugeCountDoesNotWrap) {
  const std::vector<uint8_t> bytes = HexBytes("0010000000000000 | ffffffffffffffff");
  EXPECT_THAT(DecodeDmaReadReply(bytes, 0, kSpec, kNoLimit), FailsWithErrno(ECONNRESET));
  EXPECT_THAT(DecodeDmaWriteRequest(bytes, 0, kSpec, kNoLimit), FailsWithErrno(EINVAL));
  const std::vector<uint8_t> ends_at_16 = HexBytes("0010000000000000 | f0ffffffffffffff");
  EXPECT_THAT(DecodeDmaWriteRequest(ends_at_16, 0, kSpec, kNoLimit), FailsWithErrno(EINVAL));
}

// Section 10 row 36: a DMA_READ reply must echo address and count.
TEST(DmaTransferTest, ReadReplyEchoMismatchIsEinval) {
  const DmaReadRequest request{.address = 0x1000, .count = 4};
  EXPECT_THAT(CheckDmaReplyEcho(request, DmaReadReply{.address = 0x1000, .data = kData}),
              IsOk());
  EXPECT_THAT(CheckDmaReplyEcho(request, DmaReadReply{.address = 0x2000, .data = kData}),
              FailsWithErrno(EINVAL));
  const std::vector<uint8_t> three(3);
  EXPECT_THAT(CheckDmaReplyEcho(request, DmaReadReply{.address = 0x1000, .data = three}),
              FailsWithErrno(EINVAL));
}

// Section 10 row 36: a spec DMA_WRITE reply must echo address and count; the
// QEMU bare-header reply has nothing to compare and passes.
TEST(DmaTransferTest, WriteReplyEchoMismatchIsEinval) {
  const DmaWriteRequest request{.address = 0x1000, .data = kData};
  EXPECT_THAT(CheckDmaReplyEcho(request, DmaWriteReply{.address = 0x1000, .count = 4,
                                                       .echoed = true}),
              IsOk());
  EXPECT_THAT(CheckDmaReplyEcho(request, DmaWriteReply{.address = 0x1001, .count = 4,
                                                       .echoed = true}),
              FailsWithErrno(EINVAL));
  EXPECT_THAT(CheckDmaReplyEcho(request, DmaWriteReply{.address = 0x1000, .count = 5,
                                                       .echoed = true}),
              FailsWithErrno(EINVAL));
  ASSERT_OK_AND_ASSIGN(DmaWriteReply qemu, DecodeDmaWriteReply({}, 0, kQemu));
  EXPECT_THAT(CheckDmaReplyEcho(request, qemu), IsOk());
}

// QEMU's 32-bit count ignores the padding bytes a spec count would occupy,
// so the same bytes mean count 4 there but 2^32 + 4 in the spec layout.
TEST(DmaTransferTest, QemuCountIsThirtyTwoBits) {
  const std::vector<uint8_t> bytes = HexBytes("0010000000000000 | 04000000 | 01000000");
  ASSERT_OK_AND_ASSIGN(DmaReadRequest qemu, DecodeDmaReadRequest(bytes, 0, kQemu, kNoLimit));
  EXPECT_EQ(qemu.count, 4u);
  ASSERT_OK_AND_ASSIGN(DmaReadRequest spec, DecodeDmaReadRequest(bytes, 0, kSpec, kNoLimit));
  EXPECT_EQ(spec.count, (1ull << 32) + 4);
}

// Section 10 row 16: fds are not the decoders' concern.
TEST(DmaTransferTest, FdsAreIgnored) {
  EXPECT_THAT(DecodeDmaReadRequest(HexBytes(kSpecReadRequest), 2, kSpec, kMaxXfer), IsOk());
  EXPECT_THAT(DecodeDmaWriteReply(HexBytes(kSpecWriteReply), 1, kSpec), IsOk());
}

}  // namespace
}  // namespace vfu::wire
