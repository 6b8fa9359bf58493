#include "vfu/device/device_spec_builder.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "vfu/base/status_macros.h"
#include "vfu/pci/capabilities.h"

namespace vfu {
namespace {

constexpr uint32_t kNumBars = 6;
constexpr uint32_t kMaxMsiVectors = 32;
constexpr uint32_t kMaxMsixVectors = 2048;
constexpr uint32_t kMaxVsecRevision = 15;

absl::Status Invalid(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

absl::Status CheckFits(uint64_t value, int bits, absl::string_view field) {
  if ((value >> bits) != 0) {
    return Invalid(absl::StrCat(field, " 0x", absl::Hex(value), " does not fit in ", bits,
                                " bits"));
  }
  return absl::OkStatus();
}

absl::StatusOr<pci::Identity> ConvertIdentity(const proto::PciIdentity& id) {
  VFU_RETURN_IF_ERROR(CheckFits(id.vendor_id(), 16, "identity.vendor_id"));
  VFU_RETURN_IF_ERROR(CheckFits(id.device_id(), 16, "identity.device_id"));
  VFU_RETURN_IF_ERROR(CheckFits(id.subsystem_vendor_id(), 16, "identity.subsystem_vendor_id"));
  VFU_RETURN_IF_ERROR(CheckFits(id.subsystem_id(), 16, "identity.subsystem_id"));
  VFU_RETURN_IF_ERROR(CheckFits(id.class_code(), 24, "identity.class_code"));
  VFU_RETURN_IF_ERROR(CheckFits(id.revision(), 8, "identity.revision"));
  if (id.vendor_id() == 0xffff) {
    return Invalid("identity.vendor_id 0xffff reads as \"no device\" on PCI");
  }
  return pci::Identity{.vendor_id = static_cast<uint16_t>(id.vendor_id()),
                       .device_id = static_cast<uint16_t>(id.device_id()),
                       .subsystem_vendor_id = static_cast<uint16_t>(id.subsystem_vendor_id()),
                       .subsystem_id = static_cast<uint16_t>(id.subsystem_id()),
                       .class_code = id.class_code(),
                       .revision = static_cast<uint8_t>(id.revision())};
}

absl::StatusOr<pci::BarKind> ConvertKind(proto::Region::BarKind kind, uint32_t index) {
  switch (kind) {
    case proto::Region::MEMORY32:
      return pci::BarKind::kMemory32;
    case proto::Region::MEMORY64:
      return pci::BarKind::kMemory64;
    case proto::Region::IO:
      return pci::BarKind::kIo;
    default:
      return Invalid(absl::StrCat("region ", index, ": unknown kind ", static_cast<int>(kind)));
  }
}

// One region, its index already checked to be a BAR, the ROM or
// device-specific.
absl::StatusOr<RegionSpec> ConvertRegion(const proto::Region& region) {
  const uint32_t index = region.index();
  const bool bar = index < kNumBars;
  const bool device_specific = index >= kFirstDeviceSpecificRegion;
  if (region.size() == 0) {
    return Invalid(absl::StrCat("region ", index,
                                ": size 0 (leave unimplemented regions out of the spec)"));
  }
  RegionSpec out;
  out.size = region.size();
  out.readable = region.readable();
  out.writable = region.writable();
  out.backed_by_memory = true;
  VFU_ASSIGN_OR_RETURN(out.kind, ConvertKind(region.kind(), index));
  out.prefetchable = region.prefetchable();
  if (!bar && (region.kind() != proto::Region::MEMORY32 || region.prefetchable())) {
    return Invalid(absl::StrCat("region ", index, ": kind and prefetchable apply to BARs only"));
  }
  if (index == kRomRegion && region.writable()) {
    return Invalid("region 6 (expansion ROM) is read-only: writable must be false");
  }
  if (!device_specific && (region.type() != 0 || region.subtype() != 0)) {
    return Invalid(absl::StrCat("region ", index,
                                ": type and subtype apply to device-specific regions (>= 9)"));
  }
  if (device_specific) {
    if (region.type() == 0) {
      return Invalid(absl::StrCat("device-specific region ", index,
                                  " needs a VFIO region type (type 0 is undefined)"));
    }
    out.type = wire::RegionType{.type = region.type(), .subtype = region.subtype()};
  }
  for (const proto::MmapArea& area : region.mmap_areas()) {
    out.mmap_areas.push_back({.offset = area.offset(), .size = area.size()});
  }
  return out;
}

absl::Status ConvertRegions(const proto::DeviceSpec& spec, PciDeviceSpec& out) {
  std::vector<const proto::Region*> device_regions;
  std::vector<bool> seen_low(kFirstDeviceSpecificRegion, false);
  for (const proto::Region& region : spec.regions()) {
    const uint32_t index = region.index();
    if (index == kConfigRegion || index == kVgaRegion) {
      return Invalid(absl::StrCat("region ", index, " is the framework's (",
                                  index == kConfigRegion ? "config space" : "VGA",
                                  "); use indexes 0-6 or >= 9"));
    }
    if (index < kFirstDeviceSpecificRegion) {
      if (seen_low[index]) return Invalid(absl::StrCat("region ", index, " appears twice"));
      seen_low[index] = true;
    } else {
      device_regions.push_back(&region);
    }
  }
  std::sort(device_regions.begin(), device_regions.end(),
            [](const proto::Region* a, const proto::Region* b) { return a->index() < b->index(); });
  for (size_t i = 0; i < device_regions.size(); ++i) {
    const uint32_t expected = kFirstDeviceSpecificRegion + static_cast<uint32_t>(i);
    if (device_regions[i]->index() == expected) continue;
    if (i > 0 && device_regions[i]->index() == device_regions[i - 1]->index()) {
      return Invalid(absl::StrCat("region ", device_regions[i]->index(), " appears twice"));
    }
    return Invalid(absl::StrCat("device-specific regions are numbered 9, 10, ... without gaps: ",
                                "region ", expected, " is missing"));
  }

  for (const proto::Region& region : spec.regions()) {
    const uint32_t index = region.index();
    if (index >= kFirstDeviceSpecificRegion) continue;
    VFU_ASSIGN_OR_RETURN(RegionSpec converted, ConvertRegion(region));
    (index == kRomRegion ? out.rom : out.bars[index]) = std::move(converted);
  }
  for (const proto::Region* region : device_regions) {
    VFU_ASSIGN_OR_RETURN(RegionSpec converted, ConvertRegion(*region));
    out.device_regions.push_back(std::move(converted));
  }

  // A 64-bit BAR takes the next slot for its upper half.
  for (uint32_t i = 0; i < kNumBars; ++i) {
    if (out.bars[i].size == 0 || out.bars[i].kind != pci::BarKind::kMemory64) continue;
    if (i + 1 == kNumBars) return Invalid("region 5: a 64-bit BAR cannot start in the last slot");
    if (out.bars[i + 1].size != 0) {
      return Invalid(absl::StrCat("region ", i + 1, " is the upper half of 64-bit BAR ", i,
                                  " and cannot be described itself"));
    }
    ++i;
  }
  return absl::OkStatus();
}

absl::StatusOr<InterruptSpec> ConvertInterrupts(const proto::Interrupts& irq) {
  const uint32_t msi = irq.msi_vectors();
  if (msi > kMaxMsiVectors || (msi & (msi - 1)) != 0) {
    return Invalid(absl::StrCat("interrupts.msi_vectors ", msi,
                                ": must be 0 or a power of two up to 32"));
  }
  if (irq.msix_vectors() > kMaxMsixVectors) {
    return Invalid(absl::StrCat("interrupts.msix_vectors ", irq.msix_vectors(),
                                ": at most 2048"));
  }
  if (irq.msix_vectors() != 0 && irq.msix_bar() >= kNumBars) {
    return Invalid(absl::StrCat("interrupts.msix_bar ", irq.msix_bar(), ": must be a BAR (0-5)"));
  }
  return InterruptSpec{.intx = irq.intx(),
                       .msi_vectors = msi,
                       .msi_64bit = !irq.has_msi_64bit() || irq.msi_64bit(),
                       .msi_per_vector_mask = !irq.has_msi_per_vector_mask() || irq.msi_per_vector_mask(),
                       .msix_vectors = static_cast<uint16_t>(irq.msix_vectors()),
                       .msix_bar = static_cast<uint8_t>(irq.msix_bar()),
                       .msix_table_offset = irq.msix_table_offset(),
                       .msix_pba_offset = irq.msix_pba_offset(),
                       .err = irq.err(),
                       .req = irq.req()};
}

// Prefixes a builder's InvalidArgument with the field it came from.
absl::Status InField(const absl::Status& status, absl::string_view field) {
  return absl::Status(status.code(), absl::StrCat(field, ": ", status.message()));
}

absl::Status ConvertCapabilities(const proto::DeviceSpec& spec, PciDeviceSpec& out) {
  if (!spec.express() &&
      (spec.has_serial_number() || !spec.vendor_extended_capabilities().empty())) {
    return Invalid(
        "serial_number and vendor_extended_capabilities need express (4 KiB config space)");
  }
  for (int i = 0; i < spec.vendor_capabilities_size(); ++i) {
    const std::string& payload = spec.vendor_capabilities(i).payload();
    absl::StatusOr<pci::Capability> cap = pci::VendorSpecific(
        absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(payload.data()), payload.size()));
    if (!cap.ok()) return InField(cap.status(), absl::StrCat("vendor_capabilities[", i, "]"));
    out.capabilities.push_back(*std::move(cap));
  }
  for (int i = 0; i < spec.vendor_extended_capabilities_size(); ++i) {
    const proto::VendorExtendedCapability& vsec = spec.vendor_extended_capabilities(i);
    const std::string field = absl::StrCat("vendor_extended_capabilities[", i, "]");
    VFU_RETURN_IF_ERROR(CheckFits(vsec.vsec_id(), 16, field + ".vsec_id"));
    if (vsec.vsec_rev() > kMaxVsecRevision) {
      return Invalid(absl::StrCat(field, ".vsec_rev ", vsec.vsec_rev(), ": at most 15"));
    }
    const std::string& payload = vsec.payload();
    absl::StatusOr<pci::ExtendedCapability> cap = pci::VendorSpecificExtended(
        static_cast<uint16_t>(vsec.vsec_id()), static_cast<uint8_t>(vsec.vsec_rev()),
        absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(payload.data()), payload.size()));
    if (!cap.ok()) return InField(cap.status(), field);
    out.extended_capabilities.push_back(*std::move(cap));
  }
  if (spec.has_serial_number()) out.serial_number = spec.serial_number();
  return absl::OkStatus();
}

// Keeps the first syntax error, with its position, for the status.
class FirstErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    // The parser counts from 0; editors count from 1.
    if (first_.empty()) first_ = absl::StrCat(line + 1, ":", column + 1, ": ", message);
  }
  void AddWarning(int line, google::protobuf::io::ColumnNumber column,
                  const std::string& message) override {}
  const std::string& first() const { return first_; }

 private:
  std::string first_;
};

}  // namespace

