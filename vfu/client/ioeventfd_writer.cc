#include "vfu/client/ioeventfd_writer.h"

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "vfu/base/guarded_write.h"
#include "vfu/base/status_macros.h"
#include "vfu/wire/errno_status.h"

namespace vfu {
namespace {

constexpr uint32_t kKvmIoeventfdFlagDatamatch = 1u << 0;

uint64_t LittleEndianValue(absl::Span<const uint8_t> data) {
  uint64_t value = 0;
  for (size_t i = 0; i < data.size() && i < 8; ++i) value |= uint64_t{data[i]} << (8 * i);
  return value;
}

}  // namespace

absl::StatusOr<IoeventfdWriter> IoeventfdWriter::Create(Client& client, uint32_t region) {
  VFU_ASSIGN_OR_RETURN(RegionInfo info, client.GetRegionInfo(region));
  VFU_ASSIGN_OR_RETURN(RegionIoFds io_fds, client.GetRegionIoFds(region));
  IoeventfdWriter writer(client, region);
  writer.fds_ = std::move(io_fds.fds);
  for (const wire::IoFdEntry& entry : io_fds.reply.entries) {
    if (entry.type != wire::IoFdType::kIoeventfd) continue;
    const bool width_ok = entry.size == 0 || entry.size == 1 || entry.size == 2 ||
                          entry.size == 4 || entry.size == 8;
    // The decoder checked fd_index against the fds that came.
    if (!width_ok || entry.offset > info.info.size ||
        entry.size > info.info.size - entry.offset) {
      return wire::WireError(EINVAL, absl::StrCat("io fd entry at ", entry.offset, " size ",
                                                  entry.size, " is outside region ", region,
                                                  " or of no KVM width"));
    }
    writer.entries_.push_back(entry);
  }
  return writer;
}

absl::StatusOr<IoeventfdWriter::Path> IoeventfdWriter::Write(uint64_t offset,
                                                             absl::Span<const uint8_t> data,
                                                             bool posted) {
  for (const wire::IoFdEntry& entry : entries_) {
    if (entry.offset != offset || (entry.size != 0 && entry.size != data.size())) continue;
    if ((entry.flags & kKvmIoeventfdFlagDatamatch) != 0 &&
        entry.datamatch != LittleEndianValue(data)) {
      continue;
    }
    const uint64_t one = 1;
    // The server shares the file and could make it blocking and full: a
    // guarded write cannot hang. A full counter (would block, or cut short
    // after blocking) already has a wake-up pending: coalesced, as KVM's.
    const GuardedWriteResult written =
        GuardedWrite(fds_[entry.fd_index].get(), &one, sizeof one);
    if (written.outcome == GuardedWriteOutcome::kFailed) {
      return wire::WireError(written.error, "writing an ioeventfd");
    }
    return Path::kEventfd;
  }
  VFU_RETURN_IF_ERROR(client_->RegionWrite(region_, offset, data, posted));
  return Path::kRegionWrite;
}

}  // namespace vfu
