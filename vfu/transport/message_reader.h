// MessageReader: receives from a non-blocking stream socket into a
// MessageAssembler, with the SCM_RIGHTS fds that arrive alongside.
//
// Once a large message's header is in, the rest of it is received straight
// into the message's own buffer (see MessageAssembler): its body is never
// copied in user space, and one recvmsg can take all of it.
//
// Each call reads until the socket would block or a per-call byte budget is
// spent (so one busy connection cannot starve the others on the IO thread);
// with level-triggered epoll the remainder is read on the next wake-up.
// Thread-compatible: used by the IO thread only.
#ifndef VFU_TRANSPORT_MESSAGE_READER_H_
#define VFU_TRANSPORT_MESSAGE_READER_H_

#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "vfu/base/syscalls.h"
#include "vfu/transport/message.h"
#include "vfu/transport/message_assembler.h"

namespace vfu {

class MessageReader {
 public:
  // `max_fds` sizes the control buffer: a message with more fds arrives with
  // `fds_truncated` set and the received ones closed by the handler. It also
  // bounds the fds held for a message still arriving: a peer that sends more
  // loses the stream (DataLoss; see MessageAssembler's "fd bound").
  MessageReader(size_t max_message_size, size_t max_fds);

  // Reads what the socket has, appending complete messages to `out`.
  //   OK           the socket would block, or the byte budget was spent
  //   Unavailable  the peer closed the connection or reset it
  //   DataLoss     the stream is corrupt (framing lost) or abusive (more
  //                fds than max_fds held for one message); fds held closed
  //   other        an unexpected recvmsg error
  // Messages completed before a failure are still appended.
  absl::Status ReadAvailable(int fd, Syscalls& syscalls, std::vector<InboundMessage>& out);

  MessageAssembler& assembler() { return assembler_; }

  // Bytes one ReadAvailable() call may take before yielding.
  static constexpr size_t kReadBudget = 1 << 20;

 private:
  MessageAssembler assembler_;
  size_t max_fds_;
  std::vector<char> control_;
};

}  // namespace vfu

#endif  // VFU_TRANSPORT_MESSAGE_READER_H_
