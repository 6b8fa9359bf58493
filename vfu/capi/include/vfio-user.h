/*
 * vfio-user wire definitions that libvfio-user's header exposes to device
 * code: the message header and the command numbers (vfio-user protocol
 * specification, sections 2 and 3).
 */
#ifndef VFIO_USER_H
#define VFIO_USER_H

#include <linux/vfio.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE (1024 * 1024)

enum vfio_user_command {
    VFIO_USER_VERSION = 1,
    VFIO_USER_DMA_MAP = 2,
    VFIO_USER_DMA_UNMAP = 3,
    VFIO_USER_DEVICE_GET_INFO = 4,
    VFIO_USER_DEVICE_GET_REGION_INFO = 5,
    VFIO_USER_DEVICE_GET_REGION_IO_FDS = 6,
    VFIO_USER_DEVICE_GET_IRQ_INFO = 7,
    VFIO_USER_DEVICE_SET_IRQS = 8,
    VFIO_USER_REGION_READ = 9,
    VFIO_USER_REGION_WRITE = 10,
    VFIO_USER_DMA_READ = 11,
    VFIO_USER_DMA_WRITE = 12,
    VFIO_USER_DEVICE_RESET = 13,
    VFIO_USER_DIRTY_PAGES = 14,
    VFIO_USER_REGION_WRITE_MULTI = 15,
    VFIO_USER_DEVICE_FEATURE = 16,
    VFIO_USER_MIG_DATA_READ = 17,
    VFIO_USER_MIG_DATA_WRITE = 18,
    VFIO_USER_MAX,
};

enum vfio_user_message_type {
    VFIO_USER_MESSAGE_COMMAND = 0,
    VFIO_USER_MESSAGE_REPLY = 1,
};

#define VFIO_USER_FLAGS_NO_REPLY (0x1)

/* The 16 bytes every message starts with. */
struct vfio_user_header {
    uint16_t msg_id;
    uint16_t cmd;
    uint32_t msg_size;
    struct {
        uint32_t type:4;
        uint32_t no_reply:1;
        uint32_t error:1;
        uint32_t resvd:26;
    } flags;
    uint32_t error_no;
} __attribute__((packed));

#ifdef __cplusplus
}
#endif

#endif /* VFIO_USER_H */
