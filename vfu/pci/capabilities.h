// Builders for the PCI capabilities a vfu device exposes, and decoders that
// read interrupt state back out of a live ConfigSpace.
//
//   VFU_ASSIGN_OR_RETURN(ConfigSpace config, ConfigSpace::Create(...));
//   VFU_RETURN_IF_ERROR(config.AddCapability(PowerManagement()).status());
//   VFU_ASSIGN_OR_RETURN(Capability msix, MsiX(16, /*table_bar=*/1, 0, /*pba_bar=*/1, 0x800));
//   VFU_RETURN_IF_ERROR(config.AddCapability(msix).status());
//   ...
//   std::optional<MsixState> msix = ReadMsixState(config);
//
// Each builder returns the capability's bytes with its writable and RW1C
// masks; ConfigSpace places it and fills the next pointer. Register offsets
// inside capabilities are the <linux/pci_regs.h> names (PCI_MSI_FLAGS,
// PCI_MSIX_TABLE, PCI_EXP_DEVCTL, ...); the few it lacks are below.
#ifndef VFU_PCI_CAPABILITIES_H_
#define VFU_PCI_CAPABILITIES_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "vfu/pci/config_space.h"

namespace vfu::pci {

// Vendor-specific capability: its length byte (the whole capability,
// header included) and where the payload starts.
inline constexpr uint32_t kVendorCapLength = 2;
inline constexpr uint32_t kVendorCapPayload = 3;
// PCI Express capability, version 2: the full register block.
inline constexpr uint32_t kPciExpressV2Size = 0x3c;
// Device Serial Number extended capability: the 64-bit number.
inline constexpr uint32_t kDsnSerialLow = 4;
inline constexpr uint32_t kDsnSerialHigh = 8;
// Vendor-specific extended capability: the payload after the VSEC header
// (PCI_VSEC_HDR).
inline constexpr uint32_t kVsecPayload = 8;

// Power Management, version 3 (PCI PM 1.2): D0 and D3hot only, no PME.
// PMCSR power-state bits writable, PME status RW1C, No_Soft_Reset set
// because a D3hot -> D0 transition does not reset vfu device state.
Capability PowerManagement();

// MSI with `vectors` (1, 2, 4, .., 32) messages. Message control: enable and
// multiple-message-enable writable, multiple-message-capable read-only.
// Address (dword aligned) and 16-bit data writable; with `per_vector_mask`
// the mask bits of implemented vectors are writable and pending bits are
// read-only (the device model sets them with ConfigSpace::Set32).
absl::StatusOr<Capability> Msi(uint32_t vectors, bool address64, bool per_vector_mask);

// MSI-X with a table of `table_size` (1..2048) entries at `table_offset` in
// BAR `table_bar`, and the PBA at `pba_offset` in BAR `pba_bar`. Offsets must
// be 8-byte aligned and table and PBA must not overlap. Enable and function
// mask writable; everything else read-only.
absl::StatusOr<Capability> MsiX(uint16_t table_size, uint8_t table_bar, uint32_t table_offset,
                                uint8_t pba_bar, uint32_t pba_offset);

enum class PciExpressType : uint8_t {
  kEndpoint = 0x0,                       // PCI_EXP_TYPE_ENDPOINT
  kLegacyEndpoint = 0x1,                 // PCI_EXP_TYPE_LEG_END
  kRootComplexIntegratedEndpoint = 0x9,  // PCI_EXP_TYPE_RC_END: no link
};

struct PciExpressOptions {
  PciExpressType type = PciExpressType::kEndpoint;
  // Max_Payload_Size supported, bytes: a power of two in [128, 4096].
  uint32_t max_payload_size = 128;
  // Link speed as PCI_EXP_LNKCAP_SLS_* encodes it: 1 (2.5 GT/s) .. 6 (64 GT/s).
  uint8_t link_speed = 1;
  // Lanes: 1, 2, 4, 8, 12, 16 or 32.
  uint8_t link_width = 1;
};

// PCI Express capability, version 2, for an endpoint, advertising
// function-level reset (Initiate FLR reads 0; the device model acts on its
// write, see PciDevice). Device control:
// error-reporting enables, relaxed ordering, no snoop, max payload and max
// read request size writable (defaults as after reset: relaxed ordering and
// no snoop on, 512-byte read requests). Device status error bits RW1C.
// Link registers read-only and report the link trained at its maximum speed
// and width (all zero for a root-complex integrated endpoint).
absl::StatusOr<Capability> PciExpress(const PciExpressOptions& options = {});

// Vendor-specific capability carrying `payload` (at most 252 bytes, so the
// length byte fits) read-only.
absl::StatusOr<Capability> VendorSpecific(absl::Span<const uint8_t> payload);

// Device Serial Number extended capability (version 1), read-only.
ExtendedCapability DeviceSerialNumber(uint64_t serial);

// Vendor-specific extended capability (version 1) with VSEC ID `vsec_id`,
// revision `vsec_rev` (4 bits) and `payload` read-only; the VSEC length
// (8 + payload) must fit in 12 bits.
absl::StatusOr<ExtendedCapability> VendorSpecificExtended(uint16_t vsec_id, uint8_t vsec_rev,
                                                          absl::Span<const uint8_t> payload);

// MSI as the guest has programmed it.
struct MsiState {
  bool enabled = false;
  // Multiple Message Capable: what the capability offers.
  uint32_t vectors_capable = 0;
  // Multiple Message Enable: vectors software allocated, at most
  // vectors_capable.
  uint32_t vectors_enabled = 0;
  // Bit n masks vector n; 0 without per-vector masking.
  uint32_t mask_bits = 0;
  bool per_vector_mask = false;
};

// nullopt when the config space has no MSI capability.
std::optional<MsiState> ReadMsiState(const ConfigSpace& config);

// MSI-X as the guest has programmed it, and where its table and PBA live.
struct MsixState {
  bool enabled = false;
  bool function_masked = false;
  uint16_t table_size = 0;
  uint8_t table_bar = 0;
  uint32_t table_offset = 0;
  uint8_t pba_bar = 0;
  uint32_t pba_offset = 0;
};

// nullopt when the config space has no MSI-X capability.
std::optional<MsixState> ReadMsixState(const ConfigSpace& config);

// Checks that the MSI-X table and PBA lie inside implemented memory BARs
// of `config` (InvalidArgument naming the problem); OK without MSI-X.
absl::Status CheckMsixPlacement(const ConfigSpace& config);

}  // namespace vfu::pci

#endif  // VFU_PCI_CAPABILITIES_H_
