#include "vfu/client/migration.h"

#include <algorithm>
#include <bit>
#include <utility>

#include "absl/strings/str_cat.h"
#include "vfu/base/log.h"
#include "vfu/base/status_macros.h"
#include "vfu/device/migration_stream.h"
#include "vfu/wire/dirty_bitmap.h"
#include "vfu/wire/errno_status.h"
#include "vfu/wire/migration_data.h"

namespace vfu {
namespace {

using wire::DeviceFeature;

// A GET whose reply decodes to a T. T must hold no view into the reply
// (the reply dies here): DMA_LOGGING_REPORT has its own call below.
template <typename T>
absl::StatusOr<T> FeatureGet(Client& client, DeviceFeature feature, uint32_t reply_size) {
  wire::DeviceFeatureRequest request{
      .argsz = reply_size, .flags = wire::DeviceFeatureFlags(feature, wire::kDeviceFeatureGet)};
  std::vector<uint8_t> payload;
  wire::EncodeDeviceFeatureRequest(request, payload);
  VFU_ASSIGN_OR_RETURN(Reply reply, client.Call(wire::Command::kDeviceFeature, payload));
  VFU_ASSIGN_OR_RETURN(wire::DeviceFeatureGetReply decoded,
                       wire::DecodeDeviceFeatureGetReply(reply.payload(), reply.fds.size()));
  if (const T* data = std::get_if<T>(&decoded.data)) return *data;
  return wire::WireError(EINVAL, "DEVICE_FEATURE reply of another feature");
}

absl::Status FeatureSet(Client& client, DeviceFeature feature,
                        decltype(wire::DeviceFeatureRequest::data) data) {
  wire::DeviceFeatureRequest request{
      .flags = wire::DeviceFeatureFlags(feature, wire::kDeviceFeatureSet), .data = std::move(data)};
  std::vector<uint8_t> payload;
  wire::EncodeDeviceFeatureRequest(request, payload);
  // argsz: room for the echo.
  request.argsz = static_cast<uint32_t>(payload.size());
  payload.clear();
  wire::EncodeDeviceFeatureRequest(request, payload);
  VFU_ASSIGN_OR_RETURN(Reply reply, client.Call(wire::Command::kDeviceFeature, payload));
  return wire::CheckDeviceFeatureEchoReply(reply.payload(), payload);
}

uint32_t MaxTransfer(const Client& client, uint64_t wanted) {
  return static_cast<uint32_t>(
      std::min<uint64_t>({wanted, client.server_capabilities().max_data_xfer_size, 64u << 20}));
}

// Counts what the stream carries as it passes, for the report. A stream
// that cannot be decoded is the destination's to refuse; here it only
// stops the counting.
class StreamCounter {
 public:
  void Feed(absl::Span<const uint8_t> bytes) {
    (void)reader_.Feed(bytes, [this](proto::MigrationChunk chunk) {
      if (chunk.has_region_pages()) region_bytes += chunk.region_pages().data().size();
      if (chunk.has_device_state()) device_state_bytes += chunk.device_state().data().size();
      return absl::OkStatus();
    });
  }
  uint64_t region_bytes = 0;
  uint64_t device_state_bytes = 0;

 private:
  MigrationFrameReader reader_;
};

using Sink = std::function<absl::Status(absl::Span<const uint8_t>)>;

class Saver {
 public:
  Saver(Client& source, const MigrationOptions& options, const Sink& sink)
      : source_(source), options_(options), sink_(sink) {}

