// DecodeConfigSpace: a PCI configuration space image, as read from a
// vfio-user device's region 7, decoded into plain structs.
//
//   VFU_ASSIGN_OR_RETURN(ConfigSpaceInfo info, DecodeConfigSpace(bytes));
//   if (const MsixCapability* msix = info.Find<MsixCapability>()) ...
//
// The image may come from any implementation, so nothing in it is trusted:
// both capability chains are walked with loop detection and bounds checks,
// and a chain that points into the header, past the end of its area or back
// to an offset already visited ends the walk with an entry in `warnings`.
// Capabilities whose registers do not fit in their area are listed with
// their raw bytes only. Decoding never reads outside `bytes` and never
// fails once the 64-byte header is present.
//
// Register layouts are the <linux/pci_regs.h> ones. Pure functions; no
// state.
#ifndef VFU_TOOLS_INSPECT_CONFIG_DECODER_H_
#define VFU_TOOLS_INSPECT_CONFIG_DECODER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace vfu::inspect {

inline constexpr uint32_t kConfigHeaderSize = 64;
inline constexpr uint32_t kConventionalConfigSize = 256;
inline constexpr uint32_t kExpressConfigSize = 4096;
// Raw bytes kept per capability (for unknown IDs and hex listings).
inline constexpr uint32_t kMaxRawCapabilityBytes = 64;

// One base address register slot as config space describes it. Sizes are
// not here: they come from the vfio region info, never from writing the
// register.
struct ConfigBar {
  enum class Kind {
    kIo,
    kMemory32,
    kMemoryBelow1M,  // legacy type 01
    kMemory64,
    kMemoryReserved,  // type 11, undefined by PCI
    kUpperHalf,       // the high dword of the 64-bit BAR in the slot below
  };
  int index = 0;
  Kind kind = Kind::kMemory32;
  bool prefetchable = false;
  // Flag bits removed; both halves combined for a 64-bit BAR.
  uint64_t address = 0;
  uint32_t raw = 0;
};

struct ExpansionRom {
  uint32_t raw = 0;
  uint32_t address = 0;  // bits 31:11
  bool enabled = false;
};

// PCI_CAP_ID_PM.
struct PowerManagementCapability {
  uint8_t version = 0;
  bool pme_clock = false;
  bool device_specific_init = false;
  uint8_t aux_current = 0;  // 3-bit encoding
  bool d1 = false;
  bool d2 = false;
  // PME support: bit 0 D0, 1 D1, 2 D2, 3 D3hot, 4 D3cold.
  uint8_t pme_support = 0;
  uint8_t power_state = 0;  // 0..3 = D0..D3hot
  bool no_soft_reset = false;
  bool pme_enable = false;
  uint8_t data_select = 0;
  uint8_t data_scale = 0;
  bool pme_status = false;
};

// PCI_CAP_ID_MSI.
struct MsiCapability {
  bool enabled = false;
  uint32_t vectors_capable = 1;  // 1 << Multiple Message Capable
  uint32_t vectors_enabled = 1;  // 1 << Multiple Message Enable
  bool address64 = false;
  bool per_vector_mask = false;
  uint64_t address = 0;
  uint16_t data = 0;
  // Only with per_vector_mask.
  uint32_t mask = 0;
  uint32_t pending = 0;
};

// PCI_CAP_ID_MSIX.
struct MsixCapability {
  uint32_t table_size = 0;  // entries (the register holds N - 1)
  bool enabled = false;
  bool function_masked = false;
  uint8_t table_bar = 0;
  uint32_t table_offset = 0;
  uint8_t pba_bar = 0;
  uint32_t pba_offset = 0;
};

// PCI_CAP_ID_EXP: the registers every function has, plus the link
// registers when the port type has a link and they fit.
struct ExpressCapability {
  uint8_t version = 0;
  uint8_t type = 0;  // PCI_EXP_TYPE_*
  bool slot_implemented = false;
  uint8_t interrupt_message = 0;
  uint32_t device_capabilities = 0;
  uint16_t device_control = 0;
  uint16_t device_status = 0;
  bool has_link = false;
  uint32_t link_capabilities = 0;
  uint16_t link_control = 0;
  uint16_t link_status = 0;
};

