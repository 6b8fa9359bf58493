#define _GNU_SOURCE
#include "raw_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

void raw_fail(const char *file, int line, const char *what) {
    fprintf(stderr, "%s:%d: check failed: %s (errno %d: %s)\n", file, line, what, errno,
            strerror(errno));
    exit(1);
}

int raw_connect(const char *path) {
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    CHECK(strlen(path) < sizeof(addr.sun_path));
    strcpy(addr.sun_path, path);
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(sock >= 0);
    CHECK(connect(sock, (struct sockaddr *)&addr, sizeof(addr)) == 0);
    return sock;
}

size_t raw_build(uint8_t *out, uint16_t msg_id, uint16_t cmd, const void *payload, size_t len) {
    struct vfio_user_header hdr;
    memset(&hdr, 0, sizeof(hdr));
    hdr.msg_id = msg_id;
    hdr.cmd = cmd;
    hdr.msg_size = (uint32_t)(sizeof(hdr) + len);
    hdr.flags.type = VFIO_USER_MESSAGE_COMMAND;
    memcpy(out, &hdr, sizeof(hdr));
    if (len > 0) {
        memcpy(out + sizeof(hdr), payload, len);
    }
    return sizeof(hdr) + len;
}

void raw_send(int sock, const void *bytes, size_t len, const int *fds, int nfds) {
    struct iovec iov = {.iov_base = (void *)bytes, .iov_len = len};
    char control[CMSG_SPACE(sizeof(int) * 8)];
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (nfds > 0) {
        CHECK(nfds <= 8);
        memset(control, 0, sizeof(control));
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
    }
    CHECK(sendmsg(sock, &msg, MSG_NOSIGNAL) == (ssize_t)len);
}

void raw_command(int sock, uint16_t msg_id, uint16_t cmd, const void *payload, size_t len,
                 const int *fds, int nfds) {
    uint8_t *buf = malloc(sizeof(struct vfio_user_header) + len);
    CHECK(buf != NULL);
    size_t n = raw_build(buf, msg_id, cmd, payload, len);
    raw_send(sock, buf, n, fds, nfds);
    free(buf);
}

static void read_exact(int sock, void *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        ssize_t n = recv(sock, (char *)buf + got, len - got, 0);
        CHECK(n > 0);
        got += (size_t)n;
    }
}

size_t raw_receive(int sock, struct vfio_user_header *hdr, void *payload, size_t max) {
    CHECK(raw_readable(sock, 5000));
    read_exact(sock, hdr, sizeof(*hdr));
    CHECK(hdr->msg_size >= sizeof(*hdr));
    size_t len = hdr->msg_size - sizeof(*hdr);
    CHECK(len <= max);
    read_exact(sock, payload, len);
    return len;
}

int raw_readable(int fd, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    return poll(&p, 1, timeout_ms) == 1;
}

size_t raw_version(uint8_t *out, uint16_t msg_id) {
    uint8_t payload[4 + 3];
    uint16_t major = 0, minor = 2;
    memcpy(payload, &major, 2);
    memcpy(payload + 2, &minor, 2);
    memcpy(payload + 4, "{}", 3);
    return raw_build(out, msg_id, VFIO_USER_VERSION, payload, sizeof(payload));
}

size_t raw_region_read(uint8_t *out, uint16_t msg_id, uint32_t region, uint64_t offset,
                       uint32_t count) {
    uint8_t payload[16];
    memcpy(payload, &offset, 8);
    memcpy(payload + 8, &region, 4);
    memcpy(payload + 12, &count, 4);
    return raw_build(out, msg_id, VFIO_USER_REGION_READ, payload, sizeof(payload));
}

size_t raw_region_write(uint8_t *out, uint16_t msg_id, uint32_t region, uint64_t offset,
                        const void *data, uint32_t count) {
    uint8_t payload[16 + 256];
    CHECK(count <= 256);
    memcpy(payload, &offset, 8);
    memcpy(payload + 8, &region, 4);
    memcpy(payload + 12, &count, 4);
    memcpy(payload + 16, data, count);
    return raw_build(out, msg_id, VFIO_USER_REGION_WRITE, payload, 16 + count);
}

void raw_dma_map(int sock, uint16_t msg_id, uint64_t iova, uint64_t size, int fd) {
    uint8_t payload[32];
    uint32_t argsz = sizeof(payload), flags = 3; /* READ | WRITE */
    uint64_t offset = 0;
    memcpy(payload, &argsz, 4);
    memcpy(payload + 4, &flags, 4);
    memcpy(payload + 8, &offset, 8);
    memcpy(payload + 16, &iova, 8);
    memcpy(payload + 24, &size, 8);
    raw_command(sock, msg_id, VFIO_USER_DMA_MAP, payload, sizeof(payload), fd >= 0 ? &fd : NULL,
                fd >= 0 ? 1 : 0);
}

void raw_dma_unmap(int sock, uint16_t msg_id, uint64_t iova, uint64_t size) {
    uint8_t payload[24];
    uint32_t argsz = sizeof(payload), flags = 0;
    memcpy(payload, &argsz, 4);
    memcpy(payload + 4, &flags, 4);
    memcpy(payload + 8, &iova, 8);
    memcpy(payload + 16, &size, 8);
    raw_command(sock, msg_id, VFIO_USER_DMA_UNMAP, payload, sizeof(payload), NULL, 0);
}

int raw_guest_memfd(size_t size, uint8_t fill) {
    int fd = memfd_create("guest", MFD_CLOEXEC);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)size) == 0);
    uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(p != MAP_FAILED);
    memset(p, fill, size);
    munmap(p, size);
    return fd;
}