  // Leaves the source in STOP; `stop_copy_start` is when STOP_COPY was asked.
  absl::Status Run(MigrationReport& report, absl::Time& stop_copy_start) {
    const absl::Time start = absl::Now();
    if (!options_.dirty_log_ranges.empty()) {
      VFU_RETURN_IF_ERROR(
          StartDirtyLogging(source_, options_.dirty_page_size, options_.dirty_log_ranges));
      logging_ = true;
    }
    uint32_t round = 0;
    if (options_.precopy) {
      VFU_RETURN_IF_ERROR(SetMigrationState(source_, MigrationState::kPreCopy));
      while (round < options_.max_precopy_rounds) {
        ++round;
        VFU_ASSIGN_OR_RETURN(const uint64_t bytes, ReadRound());
        VFU_ASSIGN_OR_RETURN(const uint64_t dirty, ReportDirty());
        VFU_ASSIGN_OR_RETURN(const uint64_t estimate, GetMigrationDataSize(source_));
        report.precopy_bytes += bytes;
        Progress(MigrationProgress::Phase::kPreCopy, round, bytes, estimate, dirty);
        if (estimate <= options_.stop_copy_threshold) break;
      }
      report.precopy_rounds = round;
    } else {
      VFU_RETURN_IF_ERROR(SetMigrationState(source_, MigrationState::kStop));
    }
    stop_copy_start = absl::Now();
    VFU_RETURN_IF_ERROR(SetMigrationState(source_, MigrationState::kStopCopy));
    VFU_ASSIGN_OR_RETURN(const uint64_t bytes, ReadRound());
    report.stop_copy_time = absl::Now() - stop_copy_start;
    report.stop_copy_bytes = bytes;
    VFU_ASSIGN_OR_RETURN(const uint64_t dirty, ReportDirty());
    Progress(MigrationProgress::Phase::kStopCopy, round + 1, bytes, 0, dirty);
    VFU_RETURN_IF_ERROR(SetMigrationState(source_, MigrationState::kStop));
    VFU_RETURN_IF_ERROR(StopLogging());
    report.stream_bytes = total_bytes_;
    report.region_bytes = counter_.region_bytes;
    report.device_state_bytes = counter_.device_state_bytes;
    report.dirty_pages = dirty_pages_;
    report.total_time = absl::Now() - start;
    return absl::OkStatus();
  }

  // After a failure: the source runs again, logging off.
  void Recover() {
    if (absl::Status s = SetMigrationState(source_, MigrationState::kRunning); !s.ok()) {
      VFU_LOG(kWarning, "migration: the source did not return to RUNNING: ", s.ToString());
    }
    (void)StopLogging();
  }

  uint64_t total_bytes() const { return total_bytes_; }

 private:
  // Reads to a short read, handing each piece to the sink.
  absl::StatusOr<uint64_t> ReadRound() {
    const uint32_t size = MaxTransfer(source_, options_.read_size);
    uint64_t bytes = 0;
    while (true) {
      VFU_ASSIGN_OR_RETURN(std::vector<uint8_t> data, ReadMigrationData(source_, size));
      counter_.Feed(data);
      if (!data.empty()) VFU_RETURN_IF_ERROR(sink_(data));
      bytes += data.size();
      total_bytes_ += data.size();
      if (data.size() < size) return bytes;
    }
  }

  absl::StatusOr<uint64_t> ReportDirty() {
    if (!logging_) return 0;
    uint64_t pages = 0;
    for (const wire::DmaLoggingRange& range : options_.dirty_log_ranges) {
      VFU_ASSIGN_OR_RETURN(
          std::vector<uint8_t> bitmap,
          ReportDirtyPages(source_, range.iova, range.length, options_.dirty_page_size));
      for (uint8_t byte : bitmap) pages += std::popcount(byte);
      if (options_.on_dirty_pages) options_.on_dirty_pages(range, bitmap);
    }
    dirty_pages_ += pages;
    return pages;
  }

  absl::Status StopLogging() {
    if (!logging_) return absl::OkStatus();
    logging_ = false;
    return StopDirtyLogging(source_);
  }

  void Progress(MigrationProgress::Phase phase, uint32_t round, uint64_t bytes, uint64_t estimate,
                uint64_t dirty) {
    if (!options_.on_progress) return;
    options_.on_progress({.phase = phase,
                          .round = round,
                          .round_bytes = bytes,
                          .total_bytes = total_bytes_,
                          .estimate = estimate,
                          .dirty_pages = dirty});
  }

