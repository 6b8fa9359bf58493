#include "vfu/capi/config_space.h"

#include <linux/pci_regs.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "libvfio-user.h"
#include "vfu/wire/errno_status.h"

namespace vfu::capi {
namespace {

using wire::WireError;

constexpr size_t kHeaderEnd = PCI_STD_HEADER_SIZEOF;
constexpr size_t kExtendedStart = PCI_CFG_SPACE_SIZE;

uint32_t Load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
void Store32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

}  // namespace

ConfigSpace::ConfigSpace(size_t size) : bytes_(size, 0) {}

void ConfigSpace::set_bar_size(int bar, uint64_t size) {
  if (bar >= 0 && bar < 6) bar_sizes_[bar] = size;
}

absl::StatusOr<size_t> ConfigSpace::CapabilitySize(int flags, const uint8_t* data) const {
  if (flags & VFU_CAP_FLAG_EXTENDED) {
    const uint16_t id = static_cast<uint16_t>(data[0] | (data[1] << 8));
    switch (id) {
      case PCI_EXT_CAP_ID_DSN:
        return size_t{PCI_EXT_CAP_DSN_SIZEOF};
      case PCI_EXT_CAP_ID_VNDR: {
        // The length sits in bits 20..31 of the second dword.
        const size_t len = Load32(data + 4) >> 20;
        if (len < 8) return WireError(EINVAL, "vendor extended capability shorter than 8 bytes");
        return len;
      }
      default:
        return WireError(ENOTSUP, absl::StrCat("unsupported extended capability ", id));
    }
  }
  switch (data[0]) {
    case PCI_CAP_ID_PM:
      return size_t{PCI_PM_SIZEOF};
    case PCI_CAP_ID_MSI:
      return size_t{VFIO_USER_PCI_CAP_MSI_SIZEOF};
    case PCI_CAP_ID_MSIX:
      return size_t{PCI_CAP_MSIX_SIZEOF};
    case PCI_CAP_ID_EXP:
      return sizeof(struct pxcap);
    case PCI_CAP_ID_VNDR:
      if (data[2] < 3) return WireError(EINVAL, "vendor capability shorter than its header");
      return size_t{data[2]};
    default:
      return WireError(ENOTSUP, absl::StrCat("unsupported capability ", data[0]));
  }
}

absl::StatusOr<size_t> ConfigSpace::AddCapability(size_t pos, int flags, const uint8_t* data) {
  if (data == nullptr) return WireError(EINVAL, "no capability data");
  if (flags & ~(VFU_CAP_FLAG_EXTENDED | VFU_CAP_FLAG_CALLBACK | VFU_CAP_FLAG_READONLY)) {
    return WireError(EINVAL, "unknown capability flags");
  }
  const bool extended = (flags & VFU_CAP_FLAG_EXTENDED) != 0;
  if (extended && bytes_.size() <= kExtendedStart) {
    return WireError(EINVAL, "extended capability on a device without extended config space");
  }
  absl::StatusOr<size_t> size = CapabilitySize(flags, data);
  if (!size.ok()) return size.status();
  const size_t area_begin = extended ? kExtendedStart : kHeaderEnd;
  const size_t area_end = extended ? bytes_.size() : kExtendedStart;
  const Capability* last = nullptr;
  for (const Capability& cap : caps_) {
    if (cap.extended == extended) last = &cap;
  }
  if (pos == 0) {
    pos = last == nullptr ? area_begin : (last->offset + last->size + 3) & ~size_t{3};
  }
  if (pos < area_begin || pos % 4 != 0 || pos + *size > area_end) {
    return WireError(EINVAL, absl::StrCat("capability does not fit at offset ", pos));
  }
  if (extended && last == nullptr && pos != kExtendedStart) {
    return WireError(EINVAL, "the first extended capability must be at offset 0x100");
  }
  for (const Capability& cap : caps_) {
    if (pos < cap.offset + cap.size && cap.offset < pos + *size) {
      return WireError(EINVAL, absl::StrCat("capability at ", pos, " overlaps one at ",
                                            cap.offset));
    }
  }
  std::memcpy(bytes_.data() + pos, data, *size);
  int id;
  if (extended) {
    id = data[0] | (data[1] << 8);
    // Clear our `next` field (bits 20..31) and link the previous one to us.
    Store32(bytes_.data() + pos, Load32(bytes_.data() + pos) & 0x000fffff);
    if (last != nullptr) {
      uint8_t* prev = bytes_.data() + last->offset;
      Store32(prev, (Load32(prev) & 0x000fffff) | static_cast<uint32_t>(pos << 20));
    }
  } else {
    id = data[0];
    bytes_[pos + PCI_CAP_LIST_NEXT] = 0;
    if (last == nullptr) {
      bytes_[PCI_CAPABILITY_LIST] = static_cast<uint8_t>(pos);
      bytes_[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
    } else {
      bytes_[last->offset + PCI_CAP_LIST_NEXT] = static_cast<uint8_t>(pos);
    }
  }
  caps_.push_back(Capability{pos, *size, flags, id, extended});
  return pos;
}

size_t ConfigSpace::FindCapability(bool extended, int id) const {
  for (const Capability& cap : caps_) {
    if (cap.extended == extended && cap.id == id) return cap.offset;
  }
  return 0;
}

size_t ConfigSpace::FindNextCapability(bool extended, size_t pos, int id) const {
  bool found_pos = false;
  for (const Capability& cap : caps_) {
    if (cap.extended != extended) continue;
    if (found_pos && cap.id == id) return cap.offset;
    if (cap.offset == pos) found_pos = true;
  }
  return 0;
}

const ConfigSpace::Capability* ConfigSpace::CapabilityAt(uint64_t offset) const {
  for (const Capability& cap : caps_) {
    if (offset >= cap.offset && offset < cap.offset + cap.size) return &cap;
  }
  return nullptr;
}

absl::Status ConfigSpace::CallBack(const Callback& callback, uint64_t offset,
                                   absl::Span<uint8_t> buf, bool write) {
  errno = 0;
  const ssize_t n = callback(buf.data(), buf.size(), offset, write);
  if (n < 0) {
    return WireError(errno != 0 ? errno : EIO, "config space callback failed");
  }
  if (static_cast<size_t>(n) != buf.size()) {
    return WireError(EINVAL, "config space callback handled a partial access");
  }
  return absl::OkStatus();
}

absl::Status ConfigSpace::WriteHeader(uint64_t offset, absl::Span<const uint8_t> data) {
  // Merge the write into a copy of the header, then keep what may change.
  uint8_t merged[kHeaderEnd];
  std::memcpy(merged, bytes_.data(), kHeaderEnd);
  std::memcpy(merged + offset, data.data(), data.size());
  const uint64_t end = offset + data.size();
  auto touched = [&](uint64_t begin, uint64_t size) { return offset < begin + size && begin < end; };
  if (touched(PCI_COMMAND, 2)) std::memcpy(bytes_.data() + PCI_COMMAND, merged + PCI_COMMAND, 2);
  if (touched(PCI_CACHE_LINE_SIZE, 1)) bytes_[PCI_CACHE_LINE_SIZE] = merged[PCI_CACHE_LINE_SIZE];
  if (touched(PCI_LATENCY_TIMER, 1)) bytes_[PCI_LATENCY_TIMER] = merged[PCI_LATENCY_TIMER];
  if (touched(PCI_INTERRUPT_LINE, 1)) bytes_[PCI_INTERRUPT_LINE] = merged[PCI_INTERRUPT_LINE];
  for (int bar = 0; bar < 6; ++bar) {
    const uint64_t at = PCI_BASE_ADDRESS_0 + 4 * bar;
    if (!touched(at, 4)) continue;
    const uint32_t old_value = Load32(bytes_.data() + at);
    const uint32_t value = Load32(merged + at);
    uint32_t stored = 0;
    if (bar_sizes_[bar] != 0) {
      const bool io = (old_value & PCI_BASE_ADDRESS_SPACE_IO) != 0;
      const uint32_t flag_bits = io ? 0x3u : 0xfu;
      const uint32_t size_mask = static_cast<uint32_t>(~(bar_sizes_[bar] - 1));
      stored = (value & size_mask & ~flag_bits) | (old_value & flag_bits);
    } else if (bar > 0 && bar_sizes_[bar - 1] != 0 &&
               (Load32(bytes_.data() + at - 4) & PCI_BASE_ADDRESS_MEM_TYPE_MASK) ==
                   PCI_BASE_ADDRESS_MEM_TYPE_64) {
      // Upper half of a 64-bit BAR.
      stored = value & static_cast<uint32_t>(~(bar_sizes_[bar - 1] - 1) >> 32);
    }
    Store32(bytes_.data() + at, stored);
  }
  if (touched(PCI_ROM_ADDRESS, 4)) {
    const uint32_t value = Load32(merged + PCI_ROM_ADDRESS);
    uint32_t stored = 0;
    if (rom_size_ != 0) {
      stored = (value & static_cast<uint32_t>(~(rom_size_ - 1)) & PCI_ROM_ADDRESS_MASK) |
               (value & PCI_ROM_ADDRESS_ENABLE);
    }
    Store32(bytes_.data() + PCI_ROM_ADDRESS, stored);
  }
  return absl::OkStatus();
}

absl::Status ConfigSpace::AccessPiece(uint64_t offset, absl::Span<uint8_t> buf, bool write,
                                      const Callback& callback, bool* flr) {
  if (offset < kHeaderEnd) {
    if (!write) {
      std::memcpy(buf.data(), bytes_.data() + offset, buf.size());
      return absl::OkStatus();
    }
    return WriteHeader(offset, buf);
  }
  if (const Capability* cap = CapabilityAt(offset)) {
    if ((cap->flags & VFU_CAP_FLAG_CALLBACK) && callback) {
      return CallBack(callback, offset, buf, write);
    }
    if (!write) {
      std::memcpy(buf.data(), bytes_.data() + offset, buf.size());
      return absl::OkStatus();
    }
    const size_t header_size = cap->extended ? 4 : 2;
    if (cap->flags & VFU_CAP_FLAG_READONLY) {
      return WireError(EPERM, "write to a read-only capability");
    }
    if (offset < cap->offset + header_size) {
      return WireError(EPERM, "write to a capability header");
    }
    std::memcpy(bytes_.data() + offset, buf.data(), buf.size());
    const uint64_t devctl = cap->offset + PCI_EXP_DEVCTL;
    if (!cap->extended && cap->id == PCI_CAP_ID_EXP && offset < devctl + 2 &&
        devctl < offset + buf.size()) {
      uint16_t control;
      std::memcpy(&control, bytes_.data() + devctl, 2);
      if (control & PCI_EXP_DEVCTL_BCR_FLR) {
        // Initiate FLR reads back as 0.
        control &= static_cast<uint16_t>(~PCI_EXP_DEVCTL_BCR_FLR);
        std::memcpy(bytes_.data() + devctl, &control, 2);
        *flr = true;
      }
    }
    return absl::OkStatus();
  }
  if (callback) return CallBack(callback, offset, buf, write);
  if (write) return WireError(EINVAL, "write to config space the device does not handle");
  std::memcpy(buf.data(), bytes_.data() + offset, buf.size());
  return absl::OkStatus();
}

absl::Status ConfigSpace::Access(uint64_t offset, absl::Span<uint8_t> buf, bool write,
                                 const Callback& callback, bool always_callback,
                                 const std::function<void()>& on_flr) {
  if (offset > bytes_.size() || buf.size() > bytes_.size() - offset) {
    return WireError(EINVAL, "config space access out of range");
  }
  if (always_callback && callback) return CallBack(callback, offset, buf, write);
  bool flr = false;
  // Split the access where the area serving it changes.
  uint64_t at = offset;
  const uint64_t end = offset + buf.size();
  while (at < end) {
    uint64_t piece_end = end;
    if (at < kHeaderEnd) {
      piece_end = std::min<uint64_t>(end, kHeaderEnd);
    } else if (const Capability* cap = CapabilityAt(at)) {
      piece_end = std::min<uint64_t>(end, cap->offset + cap->size);
    } else {
      for (const Capability& cap : caps_) {
        if (cap.offset > at) piece_end = std::min<uint64_t>(piece_end, cap.offset);
      }
    }
    absl::Status status =
        AccessPiece(at, buf.subspan(at - offset, piece_end - at), write, callback, &flr);
    if (!status.ok()) return status;
    at = piece_end;
  }
  if (flr && on_flr) on_flr();
  return absl::OkStatus();
}

}  // namespace vfu::capi
