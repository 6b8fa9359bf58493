// vfu: serve emulated PCI devices to VMMs over the vfio-user protocol.
//
// The one header a device author includes. A PCI device derives from
// vfu::PciDevice: it describes itself in a PciDeviceSpec (IDs, BARs,
// capabilities, interrupts), overrides only the hooks for the behaviour it
// has, and a vfu::Server serves it at a UNIX socket:
//
//   class MyDevice : public vfu::PciDevice {
//    public:
//     MyDevice() : PciDevice(MySpec()) {}
//     absl::Status OnRegionWrite(uint32_t region, uint64_t offset,
//                                absl::Span<const uint8_t> data) override;
//   };
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
// the order the client sent them. RaiseInterrupt(), TriggerIrq() and dma() may be used from
// any thread. vfu::Device is the lower-level contract PciDevice implements,
// for devices that want to own config space themselves.
#ifndef VFU_VFU_H_
#define VFU_VFU_H_

#include "vfu/base/status_macros.h"
#include "vfu/device/device.h"
#include "vfu/device/pci_device.h"
#include "vfu/server/server.h"

#endif  // VFU_VFU_H_