  Client& source_;
  const MigrationOptions& options_;
  const Sink& sink_;
  StreamCounter counter_;
  bool logging_ = false;
  uint64_t total_bytes_ = 0;
  uint64_t dirty_pages_ = 0;
};

void ResetDestination(Client& destination) {
  if (absl::Status s = destination.Reset(); !s.ok()) {
    VFU_LOG(kWarning, "migration: resetting the destination failed: ", s.ToString());
  }
}

}  // namespace

absl::StatusOr<uint64_t> GetMigrationFlags(Client& client) {
  VFU_ASSIGN_OR_RETURN(wire::FeatureMigration migration,
                       FeatureGet<wire::FeatureMigration>(
                           client, DeviceFeature::kMigration,
                           wire::kDeviceFeatureHeaderSize + wire::kFeatureMigrationSize));
  return migration.flags;
}

absl::StatusOr<MigrationState> GetMigrationState(Client& client) {
  VFU_ASSIGN_OR_RETURN(wire::FeatureMigState state,
                       FeatureGet<wire::FeatureMigState>(
                           client, DeviceFeature::kMigDeviceState,
                           wire::kDeviceFeatureHeaderSize + wire::kFeatureMigStateSize));
  return static_cast<MigrationState>(state.device_state);
}

absl::Status SetMigrationState(Client& client, MigrationState state) {
  return FeatureSet(client, DeviceFeature::kMigDeviceState,
                    wire::FeatureMigState{.device_state = static_cast<uint32_t>(state)});
}

absl::StatusOr<uint64_t> GetMigrationDataSize(Client& client) {
  VFU_ASSIGN_OR_RETURN(wire::FeatureMigDataSize size,
                       FeatureGet<wire::FeatureMigDataSize>(
                           client, DeviceFeature::kMigDataSize,
                           wire::kDeviceFeatureHeaderSize + wire::kFeatureMigDataSizeSize));
  return size.stop_copy_length;
}

absl::StatusOr<std::vector<uint8_t>> ReadMigrationData(Client& client, uint32_t size) {
  size = MaxTransfer(client, size);
  std::vector<uint8_t> payload;
  wire::EncodeMigDataReadRequest(
      {.argsz = static_cast<uint32_t>(wire::kMigDataFixedSize + size), .size = size}, payload);
  VFU_ASSIGN_OR_RETURN(Reply reply, client.Call(wire::Command::kMigDataRead, payload));
  VFU_ASSIGN_OR_RETURN(wire::MigDataReadReply data,
                       wire::DecodeMigDataReadReply(reply.payload(), reply.fds.size(), size));
  return std::vector<uint8_t>(data.data.begin(), data.data.end());
}

absl::Status WriteMigrationData(Client& client, absl::Span<const uint8_t> data) {
  const uint32_t max = MaxTransfer(client, data.size());
  while (!data.empty()) {
    const absl::Span<const uint8_t> piece = data.subspan(0, max);
    std::vector<uint8_t> payload;
    wire::EncodeMigDataWriteRequest(
        {.argsz = static_cast<uint32_t>(wire::kMigDataFixedSize + piece.size()), .data = piece},
        payload);
    VFU_RETURN_IF_ERROR(client.Call(wire::Command::kMigDataWrite, payload).status());
    data.remove_prefix(piece.size());
  }
  return absl::OkStatus();
}

absl::Status StartDirtyLogging(Client& client, uint64_t page_size,
                               std::vector<wire::DmaLoggingRange> ranges) {
  return FeatureSet(client, DeviceFeature::kDmaLoggingStart,
                    wire::DmaLoggingControl{.page_size = page_size, .ranges = std::move(ranges)});
}

absl::Status StopDirtyLogging(Client& client) {
  return FeatureSet(client, DeviceFeature::kDmaLoggingStop, std::monostate());
}

absl::StatusOr<std::vector<uint8_t>> ReportDirtyPages(Client& client, uint64_t iova,
                                                      uint64_t length, uint64_t page_size) {
  VFU_ASSIGN_OR_RETURN(const uint64_t bitmap_size, wire::DirtyBitmapSize(length, page_size));
  const uint64_t reply_size =
      wire::kDeviceFeatureHeaderSize + wire::kDmaLoggingReportFixedSize + bitmap_size;
  if (reply_size > UINT32_MAX) return wire::WireError(EINVAL, "dirty bitmap too large");
  wire::DeviceFeatureRequest request{
      .argsz = static_cast<uint32_t>(reply_size),
      .flags = wire::DeviceFeatureFlags(DeviceFeature::kDmaLoggingReport, wire::kDeviceFeatureGet),
      .data = wire::DmaLoggingReport{.iova = iova, .length = length, .page_size = page_size}};
  std::vector<uint8_t> payload;
  wire::EncodeDeviceFeatureRequest(request, payload);
  VFU_ASSIGN_OR_RETURN(Reply reply, client.Call(wire::Command::kDeviceFeature, payload));
  VFU_ASSIGN_OR_RETURN(wire::DeviceFeatureGetReply decoded,
                       wire::DecodeDeviceFeatureGetReply(reply.payload(), reply.fds.size()));
  const auto* report = std::get_if<wire::DmaLoggingReport>(&decoded.data);
  if (report == nullptr || report->iova != iova || report->length != length ||
      report->bitmap.size() != bitmap_size) {
    return wire::WireError(EINVAL, "DMA_LOGGING_REPORT reply for another range");
  }
  // The bitmap is a view into `reply`: copied before it goes.
  return std::vector<uint8_t>(report->bitmap.begin(), report->bitmap.end());
}

absl::StatusOr<MigrationReport> SaveMigration(Client& source, const MigrationOptions& options,
                                              const Sink& sink) {
  Saver saver(source, options, sink);
  MigrationReport report;
  absl::Time stop_copy_start;
  if (absl::Status status = saver.Run(report, stop_copy_start); !status.ok()) {
    saver.Recover();
    return status;
  }
  report.downtime = report.stop_copy_time;
  return report;
}

absl::Status LoadMigration(Client& destination, absl::Span<const uint8_t> stream) {
  absl::Status status = SetMigrationState(destination, MigrationState::kResuming);
  if (status.ok()) status = WriteMigrationData(destination, stream);
  if (status.ok()) status = SetMigrationState(destination, MigrationState::kStop);
  if (status.ok()) status = SetMigrationState(destination, MigrationState::kRunning);
  if (!status.ok()) ResetDestination(destination);
  return status;
}

absl::StatusOr<MigrationReport> Migrate(Client& source, Client& destination,
                                        const MigrationOptions& options) {
  VFU_RETURN_IF_ERROR(SetMigrationState(destination, MigrationState::kResuming));
  const Sink sink = [&](absl::Span<const uint8_t> bytes) {
    return WriteMigrationData(destination, bytes);
  };
  Saver saver(source, options, sink);
  MigrationReport report;
  absl::Time stop_copy_start;
  absl::Status status = saver.Run(report, stop_copy_start);
  // The destination judges the stream here.
  const absl::Time restore_start = absl::Now();
  if (status.ok()) status = SetMigrationState(destination, MigrationState::kStop);
  if (status.ok()) status = SetMigrationState(destination, MigrationState::kRunning);
  report.restore_time = absl::Now() - restore_start;
  if (!status.ok()) {
    saver.Recover();
    ResetDestination(destination);
    return status;
  }
  report.downtime = absl::Now() - stop_copy_start;
  if (options.on_progress) {
    options.on_progress({.phase = MigrationProgress::Phase::kResumed,
                         .round = report.precopy_rounds + 1,
                         .total_bytes = report.stream_bytes});
  }
  return report;
}

}  // namespace vfu
