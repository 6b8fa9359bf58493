// ConfigImage: builds PCI config space byte images by hand for decoder
// tests, the fuzz seeds and the listing tests, independent of vfu's own
// config-space model (the decoder must read what any device writes).
//
//   ConfigImage image(256);
//   image.Identity(0x1234, 0x5678, 0x020000, 1)
//        .AddCapability(0x40, PCI_CAP_ID_PM, {0x03, 0x00, 0x08, 0x00, 0, 0});
//   DecodeConfigSpace(image.bytes());
//
// AddCapability / AddExtended link each capability after the previous one
// (the first from 0x34 or at 0x100), so a test builds a well-formed chain
// and then breaks exactly the pointer it means to.
#ifndef VFU_TOOLS_INSPECT_CONFIG_IMAGE_H_
#define VFU_TOOLS_INSPECT_CONFIG_IMAGE_H_

#include <linux/pci_regs.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace vfu::inspect::testing {

class ConfigImage {
 public:
  explicit ConfigImage(size_t size = 256) : bytes_(size, 0) {}

  ConfigImage& Set8(uint32_t offset, uint8_t value) { return Set(offset, value); }
  ConfigImage& Set16(uint32_t offset, uint16_t value) { return Set(offset, value); }
  ConfigImage& Set32(uint32_t offset, uint32_t value) { return Set(offset, value); }

  ConfigImage& Identity(uint16_t vendor, uint16_t device, uint32_t class_code, uint8_t revision) {
    Set16(PCI_VENDOR_ID, vendor);
    Set16(PCI_DEVICE_ID, device);
    return Set32(PCI_CLASS_REVISION, class_code << 8 | revision);
  }

  // A standard capability at `offset`: ID, next pointer 0, then `body`
  // (the bytes from offset + 2 on).
  ConfigImage& AddCapability(uint8_t offset, uint8_t id, const std::vector<uint8_t>& body) {
    Set8(last_standard_ == 0 ? PCI_CAPABILITY_LIST : last_standard_ + PCI_CAP_LIST_NEXT,
         offset);
    Set16(PCI_STATUS, Get16(PCI_STATUS) | PCI_STATUS_CAP_LIST);
    Set8(offset + PCI_CAP_LIST_ID, id);
    Set8(offset + PCI_CAP_LIST_NEXT, 0);
    CheckRange(offset + 2, body.size());
    if (!body.empty()) std::memcpy(bytes_.data() + offset + 2, body.data(), body.size());
    last_standard_ = offset;
    return *this;
  }

  // An extended capability at `offset` (the first one at 0x100): header
  // with next 0, then `body` (the bytes from offset + 4 on).
  ConfigImage& AddExtended(uint16_t offset, uint16_t id, uint8_t version,
                           const std::vector<uint8_t>& body) {
    if (last_extended_ != 0) {
      const uint32_t header = Get32(last_extended_);
      Set32(last_extended_, (header & 0xfffff) | uint32_t{offset} << 20);
    }
    Set32(offset, id | uint32_t{version} << 16);
    CheckRange(offset + 4, body.size());
    if (!body.empty()) std::memcpy(bytes_.data() + offset + 4, body.data(), body.size());
    last_extended_ = offset;
    return *this;
  }

  uint16_t Get16(uint32_t offset) const {
    CheckRange(offset, 2);
    uint16_t v;
    std::memcpy(&v, bytes_.data() + offset, sizeof v);
    return v;
  }
  uint32_t Get32(uint32_t offset) const {
    CheckRange(offset, 4);
    uint32_t v;
    std::memcpy(&v, bytes_.data() + offset, sizeof v);
    return v;
  }

  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  template <typename T>
  ConfigImage& Set(uint32_t offset, T value) {
    CheckRange(offset, sizeof value);
    std::memcpy(bytes_.data() + offset, &value, sizeof value);
    return *this;
  }
  // A write outside the image is a bug in the test that builds it.
  void CheckRange(uint32_t offset, size_t length) const {
    if (offset > bytes_.size() || length > bytes_.size() - offset) {
      std::fprintf(stderr, "ConfigImage: write of %zu bytes at 0x%x outside %zu bytes\n", length,
                   offset, bytes_.size());
      std::abort();
    }
  }

  std::vector<uint8_t> bytes_;
  uint32_t last_standard_ = 0;
  uint32_t last_extended_ = 0;
};

// Little-endian bytes of `value`, for capability bodies.
inline std::vector<uint8_t> Le16(uint16_t value) {
  return {static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8)};
}
inline std::vector<uint8_t> Le32(uint32_t value) {
  return {static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8),
          static_cast<uint8_t>(value >> 16), static_cast<uint8_t>(value >> 24)};
}
inline std::vector<uint8_t> Concat(std::initializer_list<std::vector<uint8_t>> parts) {
  std::vector<uint8_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

}  // namespace vfu::inspect::testing

#endif  // VFU_TOOLS_INSPECT_CONFIG_IMAGE_H_
