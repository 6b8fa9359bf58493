#include "vfu/client/dma_memory_table.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <limits>

#include "absl/strings/str_cat.h"
#include "vfu/wire/dma_map.h"
#include "vfu/wire/errno_status.h"

namespace vfu {
namespace {

constexpr uint32_t kAccessMask = wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite;

// Last byte of [start, start + size), size > 0; the caller has ruled out
// wrap-around.
uint64_t LastByte(uint64_t start, uint64_t size) { return start + (size - 1); }

}  // namespace

absl::Status DmaMemoryTable::Add(uint64_t iova, absl::Span<uint8_t> memory,
                                 uint32_t device_access) {
  if (memory.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("DMA memory at 0x", absl::Hex(iova), " is empty"));
  }
  if ((device_access & ~kAccessMask) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown DMA access bits 0x", absl::Hex(device_access)));
  }
  const uint64_t size = memory.size();
  if (size - 1 > std::numeric_limits<uint64_t>::max() - iova) {
    return absl::InvalidArgumentError(absl::StrCat("DMA memory at 0x", absl::Hex(iova), " of ",
                                                   size, " bytes wraps around"));
  }
  const uint64_t last = LastByte(iova, size);
  // The only range that can overlap is the last one starting at or before
  // `last`.
  auto next = ranges_.upper_bound(last);
  if (next != ranges_.begin()) {
    auto prev = std::prev(next);
    if (LastByte(prev->first, prev->second.size) >= iova) {
      return wire::WireError(
          EEXIST, absl::StrCat("DMA memory [0x", absl::Hex(iova), ", 0x", absl::Hex(last),
                               "] overlaps the range registered at 0x", absl::Hex(prev->first)));
    }
  }
  ranges_.emplace_hint(next, iova, Range{memory.data(), size, device_access});
  return absl::OkStatus();
}

absl::Status DmaMemoryTable::Remove(uint64_t iova) {
  if (ranges_.erase(iova) == 0) {
    return absl::NotFoundError(
        absl::StrCat("no DMA memory registered at 0x", absl::Hex(iova)));
  }
  return absl::OkStatus();
}

size_t DmaMemoryTable::RemoveWithin(uint64_t iova, uint64_t size) {
  if (size == 0) return 0;
  const uint64_t last = size - 1 > std::numeric_limits<uint64_t>::max() - iova
                            ? std::numeric_limits<uint64_t>::max()
                            : LastByte(iova, size);
  size_t removed = 0;
  for (auto it = ranges_.lower_bound(iova); it != ranges_.end() && it->first <= last;) {
    if (LastByte(it->first, it->second.size) <= last) {
      it = ranges_.erase(it);
      ++removed;
    } else {
      ++it;
    }
  }
  return removed;
}

absl::StatusOr<DmaMemoryTable::RangeMap::const_iterator> DmaMemoryTable::Covering(
    uint64_t iova, uint64_t count, uint32_t access) const {
  auto fault = [&] {
    return wire::WireError(EFAULT, absl::StrCat("DMA of ", count, " bytes at 0x",
                                                absl::Hex(iova),
                                                " leaves the registered memory"));
  };
  if (count - 1 > std::numeric_limits<uint64_t>::max() - iova) return fault();
  const uint64_t last = LastByte(iova, count);

  auto it = ranges_.upper_bound(iova);
  if (it == ranges_.begin()) return fault();
  --it;
  const auto first = it;
  uint64_t pos = iova;
  while (true) {
    const uint64_t range_last = LastByte(it->first, it->second.size);
    if (pos < it->first || pos > range_last) return fault();
    if ((it->second.access & access) != access) {
      return wire::WireError(
          EPERM, absl::StrCat("DMA ", access == wire::kDmaMapFlagRead ? "read" : "write",
                              " of ", count, " bytes at 0x", absl::Hex(iova),
                              " is not allowed by the range registered at 0x",
                              absl::Hex(it->first)));
    }
    if (last <= range_last) return first;
    // Continue in the next range, which must start right after this one.
    pos = range_last + 1;
    ++it;
    if (it == ranges_.end() || it->first != pos) return fault();
  }
}

absl::Status DmaMemoryTable::ReadViews(
    uint64_t iova, uint64_t count,
    absl::InlinedVector<absl::Span<const uint8_t>, 2>& views) const {
  if (count == 0) return absl::OkStatus();
  absl::StatusOr<RangeMap::const_iterator> first = Covering(iova, count, wire::kDmaMapFlagRead);
  if (!first.ok()) return first.status();
  auto it = *first;
  uint64_t offset = iova - it->first;
  for (uint64_t done = 0; done < count; ++it, offset = 0) {
    const uint64_t n = std::min(count - done, it->second.size - offset);
    views.push_back(absl::Span<const uint8_t>(it->second.data + offset, n));
    done += n;
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::Span<const uint8_t>> DmaMemoryTable::Read(
    uint64_t iova, uint64_t count, std::vector<uint8_t>& scratch) const {
  absl::InlinedVector<absl::Span<const uint8_t>, 2> views;
  absl::Status status = ReadViews(iova, count, views);
  if (!status.ok()) return status;
  if (views.empty()) return absl::Span<const uint8_t>();
  if (views.size() == 1) return views.front();
  scratch.clear();
  scratch.reserve(count);
  for (absl::Span<const uint8_t> view : views) {
    scratch.insert(scratch.end(), view.begin(), view.end());
  }
  return absl::Span<const uint8_t>(scratch);
}

absl::Status DmaMemoryTable::Write(uint64_t iova, absl::Span<const uint8_t> data) {
  if (data.empty()) return absl::OkStatus();
  const uint64_t count = data.size();
  absl::StatusOr<RangeMap::const_iterator> first = Covering(iova, count, wire::kDmaMapFlagWrite);
  if (!first.ok()) return first.status();
  auto it = *first;
  uint64_t offset = iova - it->first;
  uint64_t done = 0;
  while (done < count) {
    const uint64_t n = std::min(count - done, it->second.size - offset);
    std::memcpy(it->second.data + offset, data.data() + done, n);
    done += n;
    offset = 0;
    ++it;
  }
  return absl::OkStatus();
}

}  // namespace vfu
