#include "tools/migrate/migrate_command.h"

#include <zlib.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/text_format.h"
#include "proto/migration_stream.pb.h"
#include "vfu/base/status_macros.h"
#include "vfu/device/migration_stream.h"

namespace vfu::migrate {
namespace {

std::string Bytes(uint64_t n) {
  if (n >= (1u << 20)) return absl::StrFormat("%.2f MiB", n / 1048576.0);
  if (n >= 1024) return absl::StrFormat("%.1f KiB", n / 1024.0);
  return absl::StrCat(n, " B");
}

std::string Millis(absl::Duration d) {
  return absl::StrFormat("%.3f ms", absl::ToDoubleMilliseconds(d));
}

absl::StatusOr<std::vector<uint8_t>> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read ", path));
  return bytes;
}

std::string Summary(const std::string& data) {
  const uLong crc = crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(data.data()),
                          static_cast<uInt>(data.size()));
  return absl::StrFormat("<%d bytes, crc32 %08x>", data.size(), crc);
}

MigrationOptions WithProgress(MigrationOptions options, std::ostream& out) {
  options.on_progress = [&out](const MigrationProgress& p) { out << FormatProgress(p) << "\n"; };
  return options;
}

}  // namespace

absl::Status ValidateCommand(const MigrateCommand& c) {
  if (!c.print_file.empty()) {
    if (!c.from.empty() || !c.to.empty() || !c.save_file.empty() || !c.load_file.empty()) {
      return absl::InvalidArgumentError("--print takes no other command");
    }
    return absl::OkStatus();
  }
  if (!c.save_file.empty() && !c.load_file.empty()) {
    return absl::InvalidArgumentError("--save and --load exclude each other");
  }
  if (!c.from.empty() && (c.to.empty() == c.save_file.empty())) {
    return absl::InvalidArgumentError("--from needs exactly one of --to and --save");
  }
  if (c.from.empty() && (c.to.empty() || c.load_file.empty())) {
    return absl::InvalidArgumentError(
        "give --from=SOCK with --to=SOCK or --save=FILE, --to=SOCK with --load=FILE, or "
        "--print=FILE");
  }
  if (!c.from.empty() && !c.load_file.empty()) {
    return absl::InvalidArgumentError("--load goes with --to alone");
  }
  return absl::OkStatus();
}

std::string FormatProgress(const MigrationProgress& p) {
  switch (p.phase) {
    case MigrationProgress::Phase::kPreCopy:
      return absl::StrCat("pre-copy round ", p.round, ": ", Bytes(p.round_bytes), ", estimate left ",
                          Bytes(p.estimate), ", client pages dirtied ", p.dirty_pages);
    case MigrationProgress::Phase::kStopCopy:
      return absl::StrCat("stop-copy (round ", p.round, "): ", Bytes(p.round_bytes),
                          ", client pages dirtied ", p.dirty_pages);
    case MigrationProgress::Phase::kResumed:
      return absl::StrCat("destination running: ", Bytes(p.total_bytes), " moved");
  }
  return "";
}

std::string FormatReport(const MigrationReport& r) {
  return absl::StrCat(
      "stream: ", Bytes(r.stream_bytes), " (", r.stream_bytes, " bytes) in ", r.precopy_rounds,
      " pre-copy round(s) + stop-copy\n", "  pre-copy:  ", Bytes(r.precopy_bytes), "\n",
      "  stop-copy: ", Bytes(r.stop_copy_bytes), " in ", Millis(r.stop_copy_time), "\n",
      "  carried:   region memory ", Bytes(r.region_bytes), ", device state ",
      Bytes(r.device_state_bytes), " (", r.device_state_bytes, " bytes)\n",
      "downtime (STOP_COPY to destination RUNNING): ", Millis(r.downtime),
      " (destination check and restore ", Millis(r.restore_time), ")\n",
      "total: ", Millis(r.total_time), ", client pages reported dirty: ", r.dirty_pages, "\n");
}

absl::Status PrintStream(absl::Span<const uint8_t> stream, std::ostream& out) {
  MigrationFrameReader reader;
  uint64_t region_bytes = 0;
  uint64_t device_bytes = 0;
  google::protobuf::TextFormat::Printer printer;
  absl::Status status = reader.Feed(stream, [&](proto::MigrationChunk chunk) {
    if (chunk.has_region_pages()) {
      region_bytes += chunk.region_pages().data().size();
      *chunk.mutable_region_pages()->mutable_data() = Summary(chunk.region_pages().data());
    }
    if (chunk.has_device_state()) device_bytes += chunk.device_state().data().size();
    if (chunk.has_framework_state()) {
      *chunk.mutable_framework_state()->mutable_config_space() =
          Summary(chunk.framework_state().config_space());
    }
    std::string text;
    printer.PrintToString(chunk, &text);
    out << "# chunk " << reader.chunks() << "\n" << text;
    return absl::OkStatus();
  });
  if (status.ok() && !reader.at_frame_boundary()) {
    status = absl::InvalidArgumentError("the stream ends inside a frame");
  }
  out << "# " << reader.chunks() << " chunks, " << stream.size() << " bytes: region memory "
      << region_bytes << " bytes, device state " << device_bytes << " bytes\n";
  return status;
}

absl::Status RunCommand(const MigrateCommand& c, std::ostream& out) {
  VFU_RETURN_IF_ERROR(ValidateCommand(c));
  if (!c.print_file.empty()) {
    VFU_ASSIGN_OR_RETURN(std::vector<uint8_t> stream, ReadFile(c.print_file));
    return PrintStream(stream, out);
  }
  if (!c.load_file.empty()) {
    VFU_ASSIGN_OR_RETURN(std::vector<uint8_t> stream, ReadFile(c.load_file));
    VFU_ASSIGN_OR_RETURN(std::unique_ptr<Client> to, Client::Connect(c.to, c.client));
    const absl::Time start = absl::Now();
    VFU_RETURN_IF_ERROR(LoadMigration(*to, stream));
    out << "loaded " << Bytes(stream.size()) << " into " << c.to << " in "
        << Millis(absl::Now() - start) << "; it runs\n";
    return absl::OkStatus();
  }
  VFU_ASSIGN_OR_RETURN(std::unique_ptr<Client> from, Client::Connect(c.from, c.client));
  const MigrationOptions options = WithProgress(c.migration, out);
  if (!c.save_file.empty()) {
    std::ofstream file(c.save_file, std::ios::binary | std::ios::trunc);
    if (!file) return absl::PermissionDeniedError(absl::StrCat("cannot write ", c.save_file));
    VFU_ASSIGN_OR_RETURN(MigrationReport report,
                         SaveMigration(*from, options, [&](absl::Span<const uint8_t> bytes) {
                           file.write(reinterpret_cast<const char*>(bytes.data()),
                                      static_cast<std::streamsize>(bytes.size()));
                           return file ? absl::OkStatus()
                                       : absl::DataLossError("writing the state file failed");
                         }));
    file.close();
    if (!file) return absl::DataLossError(absl::StrCat("cannot write ", c.save_file));
    out << FormatReport(report) << "saved to " << c.save_file << "; the source stays stopped\n";
    return absl::OkStatus();
  }
  VFU_ASSIGN_OR_RETURN(std::unique_ptr<Client> to, Client::Connect(c.to, c.client));
  VFU_ASSIGN_OR_RETURN(MigrationReport report, Migrate(*from, *to, options));
  out << FormatReport(report);
  return absl::OkStatus();
}

}  // namespace vfu::migrate
