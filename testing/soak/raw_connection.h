// RawConnection: a vfio-user client socket with no protocol logic, for the
// soak test's hostile clients: it sends exactly the bytes and fds it is
// given, in the pieces it is given, and reads replies only when asked.
// Every wait is bounded by a deadline. Not thread-safe.
#ifndef VFU_TESTING_SOAK_RAW_CONNECTION_H_
#define VFU_TESTING_SOAK_RAW_CONNECTION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "vfu/base/unique_fd.h"
#include "vfu/wire/constants.h"
#include "vfu/wire/header.h"

namespace vfu::soak {

// A whole message as received; fds that came with it are closed.
struct RawMessage {
  wire::Header header;
  std::vector<uint8_t> bytes;  // header included
  absl::Span<const uint8_t> payload() const {
    return absl::MakeConstSpan(bytes).subspan(wire::kHeaderSize);
  }
};

// A whole command message: header (msg_size filled in) and payload.
std::vector<uint8_t> CommandMessage(uint16_t id, wire::Command command,
                                    absl::Span<const uint8_t> payload, bool no_reply = false);

class RawConnection {
 public:
  // Connects to `path` (non-blocking socket). Unavailable when refused.
  static absl::StatusOr<RawConnection> Connect(const std::string& path);

  // Sends VERSION 0.0 without capabilities and reads the reply.
  absl::Status Negotiate(absl::Time deadline);

  // Sends all of `bytes` with `fds` on the first sendmsg (fds are
  // duplicated by the kernel; the caller keeps its own), waiting for room
  // until `deadline`. Errors: DeadlineExceeded (socket stayed full),
  // Unavailable (the peer closed).
  absl::Status Send(absl::Span<const uint8_t> bytes, absl::Span<const int> fds,
                    absl::Time deadline);
  // One non-blocking sendmsg: the bytes taken (0 when the socket is full),
  // or Unavailable once the peer has closed.
  absl::StatusOr<size_t> TrySend(absl::Span<const uint8_t> bytes, absl::Span<const int> fds);

  // Reads until one whole message is there (or `deadline`).
  absl::StatusOr<RawMessage> ReadMessage(absl::Time deadline);

  int fd() const { return fd_.get(); }

 private:
  explicit RawConnection(UniqueFd fd) : fd_(std::move(fd)) {}
  // One recvmsg into inbox_; false when the peer closed or failed.
  absl::Status ReadSome(absl::Time deadline);

  UniqueFd fd_;
  std::vector<uint8_t> inbox_;
  uint16_t next_id_ = 0;
};

}  // namespace vfu::soak

#endif  // VFU_TESTING_SOAK_RAW_CONNECTION_H_
