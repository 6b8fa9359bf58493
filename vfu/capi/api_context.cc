// The context's life: create, realize, attach, run, destroy, and logging.
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <memory>
#include <new>
#include <string>
#include <string_view>

#include "libvfio-user.h"
#include "vfu/capi/api_errno.h"
#include "vfu/capi/context.h"
#include "vfu/capi/poll_driver.h"
#include "vfu/capi/threaded_driver.h"

using vfu::capi::FailWith;
using vfu::capi::FailWithErrno;

vfu_ctx::vfu_ctx() = default;
vfu_ctx::~vfu_ctx() = default;

void vfu_ctx::Log(int level, const std::string& message) {
  if (log_fn != nullptr && level <= log_level) log_fn(this, level, message.c_str());
}

void vfu_ctx::LogV(int level, const char* format, va_list args) {
  if (log_fn == nullptr || level > log_level) return;
  char line[1024];
  vsnprintf(line, sizeof(line), format, args);
  log_fn(this, level, line);
}

namespace {

// Syslog's level for a vfu line.
int SyslogLevel(vfu::LogLevel level) {
  switch (level) {
    case vfu::LogLevel::kDebug: return LOG_DEBUG;
    case vfu::LogLevel::kInfo: return LOG_INFO;
    case vfu::LogLevel::kWarning: return LOG_WARNING;
    case vfu::LogLevel::kError: return LOG_ERR;
  }
  return LOG_ERR;
}

void WriteToCallback(void* arg, vfu::LogLevel level, std::string_view message) {
  auto* ctx = static_cast<vfu_ctx*>(arg);
  ctx->Log(SyslogLevel(level), std::string(message));
}

}  // namespace

vfu::ScopedThreadLogSink vfu_ctx::RouteVfuLog() {
  // The least severe vfu level the user's syslog level lets through; vfu's
  // most severe level is LOG_ERR, so below that nothing passes.
  vfu::LogLevel min_level = vfu::LogLevel::kError;
  if (log_level >= LOG_DEBUG) {
    min_level = vfu::LogLevel::kDebug;
  } else if (log_level >= LOG_INFO) {
    min_level = vfu::LogLevel::kInfo;
  } else if (log_level >= LOG_WARNING) {
    min_level = vfu::LogLevel::kWarning;
  }
  const bool any = log_fn != nullptr && log_level >= LOG_ERR;
  return vfu::ScopedThreadLogSink(min_level, any ? &WriteToCallback : nullptr, this);
}

extern "C" {

vfu_ctx_t* vfu_create_ctx(vfu_trans_t trans, const char* path, int flags, void* pvt,
                          vfu_dev_type_t dev_type) {
  if (trans != VFU_TRANS_SOCK || dev_type != VFU_DEV_TYPE_PCI) {
    errno = ENOTSUP;
    return nullptr;
  }
  if (path == nullptr || (flags & ~(LIBVFIO_USER_FLAG_ATTACH_NB | VFU_FLAG_THREADED)) != 0) {
    errno = EINVAL;
    return nullptr;
  }
  auto ctx = std::make_unique<vfu_ctx>();
  ctx->flags = flags;
  ctx->pvt = pvt;
  ctx->path = path;
  if (flags & VFU_FLAG_THREADED) {
    absl::StatusOr<std::unique_ptr<vfu::capi::ThreadedDriver>> driver =
        vfu::capi::ThreadedDriver::Create(*ctx);
    if (!driver.ok()) {
      FailWith(driver.status());
      return nullptr;
    }
    ctx->driver = std::move(*driver);
  } else {
    absl::StatusOr<std::unique_ptr<vfu::capi::PollDriver>> driver =
        vfu::capi::PollDriver::Listen(*ctx);
    if (!driver.ok()) {
      FailWith(driver.status());
      return nullptr;
    }
    ctx->driver = std::move(*driver);
  }
  return ctx.release();
}

int vfu_realize_ctx(vfu_ctx_t* vfu_ctx) {
  if (vfu_ctx == nullptr) return FailWithErrno(EINVAL);
  if (vfu_ctx->realized) return 0;
  if (vfu_ctx->config == nullptr) {
    vfu_ctx->config = std::make_unique<vfu::capi::ConfigSpace>(PCI_CFG_SPACE_SIZE);
  }
  vfu::capi::ConfigSpace& config = *vfu_ctx->config;
  auto* header = reinterpret_cast<vfu_pci_config_space_t*>(config.data());
  for (int bar = 0; bar < PCI_BARS_NR; ++bar) {
    const vfu::capi::RegionSetup& region = vfu_ctx->regions[bar];
    config.set_bar_size(bar, region.size);
    // An IO BAR says so in its lowest bit (unless the device set the BAR).
    if (region.size != 0 && (region.flags & VFU_REGION_FLAG_MEM) == 0 &&
        header->hdr.bars[bar].raw == 0) {
      header->hdr.bars[bar].raw = PCI_BASE_ADDRESS_SPACE_IO;
    }
  }
  config.set_rom_size(vfu_ctx->regions[VFU_PCI_DEV_ROM_REGION_IDX].size);
  if (absl::Status status = vfu_ctx->driver->Realize(); !status.ok()) return FailWith(status);
  vfu_ctx->realized = true;
  return 0;
}

int vfu_attach_ctx(vfu_ctx_t* vfu_ctx) {
  if (vfu_ctx == nullptr || !vfu_ctx->realized) return FailWithErrno(EINVAL);
  vfu::ScopedThreadLogSink log = vfu_ctx->RouteVfuLog();
  return vfu_ctx->driver->Attach();
}

int vfu_get_poll_fd(vfu_ctx_t* vfu_ctx) {
  if (vfu_ctx == nullptr) return FailWithErrno(EINVAL);
  return vfu_ctx->driver->GetPollFd();
}

int vfu_run_ctx(vfu_ctx_t* vfu_ctx) {
  if (vfu_ctx == nullptr || !vfu_ctx->realized) return FailWithErrno(EINVAL);
  vfu::ScopedThreadLogSink log = vfu_ctx->RouteVfuLog();
  return vfu_ctx->driver->Run();
}

void vfu_destroy_ctx(vfu_ctx_t* vfu_ctx) {
  if (vfu_ctx == nullptr) return;
  {
    vfu::ScopedThreadLogSink log = vfu_ctx->RouteVfuLog();
    vfu_ctx->driver.reset();
  }
  // The driver went first: it detaches the client while the setup it
  // serves from is still there.
  delete vfu_ctx;
}

void* vfu_get_private(vfu_ctx_t* vfu_ctx) { return vfu_ctx == nullptr ? nullptr : vfu_ctx->pvt; }

void vfu_log(vfu_ctx_t* vfu_ctx, int level, const char* fmt, ...) {
  if (vfu_ctx == nullptr || fmt == nullptr) return;
  va_list args;
  va_start(args, fmt);
  vfu_ctx->LogV(level, fmt, args);
  va_end(args);
}

int vfu_setup_log(vfu_ctx_t* vfu_ctx, vfu_log_fn_t* log, int level) {
  if (vfu_ctx == nullptr || level < LOG_EMERG || level > LOG_DEBUG) return FailWithErrno(EINVAL);
  vfu_ctx->log_fn = log;
  vfu_ctx->log_level = level;
  return 0;
}

}  // extern "C"
