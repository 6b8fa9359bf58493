// Human names for PCI numbers: class codes, capability IDs, PCI Express
// port types, link speeds and vfio IRQ indexes. The tables are short on
// purpose: common classes and the capabilities vfio-user devices carry;
// anything else gets a generic name and its number stays visible.
#ifndef VFU_TOOLS_INSPECT_PCI_NAMES_H_
#define VFU_TOOLS_INSPECT_PCI_NAMES_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace vfu::inspect {

// The most specific name known for a 24-bit class code (base, sub-class,
// programming interface): "Non-volatile memory controller (NVM Express)",
// else the base class ("Mass storage controller"), else "Unknown class".
std::string ClassName(uint32_t class_code);

// "MSI-X", "Power Management", ...; "Unknown" for IDs not listed.
std::string_view CapabilityName(uint8_t id);
std::string_view ExtendedCapabilityName(uint16_t id);

// PCI_EXP_TYPE_* as words ("Endpoint", "Root Complex Integrated Endpoint").
std::string_view ExpressTypeName(uint8_t type);

// PCI_EXP_LNKCAP_SLS_* / PCI_EXP_LNKSTA_CLS_* encodings: "2.5GT/s" .. "64GT/s",
// "unknown" otherwise.
std::string_view LinkSpeedName(uint32_t encoding);

// VFIO_PCI_*_IRQ_INDEX: "INTx", "MSI", "MSI-X", "ERR", "REQ", else "IRQ".
std::string_view IrqIndexName(uint32_t index);

}  // namespace vfu::inspect

#endif  // VFU_TOOLS_INSPECT_PCI_NAMES_H_
