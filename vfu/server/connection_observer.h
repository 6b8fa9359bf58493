// ConnectionObserver: what one connection reports to its device's
// statistics and to the server's event bus, kept out of the connection's
// data path logic.
//
//   CommandStart start = observer.BeforeCommand(message);  // strand
//   Session::Result result = session.Handle(std::move(message));
//   observer.AfterCommand(start, result);                   // strand
//
// Per command it costs two monotonic clock reads and a few relaxed atomic
// increments; events are published only on attach, detach, resets and
// (rate-limited) protocol errors.
//
// Thread safety: BeforeCommand/AfterCommand/OnDetached on the connection's
// strand; OnClosing and the back-pressure calls on the IO thread; client()
// on any thread.
#ifndef VFU_SERVER_CONNECTION_OBSERVER_H_
#define VFU_SERVER_CONNECTION_OBSERVER_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "vfu/engine/session.h"
#include "vfu/stats/device_statistics.h"
#include "vfu/stats/event_bus.h"
#include "vfu/stats/server_event.h"
#include "vfu/transport/message.h"
#include "vfu/wire/negotiation.h"

namespace vfu {

// Where a connection reports; every pointer may be null (nothing reported).
struct ConnectionReporting {
  DeviceStatistics* stats = nullptr;
  EventBus* events = nullptr;
  // The device's name in events.
  std::string device;
  // Who connected (SO_PEERCRED), filled at accept.
  ClientIdentity client;
};

class ConnectionObserver {
 public:
  struct CommandStart {
    uint16_t command = 0;
    bool no_reply = false;
    // REGION_WRITE(_MULTI): payload bytes the command asks to write.
    uint64_t write_bytes = 0;
    uint64_t start_ns = 0;
  };

  explicit ConnectionObserver(ConnectionReporting reporting);

  CommandStart BeforeCommand(const InboundMessage& message) const;
  void AfterCommand(const CommandStart& start, const Session::Result& result)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The connection is closing for `why` (first call only).
  void OnClosing(std::string_view why) ABSL_LOCKS_EXCLUDED(mu_);
  // The device has been detached (the connection's last strand task).
  void OnDetached() ABSL_LOCKS_EXCLUDED(mu_);
  void OnRepliesBackedUp() {
    if (reporting_.stats) reporting_.stats->RecordReplyBackPressure();
  }
  void OnCommandsBackedUp() {
    if (reporting_.stats) reporting_.stats->RecordCommandBackPressure();
  }

  DeviceStatistics* stats() const { return reporting_.stats; }
  ClientIdentity client() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void OnNegotiated(const wire::NegotiatedVersion& negotiated) ABSL_LOCKS_EXCLUDED(mu_);

  const ConnectionReporting reporting_;
  mutable absl::Mutex mu_;
  ClientIdentity client_ ABSL_GUARDED_BY(mu_);
  std::string close_reason_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vfu

#endif  // VFU_SERVER_CONNECTION_OBSERVER_H_