absl::StatusOr<PciDeviceSpec> PciDeviceSpecFromProto(const proto::DeviceSpec& spec) {
  PciDeviceSpec out;
  VFU_ASSIGN_OR_RETURN(out.identity, ConvertIdentity(spec.identity()));
  out.express = spec.express();
  out.power_management = !spec.has_power_management() || spec.power_management();
  VFU_RETURN_IF_ERROR(ConvertRegions(spec, out));
  VFU_ASSIGN_OR_RETURN(out.interrupts, ConvertInterrupts(spec.interrupts()));
  VFU_RETURN_IF_ERROR(ConvertCapabilities(spec, out));
  return out;
}

absl::StatusOr<std::unique_ptr<PciDevice>> DeviceFromProto(const proto::DeviceSpec& spec) {
  VFU_ASSIGN_OR_RETURN(PciDeviceSpec pci_spec, PciDeviceSpecFromProto(spec));
  auto device = std::make_unique<PciDevice>(std::move(pci_spec));
  if (absl::Status status = device->Validate(); !status.ok()) {
    if (spec.name().empty()) return status;
    return absl::Status(status.code(),
                        absl::StrCat("device spec \"", spec.name(), "\": ", status.message()));
  }
  return device;
}

absl::StatusOr<proto::DeviceSpec> ParseDeviceSpecText(std::string_view text) {
  proto::DeviceSpec spec;
  FirstErrorCollector errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), &spec)) {
    return Invalid(absl::StrCat("device spec text: ", errors.first()));
  }
  return spec;
}

}  // namespace vfu
