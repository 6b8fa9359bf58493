#include "vfu/server/attachment_context.h"

#include <optional>
#include <utility>

#include "vfu/base/rcu.h"
#include "vfu/engine/message_dma.h"
#include "vfu/server/connection.h"

namespace vfu {
namespace {

// Bytes the current thread's slow-path copy sent as messages (Read/Write
// below run inside memory_.Read/Write, on the caller's thread), so the
// rest of the copy is counted as mapped.
thread_local uint64_t message_bytes_in_copy = 0;

absl::Status RevokedError() {
  return absl::UnavailableError("the client this DMA handle belongs to has detached");
}

}  // namespace

AttachmentContext::AttachmentContext(DmaMapTable& table, Connection& connection)
    : table_(table), connection_(connection), memory_(table, *this) {}

absl::Status AttachmentContext::DmaRead(uint64_t iova, absl::Span<uint8_t> out) {
  {
    // The flag and the copy share one read section: see the header.
    RcuReadSection section;
    if (revoked()) return RevokedError();
    if (std::optional<absl::Status> done =
            FastPathStatus(table_.TryReadMapped(iova, out), "DMA read", iova, out.size())) {
      if (done->ok()) RecordMapped(/*write=*/false, out.size());
      return *done;
    }
  }
  if (!BeginCall()) return RevokedError();
  message_bytes_in_copy = 0;
  absl::Status status = memory_.Read(iova, out);
  EndCall();
  if (status.ok()) RecordMapped(/*write=*/false, out.size() - message_bytes_in_copy);
  return status;
}

absl::Status AttachmentContext::DmaWrite(uint64_t iova, absl::Span<const uint8_t> data) {
  {
    RcuReadSection section;
    if (revoked()) return RevokedError();
    if (std::optional<absl::Status> done =
            FastPathStatus(table_.TryWriteMapped(iova, data), "DMA write", iova, data.size())) {
      if (done->ok()) RecordMapped(/*write=*/true, data.size());
      return *done;
    }
  }
  if (!BeginCall()) return RevokedError();
  message_bytes_in_copy = 0;
  absl::Status status = memory_.Write(iova, data);
  EndCall();
  if (status.ok()) RecordMapped(/*write=*/true, data.size() - message_bytes_in_copy);
  return status;
}

absl::StatusOr<DmaSgList> AttachmentContext::DmaPin(uint64_t iova, uint64_t length,
                                                    DmaDirection direction) {
  if (!BeginCall()) return RevokedError();
  absl::StatusOr<DmaSgList> list = memory_.Pin(iova, length, direction);
  EndCall();
  // The device copies through the pinned mapping itself: counted as mapped
  // DMA of the whole range.
  if (list.ok()) RecordMapped(direction == DmaDirection::kWrite, length);
  return list;
}

void AttachmentContext::Revoke() {
  {
    absl::MutexLock lock(&mu_);
    revoked_.store(true, std::memory_order_seq_cst);
    mu_.Await(absl::Condition(
        +[](int* calls) { return *calls == 0; }, &calls_in_progress_));
  }
  // Every fast-path copy that saw the flag clear has ended after this.
  RcuSynchronize();
}

bool AttachmentContext::BeginCall() {
  absl::MutexLock lock(&mu_);
  if (revoked()) return false;
  ++calls_in_progress_;
  return true;
}

void AttachmentContext::EndCall() {
  absl::MutexLock lock(&mu_);
  --calls_in_progress_;
}

absl::Status AttachmentContext::Read(uint64_t iova, absl::Span<uint8_t> out) {
  const MessageDmaConfig config = connection_.dma_config();
  absl::Status status = DmaReadViaMessages(connection_, config, iova, out);
  if (status.ok()) RecordMessages(/*write=*/false, out.size(), config.max_transfer);
  return status;
}

absl::Status AttachmentContext::Write(uint64_t iova, absl::Span<const uint8_t> data) {
  const MessageDmaConfig config = connection_.dma_config();
  absl::Status status = DmaWriteViaMessages(connection_, config, iova, data);
  if (status.ok()) RecordMessages(/*write=*/true, data.size(), config.max_transfer);
  return status;
}

void AttachmentContext::RecordMapped(bool write, uint64_t bytes) {
  if (DeviceStatistics* stats = connection_.observer().stats(); stats && bytes != 0) {
    stats->RecordMappedDma(write, bytes);
  }
}

void AttachmentContext::RecordMessages(bool write, uint64_t bytes, uint64_t max_transfer) {
  message_bytes_in_copy += bytes;
  if (DeviceStatistics* stats = connection_.observer().stats(); stats && bytes != 0) {
    const uint64_t per_message = max_transfer == 0 ? bytes : max_transfer;
    stats->RecordMessageDma(write, bytes, (bytes + per_message - 1) / per_message);
  }
}

}  // namespace vfu