// PCI_CAP_ID_VNDR: the length byte (whole capability) and what follows it.
struct VendorCapability {
  uint8_t length = 0;
  std::vector<uint8_t> payload;
};

struct Capability {
  uint16_t offset = 0;
  uint8_t id = 0;
  uint8_t next = 0;
  // From the ID byte up to the next capability in config space (or the end
  // of the area), at most kMaxRawCapabilityBytes.
  std::vector<uint8_t> raw;
  // monostate: an unknown ID, or registers that did not fit.
  std::variant<std::monostate, PowerManagementCapability, MsiCapability, MsixCapability,
               ExpressCapability, VendorCapability>
      body;
};

// PCI_EXT_CAP_ID_DSN.
struct SerialNumberCapability {
  uint64_t serial = 0;
};

// PCI_EXT_CAP_ID_VNDR.
struct VendorExtendedCapability {
  uint16_t vsec_id = 0;
  uint8_t vsec_rev = 0;
  uint16_t vsec_length = 0;  // whole capability, header included
  std::vector<uint8_t> payload;
};

struct ExtendedCapability {
  uint16_t offset = 0;
  uint16_t id = 0;
  uint8_t version = 0;
  uint16_t next = 0;
  std::vector<uint8_t> raw;
  std::variant<std::monostate, SerialNumberCapability, VendorExtendedCapability> body;
};

namespace internal {
template <typename T, typename V>
struct IsAlternative;
template <typename T, typename... Ts>
struct IsAlternative<T, std::variant<Ts...>> : std::disjunction<std::is_same<T, Ts>...> {};
}  // namespace internal

struct ConfigSpaceInfo {
  // Bytes decoded: the image's size, at most 4096.
  uint32_t size = 0;

  uint16_t vendor_id = 0;
  uint16_t device_id = 0;
  uint16_t command = 0;
  uint16_t status = 0;
  uint8_t revision = 0;
  uint32_t class_code = 0;  // base << 16 | sub << 8 | prog-if
  uint8_t cache_line_size = 0;
  uint8_t latency_timer = 0;
  uint8_t header_type = 0;  // layout, multi-function bit removed
  bool multifunction = false;
  uint8_t bist = 0;

  // Six slots for a type-0 header, two for a bridge, none otherwise.
  std::vector<ConfigBar> bars;
  // Type 0 and 1 only.
  std::optional<ExpansionRom> rom;
  // Type 0 only (0 otherwise).
  uint16_t subsystem_vendor_id = 0;
  uint16_t subsystem_id = 0;

  uint8_t capabilities_pointer = 0;
  uint8_t interrupt_line = 0;
  uint8_t interrupt_pin = 0;
  uint8_t min_grant = 0;
  uint8_t max_latency = 0;

  // In chain order.
  std::vector<Capability> capabilities;
  std::vector<ExtendedCapability> extended_capabilities;

  // Everything odd about the image, one sentence each.
  std::vector<std::string> warnings;

  bool has_extended_space() const { return size > kConventionalConfigSize; }

  // The first capability whose body is a T, or null.
  template <typename T>
  const T* Find() const {
    if constexpr (internal::IsAlternative<T, decltype(Capability::body)>::value) {
      for (const Capability& cap : capabilities) {
        if (const T* body = std::get_if<T>(&cap.body)) return body;
      }
    } else {
      for (const ExtendedCapability& cap : extended_capabilities) {
        if (const T* body = std::get_if<T>(&cap.body)) return body;
      }
    }
    return nullptr;
  }
};

// Decodes `config` (bytes past 4096 are ignored). InvalidArgument when it
// is shorter than the 64-byte header; everything else is decoded as far as
// it makes sense and reported in `warnings`.
absl::StatusOr<ConfigSpaceInfo> DecodeConfigSpace(absl::Span<const uint8_t> config);

// Express capability fields in units people read.
uint32_t MaxPayloadSupportedBytes(const ExpressCapability& express);
uint32_t MaxPayloadBytes(const ExpressCapability& express);
uint32_t MaxReadRequestBytes(const ExpressCapability& express);
bool ExpressTypeHasLink(uint8_t type);

}  // namespace vfu::inspect

#endif  // VFU_TOOLS_INSPECT_CONFIG_DECODER_H_
