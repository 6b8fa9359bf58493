// vfu: serve emulated PCI devices to VMMs over the vfio-user protocol.
//
// The one header a device author includes. A device implements vfu::Device
// (only the hooks it needs), and a vfu::Server serves it at a UNIX socket:
//
//   class MyDevice : public vfu::Device { ... };
//
//   MyDevice device;
//   auto server = vfu::Server::Create();
//   if (!server.ok()) ...;
//   absl::Status s = (*server)->AddDevice("/run/my-device.sock", device);
//   s = (*server)->Start();
//   ...                          // clients connect, negotiate, use the device
//   (*server)->Stop();
//
// Threads: the server's IO thread owns every socket and never runs device
// code; hooks run on worker threads, one command at a time per device, in
// the order the client sent them. The DeviceContext a device receives in
// OnAttach() may be used from any thread.
#ifndef VFU_VFU_H_
#define VFU_VFU_H_

#include "vfu/base/status_macros.h"
#include "vfu/device/device.h"
#include "vfu/server/server.h"

#endif  // VFU_VFU_H_
