// The engine with a PciDevice behind it: interrupts, DMA mappings, dirty
// logging and mappable regions, each through the command that sets it up.
#include <fcntl.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "testing/local_dma_context.h"
#include "testing/status_matchers.h"
#include "vfu/device/pci_device.h"
#include "vfu/engine/session.h"
#include "vfu/engine/session_test_util.h"
#include "vfu/wire/device_feature.h"
#include "vfu/wire/dirty_bitmap.h"
#include "vfu/wire/dma_map.h"
#include "vfu/wire/dma_unmap.h"
#include "vfu/wire/irq.h"
#include "vfu/wire/region_access.h"
#include "vfu/wire/region_info.h"

namespace vfu {
namespace {

using testing::MakeCommand;
using testing::ReplyErrno;
using testing::ReplyPayload;
using testing::VersionPayload;
using wire::Command;

constexpr uint64_t kPage = 4096;

PciDeviceSpec Spec() {
  PciDeviceSpec spec;
  spec.identity = {.vendor_id = 0x1d0f, .device_id = 0x0001, .class_code = 0xff0000};
  // 16 KiB: pages 1 and 3 mappable, 0 and 2 trapped.
  spec.bars[0] = {.size = 4 * kPage,
                  .backed_by_memory = true,
                  .mmap_areas = {{.offset = kPage, .size = kPage},
                                 {.offset = 3 * kPage, .size = kPage}}};
  spec.interrupts = {.msi_vectors = 4};
  return spec;
}

class CountingDevice : public PciDevice {
 public:
  CountingDevice() : PciDevice(Spec()) {}
  void OnDmaMapped(const DmaRange& range) override { mapped.push_back(range); }
  void OnDmaUnmapped(const DmaRange& range) override { unmapped.push_back(range); }
  std::vector<DmaRange> mapped;
  std::vector<DmaRange> unmapped;
};

// Client memory shared with an fd.
struct SharedMemory {
  explicit SharedMemory(size_t size) : size(size) {
    fd = UniqueFd(::memfd_create("guest", MFD_CLOEXEC));
    EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(size)), 0);
    bytes = static_cast<uint8_t*>(
        ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0));
  }
  ~SharedMemory() { ::munmap(bytes, size); }
  UniqueFd Dup() const { return UniqueFd(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0)); }
  size_t size;
  UniqueFd fd;
  uint8_t* bytes;
};

class SessionDeviceTest : public ::testing::Test {
 protected:
  SessionDeviceTest() : session_(device_, context_, context_.table(), SessionOptions{}, "t") {
    Session::Result r =
        session_.Handle(MakeCommand(1, Command::kVersion, VersionPayload(R"({"capabilities":{}})")));
    EXPECT_EQ(ReplyErrno(r), 0);
    session_.Attach();
  }

  Session::Result Send(Command cmd, const std::vector<uint8_t>& payload,
                       std::vector<UniqueFd> fds = {}) {
    InboundMessage m = MakeCommand(next_id_++, cmd, payload);
    m.fds = std::move(fds);
    return session_.Handle(std::move(m));
  }

  int Map(uint64_t iova, uint64_t size, uint32_t flags, UniqueFd fd = UniqueFd(),
          uint64_t offset = 0) {
    std::vector<uint8_t> p;
    wire::EncodeDmaMapRequest({.flags = flags, .offset = offset, .addr = iova, .size = size}, p);
    std::vector<UniqueFd> fds;
    if (fd) fds.push_back(std::move(fd));
    return ReplyErrno(Send(Command::kDmaMap, p, std::move(fds)));
  }

  Session::Result Unmap(const wire::DmaUnmapRequest& request) {
    std::vector<uint8_t> p;
    wire::EncodeDmaUnmapRequest(request, p);
    return Send(Command::kDmaUnmap, p);
  }

