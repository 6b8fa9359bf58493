// Helpers for end-to-end tests of the threaded runtime: a fixture that
// serves MemoryDevices at sockets in a fresh directory, and raw-socket
// clients for tests that need a peer the client library would not be.
#ifndef VFU_SERVER_SERVER_TEST_UTIL_H_
#define VFU_SERVER_SERVER_TEST_UTIL_H_

#include <dirent.h>
#include <poll.h>
#include <sys/socket.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "testing/memory_device.h"
#include "testing/status_matchers.h"
#include "testing/temp_dir.h"
#include "vfu/base/syscalls.h"
#include "vfu/base/unique_fd.h"
#include "vfu/client/client.h"
#include "vfu/server/server.h"
#include "vfu/server/unix_listener.h"
#include "vfu/transport/message_reader.h"
#include "vfu/wire/dma_map.h"
#include "vfu/wire/header.h"
#include "vfu/wire/version.h"

namespace vfu::testing {

// Open fds of this process (for leak checks).
inline int CountOpenFds() {
  int count = 0;
  DIR* d = ::opendir("/proc/self/fd");
  while (struct dirent* e = ::readdir(d)) count += e->d_name[0] != '.';
  ::closedir(d);
  return count - 1;  // the DIR's own fd
}

class ServerFixture : public ::testing::Test {
 protected:
  void StartServer(ServerOptions options = {}, int num_devices = 1,
                   std::vector<DeviceOptions> device_options = {}) {
    device_options.resize(num_devices);
    for (int i = 0; i < num_devices; ++i) {
      devices_.push_back(std::make_unique<MemoryDevice>(64 * 1024));
    }
    ASSERT_OK_AND_ASSIGN(server_, Server::Create(options));
    for (int i = 0; i < num_devices; ++i) {
      ASSERT_OK(server_->AddDevice(Path(i), *devices_[i], device_options[i]));
    }
    ASSERT_OK(server_->Start());
  }

  std::string Path(int i) const { return dir_.File("dev" + std::to_string(i) + ".sock"); }

  // A generous deadline: a loaded machine (sanitizers, parallel builds)
  // can take seconds to tear the previous client down; it bounds failures.
  static ClientOptions PatientClient() { return ClientOptions{.timeout = absl::Seconds(60)}; }

  std::unique_ptr<Client> Connect(int device = 0, ClientOptions options = PatientClient()) {
    absl::StatusOr<std::unique_ptr<Client>> c = Client::Connect(Path(device), options);
    EXPECT_THAT(c, IsOk());
    return c.ok() ? std::move(*c) : nullptr;
  }

  void TearDown() override {
    if (server_) server_->Stop();
  }

  ScopedTempDir dir_;
  std::vector<std::unique_ptr<MemoryDevice>> devices_;
  std::unique_ptr<Server> server_;
};

// Sends all of `m` on a raw socket (blocking in poll while it is full).
inline void SendAll(int fd, const std::vector<uint8_t>& m) {
  size_t sent = 0;
  while (sent < m.size()) {
    struct pollfd p = {fd, POLLOUT, 0};
    ASSERT_GE(::poll(&p, 1, 30000), 0);
    const ssize_t n = ::send(fd, m.data() + sent, m.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    ASSERT_TRUE(n > 0 || errno == EAGAIN) << std::strerror(errno);
    if (n > 0) sent += static_cast<size_t>(n);
  }
}

// The bytes of a VERSION command with message ID `id`.
inline std::vector<uint8_t> VersionCommand(uint16_t id) {
  std::vector<uint8_t> m = wire::StartMessage();
  wire::EncodeVersionWithJson(0, 0, "{}", m);
  wire::FinishMessage(wire::CommandHeader(id, wire::Command::kVersion), m);
  return m;
}

// Connects with a raw socket, sends VERSION, and returns the socket (the
// VERSION reply is left unread); for tests that need a client which does
// not answer the server's commands.
inline UniqueFd RawNegotiatedClient(const std::string& path) {
  absl::StatusOr<UniqueFd> fd = ConnectUnix(path);
  EXPECT_THAT(fd, IsOk());
  if (!fd.ok()) return UniqueFd();
  SendAll(fd->get(), VersionCommand(1));
  return std::move(*fd);
}

// Reads from `fd` until `count` messages arrived (or 30 s passed).
inline std::vector<InboundMessage> ReadMessages(int fd, size_t count) {
  MessageReader reader(1 << 20, 4);
  std::vector<InboundMessage> messages;
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (messages.size() < count && absl::Now() < deadline) {
    struct pollfd p = {fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    if (!reader.ReadAvailable(fd, PosixSyscalls::Instance(), messages).ok()) break;
  }
  return messages;
}

// Maps [0, size) without an fd, so device DMA there travels as messages,
// and consumes the reply.
inline void MapFdLessMemory(int fd, uint64_t size = 0x10000) {
  std::vector<uint8_t> m = wire::StartMessage();
  wire::EncodeDmaMapRequest({.flags = wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite,
                             .addr = 0,
                             .size = size},
                            m);
  wire::FinishMessage(wire::CommandHeader(2, wire::Command::kDmaMap), m);
  SendAll(fd, m);
  std::vector<InboundMessage> replies = ReadMessages(fd, 1);
  ASSERT_EQ(replies.size(), 1u);
  ASSERT_FALSE(replies[0].header.is_error());
}

}  // namespace vfu::testing

#endif  // VFU_SERVER_SERVER_TEST_UTIL_H_
