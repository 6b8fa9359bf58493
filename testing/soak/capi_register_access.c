#include "testing/soak/capi_register_access.h"

#include <errno.h>

ssize_t capi_register_access(vfu_ctx_t *ctx, void *device, uint64_t bar_size, char *buf,
                             size_t count, loff_t offset, bool is_write,
                             capi_read_register_fn read_register,
                             capi_write_register_fn write_register) {
    if (offset < 0 || count > bar_size || (uint64_t)offset > bar_size - count) {
        errno = EINVAL;
        return -1;
    }
    size_t i = 0;
    if (!is_write) {
        for (; i < count; ++i) {
            const uint64_t byte = (uint64_t)offset + i;
            buf[i] = (char)(uint8_t)(read_register(device, byte & ~(uint64_t)3) >> (8 * (byte & 3)));
        }
        return (ssize_t)count;
    }
    const uint8_t *in = (const uint8_t *)buf;
    while (i < count) {
        const uint64_t reg = ((uint64_t)offset + i) & ~(uint64_t)3;
        uint32_t value = 0;
        uint32_t mask = 0;
        for (; i < count && (((uint64_t)offset + i) & ~(uint64_t)3) == reg; ++i) {
            const uint32_t shift = 8 * (uint32_t)(((uint64_t)offset + i) & 3);
            value |= (uint32_t)in[i] << shift;
            mask |= 0xffu << shift;
        }
        write_register(ctx, device, reg, value, mask);
    }
    return (ssize_t)count;
}
