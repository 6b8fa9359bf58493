// ControlBackend: what the control-plane service asks of a running server,
// in std types and proto/control.proto messages only.
//
// This is the seam between the gRPC front end (grpc_control_service.*,
// which must not see vfu's Abseil; see grpc_guard.h) and the server
// (server_control_backend.*, which uses it). Each method validates its
// request and fills the response; errors carry the canonical code and a
// message naming the offending field or device.
//
// Thread safety: every method may be called from many threads at once.
#ifndef VFU_CONTROL_CONTROL_BACKEND_H_
#define VFU_CONTROL_CONTROL_BACKEND_H_

#include <cstdint>
#include <vector>

#include "proto/control.pb.h"
#include "vfu/control/control_status.h"

namespace vfu::control {

class ControlBackend {
 public:
  virtual ~ControlBackend() = default;

  virtual ControlStatus GetHealth(v1::GetHealthResponse* response) = 0;
  virtual ControlStatus ListDevices(v1::ListDevicesResponse* response) = 0;
  virtual ControlStatus GetStats(const v1::GetStatsRequest& request,
                                 v1::GetStatsResponse* response) = 0;
  // Events with sequence > `after_sequence`, oldest first, waiting up to
  // `timeout_ms` for the first; an empty result is no error. The first
  // event carries dropped_before when events were lost before it.
  virtual ControlStatus WaitEvents(uint64_t after_sequence, int64_t timeout_ms,
                                   std::vector<v1::Event>* events) = 0;
  virtual ControlStatus AddDevice(const v1::AddDeviceRequest& request,
                                  v1::AddDeviceResponse* response) = 0;
  virtual ControlStatus RemoveDevice(const v1::RemoveDeviceRequest& request) = 0;
  virtual ControlStatus ResetDevice(const v1::ResetDeviceRequest& request) = 0;
};

}  // namespace vfu::control

#endif  // VFU_CONTROL_CONTROL_BACKEND_H_