  Session::Result Feature(const wire::DeviceFeatureRequest& request) {
    std::vector<uint8_t> p;
    wire::EncodeDeviceFeatureRequest(request, p);
    return Send(Command::kDeviceFeature, p);
  }

  static constexpr uint32_t kReadWrite = wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite;

  CountingDevice device_;
  testing::LocalDmaContext context_;
  Session session_;
  uint16_t next_id_ = 2;
};

TEST_F(SessionDeviceTest, SetIrqsInstallsEventfdsTheDeviceSignals) {
  UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  std::vector<UniqueFd> fds;
  fds.emplace_back(::dup(efd.get()));
  std::vector<uint8_t> p;
  wire::EncodeSetIrqsRequest({.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                              .index = kMsiIrq,
                              .start = 2,
                              .count = 1},
                             p);
  ASSERT_EQ(ReplyErrno(Send(Command::kDeviceSetIrqs, p, std::move(fds))), 0);
  ASSERT_THAT(device_.TriggerIrq(kMsiIrq, 2), testing::IsOk());
  uint64_t count = 0;
  ASSERT_EQ(::read(efd.get(), &count, sizeof count), (ssize_t)sizeof count);
  EXPECT_EQ(count, 1u);
}

TEST_F(SessionDeviceTest, SetIrqsOutOfRangeIsEinval) {
  std::vector<uint8_t> p;
  // MSI has 4 vectors: 3 + 2 runs past them.
  wire::EncodeSetIrqsRequest({.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
                              .index = kMsiIrq,
                              .start = 3,
                              .count = 2},
                             p);
  EXPECT_EQ(ReplyErrno(Send(Command::kDeviceSetIrqs, p)), EINVAL);
  // MSI-X has no vectors at all on this device.
  p.clear();
  wire::EncodeSetIrqsRequest({.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                              .index = kMsixIrq,
                              .start = 0,
                              .count = 1},
                             p);
  EXPECT_EQ(ReplyErrno(Send(Command::kDeviceSetIrqs, p)), EINVAL);
}

TEST_F(SessionDeviceTest, FdBackedMapIsReadableByTheDevice) {
  SharedMemory guest(4 * kPage);
  std::memcpy(guest.bytes + kPage + 10, "hello", 5);
  // Mapped at file offset one page: iova 0x10000 is the file's page 1.
  ASSERT_EQ(Map(0x10000, 2 * kPage, kReadWrite, guest.Dup(), kPage), 0);
  ASSERT_EQ(device_.mapped.size(), 1u);
  EXPECT_EQ(device_.mapped[0].iova, 0x10000u);
  EXPECT_TRUE(device_.mapped[0].mapped);
  char out[5];
  ASSERT_THAT(context_.DmaRead(0x10000 + 10, absl::MakeSpan(reinterpret_cast<uint8_t*>(out), 5)),
              testing::IsOk());
  EXPECT_EQ(std::string(out, 5), "hello");
  const uint8_t data[3] = {7, 8, 9};
  ASSERT_THAT(context_.DmaWrite(0x10000 + kPage, data), testing::IsOk());
  EXPECT_EQ(guest.bytes[2 * kPage + 1], 8);
}

