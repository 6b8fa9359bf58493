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
// Quiesce: before DMA_MAP, DMA_UNMAP, DEVICE_RESET, a function-level reset
// (Device::IsFunctionLevelReset), a migration state change, DMA logging
// start or stop, and at Detach(), the session asks the device to quiesce
// (Device::Quiesce) and unquiesces it once the command is done. A device
// that answers later makes Handle() return a Result with `device_wait`
// set and no reply: the runtime runs no other command of this session
// until the wait is ready, then calls Continue() for the command's reply.
// A failed quiesce fails the command with the device's errno.
//
// Migration (migration_engine.h): DEVICE_FEATURE MIGRATION,
// MIG_DEVICE_STATE and MIG_DATA_SIZE, MIG_DATA_READ and MIG_DATA_WRITE, and
// the commands each state allows. DEVICE_RESET returns the migration state
// to RUNNING (QEMU's recovery sends SET RUNNING, DEVICE_RESET, and then
// assumes RUNNING); a detach leaves it as it is.
//
// Thread-compatible: the runtime calls Handle(), Continue(), Abandon() and
// Detach() for one session from one thread at a time, in the order
// commands arrived.
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
#include "vfu/engine/device_wait.h"
#include "vfu/engine/migration_engine.h"
#include "vfu/transport/message.h"
#include "vfu/transport/spare_buffers.h"
#include "vfu/wire/device_feature.h"
#include "vfu/wire/dma_transfer.h"
#include "vfu/wire/header.h"
#include "vfu/wire/negotiation.h"

namespace vfu {

struct SessionOptions {
  // What the server offers in VERSION negotiation.
  wire::ServerVersionPolicy version;
  // The device's migration state, shared by its successive sessions (it
  // survives a client: PROTOCOL.md section 8); must outlive the session.
  // Null: the session keeps its own, starting RUNNING.
  MigrationEngine* migration = nullptr;
  // How long Detach() waits for the device to quiesce (kLostConnection)
  // before it releases the client's resources anyway, with a log line.
  absl::Duration detach_quiesce_timeout = absl::Seconds(5);
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
    // Set when the command waits for the device to quiesce; nothing else is
    // set then. Run no other command of this session until it is ready
    // (DeviceWait::OnReady), then call Continue().
    std::shared_ptr<DeviceWait> device_wait;
    // Set when this command was a config write that initiated a
    // function-level reset (Device::IsFunctionLevelReset) and succeeded.
    bool function_reset = false;
  };

  // Handles one command from the client (a message of type command).
  // Never fails: protocol errors become error replies. Not while a command
  // waits for the device (that is a runtime bug: EBUSY reply).
  Result Handle(InboundMessage message);

  // Finishes the command that waits for the device, once its wait is
  // ready: runs it (or fails it with the device's quiesce error) and
  // returns its result, which has no `device_wait`.
  Result Continue();
  // Gives up on the command that waits for the device (its client is gone
  // and the device did not answer in time): fails it with ETIMEDOUT. The
  // device's late answer is ignored, and no Unquiesce follows it.
  Result Abandon();
  // True while a command waits for the device.
  bool waiting_for_device() const { return pending_.has_value(); }

  // Tells the device a client is attached (Device::OnAttach). The runtime
  // calls it after applying a successful negotiation's limits, so the
  // device's first DMA already uses them. Idempotent.
  void Attach();

  // The client is gone: quiesce the device (kLostConnection, waiting at
  // most options.detach_quiesce_timeout), release the client's resources
  // (DMA mappings, dirty logging; the device releases its interrupts), tell
  // the device (Device::OnDetach, if attached), then unquiesce it. The
  // runtime revokes the context first, so no device call is using the
  // mappings this unmaps, and none starts. A command still waiting for the
  // device is given the same bound, then finished or abandoned, its reply
  // dropped.
  void Detach();

  // Replies are built in buffers taken from `spares`, and the bytes of each
  // command handled go back there (not owned; must outlive the session or
  // be reset to null). For a driver whose handling and sending share one
  // thread, so a message costs no allocation. Null (the default): replies
  // are allocated and commands freed.
  void set_spare_buffers(SpareBuffers* spares) { spares_ = spares; }

  const MigrationEngine& migration() const { return *migration_; }

  bool negotiated() const { return negotiated_.has_value(); }
  const std::optional<wire::NegotiatedVersion>& negotiation() const { return negotiated_; }

 private:
  // A command waiting for the device to quiesce.
  struct PendingCommand {
    InboundMessage message;
    std::shared_ptr<DeviceWait> wait;
    QuiesceReason reason;
  };

  // What a command may not do before any handler runs: oversized, too
  // many fds, unknown, before VERSION, forbidden by the migration state.
  absl::Status Admit(const InboundMessage& message, Result& result) const;
  // Why `message` needs the device quiesced first, if it does.
  std::optional<QuiesceReason> QuiesceFor(const InboundMessage& message) const;
  // Runs the command (when `status` is OK) and builds its reply (none
  // under NO_REPLY). `succeeded`, when given, says whether the command
  // did what it asked: under NO_REPLY no reply says so.
  Result Run(InboundMessage message, absl::Status status, Result result,
             bool* succeeded = nullptr);
  // Run() after a quiesce that answered `quiesced`, then Unquiesce().
  Result RunQuiesced(InboundMessage message, QuiesceReason reason, absl::Status quiesced,
                     Result result);
  // The handler for the command.
  absl::Status Dispatch(InboundMessage& message, Result& result, std::vector<uint8_t>& reply,
                        std::vector<UniqueFd>& reply_fds);

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
  // Migration data (session_migration.cc).
  absl::Status HandleMigDataRead(const InboundMessage& message, std::vector<uint8_t>& reply);
  absl::Status HandleMigDataWrite(const InboundMessage& message);
  absl::Status HandleSetMigrationState(const wire::DeviceFeatureRequest& request,
                                       const InboundMessage& message,
                                       std::vector<uint8_t>& reply);

  // Checks index, permissions and bounds of a region access.
  absl::Status CheckAccess(uint32_t index, uint64_t offset, uint64_t count, bool write) const;

  Device& device_;
  std::shared_ptr<DeviceContext> context_;
  // options_.migration, or own_migration_.
  std::unique_ptr<MigrationEngine> own_migration_;
  MigrationEngine* migration_;
  std::optional<PendingCommand> pending_;
  DmaMapTable& dma_;
  SessionOptions options_;
  std::string name_;
  std::optional<wire::NegotiatedVersion> negotiated_;
  bool attached_ = false;
  SpareBuffers* spares_ = nullptr;
  // Scratch buffer for region reads, reused across commands.
  std::vector<uint8_t> read_buffer_;
};

}  // namespace vfu

#endif  // VFU_ENGINE_SESSION_H_
