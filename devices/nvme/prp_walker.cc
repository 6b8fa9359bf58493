#include "devices/nvme/prp_walker.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "devices/nvme/nvme_defs.h"

namespace vfu::nvme {
namespace {

void Append(std::vector<DataSegment>& segments, uint64_t iova, uint64_t length) {
  if (!segments.empty() && segments.back().iova + segments.back().length == iova) {
    segments.back().length += length;
    return;
  }
  segments.push_back({iova, length});
}

}  // namespace

uint16_t WalkPrps(uint64_t prp1, uint64_t prp2, uint64_t length, uint64_t page_size,
                  PrpListReader read_list, std::vector<DataSegment>& segments) {
  segments.clear();
  if (length == 0 || length > kMaxTransferBytes) return kInvalidField;
  if (page_size < 4096 || (page_size & (page_size - 1)) != 0) return kInvalidField;
  const uint64_t page_mask = page_size - 1;
  if ((prp1 & 3) != 0) return kInvalidPrpOffset;

  const uint64_t first = std::min(length, page_size - (prp1 & page_mask));
  Append(segments, prp1, first);
  uint64_t remaining = length - first;
  if (remaining == 0) return kSuccess;

  if (remaining <= page_size) {
    if ((prp2 & page_mask) != 0) return kInvalidPrpOffset;
    Append(segments, prp2, remaining);
    return kSuccess;
  }

  // A PRP list: read it a list page (or the part of it from `list`) at a
  // time, in chunks of at most kChunk entries.
  if ((prp2 & 7) != 0) return kInvalidPrpOffset;
  constexpr uint64_t kChunk = 64;
  std::array<uint64_t, kChunk> entries;
  uint64_t list = prp2;
  while (remaining > 0) {
    const uint64_t in_page = (page_size - (list & page_mask)) / 8;
    const uint64_t pages_left = (remaining + page_size - 1) / page_size;
    // All remaining pages fit in this list page: no chain pointer needed.
    const bool last_list_page = pages_left <= in_page;
    const uint64_t data_entries = last_list_page ? pages_left : in_page - 1;
    uint64_t done = 0;
    while (done < data_entries) {
      const uint64_t n = std::min<uint64_t>(kChunk, data_entries - done);
      if (!read_list(list + 8 * done, absl::MakeSpan(reinterpret_cast<uint8_t*>(entries.data()),
                                                     8 * n))) {
        return kDataTransferError;
      }
      for (uint64_t i = 0; i < n; ++i) {
        const uint64_t page = entries[i];
        if ((page & page_mask) != 0) return kInvalidPrpOffset;
        const uint64_t bytes = std::min(remaining, page_size);
        Append(segments, page, bytes);
        remaining -= bytes;
      }
      done += n;
    }
    if (remaining == 0) break;
    uint64_t next = 0;
    if (!read_list(list + 8 * data_entries, absl::MakeSpan(reinterpret_cast<uint8_t*>(&next), 8))) {
      return kDataTransferError;
    }
    if ((next & page_mask) != 0) return kInvalidPrpOffset;
    list = next;
  }
  return kSuccess;
}

}  // namespace vfu::nvme