TEST_F(SessionDeviceTest, BadMapsAndUnmapsGetTheirErrno) {
  ASSERT_EQ(Map(0x10000, 2 * kPage, kReadWrite), 0);
  EXPECT_EQ(Map(0x11000, kPage, kReadWrite), EEXIST) << "overlap";
  EXPECT_EQ(Map(0x20001, kPage, kReadWrite), EINVAL) << "misaligned";
  EXPECT_EQ(Map(0x20000, 0, kReadWrite), EINVAL) << "size 0";
  EXPECT_EQ(Unmap({.addr = 0x10000, .size = kPage}).reply->bytes.size(), wire::kHeaderSize);
  EXPECT_EQ(ReplyErrno(Unmap({.addr = 0x10000, .size = kPage})), ENOENT) << "not exact";
  EXPECT_EQ(ReplyErrno(Unmap({.addr = 0x10000, .size = 2 * kPage})), 0);
  ASSERT_EQ(device_.unmapped.size(), 1u);
  EXPECT_EQ(device_.unmapped[0].size, 2 * kPage);
  uint8_t out[4];
  EXPECT_THAT(context_.DmaRead(0x10000, absl::MakeSpan(out)),
              testing::StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(SessionDeviceTest, UnmapReplyEchoesTheRange) {
  ASSERT_EQ(Map(0x40000, kPage, kReadWrite), 0);
  Session::Result r = Unmap({.addr = 0x40000, .size = kPage});
  ASSERT_EQ(ReplyErrno(r), 0);
  absl::StatusOr<wire::DmaUnmapReply> reply = wire::DecodeDmaUnmapReply(ReplyPayload(r), 0);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->addr, 0x40000u);
  EXPECT_EQ(reply->size, kPage);
}

TEST_F(SessionDeviceTest, DetachReleasesEveryMapping) {
  ASSERT_EQ(Map(0x10000, kPage, kReadWrite), 0);
  ASSERT_EQ(Map(0x20000, kPage, kReadWrite), 0);
  session_.Detach();
  EXPECT_EQ(context_.table().size(), 0u);
  EXPECT_EQ(device_.unmapped.size(), 2u);
}

TEST_F(SessionDeviceTest, DirtyLoggingReportsPagesTheDeviceWrote) {
  SharedMemory guest(8 * kPage);
  ASSERT_EQ(Map(0x100000, 8 * kPage, kReadWrite, guest.Dup()), 0);
  wire::DeviceFeatureRequest start{
      .flags = wire::DeviceFeatureFlags(wire::DeviceFeature::kDmaLoggingStart,
                                        wire::kDeviceFeatureSet),
      .data = wire::DmaLoggingControl{.page_size = kPage,
                                      .ranges = {{.iova = 0x100000, .length = 8 * kPage}}}};
  start.argsz = 8 + 16 + 16;
  ASSERT_EQ(ReplyErrno(Feature(start)), 0);
  const uint8_t byte[1] = {1};
  ASSERT_THAT(context_.DmaWrite(0x100000 + 2 * kPage + 5, byte), testing::IsOk());
  ASSERT_THAT(context_.DmaWrite(0x100000 + 6 * kPage, byte), testing::IsOk());

  wire::DeviceFeatureRequest report{
      .flags = wire::DeviceFeatureFlags(wire::DeviceFeature::kDmaLoggingReport,
                                        wire::kDeviceFeatureGet),
      .data = wire::DmaLoggingReport{.iova = 0x100000, .length = 8 * kPage, .page_size = kPage}};
  report.argsz = 8 + 24 + 8;
  Session::Result r = Feature(report);
  ASSERT_EQ(ReplyErrno(r), 0);
  absl::StatusOr<wire::DeviceFeatureGetReply> reply =
      wire::DecodeDeviceFeatureGetReply(ReplyPayload(r), 0);
  ASSERT_TRUE(reply.ok()) << reply.status();
  const auto& bitmap = std::get<wire::DmaLoggingReport>(reply->data).bitmap;
  ASSERT_EQ(bitmap.size(), 8u);
  EXPECT_EQ(bitmap[0], (1 << 2) | (1 << 6));

  // Reported pages are clean again.
  r = Feature(report);
  ASSERT_EQ(ReplyErrno(r), 0);
  reply = wire::DecodeDeviceFeatureGetReply(ReplyPayload(r), 0);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(std::get<wire::DmaLoggingReport>(reply->data).bitmap[0], 0);
}

TEST_F(SessionDeviceTest, MigrationFeaturesAreNotSupported) {
  wire::DeviceFeatureRequest probe{
      .flags = wire::DeviceFeatureFlags(wire::DeviceFeature::kMigration,
                                        wire::kDeviceFeatureGet | wire::kDeviceFeatureProbe)};
  probe.argsz = 16;
  EXPECT_EQ(ReplyErrno(Feature(probe)), ENOTSUP);
  wire::DeviceFeatureRequest logging_probe{
      .flags = wire::DeviceFeatureFlags(wire::DeviceFeature::kDmaLoggingStart,
                                        wire::kDeviceFeatureSet | wire::kDeviceFeatureProbe)};
  logging_probe.argsz = 8;
  EXPECT_EQ(ReplyErrno(Feature(logging_probe)), 0);
}

TEST_F(SessionDeviceTest, RegionInfoOffersSparseMmapWithTheFd) {
  std::vector<uint8_t> p;
  wire::EncodeRegionInfoRequest({.argsz = 256, .index = 0}, p);
  Session::Result r = Send(Command::kDeviceGetRegionInfo, p);
  ASSERT_EQ(ReplyErrno(r), 0);
  ASSERT_EQ(r.reply->fds.size(), 1u);
  absl::StatusOr<wire::RegionInfoReply> info = wire::DecodeRegionInfoReply(ReplyPayload(r), 1);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_NE(info->flags & VFIO_REGION_INFO_FLAG_MMAP, 0u);
  ASSERT_TRUE(info->sparse_mmap.has_value());
  ASSERT_EQ(info->sparse_mmap->size(), 2u);
  EXPECT_EQ((*info->sparse_mmap)[1].offset, 3 * kPage);

  // The client maps page 3 and sees what the device writes there.
  void* page = ::mmap(nullptr, kPage, PROT_READ, MAP_SHARED, r.reply->fds[0].get(),
                      static_cast<off_t>(info->offset + 3 * kPage));
  ASSERT_NE(page, MAP_FAILED);
  device_.region_memory(0)[3 * kPage + 9] = 0x5c;
  EXPECT_EQ(static_cast<volatile uint8_t*>(page)[9], 0x5c);
  ::munmap(page, kPage);
}

TEST_F(SessionDeviceTest, TruncatedRegionInfoCarriesNoFd) {
  std::vector<uint8_t> p;
  wire::EncodeRegionInfoRequest({.argsz = wire::kRegionInfoSize, .index = 0}, p);
  Session::Result r = Send(Command::kDeviceGetRegionInfo, p);
  ASSERT_EQ(ReplyErrno(r), 0);
  EXPECT_TRUE(r.reply->fds.empty());
  absl::StatusOr<wire::RegionInfoReply> info = wire::DecodeRegionInfoReply(ReplyPayload(r), 0);
  ASSERT_TRUE(info.ok());
  EXPECT_GT(info->argsz, wire::kRegionInfoSize) << "tells the client the size to ask for";
  EXPECT_EQ(ReplyPayload(r).size(), wire::kRegionInfoSize);
}

}  // namespace
}  // namespace vfu

