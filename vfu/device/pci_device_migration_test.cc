// PciDevice's migration hooks driven directly, as the engine drives them:
// the framework's own state (config space, MSI-X table and masks, pending
// interrupts, memory-backed regions pre-copied in rounds) and the device's
// bytes go from one device to another; streams that do not belong are
// refused at RESUMING -> STOP and change nothing.
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "vfu/device/pci_device.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/errno_status.h"

namespace vfu {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::vfu::testing::IsOk;
using ::vfu::testing::StatusIs;
using S = MigrationState;

constexpr uint32_t kMsixTableOffset = 0x1000;
constexpr uint32_t kMsixPbaOffset = 0x1800;
constexpr uint64_t kMemoryBar = 2;
constexpr uint64_t kMemorySize = 256 * 1024;

PciDeviceSpec Spec(std::string type = "test-device") {
  PciDeviceSpec spec;
  spec.identity = {.vendor_id = 0x1d0f, .device_id = 0x4242, .class_code = 0x058000};
  spec.bars[0] = {.size = 0x2000};
  spec.bars[kMemoryBar] = {.size = kMemorySize, .backed_by_memory = true};
  spec.interrupts = {.msix_vectors = 4,
                     .msix_bar = 0,
                     .msix_table_offset = kMsixTableOffset,
                     .msix_pba_offset = kMsixPbaOffset};
  spec.migration = MigrationSpec{.device_type = std::move(type)};
  return spec;
}

class MigratingDevice : public PciDevice {
 public:
  explicit MigratingDevice(PciDeviceSpec spec = Spec()) : PciDevice(std::move(spec)) {}
  absl::Status OnRegionRead(uint32_t, uint64_t, absl::Span<uint8_t> out) override {
    std::memset(out.data(), 0, out.size());
    return absl::OkStatus();
  }
  absl::Status OnRegionWrite(uint32_t, uint64_t, absl::Span<const uint8_t>) override {
    return absl::OkStatus();
  }
  absl::Status OnMigrationStateChange(MigrationState from, MigrationState to) override {
    arcs.emplace_back(from, to);
    return absl::OkStatus();
  }
  absl::Status SaveState(SavePhase phase, std::string& out) override {
    out = phase == SavePhase::kStopCopy ? "final:" + registers : "";
    return absl::OkStatus();
  }
  absl::Status LoadState(absl::Span<const std::string> pieces) override {
    if (refuse_load) return absl::FailedPreconditionError("device says no");
    loaded.assign(pieces.begin(), pieces.end());
    return absl::OkStatus();
  }
  std::string registers = "r1";
  bool refuse_load = false;
  std::vector<std::string> loaded;
  std::vector<std::pair<S, S>> arcs;
};

void WriteConfig(PciDevice& d, uint32_t offset, uint32_t value, size_t size) {
  uint8_t bytes[4];
  wire::Store<uint32_t>(absl::MakeSpan(bytes), 0, value);
  ASSERT_THAT(d.WriteRegion(kConfigRegion, offset, absl::MakeConstSpan(bytes, size)), IsOk());
}

std::vector<uint8_t> ReadAll(PciDevice& d, uint32_t region, uint64_t offset, size_t size) {
  std::vector<uint8_t> out(size);
  EXPECT_THAT(d.ReadRegion(region, offset, absl::MakeSpan(out)), IsOk());
  return out;
}

uint32_t MsixCap(PciDevice& d) {
  std::vector<uint8_t> config = ReadAll(d, kConfigRegion, 0, 256);
  for (uint32_t at = config[PCI_CAPABILITY_LIST]; at != 0; at = config[at + 1]) {
    if (config[at] == PCI_CAP_ID_MSIX) return at;
  }
  return 0;
}

void WriteTableDword(PciDevice& d, uint32_t vector, uint32_t dword, uint32_t value) {
  uint8_t bytes[4];
  wire::Store<uint32_t>(absl::MakeSpan(bytes), 0, value);
  ASSERT_THAT(d.WriteRegion(0, kMsixTableOffset + vector * 16 + dword * 4, bytes), IsOk());
}

UniqueFd AssignEventfd(PciDevice& d, uint32_t vector) {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  std::vector<UniqueFd> fds;
  fds.emplace_back(::dup(fd.get()));
  wire::SetIrqsRequest request{.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                               .index = kMsixIrq,
                               .start = vector,
                               .count = 1};
  EXPECT_THAT(d.SetIrqs(request, fds), IsOk());
  return fd;
}

uint64_t Drain(const UniqueFd& fd) {
  uint64_t value = 0;
  return ::read(fd.get(), &value, sizeof(value)) == sizeof(value) ? value : 0;
}

// Reads until a short read.
std::string ReadRound(PciDevice& d, size_t piece) {
  std::string out;
  std::vector<uint8_t> buffer(piece);
  while (true) {
    absl::StatusOr<size_t> n = d.ReadMigrationData(absl::MakeSpan(buffer));
    EXPECT_THAT(n.status(), IsOk());
    if (!n.ok()) return out;
    out.append(reinterpret_cast<const char*>(buffer.data()), *n);
    if (*n < piece) return out;
  }
}

void Walk(PciDevice& d, std::vector<std::pair<S, S>> arcs) {
  for (auto [from, to] : arcs) ASSERT_THAT(d.OnMigrationArc(from, to), IsOk());
}

// Writes `stream` in pieces of `piece` bytes into a device put in RESUMING,
// then tries RESUMING -> STOP.
absl::Status Load(PciDevice& d, const std::string& stream, size_t piece = 1000) {
  Walk(d, {{S::kRunning, S::kStop}, {S::kStop, S::kResuming}});
  for (size_t at = 0; at < stream.size(); at += piece) {
    const size_t n = std::min(piece, stream.size() - at);
    EXPECT_THAT(d.WriteMigrationData(absl::MakeConstSpan(
                    reinterpret_cast<const uint8_t*>(stream.data() + at), n)),
                IsOk());
  }
  return d.OnMigrationArc(S::kResuming, S::kStop);
}

class PciDeviceMigrationTest : public ::testing::Test {
 protected:
  // Gives the source state in every part the framework owns.
  void ProgramSource() {
    WriteConfig(source_, PCI_BASE_ADDRESS_0, 0xfeb00000, 4);
    WriteConfig(source_, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
    const uint32_t cap = MsixCap(source_);
    ASSERT_NE(cap, 0u);
    WriteConfig(source_, cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
    WriteTableDword(source_, 1, 0, 0xfee01000);
    WriteTableDword(source_, 1, 2, 0x4041);
    WriteTableDword(source_, 1, 3, PCI_MSIX_ENTRY_CTRL_MASKBIT);
    WriteTableDword(source_, 2, 3, 0);  // vector 2 unmasked
    source_eventfd_ = AssignEventfd(source_, 1);
    // Raised while masked: pending, to be delivered on the destination.
    ASSERT_THAT(source_.TriggerIrq(kMsixIrq, 1), IsOk());
    ASSERT_EQ(Drain(source_eventfd_), 0u);
    absl::Span<uint8_t> memory = source_.region_memory(kMemoryBar);
    for (size_t i = 0; i < memory.size(); ++i) memory[i] = static_cast<uint8_t>(i % 251);
  }

  MigratingDevice source_;
  MigratingDevice destination_;
  UniqueFd source_eventfd_;
};

// Everything the framework owns arrives, with memory changed between
// pre-copy rounds, and the pending interrupt fires on the destination once
// its client installs an eventfd and unmasks the vector.
TEST_F(PciDeviceMigrationTest, FrameworkStateRoundTripWithPreCopyRounds) {
  ProgramSource();
  absl::Span<uint8_t> memory = source_.region_memory(kMemoryBar);

  Walk(source_, {{S::kRunning, S::kPreCopy}});
  EXPECT_GE(source_.MigrationDataEstimate(), kMemorySize);
  std::string stream = ReadRound(source_, 64 * 1024);
  EXPECT_GT(stream.size(), kMemorySize);
  // The device keeps running: two pages change, only they go again.
  memory[5000] = 0xaa;
  memory[200000] = 0xbb;
  EXPECT_EQ(source_.MigrationDataEstimate(), 2 * 4096u);
  const std::string round2 = ReadRound(source_, 64 * 1024);
  EXPECT_GT(round2.size(), 2 * 4096u);
  EXPECT_LT(round2.size(), 3 * 4096u);
  stream += round2;
  memory[7] = 0xcc;  // changed after the last round: stop-copy sends it
  source_.registers = "r2";
  Walk(source_, {{S::kPreCopy, S::kStopCopy}});
  stream += ReadRound(source_, 4096);
  Walk(source_, {{S::kStopCopy, S::kStop}});

  ASSERT_THAT(Load(destination_, stream, 777), IsOk());
  EXPECT_THAT(destination_.loaded, ElementsAre("final:r2"));
  EXPECT_EQ(ReadAll(destination_, kConfigRegion, 0, 256), ReadAll(source_, kConfigRegion, 0, 256));
  for (uint32_t offset = 0; offset < 64; offset += 8) {
    EXPECT_EQ(ReadAll(destination_, 0, kMsixTableOffset + offset, 8),
              ReadAll(source_, 0, kMsixTableOffset + offset, 8))
        << "MSI-X table at " << offset;
  }
  absl::Span<uint8_t> restored = destination_.region_memory(kMemoryBar);
  ASSERT_EQ(restored.size(), memory.size());
  EXPECT_EQ(std::memcmp(restored.data(), memory.data(), memory.size()), 0);
  EXPECT_EQ(restored[7], 0xcc);
  // The pending bit shows in the PBA before anything is delivered.
  EXPECT_EQ(wire::LoadU64(ReadAll(destination_, 0, kMsixPbaOffset, 8), 0), 1u << 1);

  Walk(destination_, {{S::kStop, S::kRunning}});
  UniqueFd fd = AssignEventfd(destination_, 1);
  EXPECT_EQ(Drain(fd), 0u) << "vector 1 is still masked by the migrated table";
  WriteTableDword(destination_, 1, 3, 0);
  EXPECT_EQ(Drain(fd), 1u) << "the migrated pending interrupt fires once on unmask";
  EXPECT_EQ(wire::LoadU64(ReadAll(destination_, 0, kMsixPbaOffset, 8), 0), 0u);
  EXPECT_EQ(destination_.migration_state(), S::kRunning);
}

// STOP -> STOP_COPY without pre-copy carries the same state.
TEST_F(PciDeviceMigrationTest, StopCopyWithoutPreCopy) {
  ProgramSource();
  Walk(source_, {{S::kRunning, S::kStop}, {S::kStop, S::kStopCopy}});
  const std::string stream = ReadRound(source_, 1 << 20);
  ASSERT_THAT(Load(destination_, stream), IsOk());
  EXPECT_EQ(ReadAll(destination_, kConfigRegion, 0, 256), ReadAll(source_, kConfigRegion, 0, 256));
  EXPECT_EQ(source_.arcs.size(), 2u);
}

// A stream of another device type is refused with a message naming both,
// and nothing of it reaches the destination.
TEST_F(PciDeviceMigrationTest, StreamFromAnotherDeviceTypeIsRefused) {
  MigratingDevice other(Spec("other-device"));
  WriteConfig(other, PCI_BASE_ADDRESS_0, 0xfeb00000, 4);
  Walk(other, {{S::kRunning, S::kStop}, {S::kStop, S::kStopCopy}});
  const std::string stream = ReadRound(other, 1 << 20);
  const std::vector<uint8_t> config_before = ReadAll(destination_, kConfigRegion, 0, 256);
  const absl::Status status = Load(destination_, stream);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(status.message(), HasSubstr("\"other-device\""));
  EXPECT_THAT(status.message(), HasSubstr("\"test-device\""));
  EXPECT_EQ(ReadAll(destination_, kConfigRegion, 0, 256), config_before);
  EXPECT_TRUE(destination_.loaded.empty());
  EXPECT_EQ(destination_.migration_state(), S::kResuming);
}

// Corrupted and truncated streams: refused; a good stream written
// afterwards (the refused one is forgotten) is accepted.
TEST_F(PciDeviceMigrationTest, DamagedStreamsAreRefusedAndAGoodOneThenLoads) {
  ProgramSource();
  Walk(source_, {{S::kRunning, S::kStop}, {S::kStop, S::kStopCopy}});
  const std::string stream = ReadRound(source_, 1 << 20);
  std::string corrupted = stream;
  corrupted[corrupted.size() / 3] ^= 1;
  EXPECT_THAT(Load(destination_, corrupted).message(), HasSubstr("corrupted"));
  ASSERT_THAT(destination_.WriteMigrationData(absl::MakeConstSpan(
                  reinterpret_cast<const uint8_t*>(stream.data()), stream.size() - 10)),
              IsOk());
  // Cut short (the last bytes never written).
  const absl::Status truncated = destination_.OnMigrationArc(S::kResuming, S::kStop);
  EXPECT_THAT(truncated, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(truncated.message(), HasSubstr("truncated"));
  ASSERT_THAT(destination_.WriteMigrationData(absl::MakeConstSpan(
                  reinterpret_cast<const uint8_t*>(stream.data()), stream.size())),
              IsOk());
  EXPECT_THAT(destination_.OnMigrationArc(S::kResuming, S::kStop), IsOk());
}

// The device's LoadState refusing the stream refuses it whole: its error,
// and none of the framework's state applied.
TEST_F(PciDeviceMigrationTest, LoadStateErrorRefusesTheStream) {
  ProgramSource();
  Walk(source_, {{S::kRunning, S::kStop}, {S::kStop, S::kStopCopy}});
  const std::string stream = ReadRound(source_, 1 << 20);
  destination_.refuse_load = true;
  const std::vector<uint8_t> config_before = ReadAll(destination_, kConfigRegion, 0, 256);
  EXPECT_THAT(Load(destination_, stream), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(ReadAll(destination_, kConfigRegion, 0, 256), config_before);
  EXPECT_EQ(destination_.region_memory(kMemoryBar)[1], 0);
}

// DEVICE_RESET ends a migration: the stream is dropped and the state is
// RUNNING again (QEMU's recovery path).
TEST_F(PciDeviceMigrationTest, ResetEndsTheMigration) {
  Walk(source_, {{S::kRunning, S::kPreCopy}});
  ASSERT_THAT(source_.Reset(), IsOk());
  EXPECT_EQ(source_.migration_state(), S::kRunning);
  std::vector<uint8_t> buffer(16);
  EXPECT_THAT(source_.ReadMigrationData(absl::MakeSpan(buffer)).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// Without PciDeviceSpec::migration the device does not migrate.
TEST(PciDeviceMigrationOptInTest, DeviceWithoutMigrationSpecDoesNotMigrate) {
  PciDeviceSpec spec = Spec();
  spec.migration.reset();
  MigratingDevice device(std::move(spec));
  EXPECT_FALSE(device.SupportsMigration());
  EXPECT_EQ(wire::ReplyErrno(device.OnMigrationArc(S::kRunning, S::kStop)), ENOTSUP);
}

}  // namespace
}  // namespace vfu
