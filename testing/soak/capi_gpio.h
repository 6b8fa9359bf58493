/*
 * The GPIO device (devices/gpio/gpio_device.h) written against the
 * libvfio-user C API alone, for the C API's soak server: the same BAR0
 * register file, so the soak's gpio patterns run against it unchanged.
 *
 * BAR0: 4 KiB, 32-bit little-endian registers, any access size and
 * alignment (byte by byte); bit n is line n, bits 31:16 read 0.
 *   0x00 ID          RO    0x4f495047 ("GPIO")
 *   0x04 INFO        RO    0x0110 (16 lines, register file revision 1)
 *   0x08 INPUT       RO    OUTPUT in loopback, else the outside levels
 *                          (always 0 here: nothing drives them)
 *   0x0c OUTPUT      RW
 *   0x10 DIRECTION   RW
 *   0x14 IRQ_ENABLE  RW    a change of the line's INPUT is an event
 *   0x18 IRQ_STATUS  RW1C  set by an event on an enabled line
 *   0x1c CONTROL     RW    bit 0 LOOPBACK
 * The rest of the BAR reads 0 and ignores writes.
 *
 * Interrupts: INTx and MSI (one vector each). A line that becomes pending
 * (IRQ_STATUS & IRQ_ENABLE) raises vector 0 with vfu_irq_trigger(), which
 * the library delivers as MSI when the client gave MSI an eventfd, else as
 * INTx. The C++ device's INTx is a level; libvfio-user's API has edges only,
 * so the level is approximated: an INTx unmask (SET_IRQS ACTION_UNMASK, the
 * client's end of interrupt) while some line is still pending raises again.
 * Unlike the C++ device, installing an INTx eventfd while a line is pending
 * raises nothing (the API reports no such event to the device).
 *
 * DEVICE_RESET restores the reset values; a client leaving changes nothing.
 * No PCI capabilities (the C++ device has power management and MSI ones).
 * One thread at a time, as the context.
 */
#ifndef VFU_TESTING_SOAK_CAPI_GPIO_H_
#define VFU_TESTING_SOAK_CAPI_GPIO_H_

#include "libvfio-user.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CAPI_GPIO_BAR_SIZE 4096u
#define CAPI_GPIO_REG_ID 0x00u
#define CAPI_GPIO_REG_INFO 0x04u
#define CAPI_GPIO_REG_INPUT 0x08u
#define CAPI_GPIO_REG_OUTPUT 0x0cu
#define CAPI_GPIO_REG_DIRECTION 0x10u
#define CAPI_GPIO_REG_IRQ_ENABLE 0x14u
#define CAPI_GPIO_REG_IRQ_STATUS 0x18u
#define CAPI_GPIO_REG_CONTROL 0x1cu
#define CAPI_GPIO_ID_VALUE 0x4f495047u
#define CAPI_GPIO_INFO_VALUE 0x0110u
#define CAPI_GPIO_CONTROL_LOOPBACK 1u

/*
 * A realized, non-blocking (LIBVFIO_USER_FLAG_ATTACH_NB) context serving a
 * GPIO at `path`, its log lines going to `log` at `log_level`. NULL with
 * errno on failure. Release with capi_gpio_destroy().
 */
vfu_ctx_t *capi_gpio_create(const char *path, vfu_log_fn_t *log, int log_level);

/* Destroys the context (disconnecting any client) and the device's state. */
void capi_gpio_destroy(vfu_ctx_t *ctx);

#ifdef __cplusplus
}
#endif

#endif /* VFU_TESTING_SOAK_CAPI_GPIO_H_ */
