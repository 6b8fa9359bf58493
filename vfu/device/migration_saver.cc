#include "vfu/device/migration_saver.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "vfu/base/status_macros.h"
#include "vfu/device/migration_stream.h"

namespace vfu {

MigrationSaver::MigrationSaver(Sources sources) : sources_(std::move(sources)) {
  for (const Region& region : sources_.regions) {
    trackers_.push_back(std::make_unique<RegionDirtyTracker>(region.memory));
  }
}

void MigrationSaver::BeginPreCopy() {
  stop_copy_ = false;
  round_open_ = false;
}

void MigrationSaver::BeginStopCopy() {
  stop_copy_ = true;
  precopy_rounds_ = round_;
  step_ = Step::kPages;
  // Stop-copy is one more round over whatever is still dirty.
  OpenRound();
}

void MigrationSaver::OpenRound() {
  round_open_ = true;
  ++round_;
  region_cursor_ = 0;
  page_cursor_ = 0;
  device_piece_done_ = false;
}

void MigrationSaver::Append(const proto::MigrationChunk& chunk) {
  AppendMigrationFrame(chunk, out_);
  ++chunks_;
}

bool MigrationSaver::NextPages() {
  while (region_cursor_ < trackers_.size()) {
    std::optional<RegionDirtyTracker::Run> run =
        trackers_[region_cursor_]->NextDirtyRun(&page_cursor_, kMaxPagesPerChunk);
    if (run) {
      proto::MigrationChunk chunk;
      proto::MigrationRegionPages& pages = *chunk.mutable_region_pages();
      pages.set_region(sources_.regions[region_cursor_].index);
      pages.set_offset(run->offset);
      pages.set_round(round_);
      region_bytes_sent_ += run->data.size();
      *pages.mutable_data() = std::move(run->data);
      Append(chunk);
      return true;
    }
    ++region_cursor_;
    page_cursor_ = 0;
  }
  return false;
}

absl::StatusOr<bool> MigrationSaver::Produce() {
  if (!header_sent_) {
    header_sent_ = true;
    proto::MigrationChunk chunk;
    *chunk.mutable_header() = sources_.header;
    Append(chunk);
    return true;
  }
  if (!stop_copy_) {
    if (!round_open_) OpenRound();
    if (NextPages()) return true;
    while (!device_piece_done_) {
      device_piece_done_ = true;
      std::string piece;
      VFU_RETURN_IF_ERROR(sources_.device_state(/*final=*/false, piece));
      if (piece.empty()) break;
      proto::MigrationChunk chunk;
      device_bytes_sent_ += piece.size();
      chunk.mutable_device_state()->set_data(std::move(piece));
      Append(chunk);
      return true;
    }
    return false;
  }
  switch (step_) {
    case Step::kPages:
      if (NextPages()) return true;
      step_ = Step::kFramework;
      [[fallthrough]];
    case Step::kFramework: {
      proto::MigrationChunk chunk;
      *chunk.mutable_framework_state() = sources_.framework_state();
      Append(chunk);
      step_ = Step::kDeviceFinal;
      return true;
    }
    case Step::kDeviceFinal: {
      std::string piece;
      VFU_RETURN_IF_ERROR(sources_.device_state(/*final=*/true, piece));
      proto::MigrationChunk chunk;
      device_bytes_sent_ += piece.size();
      chunk.mutable_device_state()->set_data(std::move(piece));
      chunk.mutable_device_state()->set_final(true);
      Append(chunk);
      step_ = Step::kEnd;
      return true;
    }
    case Step::kEnd: {
      proto::MigrationChunk chunk;
      chunk.mutable_end()->set_chunks(chunks_);
      chunk.mutable_end()->set_precopy_rounds(precopy_rounds_);
      Append(chunk);
      step_ = Step::kDone;
      return true;
    }
    case Step::kDone:
      return false;
  }
  return false;
}

absl::StatusOr<size_t> MigrationSaver::Read(absl::Span<uint8_t> out) {
  size_t n = 0;
  while (n < out.size()) {
    if (out_pos_ == out_.size()) {
      out_.clear();
      out_pos_ = 0;
      VFU_ASSIGN_OR_RETURN(const bool more, Produce());
      if (!more) break;
      continue;
    }
    const size_t take = std::min(out.size() - n, out_.size() - out_pos_);
    std::memcpy(out.data() + n, out_.data() + out_pos_, take);
    out_pos_ += take;
    n += take;
  }
  // A short read ends the round; the next read opens another.
  if (n < out.size() && !stop_copy_) round_open_ = false;
  bytes_read_ += n;
  return n;
}

uint64_t MigrationSaver::Estimate() const {
  uint64_t bytes = out_.size() - out_pos_;
  if (stop_copy_ && step_ == Step::kDone) return bytes;
  for (const auto& tracker : trackers_) bytes += tracker->DirtyBytes();
  if (!stop_copy_) bytes += sources_.device_pending ? sources_.device_pending() : 0;
  return bytes;
}

}  // namespace vfu
