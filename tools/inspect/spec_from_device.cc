#include "tools/inspect/spec_from_device.h"

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/text_format.h"
#include "tools/inspect/config_decoder.h"
#include "tools/inspect/pci_names.h"
#include "vfu/base/status_macros.h"

namespace vfu::inspect {
namespace {

constexpr uint32_t kFirstDeviceSpecificRegion = VFIO_PCI_NUM_REGIONS;

std::string SocketStem(const std::string& path) {
  std::string name = path.substr(path.find_last_of('/') + 1);
  const size_t dot = name.find_last_of('.');
  if (dot != std::string::npos && dot > 0) name.resize(dot);
  return name;
}

std::string AsBytes(const std::vector<uint8_t>& bytes) {
  return std::string(bytes.begin(), bytes.end());
}

void FillRegionAccess(const RegionSnapshot& r, proto::Region& out) {
  out.set_index(r.index);
  out.set_size(r.info.size);
  out.set_readable((r.info.flags & VFIO_REGION_INFO_FLAG_READ) != 0);
  out.set_writable((r.info.flags & VFIO_REGION_INFO_FLAG_WRITE) != 0);
  if (r.info.sparse_mmap.has_value()) {
    for (const wire::SparseMmapArea& area : *r.info.sparse_mmap) {
      proto::MmapArea* a = out.add_mmap_areas();
      a->set_offset(area.offset);
      a->set_size(area.size);
    }
  } else if (r.info.flags & VFIO_REGION_INFO_FLAG_MMAP) {
    // Mappable without a sparse list: the whole region.
    proto::MmapArea* a = out.add_mmap_areas();
    a->set_offset(0);
    a->set_size(r.info.size);
  }
}

void AddBar(const RegionSnapshot& r, const ConfigSpaceInfo& config, SpecResult& result) {
  proto::Region& out = *result.spec.add_regions();
  FillRegionAccess(r, out);
  if (r.index >= config.bars.size()) return;
  const ConfigBar& bar = config.bars[r.index];
  switch (bar.kind) {
    case ConfigBar::Kind::kIo:
      out.set_kind(proto::Region::IO);
      return;
    case ConfigBar::Kind::kMemory64:
      out.set_kind(proto::Region::MEMORY64);
      break;
    case ConfigBar::Kind::kMemory32:
      out.set_kind(proto::Region::MEMORY32);
      break;
    case ConfigBar::Kind::kMemoryBelow1M:
    case ConfigBar::Kind::kMemoryReserved:
    case ConfigBar::Kind::kUpperHalf:
      out.set_kind(proto::Region::MEMORY32);
      result.notes.push_back(absl::StrFormat(
          "region %d: BAR register 0x%08x has no DeviceSpec kind; written as MEMORY32", r.index,
          bar.raw));
      break;
  }
  out.set_prefetchable(bar.prefetchable);
}

void AddRegions(const DeviceSnapshot& device, const ConfigSpaceInfo& config, SpecResult& result) {
  for (const RegionSnapshot& r : device.regions) {
    if (!r.implemented()) continue;
    if (r.index < PCI_STD_NUM_BARS) {
      AddBar(r, config, result);
    } else if (r.index == VFIO_PCI_ROM_REGION_INDEX) {
      FillRegionAccess(r, *result.spec.add_regions());
    } else if (r.index >= kFirstDeviceSpecificRegion) {
      proto::Region& out = *result.spec.add_regions();
      FillRegionAccess(r, out);
      if (r.info.type.has_value()) {
        out.set_type(r.info.type->type);
        out.set_subtype(r.info.type->subtype);
      } else {
        result.notes.push_back(
            absl::StrFormat("region %d: device-specific region without a type", r.index));
      }
    } else if (r.index == VFIO_PCI_VGA_REGION_INDEX) {
      result.notes.push_back("the VGA region (8) is implemented; DeviceSpec has no VGA");
    }
    if (r.info.msix_mappable) {
      result.notes.push_back(
          absl::StrFormat("region %d: MSIX_MAPPABLE is not expressible", r.index));
    }
  }
}

void AddInterrupts(const DeviceSnapshot& device, const ConfigSpaceInfo& config,
                   SpecResult& result) {
  proto::Interrupts& irq = *result.spec.mutable_interrupts();
  irq.set_intx(device.irq_count(VFIO_PCI_INTX_IRQ_INDEX) > 0);
  if (const MsiCapability* msi = config.Find<MsiCapability>()) {
    irq.set_msi_vectors(msi->vectors_capable);
    irq.set_msi_64bit(msi->address64);
    irq.set_msi_per_vector_mask(msi->per_vector_mask);
  } else if (uint32_t count = device.irq_count(VFIO_PCI_MSI_IRQ_INDEX); count > 0) {
    irq.set_msi_vectors(count);
    result.notes.push_back("MSI vectors taken from IRQ info: there is no MSI capability");
  }
  if (const MsixCapability* msix = config.Find<MsixCapability>()) {
    irq.set_msix_vectors(msix->table_size);
    irq.set_msix_bar(msix->table_bar);
    irq.set_msix_table_offset(msix->table_offset);
    irq.set_msix_pba_offset(msix->pba_offset);
    if (msix->pba_bar != msix->table_bar) {
      result.notes.push_back(absl::StrFormat(
          "MSI-X PBA is in BAR %d, the table in BAR %d; DeviceSpec puts both in msix_bar",
          msix->pba_bar, msix->table_bar));
    }
  } else if (uint32_t count = device.irq_count(VFIO_PCI_MSIX_IRQ_INDEX); count > 0) {
    result.notes.push_back(absl::StrFormat(
        "IRQ info reports %d MSI-X vectors, but there is no MSI-X capability to place them",
        count));
  }
  irq.set_err(device.irq_count(VFIO_PCI_ERR_IRQ_INDEX) > 0);
  irq.set_req(device.irq_count(VFIO_PCI_REQ_IRQ_INDEX) > 0);
}

void AddCapabilities(const ConfigSpaceInfo& config, SpecResult& result) {
  proto::DeviceSpec& spec = result.spec;
  // Absent means present in a DeviceSpec, so say so either way.
  spec.set_power_management(false);
  for (const Capability& cap : config.capabilities) {
    if (std::holds_alternative<PowerManagementCapability>(cap.body)) {
      spec.set_power_management(true);
    } else if (const auto* vendor = std::get_if<VendorCapability>(&cap.body)) {
      spec.add_vendor_capabilities()->set_payload(AsBytes(vendor->payload));
    } else if (std::holds_alternative<MsiCapability>(cap.body) ||
               std::holds_alternative<MsixCapability>(cap.body) ||
               std::holds_alternative<ExpressCapability>(cap.body)) {
      // Carried by interrupts and express.
    } else {
      result.notes.push_back(absl::StrFormat("capability %s (0x%02x) at 0x%02x is not expressible",
                                             CapabilityName(cap.id), cap.id, cap.offset));
    }
  }
  for (const ExtendedCapability& cap : config.extended_capabilities) {
    if (const auto* dsn = std::get_if<SerialNumberCapability>(&cap.body)) {
      spec.set_serial_number(dsn->serial);
    } else if (const auto* vsec = std::get_if<VendorExtendedCapability>(&cap.body)) {
      proto::VendorExtendedCapability& out = *spec.add_vendor_extended_capabilities();
      out.set_vsec_id(vsec->vsec_id);
      out.set_vsec_rev(vsec->vsec_rev);
      out.set_payload(AsBytes(vsec->payload));
    } else {
      result.notes.push_back(absl::StrFormat(
          "extended capability %s (0x%04x) at 0x%03x is not expressible",
          ExtendedCapabilityName(cap.id), cap.id, cap.offset));
    }
  }
}

using google::protobuf::TextFormat;

// IDs, sizes and offsets read best in hex; text format parses it back.
class HexPrinter : public TextFormat::FastFieldValuePrinter {
 public:
  void PrintUInt32(uint32_t value, TextFormat::BaseTextGenerator* out) const override {
    out->PrintString(absl::StrFormat("0x%x", value));
  }
  void PrintUInt64(uint64_t value, TextFormat::BaseTextGenerator* out) const override {
    out->PrintString(absl::StrFormat("0x%x", value));
  }
};

// Payload bytes as \xHH escapes rather than octal ones.
class BytesPrinter : public TextFormat::FastFieldValuePrinter {
 public:
  void PrintBytes(const std::string& value, TextFormat::BaseTextGenerator* out) const override {
    out->PrintString(absl::StrCat("\"", absl::CHexEscape(value), "\""));
  }
};

void UseHex(TextFormat::Printer& printer, const google::protobuf::Descriptor* message,
            std::initializer_list<const char*> fields) {
  for (const char* name : fields) {
    // The printer takes ownership of each registered printer.
    printer.RegisterFieldValuePrinter(message->FindFieldByName(name), new HexPrinter());
  }
}

}  // namespace

absl::StatusOr<SpecResult> SpecFromDevice(const DeviceSnapshot& device) {
  if (!device.config_status.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("config space unavailable: ", device.config_status.message()));
  }
  absl::StatusOr<ConfigSpaceInfo> config = DecodeConfigSpace(device.config);
  if (!config.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("config space undecodable: ", config.status().message()));
  }
  SpecResult result;
  proto::DeviceSpec& spec = result.spec;
  spec.set_name(SocketStem(device.socket_path));
  proto::PciIdentity& id = *spec.mutable_identity();
  id.set_vendor_id(config->vendor_id);
  id.set_device_id(config->device_id);
  id.set_subsystem_vendor_id(config->subsystem_vendor_id);
  id.set_subsystem_id(config->subsystem_id);
  id.set_class_code(config->class_code);
  id.set_revision(config->revision);

  const bool express_cap = config->Find<ExpressCapability>() != nullptr;
  spec.set_express(express_cap);
  if (express_cap && !config->has_extended_space()) {
    result.notes.push_back("PCI Express capability in a 256-byte config space");
  } else if (!express_cap && config->has_extended_space()) {
    result.notes.push_back("4 KiB config space without a PCI Express capability");
  }
  if (config->header_type != PCI_HEADER_TYPE_NORMAL) {
    result.notes.push_back(
        absl::StrFormat("header type %d; DeviceSpec describes type-0 functions", config->header_type));
  }

  AddRegions(device, *config, result);
  AddInterrupts(device, *config, result);
  AddCapabilities(*config, result);
  for (const std::string& warning : config->warnings) {
    result.notes.push_back(absl::StrCat("config space: ", warning));
  }
  return result;
}

std::string FormatSpecText(const DeviceSnapshot& device, const SpecResult& result) {
  std::string out = absl::StrCat("# vfu.proto.DeviceSpec of ", device.socket_path, "\n");
  for (const std::string& note : result.notes) absl::StrAppend(&out, "# note: ", note, "\n");
  TextFormat::Printer printer;
  printer.SetDefaultFieldValuePrinter(new BytesPrinter());
  UseHex(printer, proto::PciIdentity::descriptor(),
         {"vendor_id", "device_id", "subsystem_vendor_id", "subsystem_id", "class_code",
          "revision"});
  UseHex(printer, proto::Region::descriptor(), {"size", "type", "subtype"});
  UseHex(printer, proto::MmapArea::descriptor(), {"offset", "size"});
  UseHex(printer, proto::Interrupts::descriptor(), {"msix_table_offset", "msix_pba_offset"});
  UseHex(printer, proto::DeviceSpec::descriptor(), {"serial_number"});
  UseHex(printer, proto::VendorExtendedCapability::descriptor(), {"vsec_id"});
  std::string text;
  printer.PrintToString(result.spec, &text);
  return out + text;
}

}  // namespace vfu::inspect
