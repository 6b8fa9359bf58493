#include "vfu/server/connection_observer.h"

#include <time.h>

#include <utility>

#include "vfu/wire/byte_io.h"
#include "vfu/wire/constants.h"
#include "vfu/wire/header.h"

namespace vfu {
namespace {

uint64_t MonotonicNanos() {
  if constexpr (!kStatisticsEnabled) return 0;
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

constexpr uint16_t Code(wire::Command c) { return static_cast<uint16_t>(c); }

// The `count` of a region access payload ({offset u64, region u32, count
// u32, ...}) at `offset` in `bytes`, or 0 when it is not there.
uint64_t RegionCount(const std::vector<uint8_t>& bytes, size_t offset) {
  if (bytes.size() < offset + 16) return 0;
  return wire::LoadU32(bytes, offset + 12);
}

// REGION_WRITE_MULTI: entries of {offset u64, region u32, count u32,
// data[8]}; the sum of counts, bounded by the payload's size.
uint64_t WriteMultiBytes(const std::vector<uint8_t>& bytes) {
  constexpr size_t kEntry = 24;
  uint64_t total = 0;
  for (size_t at = wire::kHeaderSize; at + kEntry <= bytes.size(); at += kEntry) {
    const uint32_t count = wire::LoadU32(bytes, at + 12);
    total += count <= 8 ? count : 0;
  }
  return total;
}

}  // namespace

ConnectionObserver::ConnectionObserver(ConnectionReporting reporting)
    : reporting_(std::move(reporting)), client_(reporting_.client) {
  if (reporting_.stats) reporting_.stats->RecordClientConnected();
}

ConnectionObserver::CommandStart ConnectionObserver::BeforeCommand(
    const InboundMessage& message) const {
  CommandStart start{.command = message.header.command, .no_reply = message.header.no_reply()};
  if (reporting_.stats == nullptr) return start;
  if (start.command == Code(wire::Command::kRegionWrite)) {
    start.write_bytes = RegionCount(message.bytes, wire::kHeaderSize);
  } else if (start.command == Code(wire::Command::kRegionWriteMulti)) {
    start.write_bytes = WriteMultiBytes(message.bytes);
  }
  start.start_ns = MonotonicNanos();
  return start;
}

void ConnectionObserver::AfterCommand(const CommandStart& start, const Session::Result& result) {
  if (result.negotiated) OnNegotiated(*result.negotiated);
  DeviceStatistics* stats = reporting_.stats;
  // Compiled out: per-command accounting (and the events it finds) goes.
  if (!kStatisticsEnabled || stats == nullptr) return;
  const uint64_t latency = MonotonicNanos() - start.start_ns;
  uint32_t error = 0;
  uint64_t read_bytes = 0;
  if (result.reply && result.reply->bytes.size() >= wire::kHeaderSize) {
    const wire::Header reply = wire::DecodeHeader(result.reply->bytes);
    if (reply.is_error()) {
      // An error reply without an errno is still an error.
      error = reply.error != 0 ? reply.error : wire::kMaxErrno;
    } else if (start.command == Code(wire::Command::kRegionRead)) {
      read_bytes = RegionCount(result.reply->bytes, wire::kHeaderSize);
    }
  }
  stats->RecordCommand(start.command, latency, error);
  if (error == 0 && (read_bytes != 0 || start.write_bytes != 0)) {
    stats->RecordRegionBytes(read_bytes, start.write_bytes);
  }
  if (error != 0 && reporting_.events) {
    reporting_.events->PublishRateLimited(ServerEvent{.kind = ServerEvent::Kind::kProtocolError,
                                                      .device = reporting_.device,
                                                      .command = start.command,
                                                      .errno_value = error});
  }
  if (error == 0 && start.command == Code(wire::Command::kDeviceReset) && reporting_.events) {
    reporting_.events->Publish(ServerEvent{.kind = ServerEvent::Kind::kDeviceReset,
                                           .device = reporting_.device,
                                           .reason = "DEVICE_RESET from the client"});
  }
}

void ConnectionObserver::OnNegotiated(const wire::NegotiatedVersion& n) {
  ClientIdentity client;
  {
    absl::MutexLock lock(&mu_);
    client_.negotiated = true;
    client_.version_major = n.reply.major;
    client_.version_minor = n.reply.minor;
    client_.max_msg_fds = n.limits.max_fds_to_client;
    client_.max_data_xfer_size = n.limits.max_data_xfer_to_client;
    client_.max_dma_maps = n.reply.capabilities.max_dma_maps;
    client_.migration_pgsize =
        n.migration() ? n.reply.capabilities.migration->pgsize.value_or(0) : 0;
    client_.twin_socket = n.twin_socket();
    client_.write_multiple = n.write_multiple();
    client = client_;
  }
  if (reporting_.stats) reporting_.stats->RecordClientServed();
  if (reporting_.events) {
    reporting_.events->Publish(ServerEvent{
        .kind = ServerEvent::Kind::kClientAttached, .device = reporting_.device, .client = client});
  }
}

void ConnectionObserver::OnClosing(std::string_view why) {
  absl::MutexLock lock(&mu_);
  if (close_reason_.empty()) close_reason_ = std::string(why);
}

void ConnectionObserver::OnDetached() {
  ClientIdentity client;
  std::string reason;
  {
    absl::MutexLock lock(&mu_);
    client = client_;
    reason = close_reason_;
  }
  if (!client.negotiated && reporting_.stats) reporting_.stats->RecordClientRefused();
  if (reporting_.events) {
    reporting_.events->Publish(ServerEvent{
        .kind = client.negotiated ? ServerEvent::Kind::kClientDetached
                                  : ServerEvent::Kind::kClientRefused,
        .device = reporting_.device,
        .reason = reason,
        .client = client});
  }
}

ClientIdentity ConnectionObserver::client() const {
  absl::MutexLock lock(&mu_);
  return client_;
}

}  // namespace vfu
