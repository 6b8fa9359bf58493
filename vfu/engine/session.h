// Session: the protocol engine for one client connection. It decides what
// each client command does to the device and what the reply is.
//
// The session knows nothing about sockets or threads: the runtime hands it
// one complete message at a time and sends back what it returns. That keeps
// one engine for both the threaded server and a poll-mode driver.
//
// Lifecycle: the first command must be VERSION; a successful negotiation
// fixes the connection's limits and attaches the client to the device
// (Device::OnAttach). Detach() releases what the client gave us and calls
// Device::OnDetach; device state itself is kept for the next client.
//
// Thread-compatible: the runtime calls Handle() and Detach() for one
// session from one thread at a time, in the order commands arrived.
#ifndef VFU_ENGINE_SESSION_H_
#define VFU_ENGINE_SESSION_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "vfu/base/unique_fd.h"
#include "vfu/device/device.h"
#include "vfu/dma/dma_map_table.h"
#include "vfu/transport/message.h"
#include "vfu/wire/dma_transfer.h"
#include "vfu/wire/header.h"
#include "vfu/wire/negotiation.h"

namespace vfu {

struct SessionOptions {
  // What the server offers in VERSION negotiation.
  wire::ServerVersionPolicy version;
};

class Session {
 public:
  // `device` and `dma` must outlive the session. `dma` holds the client's
  // memory mappings; the device reaches them through `context`, which
  // Attach() hands to it (Device::OnAttach). The runtime makes one context
  // per session and revokes it before Detach() (see DeviceContext).
  // `name` prefixes log lines (e.g. the socket path).
  Session(Device& device, std::shared_ptr<DeviceContext> context, DmaMapTable& dma,
          SessionOptions options, std::string name);
  // For engine tests and drivers whose `context` outlives the session and
  // every use the device makes of it: the device gets a non-owning handle.
  Session(Device& device, DeviceContext& context, DmaMapTable& dma, SessionOptions options,
          std::string name);

  // What handling one command produced.
  struct Result {
    // The reply to send, if any (none for NO_REPLY commands).
    std::optional<OutboundMessage> reply;
    // Close the connection once `reply` is sent (failed negotiation).
    bool close_connection = false;
    // Set when this command completed VERSION negotiation.
    std::optional<wire::NegotiatedVersion> negotiated;
    // Our end of the twin socket, when negotiation agreed to twin mode (the
    // client's end travels in `reply`).
    UniqueFd twin_socket;
  };

  // Handles one command from the client (a message of type command).
  // Never fails: protocol errors become error replies.
  Result Handle(InboundMessage message);

  // Tells the device a client is attached (Device::OnAttach). The runtime
  // calls it after applying a successful negotiation's limits, so the
  // device's first DMA already uses them. Idempotent.
  void Attach();

  // The client is gone: release its resources (DMA mappings, dirty
  // logging; the device releases its interrupts) and tell the device
  // (Device::OnDetach, if attached). The runtime revokes the context first,
  // so no device call is using the mappings this unmaps, and none starts.
  void Detach();

  bool negotiated() const { return negotiated_.has_value(); }
  const std::optional<wire::NegotiatedVersion>& negotiation() const { return negotiated_; }

 private:
  // Each handler returns the reply payload (appended to `reply`) or the
  // status whose errno the error reply carries.
  absl::Status HandleVersion(InboundMessage& message, Result& result, std::vector<uint8_t>& reply);
  absl::Status HandleGetInfo(const InboundMessage& message, std::vector<uint8_t>& reply);
  absl::Status HandleGetRegionInfo(const InboundMessage& message, std::vector<uint8_t>& reply,
                                   std::vector<UniqueFd>& reply_fds);
  // session_region_io_fds.cc
  absl::Status HandleGetRegionIoFds(const InboundMessage& message, std::vector<uint8_t>& reply,
                                    std::vector<UniqueFd>& reply_fds);
  absl::Status HandleGetIrqInfo(const InboundMessage& message, std::vector<uint8_t>& reply);
  absl::Status HandleRegionRead(const InboundMessage& message, std::vector<uint8_t>& reply);
  absl::Status HandleRegionWrite(const InboundMessage& message, std::vector<uint8_t>& reply);
  absl::Status HandleRegionWriteMulti(const InboundMessage& message,
                                      std::vector<uint8_t>& reply);
  absl::Status HandleReset(const InboundMessage& message);
  absl::Status HandleSetIrqs(InboundMessage& message);
  // DMA commands (session_dma.cc).
  absl::Status HandleDmaMap(InboundMessage& message);
  absl::Status HandleDmaUnmap(const InboundMessage& message, std::vector<uint8_t>& reply);
  absl::Status HandleDeviceFeature(const InboundMessage& message, std::vector<uint8_t>& reply);

  // Checks index, permissions and bounds of a region access.
  absl::Status CheckAccess(uint32_t index, uint64_t offset, uint64_t count, bool write) const;

  Device& device_;
  std::shared_ptr<DeviceContext> context_;
  DmaMapTable& dma_;
  SessionOptions options_;
  std::string name_;
  std::optional<wire::NegotiatedVersion> negotiated_;
  bool attached_ = false;
  // Scratch buffer for region reads, reused across commands.
  std::vector<uint8_t> read_buffer_;
};

}  // namespace vfu

#endif  // VFU_ENGINE_SESSION_H_
