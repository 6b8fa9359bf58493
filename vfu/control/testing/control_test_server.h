// ControlTestServer: a vfu::Server with MemoryDevices and its control plane,
// plus vfio-user clients on those devices, behind an Abseil-free interface
// so that tests which include gRPC (and so must not see vfu's Abseil; see
// vfu/control/grpc_guard.h) can drive both.
//
//   std::string error;
//   auto server = ControlTestServer::Start({.devices = 2}, &error);
//   int client = server->Connect(0);
//   server->RegionRead(client, 0, 4);
//   ... call the control plane at server->control_path() ...
//
// Devices are named "dev0", "dev1", ... and served at <dir>/devN.sock; the
// control socket is <dir>/control.sock. Each device's BAR0 is 64 KiB.
//
// Thread safety: one test thread.
#ifndef VFU_CONTROL_TESTING_CONTROL_TEST_SERVER_H_
#define VFU_CONTROL_TESTING_CONTROL_TEST_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace vfu::control::testing {

class ControlTestServer {
 public:
  struct Options {
    int devices = 1;
    // Mode of the control socket.
    unsigned control_mode = 0600;
    // A directory to serve in; empty: a fresh temporary one, removed after.
    std::string dir;
    // Serve GpioDevices (devices/gpio: they migrate; BAR0 is their 4 KiB
    // register file) instead of MemoryDevices.
    bool gpio = false;
  };

  // Nullptr with `error` set if the server cannot start.
  static std::unique_ptr<ControlTestServer> Start(Options options, std::string* error);
  ~ControlTestServer();

  std::string dir() const;
  std::string control_path() const;
  std::string device_path(int device) const;
  std::string device_name(int device) const;
  // How often the device was reset (Device::Reset); -1 for GpioDevices.
  int device_resets(int device) const;

  // A vfio-user client (VERSION negotiated) on a socket; -1 on failure.
  int Connect(int device);
  int ConnectPath(const std::string& socket_path);
  // Each returns the errno of the error reply (0: success; -1: the
  // connection failed).
  int RegionRead(int client, uint64_t offset, uint32_t count);
  int RegionWrite(int client, uint64_t offset, const std::vector<uint8_t>& data);
  // The client sets the device's migration state (MIG_DEVICE_STATE; `state`
  // as VFIO numbers it).
  int ClientSetMigrationState(int client, uint32_t state);
  // Config space (region 7) access. A `posted` write carries NO_REPLY and
  // returns once sent (0 says only that).
  int ConfigRead(int client, uint64_t offset, uint32_t count, std::vector<uint8_t>* data);
  int ConfigWrite(int client, uint64_t offset, const std::vector<uint8_t>& data,
                  bool posted = false);
  // A 32-bit little-endian BAR0 register into `value`.
  int ReadRegister(int client, uint64_t offset, uint32_t* value);
  int WriteRegister(int client, uint64_t offset, uint32_t value);
  int Reset(int client);
  // Installs an eventfd as the client's trigger for vector 0 of IRQ index
  // `index` (0: INTx, 1: MSI).
  int EnableIrq(int client, uint32_t index);
  // Unmasks vector 0 of `index` (SET_IRQS ACTION_UNMASK).
  int UnmaskIrq(int client, uint32_t index);
  // Waits up to `timeout_ms` for that eventfd; returns the interrupts it
  // counted (0 on timeout) and resets it.
  uint64_t WaitIrq(int client, int timeout_ms);
  // Closes the client's connection.
  void Disconnect(int client);

 private:
  struct State;
  explicit ControlTestServer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace vfu::control::testing

#endif  // VFU_CONTROL_TESTING_CONTROL_TEST_SERVER_H_
