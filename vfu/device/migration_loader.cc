#include "vfu/device/migration_loader.h"

#include <cstring>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "vfu/base/status_macros.h"
#include "vfu/device/region_dirty_tracker.h"

namespace vfu {
namespace {

constexpr uint64_t kPageSize = RegionDirtyTracker::kPageSize;
constexpr uint32_t kMsixEntryBytes = 16;

constexpr std::string_view kRefused = "migration stream refused: ";

absl::Status Refuse(std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(kRefused, why));
}

std::string Identity(const proto::MigrationStreamHeader& h) {
  // Escaped: the stream's bytes reach the log.
  return absl::StrCat("\"", absl::CHexEscape(h.device_type()), "\" version ", h.device_version(),
                      " (PCI ",
                      absl::Hex(h.vendor_id(), absl::kZeroPad4), ":",
                      absl::Hex(h.device_id(), absl::kZeroPad4), " subsystem ",
                      absl::Hex(h.subsystem_vendor_id(), absl::kZeroPad4), ":",
                      absl::Hex(h.subsystem_id(), absl::kZeroPad4), " class ",
                      absl::Hex(h.class_code(), absl::kZeroPad6), " rev ", h.revision(), ")");
}

}  // namespace

MigrationLoader::MigrationLoader(Expectation expectation) : expectation_(std::move(expectation)) {
  for (const proto::MigrationRegionLayout& region : expectation_.header.memory_regions()) {
    region_sizes_[region.index()] = region.size();
  }
}

void MigrationLoader::Write(absl::Span<const uint8_t> data) {
  loaded_.stream_bytes += data.size();
  // A violation stays in the reader's status; the rest is dropped.
  (void)reader_.Feed(data, [this](proto::MigrationChunk chunk) { return Accept(std::move(chunk)); });
}

absl::Status MigrationLoader::CheckHeader(const proto::MigrationStreamHeader& h) const {
  const proto::MigrationStreamHeader& ours = expectation_.header;
  if (h.format_version() != ours.format_version()) {
    return Refuse(absl::StrCat("stream format version ", h.format_version(),
                               ", this server reads version ", ours.format_version()));
  }
  if (h.device_type() != ours.device_type() || h.vendor_id() != ours.vendor_id() ||
      h.device_id() != ours.device_id() || h.subsystem_vendor_id() != ours.subsystem_vendor_id() ||
      h.subsystem_id() != ours.subsystem_id() || h.class_code() != ours.class_code() ||
      h.revision() != ours.revision()) {
    return Refuse(absl::StrCat("the stream is from device ", Identity(h), ", this device is ",
                               Identity(ours)));
  }
  if (h.device_version() > ours.device_version()) {
    return Refuse(absl::StrCat("the stream's device state version ", h.device_version(),
                               " is newer than this device's ", ours.device_version()));
  }
  if (h.config_space_size() != ours.config_space_size() ||
      h.msix_vectors() != ours.msix_vectors() ||
      h.memory_regions_size() != ours.memory_regions_size()) {
    return Refuse("the stream's config space, MSI-X or region layout differs from this device's");
  }
  for (int i = 0; i < h.memory_regions_size(); ++i) {
    if (h.memory_regions(i).index() != ours.memory_regions(i).index() ||
        h.memory_regions(i).size() != ours.memory_regions(i).size()) {
      return Refuse(absl::StrCat("the stream's region ", h.memory_regions(i).index(), " of ",
                                 h.memory_regions(i).size(), " bytes differs from this device's"));
    }
  }
  return absl::OkStatus();
}

absl::Status MigrationLoader::StagePages(const proto::MigrationRegionPages& pages) {
  auto region = region_sizes_.find(pages.region());
  if (region == region_sizes_.end()) {
    return Refuse(absl::StrCat("pages of region ", pages.region(),
                               ", which has no memory to migrate here"));
  }
  const uint64_t size = region->second;
  const uint64_t offset = pages.offset();
  const std::string& data = pages.data();
  if (offset % kPageSize != 0 || offset >= size || data.empty() || data.size() > size - offset ||
      (data.size() % kPageSize != 0 && offset + data.size() != size)) {
    return Refuse(absl::StrCat("pages [0x", absl::Hex(offset), ", +0x", absl::Hex(data.size()),
                               ") do not fit region ", pages.region(), " of 0x", absl::Hex(size),
                               " bytes"));
  }
  StagedRegion& staged = loaded_.regions[pages.region()];
  if (staged.bytes.empty()) {
    staged.bytes.resize(size);
    staged.present.resize((size + kPageSize - 1) / kPageSize, false);
  }
  std::memcpy(staged.bytes.data() + offset, data.data(), data.size());
  for (uint64_t page = offset / kPageSize; page * kPageSize < offset + data.size(); ++page) {
    if (!staged.present[page]) ++staged.pages_present;
    staged.present[page] = true;
  }
  return absl::OkStatus();
}

