// IoeventfdSet: a device's doorbells that the client may ring through
// eventfds (ioeventfds) instead of trapped REGION_WRITEs.
//
//   IoeventfdSet set = *IoeventfdSet::Create(specs);   // at device build
//   set.Describe(region, entries, fds);   // DEVICE_GET_REGION_IO_FDS (strand)
//   poll({set.wait_fd(i), POLLIN});       // device thread: doorbell i rang
//   set.Consume(i);                       // how many times, and re-arm
//   set.Renew();                          // between clients (strand)
//
// The client registers each eventfd where writes to the doorbell land
// (QEMU: with KVM, so a guest store to the doorbell signals it without a
// VM exit, and the value written is not kept). A write that does not match
// (another width, or another value than the datamatch) still arrives as a
// REGION_WRITE, and a client that did not register the fd (or cannot) sends
// every write that way. PciDevice turns a trapped write that matches a
// doorbell into Ring(i), dropping the value as KVM does, so the device sees
// the same thing either way: doorbell i rang.
//
// Fresh eventfds per client: the eventfds handed out are renewed when a
// client leaves, so a departed client (which may keep its copies) can no
// longer ring the doorbells of the next one. The device waits on wait_fd(i),
// a stable epoll fd that holds the current eventfd, so a device thread
// polling it needs no change across clients; Consume(i) reads the current
// one. Rings of a departed client not yet consumed are dropped with it.
//
// Bounds: the number of doorbells and their fds (2 per doorbell: eventfd
// and epoll) are fixed by the device's spec; a client cannot grow them.
//
// Threads: Create, Describe and Renew on the device's command strand (one
// at a time); wait_fd, Consume, Ring and Match from any thread, lock-free
// (EventfdSlot leases keep a renewed fd from being used after its close).
#ifndef VFU_DEVICE_IOEVENTFD_SET_H_
#define VFU_DEVICE_IOEVENTFD_SET_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "vfu/base/unique_fd.h"
#include "vfu/irq/eventfd_slot.h"
#include "vfu/wire/region_io_fds.h"

namespace vfu {

// One doorbell as the device declares it.
struct IoeventfdSpec {
  uint32_t region = 0;
  // Naturally aligned: offset % size == 0.
  uint64_t offset = 0;
  // Width of the write that rings it: 1, 2, 4 or 8 bytes.
  uint32_t size = 4;
  // Only a write of this value rings it (KVM's DATAMATCH); any value if
  // unset. Several doorbells may share offset and size with distinct
  // datamatch values.
  std::optional<uint64_t> datamatch;
  // A trapped write that KVM would have matched: true rings the doorbell
  // (the device sees the same as through the eventfd; the value is
  // dropped, as KVM drops it); false hands it to OnRegionWrite with its
  // value, for a device that needs the value whenever it has one (e.g. an
  // NVMe doorbell without shadow doorbells) and handles both paths.
  bool trapped_write_rings = true;
};

class IoeventfdSet {
 public:
  // Validates `specs` (width, alignment, overlap; `fits(region, offset,
  // size)` says whether the range is inside a region that may carry
  // doorbells) and creates the eventfds. InvalidArgument for a bad spec.
  template <typename Fits>
  static absl::StatusOr<IoeventfdSet> Create(std::vector<IoeventfdSpec> specs, Fits fits) {
    for (const IoeventfdSpec& s : specs) {
      if (!fits(s.region, s.offset, uint64_t{s.size})) {
        return absl::InvalidArgumentError(
            "an ioeventfd is outside its region, or in one that cannot have doorbells");
      }
    }
    return CreateChecked(std::move(specs));
  }

  IoeventfdSet() = default;
  IoeventfdSet(IoeventfdSet&&) noexcept = default;
  IoeventfdSet& operator=(IoeventfdSet&&) noexcept = default;

  size_t size() const { return specs_.size(); }
  const IoeventfdSpec& spec(size_t i) const { return specs_[i]; }

  // Readable (POLLIN/EPOLLIN) while doorbell i has rings not yet consumed.
  // Stable for the set's lifetime.
  int wait_fd(size_t i) const;

  // Rings of doorbell i since the last Consume (0 if none); re-arms
  // wait_fd(i). Never blocks, even if the client cleared O_NONBLOCK on the
  // file it shares with us (kernels >= 5.12; older ones rely on the flag).
  uint64_t Consume(size_t i);

  // The doorbell a trapped write of `data` at `offset` of `region` rings,
  // as KVM would match it (same offset and width, datamatch if any);
  // doorbells with trapped_write_rings false are not considered.
  std::optional<size_t> Match(uint32_t region, uint64_t offset,
                              absl::Span<const uint8_t> data) const;

  // Rings doorbell i (the trapped-write path).
  void Ring(size_t i);

  // DEVICE_GET_REGION_IO_FDS for `region`: one ioeventfd entry per doorbell
  // in it, each with its own fd, `fds[entry.fd_index]`. The fds are
  // borrowed: valid until the next Renew().
  void Describe(uint32_t region, std::vector<wire::IoFdEntry>& entries,
                std::vector<int>& fds) const;

  // Replaces every eventfd with a fresh one (the previous client's copies
  // go dead). Internal on an fd-creation failure (the old ones stay).
  absl::Status Renew();

 private:
  struct Doorbell {
    EventfdSlot eventfd;
    UniqueFd epoll;  // holds eventfd's current fd
  };

  static absl::StatusOr<IoeventfdSet> CreateChecked(std::vector<IoeventfdSpec> specs);
  // Puts `fd` into doorbell `d` (epoll first, then the slot).
  static absl::Status Install(Doorbell& d, UniqueFd fd);

  std::vector<IoeventfdSpec> specs_;
  std::unique_ptr<Doorbell[]> doorbells_;
};

}  // namespace vfu

#endif  // VFU_DEVICE_IOEVENTFD_SET_H_
