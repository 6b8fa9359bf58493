// Socket send buffers large enough for a whole large message.
#ifndef VFU_TRANSPORT_SEND_BUFFER_H_
#define VFU_TRANSPORT_SEND_BUFFER_H_

#include <cstddef>

namespace vfu {

// Lets one sendmsg take a whole message of `message_size` bytes (a 1 MiB
// DMA_READ reply or DMA_WRITE), so the peer receives it in one piece or a
// few rather than one per default-sized buffer (about 200 KiB) with a
// wake-up on each side for every piece. Best effort: the kernel caps the
// size at net.core.wmem_max, and a larger buffer is left alone. (The kernel
// doubles the value set, for its bookkeeping, and reports the doubled one.)
void RaiseSendBuffer(int fd, size_t message_size);

}  // namespace vfu

#endif  // VFU_TRANSPORT_SEND_BUFFER_H_