absl::Status MigrationLoader::CheckFrameworkState(
    const proto::MigrationFrameworkState& state) const {
  if (state.config_space().size() != expectation_.header.config_space_size()) {
    return Refuse(absl::StrCat("config space image of ", state.config_space().size(),
                               " bytes, this device has ",
                               expectation_.header.config_space_size()));
  }
  if (state.msix_table().size() != uint64_t{expectation_.header.msix_vectors()} * kMsixEntryBytes) {
    return Refuse(absl::StrCat("MSI-X table of ", state.msix_table().size(), " bytes, this device has ",
                               expectation_.header.msix_vectors(), " vectors"));
  }
  std::set<std::pair<uint32_t, uint32_t>> seen;
  for (const proto::MigrationPendingIrq& irq : state.pending()) {
    if (irq.index() >= expectation_.irq_vectors.size() ||
        irq.vector() >= expectation_.irq_vectors[irq.index()] ||
        !seen.insert({irq.index(), irq.vector()}).second) {
      return Refuse(absl::StrCat("pending interrupt ", irq.index(), ":", irq.vector(),
                                 " is not a vector of this device or is listed twice"));
    }
  }
  return absl::OkStatus();
}

absl::Status MigrationLoader::Accept(proto::MigrationChunk chunk) {
  const uint64_t number = reader_.chunks();  // this chunk's number, 1-based
  if (end_seen_) return Refuse("data after the end chunk");
  if (!header_seen_ && chunk.kind_case() != proto::MigrationChunk::kHeader) {
    return Refuse("the stream does not start with a header (not a vfu migration stream?)");
  }
  switch (chunk.kind_case()) {
    case proto::MigrationChunk::kHeader:
      if (header_seen_) return Refuse("a second header");
      VFU_RETURN_IF_ERROR(CheckHeader(chunk.header()));
      header_seen_ = true;
      return absl::OkStatus();
    case proto::MigrationChunk::kRegionPages:
      return StagePages(chunk.region_pages());
    case proto::MigrationChunk::kFrameworkState:
      if (framework_seen_) return Refuse("a second framework state");
      VFU_RETURN_IF_ERROR(CheckFrameworkState(chunk.framework_state()));
      framework_seen_ = true;
      loaded_.framework = std::move(*chunk.mutable_framework_state());
      return absl::OkStatus();
    case proto::MigrationChunk::kDeviceState: {
      if (final_seen_) return Refuse("device state after its final piece");
      const std::string& data = chunk.device_state().data();
      if (data.size() > kMaxDeviceStateBytes - device_bytes_) {
        return Refuse(absl::StrCat("device state beyond ", kMaxDeviceStateBytes, " bytes"));
      }
      device_bytes_ += data.size();
      final_seen_ = chunk.device_state().final();
      loaded_.device_pieces.push_back(std::move(*chunk.mutable_device_state()->mutable_data()));
      return absl::OkStatus();
    }
    case proto::MigrationChunk::kEnd:
      if (chunk.end().chunks() != number - 1) {
        return Refuse(absl::StrCat("the end chunk counts ", chunk.end().chunks(),
                                   " chunks before it, ", number - 1, " arrived"));
      }
      if (!framework_seen_ || !final_seen_) {
        return Refuse("the stream ends without the framework state or the final device state");
      }
      end_seen_ = true;
      return absl::OkStatus();
    case proto::MigrationChunk::KIND_NOT_SET:
      break;
  }
  return Refuse("a chunk of unknown kind");
}

absl::StatusOr<MigrationLoader::Loaded> MigrationLoader::Finish() {
  if (!reader_.status().ok()) {
    // The loader's own checks say "refused" already; framing errors do not.
    if (absl::StartsWith(reader_.status().message(), kRefused)) return reader_.status();
    return Refuse(reader_.status().message());
  }
  if (!end_seen_ || !reader_.at_frame_boundary()) {
    return Refuse(absl::StrCat("the stream is truncated: ", loaded_.stream_bytes, " bytes, ",
                               reader_.chunks(), " whole chunks, no end chunk"));
  }
  return std::move(loaded_);
}

}  // namespace vfu
