#include "vfu/wire/device_info.h"

#include <linux/vfio.h>

#include <cerrno>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/wire_matchers.h"

namespace vfu::wire {
namespace {

using ::vfu::testing::FailsWithErrno;
using ::vfu::testing::HexBytes;

// Golden bytes from PROTOCOL.md 4.3's offsets: the request QEMU sends
// (argsz 16, the rest zero) and lvu's reply (argsz 16, flags RESET|PCI,
// 9 regions, 5 IRQ indexes).
const char kGoldenRequest[] = "10000000 | 00000000 | 00000000 | 00000000";
const char kGoldenReply[] = "10000000 | 03000000 | 09000000 | 05000000";

// The golden request decodes field by field.
TEST(DeviceInfoTest, DecodesGoldenRequest) {
  ASSERT_OK_AND_ASSIGN(DeviceInfo r, DecodeDeviceGetInfoRequest(HexBytes(kGoldenRequest), 0));
  EXPECT_EQ(r, (DeviceInfo{.argsz = 16, .flags = 0, .num_regions = 0, .num_irqs = 0}));
}

// The request encoder reproduces the golden bytes.
TEST(DeviceInfoTest, EncodesGoldenRequest) {
  std::vector<uint8_t> out;
  EncodeDeviceGetInfoRequest(DeviceInfo{.argsz = 16}, out);
  EXPECT_EQ(out, HexBytes(kGoldenRequest));
}

// The golden reply decodes with each field at its documented offset.
TEST(DeviceInfoTest, DecodesGoldenReply) {
  ASSERT_OK_AND_ASSIGN(DeviceInfo r, DecodeDeviceGetInfoReply(HexBytes(kGoldenReply), 0));
  EXPECT_EQ(r.argsz, 16u);
  EXPECT_EQ(r.flags, static_cast<uint32_t>(VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI));
  EXPECT_EQ(r.num_regions, 9u);
  EXPECT_EQ(r.num_irqs, 5u);
}

// The reply encoder reproduces the golden bytes.
TEST(DeviceInfoTest, EncodesGoldenReply) {
  std::vector<uint8_t> out;
  EncodeDeviceGetInfoReply(
      DeviceInfo{.argsz = 16,
                 .flags = VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI,
                 .num_regions = VFIO_PCI_NUM_REGIONS,
                 .num_irqs = VFIO_PCI_NUM_IRQS},
      out);
  EXPECT_EQ(out, HexBytes(kGoldenReply));
}

// Distinct values in every field survive encode then decode, both ways.
TEST(DeviceInfoTest, RoundTrips) {
  DeviceInfo info{.argsz = 0x11223344, .flags = 2, .num_regions = 0x55, .num_irqs = 0x66};
  std::vector<uint8_t> request;
  EncodeDeviceGetInfoRequest(info, request);
  ASSERT_OK_AND_ASSIGN(DeviceInfo back, DecodeDeviceGetInfoRequest(request, 0));
  EXPECT_EQ(back, info);
  std::vector<uint8_t> reply;
  EncodeDeviceGetInfoReply(info, reply);
  ASSERT_OK_AND_ASSIGN(DeviceInfo reply_back, DecodeDeviceGetInfoReply(reply, 0));
  EXPECT_EQ(reply_back, info);
}

// A larger argsz (a kernel-style 20-byte struct) and trailing bytes are fine.
TEST(DeviceInfoTest, AcceptsLargerArgszAndTrailingBytes) {
  std::vector<uint8_t> bytes = HexBytes("14000000 | 00000000 | 00000000 | 00000000 | 00000000");
  ASSERT_OK_AND_ASSIGN(DeviceInfo r, DecodeDeviceGetInfoRequest(bytes, 0));
  EXPECT_EQ(r.argsz, 20u);
}

// Section 10 row 4: a payload shorter than 16 bytes (including none).
TEST(DeviceInfoTest, ShortPayloadIsEinval) {
  std::vector<uint8_t> bytes = HexBytes(kGoldenRequest);
  bytes.pop_back();
  EXPECT_THAT(DecodeDeviceGetInfoRequest(bytes, 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeDeviceGetInfoRequest({}, 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeDeviceGetInfoReply(bytes, 0), FailsWithErrno(EINVAL));
}

// Section 10 row 5: argsz below 16.
TEST(DeviceInfoTest, SmallArgszIsEinval) {
  std::vector<uint8_t> bytes = HexBytes("0f000000 | 00000000 | 00000000 | 00000000");
  EXPECT_THAT(DecodeDeviceGetInfoRequest(bytes, 0), FailsWithErrno(EINVAL));
  EXPECT_THAT(DecodeDeviceGetInfoReply(bytes, 0), FailsWithErrno(EINVAL));
}

// Section 10 row 16: a stray fd does not fail the command.
TEST(DeviceInfoTest, StrayFdIsIgnored) {
  EXPECT_OK(DecodeDeviceGetInfoRequest(HexBytes(kGoldenRequest), 1));
}

}  // namespace
}  // namespace vfu::wire
