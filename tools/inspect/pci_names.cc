#include "tools/inspect/pci_names.h"

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace vfu::inspect {
namespace {

struct Name {
  uint32_t code;
  std::string_view name;
};

template <size_t N>
std::string_view Lookup(const Name (&table)[N], uint32_t code, std::string_view fallback) {
  for (const Name& entry : table) {
    if (entry.code == code) return entry.name;
  }
  return fallback;
}

// Base class (bits 23:16).
constexpr Name kBaseClasses[] = {
    {0x00, "Unclassified device"},
    {0x01, "Mass storage controller"},
    {0x02, "Network controller"},
    {0x03, "Display controller"},
    {0x04, "Multimedia controller"},
    {0x05, "Memory controller"},
    {0x06, "Bridge"},
    {0x07, "Communication controller"},
    {0x08, "Generic system peripheral"},
    {0x09, "Input device controller"},
    {0x0a, "Docking station"},
    {0x0b, "Processor"},
    {0x0c, "Serial bus controller"},
    {0x0d, "Wireless controller"},
    {0x0e, "Intelligent controller"},
    {0x0f, "Satellite communications controller"},
    {0x10, "Encryption controller"},
    {0x11, "Signal processing controller"},
    {0x12, "Processing accelerator"},
    {0x13, "Non-essential instrumentation"},
    {0x40, "Coprocessor"},
    {0xff, "Unassigned class"},
};

// Base and sub-class (bits 23:8).
constexpr Name kSubClasses[] = {
    {0x0000, "Non-VGA unclassified device"},
    {0x0001, "VGA compatible unclassified device"},
    {0x0100, "SCSI storage controller"},
    {0x0101, "IDE interface"},
    {0x0104, "RAID bus controller"},
    {0x0105, "ATA controller"},
    {0x0106, "SATA controller"},
    {0x0107, "Serial Attached SCSI controller"},
    {0x0108, "Non-volatile memory controller"},
    {0x0180, "Mass storage controller"},
    {0x0200, "Ethernet controller"},
    {0x0207, "InfiniBand controller"},
    {0x0280, "Network controller"},
    {0x0300, "VGA compatible controller"},
    {0x0302, "3D controller"},
    {0x0380, "Display controller"},
    {0x0401, "Multimedia audio controller"},
    {0x0403, "Audio device"},
    {0x0500, "RAM memory"},
    {0x0580, "Memory controller"},
    {0x0600, "Host bridge"},
    {0x0601, "ISA bridge"},
    {0x0604, "PCI bridge"},
    {0x0680, "Bridge"},
    {0x0700, "Serial controller"},
    {0x0780, "Communication controller"},
    {0x0880, "System peripheral"},
    {0x0c03, "USB controller"},
    {0x0c05, "SMBus"},
    {0x1000, "Network and computing encryption device"},
    {0x1200, "Processing accelerator"},
};

// Full class codes whose programming interface has a well-known name.
constexpr Name kInterfaces[] = {
    {0x010802, "NVM Express"},
    {0x010601, "AHCI 1.0"},
    {0x0c0330, "xHCI"},
};

constexpr Name kCapabilities[] = {
    {PCI_CAP_ID_PM, "Power Management"},
    {PCI_CAP_ID_AGP, "AGP"},
    {PCI_CAP_ID_VPD, "Vital Product Data"},
    {PCI_CAP_ID_SLOTID, "Slot Identification"},
    {PCI_CAP_ID_MSI, "MSI"},
    {PCI_CAP_ID_CHSWP, "CompactPCI Hot Swap"},
    {PCI_CAP_ID_PCIX, "PCI-X"},
    {PCI_CAP_ID_HT, "HyperTransport"},
    {PCI_CAP_ID_VNDR, "Vendor Specific"},
    {PCI_CAP_ID_DBG, "Debug Port"},
    {PCI_CAP_ID_CCRC, "CompactPCI Central Resource Control"},
    {PCI_CAP_ID_SHPC, "Hot-Plug Controller"},
    {PCI_CAP_ID_SSVID, "Bridge Subsystem IDs"},
    {PCI_CAP_ID_AGP3, "AGP 8x"},
    {PCI_CAP_ID_SECDEV, "Secure Device"},
    {PCI_CAP_ID_EXP, "PCI Express"},
    {PCI_CAP_ID_MSIX, "MSI-X"},
    {PCI_CAP_ID_SATA, "SATA Configuration"},
    {PCI_CAP_ID_AF, "Advanced Features"},
    {PCI_CAP_ID_EA, "Enhanced Allocation"},
};

constexpr Name kExtendedCapabilities[] = {
    {PCI_EXT_CAP_ID_ERR, "Advanced Error Reporting"},
    {PCI_EXT_CAP_ID_VC, "Virtual Channel"},
    {PCI_EXT_CAP_ID_DSN, "Device Serial Number"},
    {PCI_EXT_CAP_ID_PWR, "Power Budgeting"},
    {PCI_EXT_CAP_ID_RCLD, "Root Complex Link Declaration"},
    {PCI_EXT_CAP_ID_RCILC, "Root Complex Internal Link Control"},
    {PCI_EXT_CAP_ID_RCEC, "Root Complex Event Collector"},
    {PCI_EXT_CAP_ID_MFVC, "Multi-Function Virtual Channel"},
    {PCI_EXT_CAP_ID_VC9, "Virtual Channel"},
    {PCI_EXT_CAP_ID_RCRB, "Root Complex Register Block"},
    {PCI_EXT_CAP_ID_VNDR, "Vendor Specific"},
    {PCI_EXT_CAP_ID_ACS, "Access Control Services"},
    {PCI_EXT_CAP_ID_ARI, "Alternative Routing-ID Interpretation"},
    {PCI_EXT_CAP_ID_ATS, "Address Translation Services"},
    {PCI_EXT_CAP_ID_SRIOV, "Single Root I/O Virtualization"},
    {PCI_EXT_CAP_ID_MRIOV, "Multi-Root I/O Virtualization"},
    {PCI_EXT_CAP_ID_MCAST, "Multicast"},
    {PCI_EXT_CAP_ID_PRI, "Page Request Interface"},
    {PCI_EXT_CAP_ID_REBAR, "Resizable BAR"},
    {PCI_EXT_CAP_ID_DPA, "Dynamic Power Allocation"},
    {PCI_EXT_CAP_ID_TPH, "TPH Requester"},
    {PCI_EXT_CAP_ID_LTR, "Latency Tolerance Reporting"},
    {PCI_EXT_CAP_ID_SECPCI, "Secondary PCI Express"},
    {PCI_EXT_CAP_ID_PMUX, "Protocol Multiplexing"},
    {PCI_EXT_CAP_ID_PASID, "Process Address Space ID"},
    {PCI_EXT_CAP_ID_DPC, "Downstream Port Containment"},
    {PCI_EXT_CAP_ID_L1SS, "L1 PM Substates"},
    {PCI_EXT_CAP_ID_PTM, "Precision Time Measurement"},
    {PCI_EXT_CAP_ID_DVSEC, "Designated Vendor-Specific"},
    {PCI_EXT_CAP_ID_DLF, "Data Link Feature"},
    {PCI_EXT_CAP_ID_PL_16GT, "Physical Layer 16.0 GT/s"},
    {PCI_EXT_CAP_ID_DOE, "Data Object Exchange"},
};

constexpr Name kExpressTypes[] = {
    {PCI_EXP_TYPE_ENDPOINT, "Endpoint"},
    {PCI_EXP_TYPE_LEG_END, "Legacy Endpoint"},
    {PCI_EXP_TYPE_ROOT_PORT, "Root Port"},
    {PCI_EXP_TYPE_UPSTREAM, "Upstream Port"},
    {PCI_EXP_TYPE_DOWNSTREAM, "Downstream Port"},
    {PCI_EXP_TYPE_PCI_BRIDGE, "PCI Express to PCI/PCI-X Bridge"},
    {PCI_EXP_TYPE_PCIE_BRIDGE, "PCI/PCI-X to PCI Express Bridge"},
    {PCI_EXP_TYPE_RC_END, "Root Complex Integrated Endpoint"},
    {PCI_EXP_TYPE_RC_EC, "Root Complex Event Collector"},
};

constexpr Name kLinkSpeeds[] = {
    {PCI_EXP_LNKCAP_SLS_2_5GB, "2.5GT/s"}, {PCI_EXP_LNKCAP_SLS_5_0GB, "5GT/s"},
    {PCI_EXP_LNKCAP_SLS_8_0GB, "8GT/s"},   {PCI_EXP_LNKCAP_SLS_16_0GB, "16GT/s"},
    {PCI_EXP_LNKCAP_SLS_32_0GB, "32GT/s"}, {PCI_EXP_LNKCAP_SLS_64_0GB, "64GT/s"},
};

constexpr Name kIrqIndexes[] = {
    {VFIO_PCI_INTX_IRQ_INDEX, "INTx"}, {VFIO_PCI_MSI_IRQ_INDEX, "MSI"},
    {VFIO_PCI_MSIX_IRQ_INDEX, "MSI-X"}, {VFIO_PCI_ERR_IRQ_INDEX, "ERR"},
    {VFIO_PCI_REQ_IRQ_INDEX, "REQ"},
};

}  // namespace

std::string ClassName(uint32_t class_code) {
  const std::string_view sub = Lookup(kSubClasses, class_code >> 8, "");
  if (sub.empty()) return std::string(Lookup(kBaseClasses, class_code >> 16, "Unknown class"));
  const std::string_view interface = Lookup(kInterfaces, class_code, "");
  if (interface.empty()) return std::string(sub);
  return std::string(sub) + " (" + std::string(interface) + ")";
}

std::string_view CapabilityName(uint8_t id) { return Lookup(kCapabilities, id, "Unknown"); }

std::string_view ExtendedCapabilityName(uint16_t id) {
  return Lookup(kExtendedCapabilities, id, "Unknown");
}

std::string_view ExpressTypeName(uint8_t type) {
  return Lookup(kExpressTypes, type, "Unknown type");
}

std::string_view LinkSpeedName(uint32_t encoding) {
  return Lookup(kLinkSpeeds, encoding, "unknown");
}

std::string_view IrqIndexName(uint32_t index) { return Lookup(kIrqIndexes, index, "IRQ"); }

}  // namespace vfu::inspect
