#include "vfu/wire/migration_data.h"

#include <cerrno>
#include <limits>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "vfu/base/check.h"
#include "vfu/base/status_macros.h"
#include "vfu/wire/byte_io.h"
#include "vfu/wire/errno_status.h"

namespace vfu::wire {
namespace {

absl::Status CheckFixedPart(absl::Span<const uint8_t> payload, std::string_view what) {
  if (payload.size() < kMigDataFixedSize) {
    return WireError(EINVAL, absl::StrCat(what, " payload of ", payload.size(),
                                          " bytes, need 8"));
  }
  return absl::OkStatus();
}

absl::Status CheckSize(uint32_t size, uint64_t max_size, std::string_view what) {
  if (size > max_size) {
    return WireError(EINVAL, absl::StrCat(what, " size ", size, " above the limit of ",
                                          max_size));
  }
  return absl::OkStatus();
}

// argsz >= 8 + size, in 64 bits so size near 2^32 cannot wrap.
absl::Status CheckArgsz(uint32_t argsz, uint32_t size, std::string_view what) {
  if (uint64_t{argsz} < kMigDataFixedSize + uint64_t{size}) {
    return WireError(EINVAL, absl::StrCat(what, " argsz ", argsz, " < 8 + size ", size));
  }
  return absl::OkStatus();
}

// Payload exactly 8 + size (payload.size() >= 8 already).
absl::Status CheckExactPayload(absl::Span<const uint8_t> payload, uint32_t size,
                               std::string_view what) {
  if (payload.size() - kMigDataFixedSize != size) {
    return WireError(EINVAL, absl::StrCat(what, " payload of ", payload.size(),
                                          " bytes, expected 8 + size ", size));
  }
  return absl::OkStatus();
}

uint32_t CheckedSize(size_t data_size) {
  VFU_CHECK(data_size <= std::numeric_limits<uint32_t>::max() - kMigDataFixedSize,
            "migration data chunk too large for its 32-bit fields");
  return static_cast<uint32_t>(data_size);
}

}  // namespace

absl::StatusOr<MigDataReadRequest> DecodeMigDataReadRequest(absl::Span<const uint8_t> payload,
                                                            size_t /*num_fds*/,
                                                            uint64_t max_size) {
  VFU_RETURN_IF_ERROR(CheckFixedPart(payload, "MIG_DATA_READ"));
  MigDataReadRequest r;
  r.argsz = LoadU32(payload, 0);
  r.size = LoadU32(payload, 4);
  VFU_RETURN_IF_ERROR(CheckSize(r.size, max_size, "MIG_DATA_READ"));
  VFU_RETURN_IF_ERROR(CheckArgsz(r.argsz, r.size, "MIG_DATA_READ"));
  return r;
}

void EncodeMigDataReadRequest(const MigDataReadRequest& r, std::vector<uint8_t>& out) {
  ByteWriter(out).U32(r.argsz).U32(r.size);
}

absl::StatusOr<MigDataReadReply> DecodeMigDataReadReply(absl::Span<const uint8_t> payload,
                                                        size_t /*num_fds*/,
                                                        uint64_t max_size) {
  VFU_RETURN_IF_ERROR(CheckFixedPart(payload, "MIG_DATA_READ reply"));
  const uint32_t argsz = LoadU32(payload, 0);
  const uint32_t size = LoadU32(payload, 4);
  VFU_RETURN_IF_ERROR(CheckSize(size, max_size, "MIG_DATA_READ reply"));
  VFU_RETURN_IF_ERROR(CheckExactPayload(payload, size, "MIG_DATA_READ reply"));
  if (uint64_t{argsz} != kMigDataFixedSize + uint64_t{size}) {
    return WireError(EINVAL, absl::StrCat("MIG_DATA_READ reply argsz ", argsz,
                                          " != 8 + size ", size));
  }
  return MigDataReadReply{.data = payload.subspan(kMigDataFixedSize)};
}

void EncodeMigDataReadReply(const MigDataReadReply& r, std::vector<uint8_t>& out) {
  const uint32_t size = CheckedSize(r.data.size());
  ByteWriter(out).U32(static_cast<uint32_t>(kMigDataFixedSize) + size).U32(size).Bytes(r.data);
}

absl::StatusOr<MigDataWriteRequest> DecodeMigDataWriteRequest(absl::Span<const uint8_t> payload,
                                                              size_t /*num_fds*/,
                                                              uint64_t max_size) {
  VFU_RETURN_IF_ERROR(CheckFixedPart(payload, "MIG_DATA_WRITE"));
  const uint32_t argsz = LoadU32(payload, 0);
  const uint32_t size = LoadU32(payload, 4);
  VFU_RETURN_IF_ERROR(CheckSize(size, max_size, "MIG_DATA_WRITE"));
  VFU_RETURN_IF_ERROR(CheckExactPayload(payload, size, "MIG_DATA_WRITE"));
  VFU_RETURN_IF_ERROR(CheckArgsz(argsz, size, "MIG_DATA_WRITE"));
  return MigDataWriteRequest{.argsz = argsz, .data = payload.subspan(kMigDataFixedSize)};
}

void EncodeMigDataWriteRequest(const MigDataWriteRequest& r, std::vector<uint8_t>& out) {
  ByteWriter(out).U32(r.argsz).U32(CheckedSize(r.data.size())).Bytes(r.data);
}

}  // namespace vfu::wire
