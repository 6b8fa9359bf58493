#include "vfu/transport/message_reader.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace vfu {

MessageReader::MessageReader(size_t max_message_size, size_t max_fds)
    : assembler_(max_message_size),
      max_fds_(max_fds),
      control_(CMSG_SPACE(sizeof(int) * (max_fds == 0 ? 1 : max_fds))) {
  assembler_.set_max_fds(max_fds);
}

absl::Status MessageReader::ReadAvailable(int fd, Syscalls& syscalls,
                                          std::vector<InboundMessage>& out) {
  size_t budget = kReadBudget;
  while (budget > 0) {
    // The rest of a large message straight into its own buffer (and a
    // waiting caller's memory), then what follows it into the reassembly
    // buffer.
    const MessageAssembler::Space space = assembler_.ReceiveSpace();
    struct iovec iov[MessageAssembler::Space::kMaxParts];
    for (size_t i = 0; i < space.num_parts; ++i) {
      iov[i] = {space.parts[i].data(), space.parts[i].size()};
    }
    struct msghdr msg = {};
    msg.msg_iov = iov;
    msg.msg_iovlen = space.num_parts;
    msg.msg_control = control_.data();
    msg.msg_controllen = control_.size();
    SyscallResult r = syscalls.RecvMsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (!r.ok() || r.value == 0) assembler_.ReleaseReceiveSpace();
    if (r.would_block()) break;
    if (!r.ok()) {
      if (r.error == ECONNRESET) return absl::UnavailableError("connection reset by peer");
      return absl::ErrnoToStatus(r.error, "recvmsg");
    }

    std::vector<UniqueFd> fds;
    bool truncated = (msg.msg_flags & MSG_CTRUNC) != 0;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int raw;
        std::memcpy(&raw, CMSG_DATA(c) + i * sizeof(int), sizeof raw);
        fds.emplace_back(raw);
      }
    }
    // CMSG_SPACE rounds up, so the buffer may hold one fd past the limit.
    if (fds.size() > max_fds_) truncated = true;

    if (r.value == 0) {
      // End of stream. fds cannot arrive without bytes on a stream socket.
      return absl::UnavailableError("peer closed the connection");
    }
    // A short read without fds means the socket is (momentarily) drained:
    // skip the extra recvmsg that would only return EAGAIN. (The kernel
    // also ends a read early after a send that carried fds.)
    const bool drained =
        static_cast<size_t>(r.value) < space.size() && fds.empty() && !truncated;
    assembler_.Commit(static_cast<size_t>(r.value), std::move(fds), truncated);
    budget -= std::min(budget, static_cast<size_t>(r.value));
    // Taking messages after every receive keeps the buffer one message deep.
    absl::Status status = assembler_.TakeMessages(out);
    if (!status.ok() || drained) return status;
  }
  return absl::OkStatus();
}

}  // namespace vfu
