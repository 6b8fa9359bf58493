// Device-wide callbacks: reset, quiesce, migration.
#include <cerrno>

#include "libvfio-user.h"
#include "vfu/capi/api_errno.h"
#include "vfu/capi/context.h"
#include "vfu/capi/driver.h"

using vfu::capi::FailWithErrno;

extern "C" {

int vfu_setup_device_reset_cb(vfu_ctx_t* vfu_ctx, vfu_reset_cb_t* reset) {
  if (vfu_ctx == nullptr) return FailWithErrno(EINVAL);
  vfu_ctx->reset = reset;
  return 0;
}

void vfu_setup_device_quiesce_cb(vfu_ctx_t* vfu_ctx, vfu_device_quiesce_cb_t* quiesce_cb) {
  if (vfu_ctx != nullptr) vfu_ctx->quiesce = quiesce_cb;
}

int vfu_device_quiesced(vfu_ctx_t* vfu_ctx, int quiesce_errno) {
  if (vfu_ctx == nullptr || !vfu_ctx->realized || quiesce_errno < 0) return FailWithErrno(EINVAL);
  vfu::ScopedThreadLogSink log = vfu_ctx->RouteVfuLog();
  return vfu_ctx->driver->QuiesceDone(quiesce_errno);
}

int vfu_setup_device_migration_callbacks(vfu_ctx_t* vfu_ctx, uint64_t flags,
                                         const vfu_migration_callbacks_t* callbacks) {
  if (vfu_ctx == nullptr || vfu_ctx->realized || callbacks == nullptr) return FailWithErrno(EINVAL);
  if ((flags & ~uint64_t{LIBVFIO_USER_MIG_FLAG_HAVE_DATA}) != 0 ||
      callbacks->version != VFU_MIGR_CALLBACKS_VERS || callbacks->transition == nullptr ||
      callbacks->read_data == nullptr || callbacks->write_data == nullptr) {
    return FailWithErrno(EINVAL);
  }
  vfu_ctx->migration_enabled = true;
  vfu_ctx->migration_flags = flags;
  vfu_ctx->migration = *callbacks;
  return 0;
}

}  // extern "C"
