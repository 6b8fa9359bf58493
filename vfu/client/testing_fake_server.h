// FakeServer: a scripted vfio-user server for Client tests, the far end of
// a socketpair, driven step by step by the test (usually from a thread of
// its own while the test thread drives the Client).
//
//   FakeServer server;
//   std::thread script([&] {
//     ASSERT_OK(server.AcceptVersion().status());
//     ASSERT_OK_AND_ASSIGN(InboundMessage request, server.main().Receive());
//     ASSERT_OK(server.main().ReplyError(request.header, ENOENT));
//   });
//   ASSERT_OK_AND_ASSIGN(auto client, Client::FromFd(server.TakeClientEnd()));
//
// Every wait is bounded (default 5 s), so a test whose client misbehaves
// fails instead of hanging. Built directly on MessageReader/MessageWriter,
// nothing shared with the client's code above the transport.
//
// Thread-compatible: one thread drives an endpoint at a time.
#ifndef VFU_CLIENT_TESTING_FAKE_SERVER_H_
#define VFU_CLIENT_TESTING_FAKE_SERVER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "vfu/base/unique_fd.h"
#include "vfu/transport/message.h"
#include "vfu/transport/message_reader.h"
#include "vfu/transport/message_writer.h"
#include "vfu/wire/constants.h"
#include "vfu/wire/header.h"
#include "vfu/wire/negotiation.h"
#include "vfu/wire/version.h"

namespace vfu::testing {

// How long the fake waits for the client: it only bounds a broken test,
// so it is generous (a loaded machine may starve a thread for seconds).
inline constexpr absl::Duration kFakeTimeout = absl::Seconds(30);

// One socket of the fake server, with blocking, deadline-bounded helpers.
class FakeEndpoint {
 public:
  // Takes `fd` (a connected stream socket) and makes it non-blocking.
  explicit FakeEndpoint(UniqueFd fd);

  // The next whole message. DeadlineExceeded if none arrives in `timeout`,
  // Unavailable once the client has closed its end.
  absl::StatusOr<InboundMessage> Receive(absl::Duration timeout = kFakeTimeout);

  // Sends one whole message (`fds` with its first byte), waiting for socket
  // space as needed.
  absl::Status Send(std::vector<uint8_t> message, std::vector<UniqueFd> fds = {});
  // A server->client command.
  absl::Status SendCommand(uint16_t id, wire::Command command, absl::Span<const uint8_t> payload,
                           bool no_reply = false);
  // A successful reply to `request` carrying `payload` and `fds`.
  absl::Status Reply(const wire::Header& request, absl::Span<const uint8_t> payload = {},
                     std::vector<UniqueFd> fds = {});
  // An error reply (header only) carrying `errno_value`.
  absl::Status ReplyError(const wire::Header& request, uint32_t errno_value);

  // Closes the socket (the client sees the connection end).
  void Close() { fd_.reset(); }

 private:
  UniqueFd fd_;
  MessageReader reader_;
  MessageWriter writer_;
  std::deque<InboundMessage> received_;
};

class FakeServer {
 public:
  // A fresh socketpair: one end is the server's main endpoint, the other
  // waits in TakeClientEnd().
  FakeServer();
  // Serves `server_end`, a socket accepted from a listener (TakeClientEnd()
  // is then invalid).
  explicit FakeServer(UniqueFd server_end);

  // The client's end of the main socket (once).
  UniqueFd TakeClientEnd() { return std::move(client_end_); }

  FakeEndpoint& main() { return *main_; }
  // The twin socket, after AcceptVersion() granted twin mode; else null.
  FakeEndpoint* twin() { return twin_.get(); }

  // Receives the client's VERSION and answers as a server with `policy`
  // would (wire::NegotiateVersion), creating and passing the twin socket
  // when granted. Returns the client's decoded proposal.
  absl::StatusOr<wire::Version> AcceptVersion(const wire::ServerVersionPolicy& policy = {});

  // Receives the client's VERSION and answers with exactly `payload` and
  // `fds`, however wrong. Returns the client's VERSION message.
  absl::StatusOr<InboundMessage> AnswerVersionWith(absl::Span<const uint8_t> payload,
                                                   std::vector<UniqueFd> fds = {});

 private:
  std::unique_ptr<FakeEndpoint> main_;
  std::unique_ptr<FakeEndpoint> twin_;
  UniqueFd client_end_;
};

}  // namespace vfu::testing

#endif  // VFU_CLIENT_TESTING_FAKE_SERVER_H_
