#include "testing/soak/capi_gpio.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testing/soak/capi_register_access.h"

#define LINE_MASK 0xffffu

/* The writable registers, all zero at reset. */
struct capi_gpio {
    uint16_t output;
    uint16_t direction;
    uint16_t irq_enable;
    uint16_t irq_status;
    uint32_t control;
};

static uint16_t input_levels(const struct capi_gpio *gpio) {
    /* Nothing outside drives the lines of this server: they read 0. */
    return (gpio->control & CAPI_GPIO_CONTROL_LOOPBACK) != 0 ? gpio->output : 0;
}

static uint16_t pending_lines(const struct capi_gpio *gpio) {
    return gpio->irq_status & gpio->irq_enable;
}

/* After any change: lines that became pending since `pending_before` raise. */
static void signal_pending(vfu_ctx_t *ctx, const struct capi_gpio *gpio,
                           uint16_t pending_before) {
    if ((pending_lines(gpio) & ~pending_before) == 0) {
        return;
    }
    /* -1/ENOENT: the client gave no eventfd; it may poll IRQ_STATUS. */
    (void)vfu_irq_trigger(ctx, 0);
}

static uint32_t read_register(const void *device, uint64_t reg) {
    const struct capi_gpio *gpio = device;
    switch (reg) {
    case CAPI_GPIO_REG_ID: return CAPI_GPIO_ID_VALUE;
    case CAPI_GPIO_REG_INFO: return CAPI_GPIO_INFO_VALUE;
    case CAPI_GPIO_REG_INPUT: return input_levels(gpio);
    case CAPI_GPIO_REG_OUTPUT: return gpio->output;
    case CAPI_GPIO_REG_DIRECTION: return gpio->direction;
    case CAPI_GPIO_REG_IRQ_ENABLE: return gpio->irq_enable;
    case CAPI_GPIO_REG_IRQ_STATUS: return gpio->irq_status;
    case CAPI_GPIO_REG_CONTROL: return gpio->control;
    default: return 0; /* reserved */
    }
}

static uint32_t merge(uint32_t old, uint32_t value, uint32_t mask, uint32_t bits) {
    return ((old & ~mask) | (value & mask)) & bits;
}

/* Stores the bytes of `value` selected by `mask` into register `reg`. */
static void write_register(vfu_ctx_t *ctx, void *device, uint64_t reg,
                           uint32_t value, uint32_t mask) {
    struct capi_gpio *gpio = device;
    const uint16_t input_before = input_levels(gpio);
    const uint16_t pending_before = pending_lines(gpio);
    switch (reg) {
    case CAPI_GPIO_REG_OUTPUT:
        gpio->output = (uint16_t)merge(gpio->output, value, mask, LINE_MASK);
        break;
    case CAPI_GPIO_REG_DIRECTION:
        gpio->direction = (uint16_t)merge(gpio->direction, value, mask, LINE_MASK);
        break;
    case CAPI_GPIO_REG_IRQ_ENABLE:
        gpio->irq_enable = (uint16_t)merge(gpio->irq_enable, value, mask, LINE_MASK);
        break;
    case CAPI_GPIO_REG_IRQ_STATUS:
        gpio->irq_status &= (uint16_t)~(value & mask);
        break;
    case CAPI_GPIO_REG_CONTROL:
        gpio->control = merge(gpio->control, value, mask, CAPI_GPIO_CONTROL_LOOPBACK);
        break;
    default:
        break; /* read-only or reserved: dropped, as hardware does */
    }
    /* OUTPUT and CONTROL can change INPUT (loopback); IRQ_ENABLE can make a
     * line with a stale status bit pending. */
    gpio->irq_status |= (uint16_t)((input_before ^ input_levels(gpio)) & gpio->irq_enable);
    signal_pending(ctx, gpio, pending_before);
}

static ssize_t bar0_access(vfu_ctx_t *ctx, char *buf, size_t count, loff_t offset,
                           bool is_write) {
    return capi_register_access(ctx, vfu_get_private(ctx), CAPI_GPIO_BAR_SIZE, buf, count, offset,
                                is_write, read_register, write_register);
}

static int reset(vfu_ctx_t *ctx, vfu_reset_type_t type) {
    struct capi_gpio *gpio = vfu_get_private(ctx);
    if (type == VFU_RESET_LOST_CONN) {
        return 0; /* state survives clients */
    }
    const uint16_t pending_before = pending_lines(gpio);
    memset(gpio, 0, sizeof *gpio);
    signal_pending(ctx, gpio, pending_before);
    return 0;
}

/* INTx's end of interrupt: a line still pending interrupts again. */
static void intx_state(vfu_ctx_t *ctx, uint32_t start, uint32_t count, bool mask) {
    (void)start;
    (void)count;
    const struct capi_gpio *gpio = vfu_get_private(ctx);
    if (!mask && pending_lines(gpio) != 0) {
        (void)vfu_irq_trigger(ctx, 0);
    }
}

vfu_ctx_t *capi_gpio_create(const char *path, vfu_log_fn_t *log, int log_level) {
    struct capi_gpio *gpio = calloc(1, sizeof *gpio);
    if (gpio == NULL) {
        return NULL;
    }
    vfu_ctx_t *ctx =
        vfu_create_ctx(VFU_TRANS_SOCK, path, LIBVFIO_USER_FLAG_ATTACH_NB, gpio, VFU_DEV_TYPE_PCI);
    if (ctx == NULL) {
        free(gpio);
        return NULL;
    }
    if (vfu_setup_log(ctx, log, log_level) != 0 ||
        vfu_pci_init(ctx, VFU_PCI_TYPE_CONVENTIONAL, PCI_HEADER_TYPE_NORMAL, 0) != 0) {
        goto fail;
    }
    /* Identity of the C++ device (vendor 0xf00d is its placeholder). */
    vfu_pci_set_id(ctx, 0xf00d, 0x0001, 0xf00d, 0x0001);
    vfu_pci_set_class(ctx, 0x08, 0x80, 0x00);
    if (vfu_setup_region(ctx, VFU_PCI_DEV_BAR0_REGION_IDX, CAPI_GPIO_BAR_SIZE, bar0_access,
                         VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM, NULL, 0, -1, 0) != 0 ||
        vfu_setup_device_nr_irqs(ctx, VFU_DEV_INTX_IRQ, 1) != 0 ||
        vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSI_IRQ, 1) != 0 ||
        vfu_setup_irq_state_callback(ctx, VFU_DEV_INTX_IRQ, intx_state) != 0 ||
        vfu_setup_device_reset_cb(ctx, reset) != 0 || vfu_realize_ctx(ctx) != 0) {
        goto fail;
    }
    return ctx;
fail:;
    int saved = errno;
    capi_gpio_destroy(ctx);
    errno = saved;
    return NULL;
}

void capi_gpio_destroy(vfu_ctx_t *ctx) {
    if (ctx == NULL) {
        return;
    }
    struct capi_gpio *gpio = vfu_get_private(ctx);
    vfu_destroy_ctx(ctx);
    free(gpio);
}
