/* capi_register_access: a BAR access on a bank of 32-bit registers, for the
 * C devices of the C API soak. Reads gather each byte from its register;
 * writes go one register at a time, in address order, each with the mask of
 * the bytes the access covered (an 8-byte write of two registers sets the
 * lower one first, as the C++ devices do). */
#ifndef VFU_TESTING_SOAK_CAPI_REGISTER_ACCESS_H_
#define VFU_TESTING_SOAK_CAPI_REGISTER_ACCESS_H_

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "libvfio-user.h"

#ifdef __cplusplus
extern "C" {
#endif

/* `reg` is 4-byte aligned. */
typedef uint32_t (*capi_read_register_fn)(const void *device, uint64_t reg);
typedef void (*capi_write_register_fn)(vfu_ctx_t *ctx, void *device, uint64_t reg,
                                       uint32_t value, uint32_t mask);

/* A region callback's body for a BAR of `bar_size` bytes: -1/EINVAL for an
 * access outside it, else `count`. */
ssize_t capi_register_access(vfu_ctx_t *ctx, void *device, uint64_t bar_size, char *buf,
                             size_t count, loff_t offset, bool is_write,
                             capi_read_register_fn read_register,
                             capi_write_register_fn write_register);

#ifdef __cplusplus
}
#endif

#endif /* VFU_TESTING_SOAK_CAPI_REGISTER_ACCESS_H_ */
