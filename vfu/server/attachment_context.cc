#include "vfu/server/attachment_context.h"

#include <optional>
#include <utility>

#include "vfu/base/rcu.h"
#include "vfu/engine/message_dma.h"
#include "vfu/server/connection.h"

namespace vfu {
namespace {

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
      return *done;
    }
  }
  if (!BeginCall()) return RevokedError();
  absl::Status status = memory_.Read(iova, out);
  EndCall();
  return status;
}

absl::Status AttachmentContext::DmaWrite(uint64_t iova, absl::Span<const uint8_t> data) {
  {
    RcuReadSection section;
    if (revoked()) return RevokedError();
    if (std::optional<absl::Status> done =
            FastPathStatus(table_.TryWriteMapped(iova, data), "DMA write", iova, data.size())) {
      return *done;
    }
  }
  if (!BeginCall()) return RevokedError();
  absl::Status status = memory_.Write(iova, data);
  EndCall();
  return status;
}

absl::StatusOr<DmaSgList> AttachmentContext::DmaPin(uint64_t iova, uint64_t length,
                                                    DmaDirection direction) {
  if (!BeginCall()) return RevokedError();
  absl::StatusOr<DmaSgList> list = memory_.Pin(iova, length, direction);
  EndCall();
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
  return DmaReadViaMessages(connection_, connection_.dma_config(), iova, out);
}

absl::Status AttachmentContext::Write(uint64_t iova, absl::Span<const uint8_t> data) {
  return DmaWriteViaMessages(connection_, connection_.dma_config(), iova, data);
}

}  // namespace vfu
