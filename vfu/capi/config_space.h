// ConfigSpace: the PCI configuration space of a libvfio-user-style device.
//
// The device owns the bytes and may write them directly (the pointer
// vfu_pci_get_config_space() returns); the client reaches them through
// region VFU_PCI_DEV_CFG_REGION_IDX, which Access() serves the way
// libvfio-user does:
//   - the standard header: reads from the bytes; writes only to the fields
//     a client may change (command, cache line, latency, interrupt line,
//     BARs and the ROM BAR, masked to their regions' sizes);
//   - capabilities added with AddCapability(): reads from the bytes; writes
//     past the capability header, unless the capability is READONLY
//     (EPERM); CALLBACK capabilities go to the region callback;
//   - everything else goes to the region callback, or reads from the bytes
//     and refuses writes (EINVAL) when there is none. ALWAYS_CB sends every
//     access to the callback.
// Thread-compatible.
#ifndef VFU_CAPI_CONFIG_SPACE_H_
#define VFU_CAPI_CONFIG_SPACE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace vfu::capi {

class ConfigSpace {
 public:
  // `size`: 256 (conventional, PCI-X mode 1) or 4096 bytes.
  explicit ConfigSpace(size_t size);

  uint8_t* data() { return bytes_.data(); }
  size_t size() const { return bytes_.size(); }

  // The masks BAR writes keep (~(size - 1) of each BAR region; 0 for an
  // absent BAR) and the ROM BAR's.
  void set_bar_size(int bar, uint64_t size);
  void set_rom_size(uint64_t size) { rom_size_ = size; }

  // vfu_pci_add_capability(): returns the offset, or a status whose errno
  // (vfu/wire/errno_status.h) the C call reports.
  absl::StatusOr<size_t> AddCapability(size_t pos, int flags, const uint8_t* data);
  // 0 when there is none.
  size_t FindCapability(bool extended, int id) const;
  size_t FindNextCapability(bool extended, size_t pos, int id) const;

  // What the region callback does with an access (see the file comment).
  // Returns the bytes handled or -1 with errno, like the C callback.
  using Callback = std::function<ssize_t(uint8_t* buf, size_t count, uint64_t offset, bool write)>;

  // A client access to [offset, offset + buf.size()), already checked to lie
  // within size(). `on_flr` is called after a write that set Initiate FLR.
  absl::Status Access(uint64_t offset, absl::Span<uint8_t> buf, bool write,
                      const Callback& callback, bool always_callback,
                      const std::function<void()>& on_flr);

 private:
  struct Capability {
    size_t offset;
    size_t size;
    int flags;
    int id;
    bool extended;
  };

  const Capability* CapabilityAt(uint64_t offset) const;
  absl::Status WriteHeader(uint64_t offset, absl::Span<const uint8_t> data);
  // One piece of an access lying in one area (header, capability, other).
  absl::Status AccessPiece(uint64_t offset, absl::Span<uint8_t> buf, bool write,
                           const Callback& callback, bool* flr);
  static absl::Status CallBack(const Callback& callback, uint64_t offset,
                               absl::Span<uint8_t> buf, bool write);
  absl::StatusOr<size_t> CapabilitySize(int flags, const uint8_t* data) const;

  std::vector<uint8_t> bytes_;
  std::vector<Capability> caps_;
  uint64_t bar_sizes_[6] = {};
  uint64_t rom_size_ = 0;
};

}  // namespace vfu::capi

#endif  // VFU_CAPI_CONFIG_SPACE_H_
