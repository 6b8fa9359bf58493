// DmaMapTable: the client memory a device may reach by DMA, as the client
// shared it with DMA_MAP and withdrew it with DMA_UNMAP (PROTOCOL.md 4.1,
// 4.2), plus the dirty-page log of DEVICE_FEATURE DMA logging (4.12, 7).
//
//   DmaMapTable table(DmaMapLimits{.max_maps = 1024});
//   VFU_ASSIGN_OR_RETURN(DmaRange range, table.Map(request, std::move(fd)));
//   ...
//   // Any device thread:
//   VFU_ASSIGN_OR_RETURN(DmaSgList list, table.Translate(iova, n, DmaDirection::kRead));
//
// Threads. The protocol side (Map, Unmap, UnmapAll, logging control) runs in
// the client's command order; device threads call Translate concurrently
// with it and with each other. All methods are thread-safe.
//
// Design. Mappings live in a B-tree keyed by IOVA under one reader-writer
// mutex: a lookup holds it shared for the search only (a vIOMMU client keeps
// thousands of mappings, and lookups vastly outnumber changes). The copy
// itself runs without the table lock, on a reference the DmaSgList holds on
// each mapping. Unmap takes the mapping out of the tree first (new lookups
// fail), then waits for its references to drain, then munmaps: a device
// thread never copies through memory that is gone. Dirty marking takes no
// lock at all (per-mapping atomic bitmaps, see dma_mapping.h).
//
// Fast path. Most device copies lie in one fd-backed mapping. For those,
// TryReadMapped / TryWriteMapped find the mapping in an immutable index
// (dma_host_index.h) inside an RCU read section and copy, with no lock and
// no reference count; every change of the fd-backed mappings publishes a new
// index, and Unmap waits a grace period (every copy that could still see
// the mapping has ended) before it drains references and munmaps.
//
// Faults. The client can shrink the file behind a mapping at any time.
// Every copy the table makes runs under a fault guard (vfu/base/
// fault_guard.h), and so do DmaSgList's copy methods: a copy that touches
// the lost pages fails with the DMA fault status (dma_fault.h) and the table
// calls its fault handler, with which the server disconnects the client.
//
// Pins held too long. Unmap and UnmapAll wait for the DmaSgLists on a
// mapping for at most DmaMapLimits::pin_release_timeout. Past it they log,
// revoke the mapping (its pages become private scratch memory in place, the
// client's file is released; dma_mapping.h) and return; the late holder's
// accesses stay harmless and the scratch is freed with its last pin.
//
// Address space. Each fd-backed mapping takes address space for its whole
// size and one kernel map entry. A client's fd-backed mappings are bounded
// in number (max_maps) and in bytes (max_total_bytes), and all tables of the
// process share one DmaAddressSpaceBudget (dma_address_space.h).
//
// Errors of Map and Unmap are wire::WireError statuses carrying the errno of
// the error reply (section 10 rows 23-29). Translate fails with NotFound
// (some byte unmapped) or PermissionDenied (a mapping lacks the access).
#ifndef VFU_DMA_DMA_MAP_TABLE_H_
#define VFU_DMA_DMA_MAP_TABLE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "vfu/base/unique_fd.h"
#include "vfu/dma/dma_address_space.h"
#include "vfu/dma/dma_mapping.h"
#include "vfu/dma/dma_sg_list.h"
#include "vfu/wire/device_feature.h"
#include "vfu/wire/dma_map.h"
#include "vfu/wire/dma_unmap.h"

namespace vfu {

namespace dma_internal {
class DmaHostIndex;
}  // namespace dma_internal

// What the server advertised in VERSION, and its own caps on one client's
// memory.
struct DmaMapLimits {
  // Most mappings at once (`max_dma_maps`); one more is EINVAL (row 26).
  // By default what the process can honour (DefaultMaxDmaMaps()).
  uint32_t max_maps = DefaultMaxDmaMaps();
  // `pgsizes`, a non-zero bitmask of page sizes: addr, size and (with an fd)
  // offset must be multiples of its smallest page (row 25).
  uint64_t page_sizes = 4096;
  // Largest single mapping; above is ENOSPC (row 26, libvfio-user's 8 TiB).
  // Also bounds the dirty bitmap a mapping can need (32 KiB per GiB).
  uint64_t max_map_size = uint64_t{8} << 40;
  // Most bytes of fd-backed mappings at once (each takes address space for
  // its whole size, even over a sparse file); a DMA_MAP past it is ENOSPC.
  // 16 TiB: twice the largest single mapping, an eighth of the address
  // space.
  uint64_t max_total_bytes = uint64_t{16} << 40;
  // How long Unmap / UnmapAll (a DMA_UNMAP, a detach, Server::Stop) wait for
  // DmaSgLists still holding a mapping before revoking it.
  absl::Duration pin_release_timeout = absl::Seconds(10);
};

// What the copy fast path did (TryReadMapped / TryWriteMapped).
enum class MappedAccess {
  kNotMapped,  // not all in one fd-backed mapping with the access: nothing copied
  kDone,       // copied
  kFaulted,    // the client's memory faulted (reported to the fault handler)
};

// Told about a fault of a guarded access to [iova, iova + length) of the
// client's memory; from the device thread that made the access.
using DmaFaultHandler = std::function<void(uint64_t iova, uint64_t length)>;

// One mapping, as Map and Unmap report it.
struct DmaRange {
  uint64_t iova = 0;
  uint64_t size = 0;
  uint32_t flags = 0;   // wire::kDmaMapFlagRead / kDmaMapFlagWrite
  bool mapped = false;  // has host memory (came with an fd)

