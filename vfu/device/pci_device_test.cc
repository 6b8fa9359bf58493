#include "vfu/device/pci_device.h"

#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/wire/byte_io.h"

namespace vfu {
namespace {

using ::testing::ElementsAre;
using ::vfu::testing::IsOk;
using ::vfu::testing::StatusIs;

constexpr uint16_t kMsixVectors = 4;
constexpr uint32_t kMsixTableOffset = 0x1000;
constexpr uint32_t kMsixPbaOffset = 0x1800;

PciDeviceSpec TestSpec() {
  PciDeviceSpec spec;
  spec.identity = {.vendor_id = 0x1d0f,
                   .device_id = 0x4242,
                   .subsystem_vendor_id = 0x1d0f,
                   .subsystem_id = 0x0001,
                   .class_code = 0x058000,
                   .revision = 3};
  // BAR0: 8 KiB memory, first page mmappable, second page holds MSI-X.
  spec.bars[0] = {.size = 0x2000,
                  .backed_by_memory = true,
                  .mmap_areas = {{.offset = 0, .size = 0x1000}}};
  // BAR2/3: a 64-bit prefetchable pair.
  spec.bars[2] = {.size = 1 << 20, .kind = pci::BarKind::kMemory64, .prefetchable = true,
                  .backed_by_memory = true};
  spec.interrupts = {.intx = true,
                     .msi_vectors = 2,
                     .msix_vectors = kMsixVectors,
                     .msix_bar = 0,
                     .msix_table_offset = kMsixTableOffset,
                     .msix_pba_offset = kMsixPbaOffset};
  return spec;
}

// A device that records what its hooks saw.
class RecordingDevice : public PciDevice {
 public:
  explicit RecordingDevice(PciDeviceSpec spec = TestSpec()) : PciDevice(std::move(spec)) {}
  void OnConfigWrite(uint32_t offset, absl::Span<const uint8_t> data) override {
    config_writes.push_back(offset);
  }
  absl::Status OnReset() override {
    ++resets;
    return absl::OkStatus();
  }
  void OnIrqStateChanged(uint32_t index, uint32_t start, uint32_t count,
                         IrqController::Change change) override {
    irq_changes.push_back(index);
  }
  std::vector<uint32_t> config_writes;
  std::vector<uint32_t> irq_changes;
  int resets = 0;
};

uint32_t Config32(PciDevice& device, uint32_t offset) {
  uint8_t bytes[4];
  EXPECT_THAT(device.ReadRegion(kConfigRegion, offset, absl::MakeSpan(bytes)), IsOk());
  return wire::LoadU32(bytes, 0);
}

uint16_t Config16(PciDevice& device, uint32_t offset) {
  uint8_t bytes[2];
  EXPECT_THAT(device.ReadRegion(kConfigRegion, offset, absl::MakeSpan(bytes)), IsOk());
  return static_cast<uint16_t>(bytes[0] | bytes[1] << 8);
}

void WriteConfig32(PciDevice& device, uint32_t offset, uint32_t value) {
  uint8_t bytes[4];
  std::memcpy(bytes, &value, 4);
  ASSERT_THAT(device.WriteRegion(kConfigRegion, offset, bytes), IsOk());
}

void WriteConfig16(PciDevice& device, uint32_t offset, uint16_t value) {
  uint8_t bytes[2] = {static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8)};
  ASSERT_THAT(device.WriteRegion(kConfigRegion, offset, bytes), IsOk());
}

// Offset of capability `id`, walking the chain as a driver does.
uint32_t FindCap(PciDevice& device, uint8_t id) {
  uint32_t offset = Config32(device, PCI_CAPABILITY_LIST) & 0xfc;
  for (int guard = 0; offset != 0 && guard < 48; ++guard) {
    const uint32_t header = Config32(device, offset);
    if ((header & 0xff) == id) return offset;
    offset = (header >> 8) & 0xfc;
  }
  return 0;
}

UniqueFd AssignEventfd(PciDevice& device, uint32_t index, uint32_t vector) {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  std::vector<UniqueFd> fds;
  fds.emplace_back(::dup(fd.get()));
  wire::SetIrqsRequest request{.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                               .index = index,
                               .start = vector,
                               .count = 1};
  EXPECT_THAT(device.SetIrqs(request, fds), IsOk());
  return fd;
}

// Interrupts signalled on `fd` so far (0 if none), consuming them.
uint64_t Drain(const UniqueFd& fd) {
  uint64_t count = 0;
  if (::read(fd.get(), &count, sizeof count) != sizeof count) return 0;
  return count;
}

void WriteMsixVectorControl(PciDevice& device, uint32_t vector, uint32_t control) {
  uint8_t bytes[4];
  std::memcpy(bytes, &control, 4);
  ASSERT_THAT(device.WriteRegion(0, kMsixTableOffset + vector * 16 + 12, bytes), IsOk());
}

TEST(PciDeviceTest, ConfigSpaceShowsIdentity) {
  RecordingDevice device;
  ASSERT_THAT(device.Validate(), IsOk());
  EXPECT_EQ(Config32(device, PCI_VENDOR_ID), 0x42421d0fu);
  EXPECT_EQ(Config32(device, PCI_CLASS_REVISION), 0x05800003u);
  EXPECT_EQ(Config32(device, PCI_SUBSYSTEM_VENDOR_ID), 0x00011d0fu);
  EXPECT_EQ(Config32(device, PCI_INTERRUPT_LINE) >> 8 & 0xff, 1u) << "INTx means pin INTA";
  EXPECT_NE(Config16(device, PCI_STATUS) & PCI_STATUS_CAP_LIST, 0);
  EXPECT_NE(FindCap(device, PCI_CAP_ID_MSI), 0u);
  EXPECT_NE(FindCap(device, PCI_CAP_ID_MSIX), 0u);
  EXPECT_NE(FindCap(device, PCI_CAP_ID_PM), 0u);
  EXPECT_EQ(device.IrqCount(kIntxIrq), 1u);
  EXPECT_EQ(device.IrqCount(kMsiIrq), 2u);
  EXPECT_EQ(device.IrqCount(kMsixIrq), kMsixVectors);
  EXPECT_EQ(device.IrqCount(kErrIrq), 0u);
}

TEST(PciDeviceTest, BarSizingThroughConfigWrites) {
  RecordingDevice device;
  WriteConfig32(device, PCI_BASE_ADDRESS_0, 0xffffffff);
  EXPECT_EQ(Config32(device, PCI_BASE_ADDRESS_0), 0xffffe000u);
  // The 64-bit prefetchable pair: low half keeps its type bits.
  WriteConfig32(device, PCI_BASE_ADDRESS_2, 0xffffffff);
  WriteConfig32(device, PCI_BASE_ADDRESS_3, 0xffffffff);
  EXPECT_EQ(Config32(device, PCI_BASE_ADDRESS_2),
            0xfff00000u | PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH);
  EXPECT_EQ(Config32(device, PCI_BASE_ADDRESS_3), 0xffffffffu);
  EXPECT_THAT(device.config_writes, ElementsAre(PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_2,
                                                PCI_BASE_ADDRESS_3));
}

TEST(PciDeviceTest, ResetRestoresConfigSpaceAndCallsHook) {
  RecordingDevice device;
  WriteConfig16(device, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  ASSERT_EQ(Config16(device, PCI_COMMAND), PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  ASSERT_THAT(device.Reset(), IsOk());
  EXPECT_EQ(Config16(device, PCI_COMMAND), 0);
  EXPECT_EQ(device.resets, 1);
}

// A function-level reset: Initiate FLR (Device Control bit 15 of the PCI
// Express capability) written through config space resets the function.
TEST(PciDeviceTest, InitiateFlrResetsTheFunction) {
  PciDeviceSpec spec = TestSpec();
  spec.express = true;
  RecordingDevice device(std::move(spec));
  ASSERT_THAT(device.Validate(), IsOk());
  const uint32_t exp = FindCap(device, PCI_CAP_ID_EXP);
  ASSERT_NE(exp, 0u);
  EXPECT_NE(Config32(device, exp + PCI_EXP_DEVCAP) & PCI_EXP_DEVCAP_FLR, 0u) << "advertised";
  const uint16_t devctl_default = Config16(device, exp + PCI_EXP_DEVCTL);

  WriteConfig16(device, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  WriteConfig16(device, exp + PCI_EXP_DEVCTL, devctl_default | PCI_EXP_DEVCTL_URRE);
  UniqueFd fd = AssignEventfd(device, kMsiIrq, 0);
  ASSERT_TRUE(device.IrqEnabled(kMsiIrq, 0));
  const std::vector<uint8_t> unrelated = {0x00};
  EXPECT_FALSE(device.IsFunctionLevelReset(kConfigRegion, exp + PCI_EXP_DEVCTL + 1, unrelated));
  ASSERT_EQ(device.resets, 0);

  // A 16-bit write of Device Control with the bit set, as a driver does.
  const uint16_t flr = devctl_default | PCI_EXP_DEVCTL_BCR_FLR;
  const std::vector<uint8_t> write = {static_cast<uint8_t>(flr), static_cast<uint8_t>(flr >> 8)};
  EXPECT_TRUE(device.IsFunctionLevelReset(kConfigRegion, exp + PCI_EXP_DEVCTL, write));
  EXPECT_FALSE(device.IsFunctionLevelReset(0, exp + PCI_EXP_DEVCTL, write)) << "not config";
  ASSERT_THAT(device.WriteRegion(kConfigRegion, exp + PCI_EXP_DEVCTL, write), IsOk());

  EXPECT_EQ(device.resets, 1);
  EXPECT_EQ(Config16(device, PCI_COMMAND), 0) << "config space back to defaults";
  EXPECT_EQ(Config16(device, exp + PCI_EXP_DEVCTL), devctl_default) << "the bit reads 0";
  EXPECT_FALSE(device.IrqEnabled(kMsiIrq, 0)) << "interrupts disabled";
  EXPECT_FALSE(device.TriggerIrq(kMsiIrq, 0).ok());
  EXPECT_EQ(Drain(fd), 0u);
}

TEST(PciDeviceTest, NoFlrWithoutTheExpressCapability) {
  RecordingDevice device;
  const std::vector<uint8_t> ones(256, 0xff);
  for (uint32_t offset = 0; offset < 256; offset += 2) {
    EXPECT_FALSE(device.IsFunctionLevelReset(kConfigRegion, offset,
                                             absl::MakeConstSpan(ones).subspan(0, 2)));
  }
}

TEST(PciDeviceTest, QuiesceHooksReachTheAuthor) {
  class Quiescing : public PciDevice {
   public:
    Quiescing() : PciDevice(TestSpec()) {}
    void OnQuiesce(QuiesceReason reason, QuiesceDone done) override {
      reasons.push_back(reason);
      held = std::move(done);
    }
    void OnUnquiesce() override { ++unquiesced; }
    std::vector<QuiesceReason> reasons;
    QuiesceDone held;
    int unquiesced = 0;
  };
  Quiescing device;
  absl::Status answered = absl::UnknownError("not answered");
  Device& as_device = device;
  as_device.Quiesce(QuiesceReason::kDmaUnmap, [&answered](absl::Status s) { answered = s; });
  EXPECT_THAT(device.reasons, ElementsAre(QuiesceReason::kDmaUnmap));
  EXPECT_THAT(answered, StatusIs(absl::StatusCode::kUnknown)) << "the author answers later";
  std::move(device.held)(absl::OkStatus());
  EXPECT_THAT(answered, IsOk());
  as_device.Unquiesce();
  EXPECT_EQ(device.unquiesced, 1);
}

TEST(PciDeviceTest, MemoryBackedRegionIsSharedWithTheMmapFd) {
  RecordingDevice device;
  RegionDescription bar0 = device.DescribeRegion(0);
  ASSERT_GE(bar0.mmap_fd, 0);
  ASSERT_EQ(bar0.mmap_areas.size(), 1u);
  void* mapped = ::mmap(nullptr, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED, bar0.mmap_fd,
                        static_cast<off_t>(bar0.fd_offset));
  ASSERT_NE(mapped, MAP_FAILED);
  auto* client_view = static_cast<volatile uint8_t*>(mapped);
  // The device writes; the client's mapping sees it, and the other way.
  device.region_memory(0)[5] = 0xab;
  EXPECT_EQ(client_view[5], 0xab);
  client_view[6] = 0xcd;
  uint8_t read[2];
  ASSERT_THAT(device.ReadRegion(0, 5, absl::MakeSpan(read)), IsOk());
  EXPECT_THAT(read, ElementsAre(0xab, 0xcd));
  ::munmap(mapped, 0x1000);
  // Region 2 has no mmap areas: no fd is offered.
  EXPECT_EQ(device.DescribeRegion(2).mmap_fd, -1);
  EXPECT_EQ(device.DescribeRegion(2).size, 1u << 20);
}

TEST(PciDeviceTest, MsixVectorMaskHoldsInterruptPendingUntilUnmask) {
  RecordingDevice device;
  UniqueFd fd = AssignEventfd(device, kMsixIrq, 1);
  EXPECT_THAT(device.irq_changes, ElementsAre(kMsixIrq));
  ASSERT_TRUE(device.IrqEnabled(kMsixIrq, 1));

  // Until the client drives the table, only SET_IRQS masks count (QEMU).
  ASSERT_THAT(device.TriggerIrq(kMsixIrq, 1), IsOk());
  EXPECT_EQ(Drain(fd), 1u);

  WriteMsixVectorControl(device, 1, PCI_MSIX_ENTRY_CTRL_MASKBIT);
  ASSERT_THAT(device.TriggerIrq(kMsixIrq, 1), IsOk());
  EXPECT_EQ(Drain(fd), 0u) << "masked vector must not fire";
  uint8_t pba[8];
  ASSERT_THAT(device.ReadRegion(0, kMsixPbaOffset, absl::MakeSpan(pba)), IsOk());
  EXPECT_EQ(wire::LoadU64(pba, 0), 1u << 1) << "pending bit of vector 1";

  WriteMsixVectorControl(device, 1, 0);
  EXPECT_EQ(Drain(fd), 1u) << "unmask delivers the pending interrupt once";
  ASSERT_THAT(device.ReadRegion(0, kMsixPbaOffset, absl::MakeSpan(pba)), IsOk());
  EXPECT_EQ(wire::LoadU64(pba, 0), 0u);
}

TEST(PciDeviceTest, MsixFunctionMaskInConfigSpace) {
  RecordingDevice device;
  UniqueFd fd = AssignEventfd(device, kMsixIrq, 0);
  const uint32_t cap = FindCap(device, PCI_CAP_ID_MSIX);
  ASSERT_NE(cap, 0u);
  WriteConfig16(device, cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
  ASSERT_THAT(device.TriggerIrq(kMsixIrq, 0), IsOk());
  EXPECT_EQ(Drain(fd), 0u);
  WriteConfig16(device, cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE);
  EXPECT_EQ(Drain(fd), 1u);
}

TEST(PciDeviceTest, IntxDisableBitMasksIntx) {
  RecordingDevice device;
  UniqueFd fd = AssignEventfd(device, kIntxIrq, 0);
  WriteConfig16(device, PCI_COMMAND, PCI_COMMAND_INTX_DISABLE);
  ASSERT_THAT(device.TriggerIrq(kIntxIrq, 0), IsOk());
  EXPECT_EQ(Drain(fd), 0u);
  WriteConfig16(device, PCI_COMMAND, 0);
  EXPECT_EQ(Drain(fd), 1u);
}

TEST(PciDeviceTest, DetachReleasesInterrupts) {
  RecordingDevice device;
  UniqueFd fd = AssignEventfd(device, kMsiIrq, 0);
  ASSERT_TRUE(device.IrqEnabled(kMsiIrq, 0));
  device.OnDetach();
  EXPECT_FALSE(device.IrqEnabled(kMsiIrq, 0));
  // A device thread raising it after the client left is told why.
  EXPECT_THAT(device.TriggerIrq(kMsiIrq, 0), StatusIs(absl::StatusCode::kUnavailable));
}

// A DeviceContext that answers every call with `code`, and counts them.
class FixedContext : public DeviceContext {
 public:
  explicit FixedContext(absl::StatusCode code) : status_(code, "fixed") {}
  absl::Status DmaRead(uint64_t, absl::Span<uint8_t>) override { return Count(); }
  absl::Status DmaWrite(uint64_t, absl::Span<const uint8_t>) override { return Count(); }
  absl::StatusOr<DmaSgList> DmaPin(uint64_t, uint64_t, DmaDirection) override { return Count(); }
  int calls = 0;

 private:
  absl::Status Count() {
    ++calls;
    return status_;
  }
  absl::Status status_;
};

// dma() is never null: before any client and after a detach its calls fail
// with Unavailable; while a client is attached it is that client's context,
// and a handle taken then stays that client's after the detach.
TEST(PciDeviceTest, DmaHandleBelongsToOneAttachment) {
  RecordingDevice device;
  uint8_t byte[1];
  std::shared_ptr<DeviceContext> none = device.dma();
  ASSERT_NE(none, nullptr);
  EXPECT_THAT(none->DmaRead(0, absl::MakeSpan(byte)), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(none->DmaPin(0, 1, DmaDirection::kRead).status(),
              StatusIs(absl::StatusCode::kUnavailable));

  auto first = std::make_shared<FixedContext>(absl::StatusCode::kDataLoss);
  device.OnAttach(first);
  std::shared_ptr<DeviceContext> handle = device.dma();
  EXPECT_EQ(handle.get(), first.get());
  device.OnDetach();
  EXPECT_THAT(device.dma()->DmaWrite(0, byte), StatusIs(absl::StatusCode::kUnavailable));
  auto second = std::make_shared<FixedContext>(absl::StatusCode::kAborted);
  device.OnAttach(second);
  // The old handle still reaches the first client's context only (which
  // the runtime has revoked), never the second.
  EXPECT_THAT(handle->DmaRead(0, absl::MakeSpan(byte)), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_EQ(second->calls, 0);
  EXPECT_EQ(device.dma().get(), second.get());
}

TEST(PciDeviceTest, DefaultHooksRefuseRegionsWithoutMemory) {
  PciDeviceSpec spec = TestSpec();
  spec.bars[4] = {.size = 256, .kind = pci::BarKind::kIo};
  RecordingDevice device(std::move(spec));
  uint8_t byte[1];
  EXPECT_FALSE(device.ReadRegion(4, 0, absl::MakeSpan(byte)).ok());
}

TEST(PciDeviceTest, InvalidDescriptionsAreRefused) {
  {
    PciDeviceSpec spec = TestSpec();
    spec.interrupts.msix_pba_offset = 0x1ffc;  // PBA runs past the BAR
    EXPECT_FALSE(RecordingDevice(std::move(spec)).Validate().ok());
  }
  {
    PciDeviceSpec spec = TestSpec();
    spec.bars[0].mmap_areas = {{.offset = 0, .size = 0x2000}};  // covers the MSI-X table
    EXPECT_FALSE(RecordingDevice(std::move(spec)).Validate().ok());
  }
  {
    PciDeviceSpec spec = TestSpec();
    spec.serial_number = 7;  // needs express
    EXPECT_FALSE(RecordingDevice(std::move(spec)).Validate().ok());
  }
  {
    PciDeviceSpec spec = TestSpec();
    spec.device_regions.push_back({.size = 4096});  // no type
    EXPECT_FALSE(RecordingDevice(std::move(spec)).Validate().ok());
  }
  {
    PciDeviceSpec spec = TestSpec();
    spec.bars[1] = {.size = 3000};  // not a power of two
    EXPECT_FALSE(RecordingDevice(std::move(spec)).Validate().ok());
  }
}

TEST(PciDeviceTest, DeviceSpecificRegionsCarryTheirType) {
  PciDeviceSpec spec = TestSpec();
  spec.device_regions.push_back(
      {.size = 8192, .backed_by_memory = true, .type = wire::RegionType{.type = 3, .subtype = 1}});
  RecordingDevice device(std::move(spec));
  ASSERT_THAT(device.Validate(), IsOk());
  EXPECT_EQ(device.num_regions(), kFirstDeviceSpecificRegion + 1);
  RegionDescription region = device.DescribeRegion(kFirstDeviceSpecificRegion);
  EXPECT_EQ(region.size, 8192u);
  ASSERT_TRUE(region.type.has_value());
  EXPECT_EQ(region.type->type, 3u);
  EXPECT_EQ(region.type->subtype, 1u);
}

}  // namespace
}  // namespace vfu