namespace vfu {
namespace {

// A PCI Express device that logs its quiesce, reset and unquiesce calls.
class FlrDevice : public PciDevice {
 public:
  FlrDevice() : PciDevice([] {
      PciDeviceSpec spec = Spec();
      spec.express = true;
      return spec;
    }()) {}
  void OnQuiesce(QuiesceReason reason, QuiesceDone done) override {
    events.push_back(reason == QuiesceReason::kFunctionReset ? "quiesce flr" : "quiesce");
    std::move(done)(absl::OkStatus());
  }
  void OnUnquiesce() override { events.push_back("unquiesce"); }
  absl::Status OnReset() override {
    events.push_back("reset");
    return absl::OkStatus();
  }
  // Device Control with Initiate FLR set, little-endian, at `*offset`.
  std::vector<uint8_t> InitiateFlr(uint32_t* offset) {
    uint32_t exp = ReadConfig16(PCI_CAPABILITY_LIST) & 0xfc;
    while (exp != 0 && (ReadConfig16(exp) & 0xff) != PCI_CAP_ID_EXP) {
      exp = (ReadConfig16(exp) >> 8) & 0xfc;
    }
    *offset = exp == 0 ? 0 : exp + PCI_EXP_DEVCTL;
    const uint16_t devctl = ReadConfig16(*offset) | PCI_EXP_DEVCTL_BCR_FLR;
    return {static_cast<uint8_t>(devctl), static_cast<uint8_t>(devctl >> 8)};
  }
  std::vector<std::string> events;
};

InboundMessage ConfigWrite(uint16_t id, uint32_t offset, const std::vector<uint8_t>& data,
                           bool no_reply = false) {
  std::vector<uint8_t> p;
  wire::EncodeRegionWriteRequest({.offset = offset, .region = kConfigRegion, .data = data}, p);
  return MakeCommand(id, Command::kRegionWrite, p, no_reply);
}

// A function-level reset arrives as a config-space REGION_WRITE: the
// engine quiesces the device around it, and the device resets.
TEST(SessionFlrTest, ConfigWriteOfInitiateFlrIsQuiescedAndResets) {
  FlrDevice device;
  testing::LocalDmaContext context;
  Session session(device, context, context.table(), SessionOptions{}, "t");
  ASSERT_EQ(ReplyErrno(session.Handle(
                MakeCommand(1, Command::kVersion, VersionPayload(R"({"capabilities":{}})")))),
            0);
  session.Attach();
  Session::Result ordinary = session.Handle(ConfigWrite(2, PCI_COMMAND, {PCI_COMMAND_MEMORY, 0}));
  ASSERT_EQ(ReplyErrno(ordinary), 0);
  EXPECT_FALSE(ordinary.function_reset);
  ASSERT_EQ(device.ReadConfig16(PCI_COMMAND), PCI_COMMAND_MEMORY);
  EXPECT_TRUE(device.events.empty()) << "an ordinary config write is not quiesced";

  uint32_t devctl = 0;
  const std::vector<uint8_t> flr = device.InitiateFlr(&devctl);
  ASSERT_NE(devctl, 0u);
  Session::Result reset = session.Handle(ConfigWrite(3, devctl, flr));
  ASSERT_EQ(ReplyErrno(reset), 0);
  EXPECT_TRUE(reset.function_reset);
  EXPECT_EQ(device.events, (std::vector<std::string>{"quiesce flr", "reset", "unquiesce"}));
  EXPECT_EQ(device.ReadConfig16(PCI_COMMAND), 0);
}

// Under NO_REPLY there is no reply to tell success by: the reset is still
// reported (once).
TEST(SessionFlrTest, PostedConfigWriteOfInitiateFlrIsReported) {
  FlrDevice device;
  testing::LocalDmaContext context;
  Session session(device, context, context.table(), SessionOptions{}, "t");
  ASSERT_EQ(ReplyErrno(session.Handle(
                MakeCommand(1, Command::kVersion, VersionPayload(R"({"capabilities":{}})")))),
            0);
  session.Attach();
  uint32_t devctl = 0;
  const std::vector<uint8_t> flr = device.InitiateFlr(&devctl);
  ASSERT_NE(devctl, 0u);
  Session::Result reset = session.Handle(ConfigWrite(2, devctl, flr, /*no_reply=*/true));
  EXPECT_FALSE(reset.reply.has_value());
  EXPECT_TRUE(reset.function_reset);
  EXPECT_EQ(device.events, (std::vector<std::string>{"quiesce flr", "reset", "unquiesce"}));

  // A posted ordinary write resets nothing.
  Session::Result ordinary =
      session.Handle(ConfigWrite(3, PCI_COMMAND, {PCI_COMMAND_MEMORY, 0}, /*no_reply=*/true));
  EXPECT_FALSE(ordinary.reply.has_value());
  EXPECT_FALSE(ordinary.function_reset);
}

}  // namespace
}  // namespace vfu
