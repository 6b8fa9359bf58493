// vfu_ctx: what one libvfio-user context holds. The C functions (api_*.cc)
// fill it during setup; vfu_realize_ctx() builds the device adapter
// (CallbackDevice) and the poll-mode driver (PollDriver) from it.
//
// Thread-compatible, like libvfio-user: the caller serialises calls on one
// context. vfu_irq_trigger() alone may come from any thread.
#ifndef VFU_CAPI_CONTEXT_H_
#define VFU_CAPI_CONTEXT_H_

#include <array>
#include <cstdarg>
#include <memory>
#include <string>
#include <vector>

#include "libvfio-user.h"
#include "vfu/base/log.h"
#include "vfu/base/unique_fd.h"
#include "vfu/capi/config_space.h"

namespace vfu::capi {
class CallbackDevice;
class Driver;

// vfu_setup_region()'s arguments, for one region index.
struct RegionSetup {
  size_t size = 0;
  int flags = 0;
  vfu_region_access_cb_t* callback = nullptr;
  std::vector<struct iovec> mmap_areas;
  UniqueFd fd;
  uint64_t fd_offset = 0;
};

// vfu_create_ioeventfd()'s arguments, kept for REGION_IO_FDS.
struct IoEventFd {
  uint32_t region;
  UniqueFd fd;
  size_t offset;
  uint32_t size;
  uint32_t flags;
  uint64_t datamatch;
};
}  // namespace vfu::capi

struct vfu_ctx {
  vfu_ctx();
  ~vfu_ctx();

  // Hands a line to the log callback when `level` passes (syslog levels).
  void Log(int level, const std::string& message);
  void LogV(int level, const char* format, va_list args);
  // While alive on the calling thread, vfu's own log lines (the engine's,
  // the driver's) go to the log callback at the level the user asked, and
  // nowhere without a callback, as libvfio-user logs; not to stderr.
  vfu::ScopedThreadLogSink RouteVfuLog();

  int flags = 0;
  void* pvt = nullptr;
  std::string path;

  vfu_log_fn_t* log_fn = nullptr;
  int log_level = LOG_ERR;

  bool realized = false;
  std::array<vfu::capi::RegionSetup, VFU_PCI_DEV_NUM_REGIONS> regions;
  std::array<uint32_t, VFU_DEV_NUM_IRQS> irq_counts = {0, 0, 0, 1, 1};
  std::array<vfu_dev_irq_state_cb_t*, VFU_DEV_NUM_IRQS> irq_state_callbacks = {};
  std::unique_ptr<vfu::capi::ConfigSpace> config;

  vfu_reset_cb_t* reset = nullptr;
  vfu_device_quiesce_cb_t* quiesce = nullptr;
  bool dma_enabled = false;
  vfu_dma_register_cb_t* dma_register = nullptr;
  vfu_dma_unregister_cb_t* dma_unregister = nullptr;

  bool migration_enabled = false;
  uint64_t migration_flags = 0;
  vfu_migration_callbacks_t migration = {};

  std::vector<vfu::capi::IoEventFd> ioeventfds;

  // Made by vfu_create_ctx(); builds the device adapter in
  // vfu_realize_ctx(). A PollDriver (listening from vfu_create_ctx() on),
  // or a ThreadedDriver with VFU_FLAG_THREADED.
  std::unique_ptr<vfu::capi::Driver> driver;
};

#endif  // VFU_CAPI_CONTEXT_H_