  friend bool operator==(const DmaRange&, const DmaRange&) = default;
};

class DmaMapTable : private dma_internal::DmaFaultReporter {
 public:
  // `budget` (the process's when null) must outlive the table and every
  // mapping it made.
  explicit DmaMapTable(DmaMapLimits limits = {}, DmaAddressSpaceBudget* budget = nullptr);
  // Unmaps everything, waiting for DmaSgLists still alive up to the pin
  // release timeout (then revoking them). Destroy every list first: a list
  // that outlives its table is still a bug, revocation only makes it
  // harmless to the memory.
  ~DmaMapTable();

  DmaMapTable(const DmaMapTable&) = delete;
  DmaMapTable& operator=(const DmaMapTable&) = delete;

  // Replaces the limits (after VERSION negotiation, before any DMA_MAP).
  // Existing mappings stay; the limits judge later Map calls.
  void set_limits(const DmaMapLimits& limits) ABSL_LOCKS_EXCLUDED(mu_);
  DmaMapLimits limits() const ABSL_LOCKS_EXCLUDED(mu_);

  // Called on every fault of a guarded access to this table's memory (see
  // Faults above); replaces the previous handler. Any thread.
  void set_fault_handler(DmaFaultHandler handler) ABSL_LOCKS_EXCLUDED(fault_mu_);

  // DMA_MAP. With a valid `fd` the range is mmap()ed MAP_SHARED at
  // request.offset with the protection its READ/WRITE flags ask for, and the
  // fd is closed once mapped (the mapping keeps the file alive; keeping the
  // fd would cost one descriptor per mapping). Without one the mapping is
  // fd-less: the device reaches it with DMA_READ/DMA_WRITE messages.
  // Errors, all WireError:
  //   EINVAL  flags other than READ/WRITE or neither of them, size 0,
  //           addr + size (or offset + size) wrapping, addr/size/offset not
  //           aligned to the smallest page of `page_sizes`, `max_maps`
  //           mappings already (or the process's budget of mappings spent),
  //           or a regular file shorter than offset + size (an access past
  //           its end would raise SIGBUS);
  //   EEXIST  overlap with an existing mapping (row 23);
  //   ENOSPC  size above `max_map_size`, fd-backed bytes above
  //           `max_total_bytes`, or the process's byte budget spent;
  //   errno of mmap() when it fails.
  absl::StatusOr<DmaRange> Map(const wire::DmaMapRequest& request, UniqueFd fd)
      ABSL_LOCKS_EXCLUDED(mu_);

  // DMA_UNMAP of exactly one mapping (addr and size equal to it: ENOENT
  // otherwise), or of every mapping with flag ALL (addr = size = 0; an empty
  // table is fine). Returns the removed ranges once no device thread uses
  // them any more and their memory is unmapped (or, past the pin release
  // timeout, revoked).
  //
  // GET_DIRTY_BITMAP (legacy): also writes the mapping's dirty bitmap into
  // `*dirty_bitmap_out`, bitmap.size bytes, read and cleared after the last
  // user is gone. EINVAL unless logging is on, bitmap.pgsize equals the
  // logging page size, bitmap.size is exactly the size section 7 gives, the
  // mapping is fd-backed and `dirty_bitmap_out` is given (row 29).
  // EINVAL too for unknown flags, ALL with addr/size != 0 and ALL with
  // GET_DIRTY_BITMAP (row 28). A failed Unmap changes nothing.
  absl::StatusOr<std::vector<DmaRange>> Unmap(const wire::DmaUnmapRequest& request,
                                              std::vector<uint8_t>* dirty_bitmap_out)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Client gone (section 8): removes every mapping, waiting for their users,
  // and stops dirty logging so the next client starts from scratch.
  void UnmapAll() ABSL_LOCKS_EXCLUDED(mu_);

