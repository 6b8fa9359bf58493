// Interrupts.
#include <cerrno>

#include "libvfio-user.h"
#include "vfu/capi/api_errno.h"
#include "vfu/capi/callback_device.h"
#include "vfu/capi/context.h"
#include "vfu/capi/driver.h"

using vfu::capi::FailWith;
using vfu::capi::FailWithErrno;

extern "C" {

int vfu_setup_device_nr_irqs(vfu_ctx_t* vfu_ctx, enum vfu_dev_irq_type type, uint32_t count) {
  if (vfu_ctx == nullptr || vfu_ctx->realized) return FailWithErrno(EINVAL);
  if (type < VFU_DEV_INTX_IRQ || type >= VFU_DEV_NUM_IRQS) return FailWithErrno(EINVAL);
  // INTx, ERR and REQ have one vector at most; MSI 32; MSI-X 2048.
  const uint32_t limit = type == VFU_DEV_MSI_IRQ ? 32 : type == VFU_DEV_MSIX_IRQ ? 2048 : 1;
  if (count > limit) return FailWithErrno(EINVAL);
  vfu_ctx->irq_counts[type] = count;
  return 0;
}

int vfu_setup_irq_state_callback(vfu_ctx_t* vfu_ctx, enum vfu_dev_irq_type type,
                                 vfu_dev_irq_state_cb_t* cb) {
  if (vfu_ctx == nullptr || vfu_ctx->realized) return FailWithErrno(EINVAL);
  if (type < VFU_DEV_INTX_IRQ || type >= VFU_DEV_NUM_IRQS) return FailWithErrno(EINVAL);
  vfu_ctx->irq_state_callbacks[type] = cb;
  return 0;
}

int vfu_irq_trigger(vfu_ctx_t* vfu_ctx, uint32_t subindex) {
  if (vfu_ctx == nullptr || !vfu_ctx->realized) return FailWithErrno(EINVAL);
  vfu::capi::CallbackDevice* device = vfu_ctx->driver->device();
  absl::Status status = device->Trigger(subindex);
  return status.ok() ? 0 : FailWith(status);
}

}  // extern "C"
