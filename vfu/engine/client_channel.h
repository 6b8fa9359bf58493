// ClientChannel: how the protocol engine sends a command to the client
// (DMA_READ, DMA_WRITE) and gets the reply, whatever threading drives it.
//
// The threaded runtime implements it with a message-ID table and a wait on
// a notification while its IO thread keeps serving; a poll-mode driver can
// implement it by pumping the socket itself.
#ifndef VFU_ENGINE_CLIENT_CHANNEL_H_
#define VFU_ENGINE_CLIENT_CHANNEL_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "vfu/transport/message.h"
#include "vfu/transport/reply_sink.h"

namespace vfu {

class ClientChannel {
 public:
  virtual ~ClientChannel() = default;

  // Sends `command`, a complete message whose header's msg_id the channel
  // assigns, and waits until `deadline` for the reply with that ID.
  // The reply is returned as received (an error reply is not turned into a
  // status here). Fails with Unavailable when no client is attached or it
  // disconnects, DeadlineExceeded on timeout. Thread-safe.
  //
  // `sink` (may be null): where the reply's data may be received directly,
  // if the reply has exactly the sink's size; the returned message then
  // says so in `sunk_bytes`. A channel may ignore it (sunk_bytes 0). The
  // channel is done with the sink's memory when Call() returns.
  virtual absl::StatusOr<InboundMessage> Call(std::vector<uint8_t> command, absl::Time deadline,
                                              std::shared_ptr<ReplySink> sink) = 0;
};

}  // namespace vfu

#endif  // VFU_ENGINE_CLIENT_CHANNEL_H_
