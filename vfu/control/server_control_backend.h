// ServerControlBackend: the ControlBackend of a running vfu::Server: lists
// its devices, reads their statistics and events, and adds devices built
// from a DeviceSpec (which it owns until they are removed).
//
// Requests are validated before they reach the server: a bad spec is
// INVALID_ARGUMENT naming the field ("spec.regions[1].size: ..."), an
// unknown device NOT_FOUND, a taken path or name ALREADY_EXISTS.
//
// Bounds: devices added through the control plane, at most
// kMaxAddedDevices at once (RESOURCE_EXHAUSTED past it).
//
// Thread safety: thread-safe (ControlBackend). `server` must outlive it.
#ifndef VFU_CONTROL_SERVER_CONTROL_BACKEND_H_
#define VFU_CONTROL_SERVER_CONTROL_BACKEND_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/control.pb.h"
#include "proto/device_spec.pb.h"
#include "vfu/control/control_backend.h"
#include "vfu/device/pci_device.h"
#include "vfu/server/server.h"

namespace vfu::control {

class ServerControlBackend : public ControlBackend {
 public:
  static constexpr size_t kMaxAddedDevices = 256;
  // How long ResetDevice waits for the device to get to the request.
  static constexpr absl::Duration kResetTimeout = absl::Seconds(10);
  // How long a migration request (SaveState, LoadState, SetMigrationState)
  // waits for the device.
  static constexpr absl::Duration kMigrationTimeout = absl::Seconds(30);

  explicit ServerControlBackend(Server& server);
  // Removes the devices it added (if the server still serves them).
  ~ServerControlBackend() override;

  ControlStatus GetHealth(v1::GetHealthResponse* response) override;
  ControlStatus ListDevices(v1::ListDevicesResponse* response) override;
  ControlStatus GetStats(const v1::GetStatsRequest& request,
                         v1::GetStatsResponse* response) override;
  ControlStatus WaitEvents(uint64_t after_sequence, int64_t timeout_ms,
                           std::vector<v1::Event>* events) override;
  ControlStatus AddDevice(const v1::AddDeviceRequest& request,
                          v1::AddDeviceResponse* response) override ABSL_LOCKS_EXCLUDED(mu_);
  ControlStatus RemoveDevice(const v1::RemoveDeviceRequest& request) override
      ABSL_LOCKS_EXCLUDED(mu_);
  ControlStatus ResetDevice(const v1::ResetDeviceRequest& request) override;
  ControlStatus SaveState(const v1::SaveStateRequest& request, std::string* state) override;
  ControlStatus LoadState(const std::string& device, const std::string& state) override;
  ControlStatus SetMigrationState(const v1::SetMigrationStateRequest& request,
                                  v1::SetMigrationStateResponse* response) override;

 private:
  struct AddedDevice {
    proto::DeviceSpec spec;
    std::unique_ptr<PciDevice> device;
  };

  // Runs `task` with the device's migration engine as a RunOnDevice task,
  // refused (FAILED_PRECONDITION) when the device does not migrate or a
  // client is attached when the task runs.
  ControlStatus RunMigrationTask(const std::string& ref,
                                 std::function<absl::Status(MigrationEngine&)> task);

  void DescribeDevice(const DeviceEndpoint& endpoint, v1::DeviceInfo* info)
      ABSL_LOCKS_EXCLUDED(mu_);

  Server& server_;
  // Shared by a request that reaches a device through an endpoint, from
  // before it looks the endpoint up until it is done with the device;
  // exclusive to destroy a device this backend built. The server stops
  // listing a device before RemoveDevice destroys it, so a request either
  // found the endpoint before the removal and is done first, or never sees
  // it.
  absl::Mutex device_lifetime_mu_;
  absl::Mutex mu_;
  // Keyed by socket path. An entry is made before the server serves the
  // device and erased after it no longer does.
  std::map<std::string, AddedDevice> added_ ABSL_GUARDED_BY(mu_);
};

// absl::Status -> ControlStatus (same canonical code).
ControlStatus FromAbsl(const absl::Status& status);

}  // namespace vfu::control

#endif  // VFU_CONTROL_SERVER_CONTROL_BACKEND_H_
