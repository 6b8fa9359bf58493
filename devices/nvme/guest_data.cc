#include "devices/nvme/guest_data.h"

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "vfu/base/log.h"

namespace vfu::nvme {
namespace {

// What the guarded file transfer needs; plain data, as RunGuarded demands.
struct FileTransfer {
  int fd;
  struct iovec* iov;
  int count;
  uint64_t offset;
  bool write;
  int error;  // errno, 0 when all bytes moved
};

// preadv / pwritev until every byte moved; no allocation, no locks (it runs
// under a fault guard). Advances the iovecs in place on short transfers.
void TransferFile(void* arg) {
  auto* t = static_cast<FileTransfer*>(arg);
  t->error = 0;
  while (t->count > 0) {
    const ssize_t n = t->write ? ::pwritev(t->fd, t->iov, t->count, static_cast<off_t>(t->offset))
                               : ::preadv(t->fd, t->iov, t->count, static_cast<off_t>(t->offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      t->error = errno;
      return;
    }
    if (n == 0) {
      t->error = EIO;
      return;
    }
    t->offset += static_cast<uint64_t>(n);
    size_t left = static_cast<size_t>(n);
    while (t->count > 0 && left >= t->iov->iov_len) {
      left -= t->iov->iov_len;
      ++t->iov;
      --t->count;
    }
    if (t->count > 0) {
      t->iov->iov_base = static_cast<uint8_t*>(t->iov->iov_base) + left;
      t->iov->iov_len -= left;
    }
  }
}

uint16_t DmaStatusToNvme(const absl::Status& status) {
  return status.ok() ? kSuccess : kDataTransferError;
}

}  // namespace

uint16_t GuestData::Walk(DeviceContext& dma, const SubmissionEntry& sqe, uint64_t length,
                         uint64_t page_size) {
  if ((sqe.flags >> 6) != 0) return kInvalidField;  // SGLs are not advertised
  return WalkPrps(
      sqe.prp1, sqe.prp2, length, page_size,
      [&dma](uint64_t iova, absl::Span<uint8_t> out) { return dma.DmaRead(iova, out).ok(); },
      segments_);
}

uint16_t GuestData::CopyOut(DeviceContext& dma, absl::Span<const uint8_t> data) {
  uint64_t done = 0;
  for (const DataSegment& segment : segments_) {
    if (done + segment.length > data.size()) return kInternalError;
    absl::Status status = dma.DmaWrite(segment.iova, data.subspan(done, segment.length));
    if (!status.ok()) return DmaStatusToNvme(status);
    done += segment.length;
  }
  return kSuccess;
}

uint16_t GuestData::CopyIn(DeviceContext& dma, absl::Span<uint8_t> out) {
  uint64_t done = 0;
  for (const DataSegment& segment : segments_) {
    if (done + segment.length > out.size()) return kInternalError;
    absl::Status status = dma.DmaRead(segment.iova, out.subspan(done, segment.length));
    if (!status.ok()) return DmaStatusToNvme(status);
    done += segment.length;
  }
  return kSuccess;
}

bool GuestData::PinAll(DeviceContext& dma, DmaDirection direction, uint16_t* status) {
  pins_.clear();
  iov_.clear();
  for (const DataSegment& segment : segments_) {
    absl::StatusOr<DmaSgList> pin = dma.DmaPin(segment.iova, segment.length, direction);
    if (!pin.ok()) {
      pins_.clear();
      if (pin.status().code() == absl::StatusCode::kFailedPrecondition) return false;
      *status = kDataTransferError;
      return true;
    }
    for (const DmaSgList::Segment& piece : pin->segments()) {
      if (piece.host == nullptr) {
        pins_.clear();
        return false;
      }
      iov_.push_back({piece.host, piece.length});
    }
    pins_.push_back(*std::move(pin));
  }
  *status = kSuccess;
  return true;
}

uint16_t GuestData::Bounce(DeviceContext& dma, NvmeNamespace& ns, uint64_t offset,
                           bool to_namespace) {
  CountBounced();
  uint64_t total = 0;
  for (const DataSegment& segment : segments_) total += segment.length;
  bounce_.resize(total);
  struct iovec iov = {bounce_.data(), total};
  if (to_namespace) {
    if (uint16_t status = CopyIn(dma, absl::MakeSpan(bounce_)); status != kSuccess) return status;
    if (!ns.WriteV(&iov, 1, offset).ok()) return kInternalError;
    return kSuccess;
  }
  if (!ns.ReadV(&iov, 1, offset).ok()) return kInternalError;
  return CopyOut(dma, absl::MakeConstSpan(bounce_));
}

uint16_t GuestData::ReadNamespace(DeviceContext& dma, NvmeNamespace& ns, uint64_t offset) {
  uint16_t status = kSuccess;
  if (!PinAll(dma, DmaDirection::kWrite, &status)) return Bounce(dma, ns, offset, false);
  if (status != kSuccess) return status;
  CountZeroCopy();
  FileTransfer transfer = {ns.fd(), iov_.data(), static_cast<int>(iov_.size()), offset, false, 0};
  uint64_t total = 0;
  for (const struct iovec& v : iov_) total += v.iov_len;
  // One guard is enough: the kernel copies into the pinned pages and
  // reports memory the client took away as EFAULT, not SIGBUS.
  absl::Status guarded = pins_.front().RunGuarded(&TransferFile, &transfer);
  if (!guarded.ok()) {
    pins_.clear();
    return kDataTransferError;
  }
  for (const DmaSgList& pin : pins_) pin.MarkAllDirty();
  pins_.clear();
  if (transfer.error == EFAULT) return kDataTransferError;
  if (transfer.error != 0) {
    VFU_LOG_RATE_LIMITED(kWarning, "nvme: read of ", ns.path(), ": ", std::strerror(transfer.error));
    return kInternalError;
  }
  ns.CountRead(total);
  return kSuccess;
}

uint16_t GuestData::WriteNamespace(DeviceContext& dma, NvmeNamespace& ns, uint64_t offset) {
  uint16_t status = kSuccess;
  if (!PinAll(dma, DmaDirection::kRead, &status)) return Bounce(dma, ns, offset, true);
  if (status != kSuccess) return status;
  CountZeroCopy();
  FileTransfer transfer = {ns.fd(), iov_.data(), static_cast<int>(iov_.size()), offset, true, 0};
  uint64_t total = 0;
  for (const struct iovec& v : iov_) total += v.iov_len;
  absl::Status guarded = pins_.front().RunGuarded(&TransferFile, &transfer);
  pins_.clear();
  if (!guarded.ok() || transfer.error == EFAULT) return kDataTransferError;
  if (transfer.error != 0) {
    VFU_LOG_RATE_LIMITED(kWarning, "nvme: write of ", ns.path(), ": ",
                         std::strerror(transfer.error));
    return kInternalError;
  }
  ns.CountWrite(total);
  return kSuccess;
}

}  // namespace vfu::nvme
