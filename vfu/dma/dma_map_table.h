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
// Errors of Map and Unmap are wire::WireError statuses carrying the errno of
// the error reply (section 10 rows 23-29). Translate fails with NotFound
// (some byte unmapped) or PermissionDenied (a mapping lacks the access).
#ifndef VFU_DMA_DMA_MAP_TABLE_H_
#define VFU_DMA_DMA_MAP_TABLE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "vfu/base/unique_fd.h"
#include "vfu/dma/dma_sg_list.h"
#include "vfu/wire/device_feature.h"
#include "vfu/wire/dma_map.h"
#include "vfu/wire/dma_unmap.h"

namespace vfu {

namespace dma_internal {
class DmaHostIndex;
class DmaMapping;
}  // namespace dma_internal

// What the server advertised in VERSION, and its own cap on one mapping.
struct DmaMapLimits {
  // Most mappings at once (`max_dma_maps`); one more is EINVAL (row 26).
  uint32_t max_maps = 65535;
  // `pgsizes`, a non-zero bitmask of page sizes: addr, size and (with an fd)
  // offset must be multiples of its smallest page (row 25).
  uint64_t page_sizes = 4096;
  // Largest single mapping; above is ENOSPC (row 26, libvfio-user's 8 TiB).
  // Also bounds the dirty bitmap a mapping can need (32 KiB per GiB).
  uint64_t max_map_size = uint64_t{8} << 40;
};

// One mapping, as Map and Unmap report it.
struct DmaRange {
  uint64_t iova = 0;
  uint64_t size = 0;
  uint32_t flags = 0;   // wire::kDmaMapFlagRead / kDmaMapFlagWrite
  bool mapped = false;  // has host memory (came with an fd)

  friend bool operator==(const DmaRange&, const DmaRange&) = default;
};

class DmaMapTable {
 public:
  explicit DmaMapTable(DmaMapLimits limits = {});
  // Unmaps everything, waiting for DmaSgLists still alive: destroy those
  // first or this never returns.
  ~DmaMapTable();

  DmaMapTable(const DmaMapTable&) = delete;
  DmaMapTable& operator=(const DmaMapTable&) = delete;

  // Replaces the limits (after VERSION negotiation, before any DMA_MAP).
  // Existing mappings stay; the limits judge later Map calls.
  void set_limits(const DmaMapLimits& limits) ABSL_LOCKS_EXCLUDED(mu_);

  // DMA_MAP. With a valid `fd` the range is mmap()ed MAP_SHARED at
  // request.offset with the protection its READ/WRITE flags ask for, and the
  // fd is closed once mapped (the mapping keeps the file alive; keeping the
  // fd would cost one descriptor per mapping). Without one the mapping is
  // fd-less: the device reaches it with DMA_READ/DMA_WRITE messages.
  // Errors, all WireError:
  //   EINVAL  flags other than READ/WRITE or neither of them, size 0,
  //           addr + size (or offset + size) wrapping, addr/size/offset not
  //           aligned to the smallest page of `page_sizes`, `max_maps`
  //           mappings already, or a regular file shorter than offset + size
  //           (an access past its end would raise SIGBUS);
  //   EEXIST  overlap with an existing mapping (row 23);
  //   ENOSPC  size above `max_map_size`;
  //   errno of mmap() when it fails.
  absl::StatusOr<DmaRange> Map(const wire::DmaMapRequest& request, UniqueFd fd)
      ABSL_LOCKS_EXCLUDED(mu_);

  // DMA_UNMAP of exactly one mapping (addr and size equal to it: ENOENT
  // otherwise), or of every mapping with flag ALL (addr = size = 0; an empty
  // table is fine). Returns the removed ranges once no device thread uses
  // them any more and their memory is unmapped.
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
  // `out` from it and returns true; an Unmap of that mapping waits for the
  // copy. Otherwise copies nothing and returns false, and the caller goes
  // through Translate, which handles ranges across mappings and fd-less
  // memory and reports the precise error. False for an empty `out` too.
  bool TryReadMapped(uint64_t iova, absl::Span<uint8_t> out) const ABSL_LOCKS_EXCLUDED(mu_);
  // The same for a write (WRITE needed); the pages written are marked dirty
  // for DMA logging once the bytes are in place.
  bool TryWriteMapped(uint64_t iova, absl::Span<const uint8_t> data) const
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

 private:
  using MappingTree = absl::btree_map<uint64_t, std::unique_ptr<dma_internal::DmaMapping>>;

  // EEXIST / EINVAL when [iova, iova + size) cannot join the tree.
  absl::Status CheckInsertableLocked(uint64_t iova, uint64_t size) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Removes every mapping from the tree; the caller drains and frees them.
  std::vector<std::unique_ptr<dma_internal::DmaMapping>> ExtractAllLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The fast path: inside one RCU read section, finds the fd-backed mapping
  // holding all of [iova, iova + length) with the `need` flags and calls
  // access(host address of iova, mapping); false, calling nothing, when
  // there is none.
  template <typename Access>
  bool WithMappedHost(uint64_t iova, uint64_t length, uint32_t need, Access access) const;
  // Publishes an index of the tree's fd-backed mappings and returns the one
  // it replaces, which the caller frees after RcuSynchronize(), outside the
  // lock (nullptr stands for an empty index).
  std::unique_ptr<const dma_internal::DmaHostIndex> PublishHostIndexLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  DmaMapLimits limits_ ABSL_GUARDED_BY(mu_);
  // Keyed by iova; ranges never overlap.
  MappingTree mappings_ ABSL_GUARDED_BY(mu_);
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