  // Resolves [iova, iova + length) for a device access in direction `dir`.
  // Any thread, many at once. The range may cross adjacent mappings (one
  // segment each); length 0 gives an empty list. Fails, touching nothing,
  // with NotFound when any byte is not mapped (or the range wraps) and
  // PermissionDenied when a mapping lacks READ (kRead) or WRITE (kWrite).
  // The list keeps the mappings alive: an Unmap of them waits for it.
  absl::StatusOr<DmaSgList> Translate(uint64_t iova, uint64_t length, DmaDirection dir) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // The lock-free path of a copy (see Fast path above). When all of
  // [iova, iova + out.size()) lies in one fd-backed mapping with READ, fills
  // `out` from it (guarded) and returns kDone, or kFaulted if the memory
  // faulted; an Unmap of that mapping waits for the copy. Otherwise copies
  // nothing and returns kNotMapped, and the caller goes through Translate,
  // which handles ranges across mappings and fd-less memory and reports the
  // precise error. kNotMapped for an empty `out` too.
  MappedAccess TryReadMapped(uint64_t iova, absl::Span<uint8_t> out) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // The same for a write (WRITE needed); the pages written are marked dirty
  // for DMA logging once the bytes are in place.
  MappedAccess TryWriteMapped(uint64_t iova, absl::Span<const uint8_t> data) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // DEVICE_FEATURE DMA_LOGGING_START. page_size must be a power of two of at
  // least 4 KiB; ranges must be non-empty, not wrap and not overlap (EINVAL
  // otherwise). Writes anywhere in fd-backed mappings are logged, a superset
  // of the ranges, which the protocol allows. A second START with the same
  // page size while logging succeeds and changes nothing; another page size
  // is EINVAL (row 32).
  absl::Status StartLogging(const wire::DmaLoggingControl& control) ABSL_LOCKS_EXCLUDED(mu_);
  // DMA_LOGGING_STOP. Succeeds when logging is already off.
  absl::Status StopLogging() ABSL_LOCKS_EXCLUDED(mu_);
  // DMA_LOGGING_REPORT: sets `bitmap_out` to the section 7 bitmap of
  // [iova, iova + length) at page_size (any power of two: bits of the 4 KiB
  // log are replicated or ORed) and clears what it reports. Pages of fd-less
  // or unmapped memory read clean. EINVAL when logging is off, length is 0,
  // the range wraps, page_size is not a power of two or the bitmap would
  // exceed 256 MiB (the largest a client accepts).
  absl::Status Report(const wire::DmaLoggingReport& request, std::vector<uint8_t>& bitmap_out)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Number of mappings.
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);
  // Bytes of address space the fd-backed mappings take.
  uint64_t mapped_bytes() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // DmaFaultReporter: logs and calls the fault handler.
  void ReportFault(uint64_t iova, uint64_t length) const override ABSL_LOCKS_EXCLUDED(fault_mu_);
  // Waits until `deadline` for the users of `mapping`; true when
  // they are gone. Otherwise logs and revokes it: the caller may still read
  // its dirty bitmap, then must DmaMapping::Abandon it.
  bool DrainOrRevoke(dma_internal::DmaMapping& mapping, absl::Time deadline) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // DrainOrRevoke, then frees or abandons each.
  void Retire(std::vector<std::unique_ptr<dma_internal::DmaMapping>>& mappings) const
      ABSL_LOCKS_EXCLUDED(mu_);
  using MappingTree = absl::btree_map<uint64_t, std::unique_ptr<dma_internal::DmaMapping>>;

  // EEXIST / EINVAL / ENOSPC when [iova, iova + size), taking `mmap_length`
  // bytes of address space, cannot join the tree.
  absl::Status CheckInsertableLocked(uint64_t iova, uint64_t size, uint64_t mmap_length) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Removes every mapping from the tree; the caller drains and frees them.
  std::vector<std::unique_ptr<dma_internal::DmaMapping>> ExtractAllLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The fast path: inside one RCU read section, finds the fd-backed mapping
  // holding all of [iova, iova + length) with the `need` flags and calls
  // access(host address of iova, mapping), which returns false when the
  // memory faulted; kNotMapped, calling nothing, when there is none.
  template <typename Access>
  MappedAccess WithMappedHost(uint64_t iova, uint64_t length, uint32_t need,
                              Access access) const;
  // Publishes an index of the tree's fd-backed mappings and returns the one
  // it replaces, which the caller frees after RcuSynchronize(), outside the
  // lock (nullptr stands for an empty index).
  std::unique_ptr<const dma_internal::DmaHostIndex> PublishHostIndexLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  DmaAddressSpaceBudget& budget_;
  mutable absl::Mutex mu_;
  DmaMapLimits limits_ ABSL_GUARDED_BY(mu_);
  // Keyed by iova; ranges never overlap.
  MappingTree mappings_ ABSL_GUARDED_BY(mu_);
  // Sum of the fd-backed mappings' mmap lengths.
  uint64_t mapped_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Separate from `mu_`: faults are reported from device threads that may
  // hold nothing, and never need the tree.
  mutable absl::Mutex fault_mu_;
  DmaFaultHandler fault_handler_ ABSL_GUARDED_BY(fault_mu_);
  // The page size of DMA_LOGGING_START; 0 while not logging.
  uint64_t logging_page_size_ ABSL_GUARDED_BY(mu_) = 0;
  // True while logging. Written only under `mu_` held exclusively; read
  // without it by DmaMapping::MarkDirty on device threads.
  std::atomic<bool> logging_{false};
  // The fast path's index (nullptr when no mapping is fd-backed). Replaced
  // only under `mu_` held exclusively; read inside RCU sections.
  std::atomic<const dma_internal::DmaHostIndex*> host_index_{nullptr};
};

}  // namespace vfu

#endif  // VFU_DMA_DMA_MAP_TABLE_H_
