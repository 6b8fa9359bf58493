#include "tools/inspect/listing.h"

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "tools/inspect/config_decoder.h"
#include "tools/inspect/consistency.h"
#include "tools/inspect/hex_dump.h"
#include "tools/inspect/pci_names.h"

namespace vfu::inspect {
namespace {

constexpr uint32_t kFirstDeviceSpecificRegion = VFIO_PCI_NUM_REGIONS;
// Raw bytes shown for a capability the listing does not decode.
constexpr size_t kRawBytesShown = 32;

// Raw capability bytes; a run of trailing zeros (the rest of a mostly
// empty area) is counted rather than printed.
std::string RawBytes(const std::vector<uint8_t>& raw) {
  size_t shown = raw.size();
  while (shown > 4 && raw[shown - 1] == 0) --shown;
  std::string text = HexBytes(absl::MakeConstSpan(raw).first(shown), kRawBytesShown);
  if (shown < raw.size()) absl::StrAppendFormat(&text, ", then %d zero bytes", raw.size() - shown);
  return text;
}

std::string Flag(std::string_view name, bool on) { return absl::StrCat(name, on ? "+" : "-"); }

// "read write mmap", the region's vfio flags as words.
std::string RegionAccess(uint32_t flags) {
  std::vector<std::string> words;
  if (flags & VFIO_REGION_INFO_FLAG_READ) words.push_back("read");
  if (flags & VFIO_REGION_INFO_FLAG_WRITE) words.push_back("write");
  if (flags & VFIO_REGION_INFO_FLAG_MMAP) words.push_back("mmap");
  if (words.empty()) words.push_back("no access");
  return absl::StrJoin(words, " ");
}

std::string RegionTypeText(const wire::RegionType& type) {
  std::string text = absl::StrFormat("type 0x%x", type.type);
  if (type.type & VFIO_REGION_TYPE_PCI_VENDOR_TYPE) {
    absl::StrAppendFormat(&text, " (PCI vendor %04x)",
                          type.type & VFIO_REGION_TYPE_PCI_VENDOR_MASK);
  } else if (type.type == VFIO_REGION_TYPE_GFX) {
    text += " (graphics)";
  } else if (type.type == VFIO_REGION_TYPE_CCW) {
    text += " (channel I/O)";
  } else if (type.type == VFIO_REGION_TYPE_MIGRATION_DEPRECATED) {
    text += " (migration, deprecated)";
  }
  absl::StrAppendFormat(&text, " subtype 0x%x", type.subtype);
  return text;
}

// The indented line of vfio facts under a region.
std::string RegionDetails(const RegionSnapshot& r) {
  if (!r.status.ok()) {
    return absl::StrFormat("        vfio region %d: DEVICE_GET_REGION_INFO failed: %s\n", r.index,
                           r.status.ToString());
  }
  std::string line = absl::StrFormat("        vfio region %d: %s", r.index, RegionAccess(r.info.flags));
  if (r.info.flags & VFIO_REGION_INFO_FLAG_MMAP) {
    absl::StrAppendFormat(&line, ", mmap offset 0x%x%s", r.info.offset,
                          r.fd_attached ? " (fd attached)" : " (no fd)");
  }
  if (r.info.sparse_mmap.has_value()) {
    if (r.info.sparse_mmap->empty()) {
      line += ", sparse mmap: none";
    } else {
      std::vector<std::string> areas;
      for (const wire::SparseMmapArea& area : *r.info.sparse_mmap) {
        areas.push_back(absl::StrFormat("[0x%x-0x%x]", area.offset, area.offset + area.size - 1));
      }
      absl::StrAppend(&line, ", sparse mmap: ", absl::StrJoin(areas, " "));
    }
  }
  if (r.info.type.has_value()) absl::StrAppend(&line, ", ", RegionTypeText(*r.info.type));
  if (r.info.msix_mappable) line += ", MSI-X table mappable";
  return line + "\n";
}

void AppendProtocol(const DeviceSnapshot& device, std::string& out) {
  const wire::Capabilities& caps = device.server_capabilities;
  absl::StrAppendFormat(&out, "vfio-user device at %s\n", device.socket_path);
  absl::StrAppendFormat(&out,
                        "  Protocol: 0.%d; server max_msg_fds %d, max_data_xfer_size %d, "
                        "max_dma_maps %d, pgsizes 0x%x, %s %s %s\n",
                        device.minor_version, caps.max_msg_fds, caps.max_data_xfer_size,
                        caps.max_dma_maps, caps.pgsizes, Flag("twin-socket", caps.twin_socket.supported),
                        Flag("write-multiple", caps.write_multiple),
                        Flag("migration", caps.migration.has_value()));
  const wire::DeviceInfo& info = device.device_info;
  absl::StrAppendFormat(&out, "  Device: %s %s, %d regions, %d IRQ indexes\n",
                        Flag("pci", info.flags & VFIO_DEVICE_FLAGS_PCI),
                        Flag("reset", info.flags & VFIO_DEVICE_FLAGS_RESET), info.num_regions,
                        info.num_irqs);
}

void AppendIdentity(const ConfigSpaceInfo& c, std::string& out) {
  absl::StrAppendFormat(&out, "\n%04x:%04x %s [%04x] (prog-if %02x) (rev %02x)\n", c.vendor_id,
                        c.device_id, ClassName(c.class_code), c.class_code >> 8,
                        c.class_code & 0xff, c.revision);
  if (c.header_type == PCI_HEADER_TYPE_NORMAL) {
    absl::StrAppendFormat(&out, "  Subsystem: %04x:%04x\n", c.subsystem_vendor_id,
                          c.subsystem_id);
  }
  static constexpr std::string_view kLayouts[] = {"general device", "PCI bridge",
                                                  "CardBus bridge"};
  absl::StrAppendFormat(&out, "  Header type: %02x (%s), %s\n", c.header_type,
                        c.header_type < 3 ? kLayouts[c.header_type] : "undefined",
                        c.multifunction ? "multi-function" : "single function");
  const uint16_t cmd = c.command;
  absl::StrAppendFormat(
      &out, "  Command: %s %s %s %s %s %s %s %s %s %s\n", Flag("io", cmd & PCI_COMMAND_IO),
      Flag("memory", cmd & PCI_COMMAND_MEMORY), Flag("bus-master", cmd & PCI_COMMAND_MASTER),
      Flag("special-cycles", cmd & PCI_COMMAND_SPECIAL),
      Flag("write-invalidate", cmd & PCI_COMMAND_INVALIDATE),
      Flag("palette-snoop", cmd & PCI_COMMAND_VGA_PALETTE),
      Flag("parity-response", cmd & PCI_COMMAND_PARITY), Flag("serr", cmd & PCI_COMMAND_SERR),
      Flag("fast-back-to-back", cmd & PCI_COMMAND_FAST_BACK),
      Flag("intx-disable", cmd & PCI_COMMAND_INTX_DISABLE));
  const uint16_t st = c.status;
  static constexpr std::string_view kDevsel[] = {"fast", "medium", "slow", "reserved"};
  absl::StrAppendFormat(
      &out, "  Status: %s %s %s %s devsel=%s %s %s %s %s %s %s\n",
      Flag("capabilities", st & PCI_STATUS_CAP_LIST), Flag("interrupt", st & PCI_STATUS_INTERRUPT),
      Flag("66MHz", st & PCI_STATUS_66MHZ), Flag("fast-back-to-back", st & PCI_STATUS_FAST_BACK),
      kDevsel[(st & PCI_STATUS_DEVSEL_MASK) >> 9],
      Flag("master-parity-error", st & PCI_STATUS_PARITY),
      Flag("sent-target-abort", st & PCI_STATUS_SIG_TARGET_ABORT),
      Flag("got-target-abort", st & PCI_STATUS_REC_TARGET_ABORT),
      Flag("got-master-abort", st & PCI_STATUS_REC_MASTER_ABORT),
      Flag("sent-system-error", st & PCI_STATUS_SIG_SYSTEM_ERROR),
      Flag("parity-error", st & PCI_STATUS_DETECTED_PARITY));
  if (c.interrupt_pin == 0) {
    out += "  Interrupt: no pin\n";
  } else {
    absl::StrAppendFormat(&out, "  Interrupt: pin %c, line %d\n",
                          c.interrupt_pin <= 4 ? 'A' + c.interrupt_pin - 1 : '?',
                          c.interrupt_line);
  }
  absl::StrAppendFormat(&out, "  Cache line %d bytes, latency timer %d, BIST 0x%02x\n",
                        4 * c.cache_line_size, c.latency_timer, c.bist);
}

std::string BarText(const ConfigBar& bar, uint64_t size) {
  const std::string sized = size != 0 ? absl::StrCat(" [size=", FormatSize(size), "]")
                                      : std::string(" [not implemented]");
  switch (bar.kind) {
    case ConfigBar::Kind::kIo:
      return absl::StrFormat("I/O ports at %04x%s", bar.address, sized);
    case ConfigBar::Kind::kMemory64:
      return absl::StrFormat("Memory at %016x (64-bit, %s)%s", bar.address,
                             bar.prefetchable ? "prefetchable" : "non-prefetchable", sized);
    case ConfigBar::Kind::kMemoryBelow1M:
      return absl::StrFormat("Memory at %08x (below 1M, %s)%s", bar.address,
                             bar.prefetchable ? "prefetchable" : "non-prefetchable", sized);
    case ConfigBar::Kind::kMemoryReserved:
      return absl::StrFormat("Memory at %08x (reserved type, %s)%s", bar.address,
                             bar.prefetchable ? "prefetchable" : "non-prefetchable", sized);
    case ConfigBar::Kind::kMemory32:
    case ConfigBar::Kind::kUpperHalf:
      break;
  }
  return absl::StrFormat("Memory at %08x (32-bit, %s)%s", bar.address,
                         bar.prefetchable ? "prefetchable" : "non-prefetchable", sized);
}

void AppendBars(const DeviceSnapshot& device, const ConfigSpaceInfo* config, std::string& out) {
  for (uint32_t i = 0; i < PCI_STD_NUM_BARS; ++i) {
    const RegionSnapshot* region = device.region(i);
    const ConfigBar* bar =
        config != nullptr && i < config->bars.size() ? &config->bars[i] : nullptr;
    const bool implemented = region != nullptr && region->implemented();
    const bool failed = region != nullptr && !region->status.ok();
    if (bar != nullptr && bar->kind == ConfigBar::Kind::kUpperHalf && !implemented && !failed) {
      continue;
    }
    if (!implemented && !failed && (bar == nullptr || bar->raw == 0)) continue;
    const uint64_t size = implemented ? region->info.size : 0;
    if (bar == nullptr) {
      absl::StrAppendFormat(&out, "  Region %d: [size=%s] (no BAR register)\n", i,
                            FormatSize(size));
    } else if (bar->kind == ConfigBar::Kind::kUpperHalf) {
      absl::StrAppendFormat(&out, "  Region %d: upper half of BAR %d, yet [size=%s]\n", i, i - 1,
                            FormatSize(size));
    } else {
      absl::StrAppendFormat(&out, "  Region %d: %s\n", i, BarText(*bar, size));
    }
    if (region != nullptr) out += RegionDetails(*region);
  }

  const RegionSnapshot* rom = device.region(VFIO_PCI_ROM_REGION_INDEX);
  const bool rom_implemented = rom != nullptr && rom->implemented();
  if (config != nullptr && config->rom.has_value() && (rom_implemented || config->rom->raw != 0)) {
    absl::StrAppendFormat(&out, "  Expansion ROM at %08x [%s]%s\n", config->rom->address,
                          config->rom->enabled ? "enabled" : "disabled",
                          rom_implemented ? absl::StrCat(" [size=", FormatSize(rom->info.size), "]")
                                          : std::string(" [not implemented]"));
    if (rom != nullptr) out += RegionDetails(*rom);
  } else if (rom_implemented) {
    absl::StrAppendFormat(&out, "  Expansion ROM [size=%s] (no ROM register)\n",
                          FormatSize(rom->info.size));
    out += RegionDetails(*rom);
  }
}

void AppendOtherRegions(const DeviceSnapshot& device, std::string& out) {
  const RegionSnapshot* config = device.region(VFIO_PCI_CONFIG_REGION_INDEX);
  if (config != nullptr) {
    if (config->implemented()) {
      absl::StrAppendFormat(&out, "  Config space: [size=%s]\n", FormatSize(config->info.size));
    }
    out += RegionDetails(*config);
  }
  const RegionSnapshot* vga = device.region(VFIO_PCI_VGA_REGION_INDEX);
  if (vga != nullptr && (vga->implemented() || !vga->status.ok())) {
    absl::StrAppendFormat(&out, "  VGA: [size=%s]\n", FormatSize(vga->info.size));
    out += RegionDetails(*vga);
  }
  for (const RegionSnapshot& r : device.regions) {
    if (r.index < kFirstDeviceSpecificRegion || !(r.implemented() || !r.status.ok())) continue;
    absl::StrAppendFormat(&out, "  Region %d (device specific): [size=%s]\n", r.index,
                          FormatSize(r.info.size));
    out += RegionDetails(r);
  }
}

void AppendPowerManagement(const PowerManagementCapability& pm, std::string& out) {
  static constexpr int kAuxCurrentMilliamps[] = {0, 55, 100, 160, 220, 270, 320, 375};
  std::vector<std::string> pme;
  static constexpr std::string_view kStates[] = {"D0", "D1", "D2", "D3hot", "D3cold"};
  for (int i = 0; i < 5; ++i) pme.push_back(Flag(kStates[i], pm.pme_support & (1 << i)));
  absl::StrAppendFormat(&out, "       Supports: %s %s pme-clock%s dsi%s aux-current %dmA pme(%s)\n",
                        Flag("D1", pm.d1), Flag("D2", pm.d2), pm.pme_clock ? "+" : "-",
                        pm.device_specific_init ? "+" : "-", kAuxCurrentMilliamps[pm.aux_current],
                        absl::StrJoin(pme, " "));
  absl::StrAppendFormat(&out, "       State: D%d%s %s %s data-select %d data-scale %d %s\n",
                        pm.power_state, pm.power_state == 3 ? "hot" : "",
                        Flag("no-soft-reset", pm.no_soft_reset), Flag("pme-enable", pm.pme_enable),
                        pm.data_select, pm.data_scale, Flag("pme-status", pm.pme_status));
}

void AppendMsi(const MsiCapability& msi, std::string& out) {
  absl::StrAppendFormat(&out, "       %s vectors %d/%d %s %s\n", Flag("enable", msi.enabled),
                        msi.vectors_enabled, msi.vectors_capable, Flag("64-bit", msi.address64),
                        Flag("per-vector-mask", msi.per_vector_mask));
  absl::StrAppendFormat(&out, "       Address: %0*x  Data: %04x\n", msi.address64 ? 16 : 8,
                        msi.address, msi.data);
  if (msi.per_vector_mask) {
    absl::StrAppendFormat(&out, "       Mask: %08x  Pending: %08x\n", msi.mask, msi.pending);
  }
}

void AppendMsix(const MsixCapability& msix, std::string& out) {
  absl::StrAppendFormat(&out, "       %s %s table size %d\n", Flag("enable", msix.enabled),
                        Flag("function-mask", msix.function_masked), msix.table_size);
  absl::StrAppendFormat(&out, "       Vector table: BAR %d offset 0x%08x\n", msix.table_bar,
                        msix.table_offset);
  absl::StrAppendFormat(&out, "       PBA: BAR %d offset 0x%08x\n", msix.pba_bar,
                        msix.pba_offset);
}

void AppendExpress(const ExpressCapability& exp, std::string& out) {
  const uint32_t devcap = exp.device_capabilities;
  absl::StrAppendFormat(&out,
                        "       Device capabilities: max payload %d bytes, phantom functions "
                        "%d, %s %s %s\n",
                        MaxPayloadSupportedBytes(exp), (devcap & PCI_EXP_DEVCAP_PHANTOM) >> 3,
                        Flag("extended-tag", devcap & PCI_EXP_DEVCAP_EXT_TAG),
                        Flag("role-based-errors", devcap & PCI_EXP_DEVCAP_RBER),
                        Flag("flr", devcap & PCI_EXP_DEVCAP_FLR));
  const uint16_t ctl = exp.device_control;
  absl::StrAppendFormat(&out,
                        "       Device control: max payload %d bytes, max read request %d bytes, "
                        "%s %s %s\n",
                        MaxPayloadBytes(exp), MaxReadRequestBytes(exp),
                        Flag("relaxed-ordering", ctl & PCI_EXP_DEVCTL_RELAX_EN),
                        Flag("no-snoop", ctl & PCI_EXP_DEVCTL_NOSNOOP_EN),
                        Flag("extended-tag", ctl & PCI_EXP_DEVCTL_EXT_TAG));
  absl::StrAppendFormat(&out, "         error reporting: %s %s %s %s\n",
                        Flag("correctable", ctl & PCI_EXP_DEVCTL_CERE),
                        Flag("non-fatal", ctl & PCI_EXP_DEVCTL_NFERE),
                        Flag("fatal", ctl & PCI_EXP_DEVCTL_FERE),
                        Flag("unsupported-request", ctl & PCI_EXP_DEVCTL_URRE));
  const uint16_t sta = exp.device_status;
  absl::StrAppendFormat(&out, "       Device status: %s %s %s %s %s\n",
                        Flag("correctable", sta & PCI_EXP_DEVSTA_CED),
                        Flag("non-fatal", sta & PCI_EXP_DEVSTA_NFED),
                        Flag("fatal", sta & PCI_EXP_DEVSTA_FED),
                        Flag("unsupported-request", sta & PCI_EXP_DEVSTA_URD),
                        Flag("transactions-pending", sta & PCI_EXP_DEVSTA_TRPND));
  if (!exp.has_link) return;
  static constexpr std::string_view kAspm[] = {"none", "L0s", "L1", "L0s L1"};
  const uint32_t lnkcap = exp.link_capabilities;
  absl::StrAppendFormat(&out, "       Link capabilities: port %d, speed %s, width x%d, ASPM %s\n",
                        lnkcap >> 24, LinkSpeedName(lnkcap & PCI_EXP_LNKCAP_SLS),
                        (lnkcap & PCI_EXP_LNKCAP_MLW) >> 4,
                        kAspm[(lnkcap & PCI_EXP_LNKCAP_ASPMS) >> 10]);
  absl::StrAppendFormat(&out, "       Link control: ASPM %s, %s\n",
                        kAspm[exp.link_control & PCI_EXP_LNKCTL_ASPMC],
                        Flag("link-disable", exp.link_control & PCI_EXP_LNKCTL_LD));
  absl::StrAppendFormat(&out, "       Link status: speed %s, width x%d, %s\n",
                        LinkSpeedName(exp.link_status & PCI_EXP_LNKSTA_CLS),
                        (exp.link_status & PCI_EXP_LNKSTA_NLW) >> PCI_EXP_LNKSTA_NLW_SHIFT,
                        Flag("training", exp.link_status & PCI_EXP_LNKSTA_LT));
}

void AppendCapabilities(const ConfigSpaceInfo& c, std::string& out) {
  if (!c.capabilities.empty()) out += "  Capabilities:\n";
  for (const Capability& cap : c.capabilities) {
    absl::StrAppendFormat(&out, "  [%02x] ", cap.offset);
    if (const auto* pm = std::get_if<PowerManagementCapability>(&cap.body)) {
      absl::StrAppendFormat(&out, "Power Management version %d\n", pm->version);
      AppendPowerManagement(*pm, out);
    } else if (const auto* msi = std::get_if<MsiCapability>(&cap.body)) {
      out += "MSI\n";
      AppendMsi(*msi, out);
    } else if (const auto* msix = std::get_if<MsixCapability>(&cap.body)) {
      out += "MSI-X\n";
      AppendMsix(*msix, out);
    } else if (const auto* exp = std::get_if<ExpressCapability>(&cap.body)) {
      absl::StrAppendFormat(&out, "PCI Express v%d %s, %s, interrupt message %d\n",
                            exp->version, ExpressTypeName(exp->type),
                            exp->slot_implemented ? "slot" : "no slot", exp->interrupt_message);
      AppendExpress(*exp, out);
    } else if (const auto* vendor = std::get_if<VendorCapability>(&cap.body)) {
      absl::StrAppendFormat(&out, "Vendor Specific, length %d\n", vendor->length);
      if (!vendor->payload.empty()) {
        absl::StrAppendFormat(&out, "       Payload: %s\n",
                              HexBytes(vendor->payload, kRawBytesShown));
      }
    } else {
      // Unknown, or known but its registers did not fit (see warnings).
      absl::StrAppendFormat(&out, "%s (id 0x%02x)\n", CapabilityName(cap.id), cap.id);
      absl::StrAppendFormat(&out, "       Raw: %s\n", RawBytes(cap.raw));
    }
  }
  if (!c.extended_capabilities.empty()) out += "  Extended capabilities:\n";
  for (const ExtendedCapability& cap : c.extended_capabilities) {
    absl::StrAppendFormat(&out, "  [%03x v%d] ", cap.offset, cap.version);
    if (const auto* dsn = std::get_if<SerialNumberCapability>(&cap.body)) {
      std::vector<std::string> bytes;
      for (int shift = 56; shift >= 0; shift -= 8) {
        bytes.push_back(absl::StrFormat("%02x", (dsn->serial >> shift) & 0xff));
      }
      absl::StrAppendFormat(&out, "Device Serial Number %s\n", absl::StrJoin(bytes, "-"));
    } else if (const auto* vsec = std::get_if<VendorExtendedCapability>(&cap.body)) {
      absl::StrAppendFormat(&out, "Vendor Specific: id 0x%04x rev %d length %d\n", vsec->vsec_id,
                            vsec->vsec_rev, vsec->vsec_length);
      if (!vsec->payload.empty()) {
        absl::StrAppendFormat(&out, "       Payload: %s\n",
                              HexBytes(vsec->payload, kRawBytesShown));
      }
    } else {
      absl::StrAppendFormat(&out, "%s (id 0x%04x)\n", ExtendedCapabilityName(cap.id), cap.id);
      absl::StrAppendFormat(&out, "       Raw: %s\n", RawBytes(cap.raw));
    }
  }
}

void AppendInterrupts(const DeviceSnapshot& device, std::string& out) {
  if (device.irqs.empty()) return;
  out += "  Interrupts:\n";
  for (const IrqSnapshot& irq : device.irqs) {
    const std::string name = irq.index < VFIO_PCI_NUM_IRQS
                                 ? std::string(IrqIndexName(irq.index))
                                 : absl::StrCat("IRQ ", irq.index);
    if (!irq.status.ok()) {
      absl::StrAppendFormat(&out, "    %-6s DEVICE_GET_IRQ_INFO failed: %s\n", name,
                            irq.status.ToString());
      continue;
    }
    if (irq.info.count == 0) {
      absl::StrAppendFormat(&out, "    %-6s none\n", name);
      continue;
    }
    const uint32_t f = irq.info.flags;
    absl::StrAppendFormat(&out, "    %-6s %d vector%s, %s %s %s %s\n", name, irq.info.count,
                          irq.info.count == 1 ? "" : "s", Flag("eventfd", f & VFIO_IRQ_INFO_EVENTFD),
                          Flag("maskable", f & VFIO_IRQ_INFO_MASKABLE),
                          Flag("automasked", f & VFIO_IRQ_INFO_AUTOMASKED),
                          Flag("noresize", f & VFIO_IRQ_INFO_NORESIZE));
  }
}

}  // namespace

std::string FormatSize(uint64_t bytes) {
  static constexpr struct {
    int shift;
    char unit;
  } kUnits[] = {{60, 'E'}, {50, 'P'}, {40, 'T'}, {30, 'G'}, {20, 'M'}, {10, 'K'}};
  for (const auto& u : kUnits) {
    const uint64_t unit = uint64_t{1} << u.shift;
    if (bytes >= unit && bytes % unit == 0) return absl::StrCat(bytes >> u.shift, std::string(1, u.unit));
  }
  return absl::StrCat(bytes);
}

std::string FormatListing(const DeviceSnapshot& device) {
  std::string out;
  AppendProtocol(device, out);

  std::vector<std::string> warnings = device.warnings;
  const absl::StatusOr<ConfigSpaceInfo> config =
      device.config_status.ok() ? DecodeConfigSpace(device.config)
                                : absl::StatusOr<ConfigSpaceInfo>(device.config_status);
  if (config.ok()) {
    AppendIdentity(*config, out);
    AppendBars(device, &*config, out);
  } else {
    absl::StrAppendFormat(&out, "\nConfig space unavailable: %s\n", config.status().ToString());
    AppendBars(device, nullptr, out);
  }
  AppendOtherRegions(device, out);
  if (config.ok()) AppendCapabilities(*config, out);
  AppendInterrupts(device, out);

  if (config.ok()) {
    warnings.insert(warnings.end(), config->warnings.begin(), config->warnings.end());
    const std::vector<std::string> mismatches = CheckConsistency(device, *config);
    warnings.insert(warnings.end(), mismatches.begin(), mismatches.end());
  }
  if (!warnings.empty()) {
    out += "  Warnings:\n";
    for (const std::string& w : warnings) absl::StrAppend(&out, "    ", w, "\n");
  }
  return out;
}

}  // namespace vfu::inspect
