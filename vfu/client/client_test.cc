// Client against a scripted fake server (testing_fake_server.h) on the
// other end of a socketpair. Each script runs on its own thread; the test
// thread drives the Client. Synchronization is by absl::Notification and by
// the protocol itself, never by sleeping.
#include "vfu/client/client.h"

#include <fcntl.h>
#include <linux/vfio.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/wire_matchers.h"
#include "vfu/base/unique_fd.h"
#include "vfu/client/testing_fake_server.h"
#include "vfu/wire/device_info.h"
#include "vfu/wire/dma_map.h"
#include "vfu/wire/dma_transfer.h"
#include "vfu/wire/dma_unmap.h"
#include "vfu/wire/errno_status.h"
#include "vfu/wire/header.h"
#include "vfu/wire/irq.h"
#include "vfu/wire/negotiation.h"
#include "vfu/wire/region_access.h"
#include "vfu/wire/region_info.h"
#include "vfu/wire/version.h"

namespace vfu {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::vfu::testing::FailsWithErrno;
using ::vfu::testing::FakeEndpoint;
using ::vfu::testing::FakeServer;
using ::vfu::testing::StatusIs;
using wire::Command;
using wire::DmaTransferLayout;

constexpr uint64_t kIova = 0x10000;
// Failure bound for what a scripted server or the client should do soon.
constexpr absl::Duration kWait = absl::Seconds(30);

// Runs `script` against a fresh FakeServer on its own thread, joined on
// destruction. Declare it before the Client: the client is then destroyed
// first, so a script waiting for the client to hang up finishes.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::function<void(FakeServer&)> script)
      : client_end_(server_.TakeClientEnd()),
        thread_([this, script = std::move(script)] { script(server_); }) {}
  ~ScriptedServer() { thread_.join(); }

  UniqueFd TakeClientEnd() { return std::move(client_end_); }

 private:
  FakeServer server_;
  UniqueFd client_end_;
  std::thread thread_;
};

std::vector<uint8_t> Iota(size_t n, uint8_t first = 0) {
  std::vector<uint8_t> v(n);
  std::iota(v.begin(), v.end(), first);
  return v;
}

std::vector<uint8_t> RegionReadPayload(uint32_t region, uint64_t offset, uint32_t count) {
  std::vector<uint8_t> p;
  wire::EncodeRegionReadRequest({.offset = offset, .region = region, .count = count}, p);
  return p;
}

std::vector<uint8_t> VersionPayload(uint16_t major, uint16_t minor, std::string_view json) {
  std::vector<uint8_t> p;
  wire::EncodeVersionWithJson(major, minor, json, p);
  return p;
}

UniqueFd MakeEventfd() { return UniqueFd(::eventfd(0, EFD_CLOEXEC)); }

// Receives the client's reply to the server command `id` and checks that it
// is one.
void ExpectReplyTo(FakeEndpoint& endpoint, uint16_t id, Command command, InboundMessage* out) {
  ASSERT_OK_AND_ASSIGN(InboundMessage reply, endpoint.Receive());
  EXPECT_TRUE(reply.header.is_reply());
  EXPECT_EQ(reply.header.msg_id, id);
  EXPECT_EQ(reply.header.command, static_cast<uint16_t>(command));
  *out = std::move(reply);
}

// ---------------------------------------------------------------------------
// Negotiation

// The proposal carries our capabilities; the reply's minor and
// capabilities become the client's view of the server.
TEST(ClientTest, NegotiatesVersionAndCapabilities) {
  ScriptedServer server([](FakeServer& s) {
    wire::ServerVersionPolicy policy;
    policy.max_msg_fds = 8;
    policy.max_data_xfer_size = 512 << 10;
    policy.write_multiple = true;
    ASSERT_OK_AND_ASSIGN(wire::Version proposal, s.AcceptVersion(policy));
    EXPECT_EQ(proposal.major, 0);
    EXPECT_EQ(proposal.minor, 7);
    EXPECT_EQ(proposal.capabilities.max_msg_fds, 16u);
    EXPECT_EQ(proposal.capabilities.max_data_xfer_size, 1u << 20);
    EXPECT_TRUE(proposal.capabilities.write_multiple);
    EXPECT_FALSE(proposal.capabilities.twin_socket.supported);
    EXPECT_FALSE(proposal.capabilities.migration.has_value());
  });
  ClientOptions options;
  options.minor_version = 7;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client,
                       Client::FromFd(server.TakeClientEnd(), options));
  EXPECT_EQ(client->server_minor_version(), 2);
  EXPECT_EQ(client->server_capabilities().max_msg_fds, 8u);
  EXPECT_EQ(client->server_capabilities().max_data_xfer_size, 512u << 10);
  EXPECT_TRUE(client->server_capabilities().write_multiple);
  EXPECT_FALSE(client->twin_socket_active());
  EXPECT_EQ(client->stats().commands_sent, 1u);
}

// A real UNIX socket path works like a socketpair; a missing one fails with
// connect()'s errno.
TEST(ClientTest, ConnectsByPath) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  // Bazel's TEST_TMPDIR can be longer than sun_path allows.
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = tmp != nullptr ? tmp : "";
  if (dir.empty() || dir.size() + 32 >= sizeof addr.sun_path) dir = "/tmp";
  const std::string path = absl::StrCat(dir, "/vfu_client_test.", ::getpid(), ".sock");
  ::unlink(path.c_str());
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_LT(path.size(), sizeof addr.sun_path);
  path.copy(addr.sun_path, path.size());
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener.get(), 1), 0);
  std::thread script([&] {
    FakeServer s(UniqueFd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)));
    EXPECT_OK(s.AcceptVersion().status());
    // Wait for the client to hang up.
    EXPECT_THAT(s.main().Receive(), StatusIs(absl::StatusCode::kUnavailable));
  });
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::Connect(path));
    EXPECT_EQ(client->server_minor_version(), 0);
  }
  script.join();
  ::unlink(path.c_str());
  EXPECT_THAT(Client::Connect(path), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Client::Connect(std::string(200, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// Twin mode: the server passes a socket with the VERSION reply, and its
// commands arrive there while the client waits on the main socket.
TEST(ClientTest, TwinSocketCarriesServerCommands) {
  std::vector<uint8_t> ram(64, 0);
  const std::vector<uint8_t> data = {9, 8, 7, 6};
  ScriptedServer server([&](FakeServer& s) {
    wire::ServerVersionPolicy policy;
    policy.twin_socket = true;
    ASSERT_OK_AND_ASSIGN(wire::Version proposal, s.AcceptVersion(policy));
    EXPECT_TRUE(proposal.capabilities.twin_socket.supported);
    ASSERT_NE(s.twin(), nullptr);
    ASSERT_OK_AND_ASSIGN(InboundMessage reset, s.main().Receive());
    EXPECT_EQ(reset.header.command, static_cast<uint16_t>(Command::kDeviceReset));
    std::vector<uint8_t> p;
    wire::EncodeDmaWriteRequest({.address = kIova + 4, .data = data}, DmaTransferLayout::kSpec, p);
    ASSERT_OK(s.twin()->SendCommand(1, Command::kDmaWrite, p));
    InboundMessage ack;
    ASSERT_NO_FATAL_FAILURE(ExpectReplyTo(*s.twin(), 1, Command::kDmaWrite, &ack));
    EXPECT_FALSE(ack.header.is_error());
    ASSERT_OK(s.main().Reply(reset.header));
  });
  ClientOptions options;
  options.twin_socket = true;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client,
                       Client::FromFd(server.TakeClientEnd(), options));
  EXPECT_TRUE(client->twin_socket_active());
  EXPECT_TRUE(client->server_capabilities().twin_socket.supported);
  ASSERT_OK(client->AddDmaMemory(kIova, absl::MakeSpan(ram)));
  ASSERT_OK(client->Reset());
  EXPECT_THAT(absl::MakeSpan(ram).subspan(4, 4), ElementsAreArray(data));
}

// Without twin_socket in the options the member is not offered at all.
TEST(ClientTest, TwinSocketNotOfferedUnlessAsked) {
  ScriptedServer server([](FakeServer& s) {
    wire::ServerVersionPolicy policy;
    policy.twin_socket = true;
    ASSERT_OK_AND_ASSIGN(InboundMessage version, s.main().Receive());
    const std::string json(version.payload().begin() + 4, version.payload().end() - 1);
    EXPECT_THAT(json, ::testing::Not(HasSubstr("twin_socket")));
    ASSERT_OK(s.main().Reply(version.header, VersionPayload(0, 0, R"({"capabilities":{}})")));
  });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(server.TakeClientEnd()));
  EXPECT_FALSE(client->twin_socket_active());
}

struct BadVersionReply {
  std::string name;
  bool offer_twin;
  std::vector<uint8_t> payload;
  bool attach_fd;
};

// Every inconsistent or malformed VERSION reply fails the connection with
// InvalidArgument (EINVAL), whatever the server meant.
TEST(ClientTest, RejectsBadVersionReplies) {
  std::vector<uint8_t> no_nul = VersionPayload(0, 0, R"({"capabilities":{}})");
  no_nul.pop_back();
  const std::vector<BadVersionReply> cases = {
      {"major 1", false, VersionPayload(1, 0, R"({"capabilities":{}})"), false},
      {"minor above the proposal", false, VersionPayload(0, 1, R"({"capabilities":{}})"), false},
      {"JSON without its NUL", false, no_nul, false},
      {"unparsable JSON", false, VersionPayload(0, 0, R"({"capabilities":)"), false},
      {"number as a string", false, VersionPayload(0, 0, R"({"capabilities":{"max_msg_fds":"8"}})"),
       false},
      {"fd_index without an fd", true,
       VersionPayload(0, 0, R"({"capabilities":{"twin_socket":{"supported":true,"fd_index":0}}})"),
       false},
      {"fd_index naming no received fd", true,
       VersionPayload(0, 0, R"({"capabilities":{"twin_socket":{"supported":true,"fd_index":1}}})"),
       true},
      {"twin granted though not offered", false,
       VersionPayload(0, 0, R"({"capabilities":{"twin_socket":{"supported":true,"fd_index":0}}})"),
       true},
      {"an fd without twin mode", true, VersionPayload(0, 0, R"({"capabilities":{}})"), true},
      {"payload shorter than major and minor", false, {0, 0}, false},
  };
  for (const BadVersionReply& c : cases) {
    SCOPED_TRACE(c.name);
    ScriptedServer server([&](FakeServer& s) {
      std::vector<UniqueFd> fds;
      if (c.attach_fd) fds.push_back(MakeEventfd());
      EXPECT_OK(s.AnswerVersionWith(c.payload, std::move(fds)).status());
    });
    ClientOptions options;
    options.twin_socket = c.offer_twin;
    absl::StatusOr<std::unique_ptr<Client>> client =
        Client::FromFd(server.TakeClientEnd(), options);
    EXPECT_THAT(client, StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_THAT(client, FailsWithErrno(EINVAL));
  }
}

// An error reply to VERSION fails the connection with that errno.
TEST(ClientTest, VersionErrorReplyKeepsErrno) {
  ScriptedServer server([](FakeServer& s) {
    ASSERT_OK_AND_ASSIGN(InboundMessage version, s.main().Receive());
    ASSERT_OK(s.main().ReplyError(version.header, ENOTSUP));
  });
  EXPECT_THAT(Client::FromFd(server.TakeClientEnd()), FailsWithErrno(ENOTSUP));
}

// Options the protocol cannot express are refused before any IO.
TEST(ClientTest, RejectsImpossibleOptions) {
  FakeServer s;
  ClientOptions options;
  options.max_data_xfer_size = 0;
  EXPECT_THAT(Client::FromFd(s.TakeClientEnd(), options),
              StatusIs(absl::StatusCode::kInvalidArgument));
  options = ClientOptions();
  options.twin_socket = true;
  options.max_msg_fds = 0;
  EXPECT_THAT(Client::FromFd(MakeEventfd(), options),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// ---------------------------------------------------------------------------
// Calls, replies, pipelining

// An error reply becomes a status whose errno is exactly the server's;
// 0 and values above 4096 read as EINVAL.
TEST(ClientTest, ErrorReplyKeepsExactErrno) {
  const std::vector<std::pair<uint32_t, int>> cases = {
      {ENOENT, ENOENT}, {EEXIST, EEXIST}, {EXDEV, EXDEV}, {ENOSPC, ENOSPC},
      {4096, 4096},     {0, EINVAL},      {4097, EINVAL},
  };
  ScriptedServer server([&](FakeServer& s) {
    ASSERT_OK(s.AcceptVersion().status());
    for (const auto& [sent, expected] : cases) {
      ASSERT_OK_AND_ASSIGN(InboundMessage request, s.main().Receive());
      ASSERT_OK(s.main().ReplyError(request.header, sent));
    }
  });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(server.TakeClientEnd()));
  std::vector<uint8_t> payload;
  wire::DmaUnmapRequest unmap;
  unmap.addr = kIova;
  unmap.size = 4096;
  wire::EncodeDmaUnmapRequest(unmap, payload);
  for (const auto& [sent, expected] : cases) {
    SCOPED_TRACE(sent);
    absl::StatusOr<Reply> reply = client->Call(Command::kDmaUnmap, payload);
    EXPECT_THAT(reply, FailsWithErrno(expected));
    EXPECT_EQ(reply.status().code(), absl::ErrnoToStatusCode(expected));
  }
}

// 1000 commands in flight at once; the replies, arriving in order, are
// collected in reverse, each matched to its own command.
TEST(ClientTest, PipelinedSendsAwaitedInReverseOrder) {
  constexpr int kCount = 1000;
  ScriptedServer server([](FakeServer& s) {
    ASSERT_OK(s.AcceptVersion().status());
    for (int i = 0; i < kCount; ++i) {
      ASSERT_OK_AND_ASSIGN(InboundMessage request, s.main().Receive());
      // Echo the request payload, which names the command's index.
      ASSERT_OK(s.main().Reply(request.header, request.payload()));
    }
  });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(server.TakeClientEnd()));
  std::vector<uint16_t> ids;
  for (int i = 0; i < kCount; ++i) {
    ASSERT_OK_AND_ASSIGN(uint16_t id,
                         client->Send(Command::kRegionRead, RegionReadPayload(1, i, 4)));
    ids.push_back(id);
  }
  for (int i = kCount - 1; i >= 0; --i) {
    ASSERT_OK_AND_ASSIGN(Reply reply, client->Await(ids[i]));
    EXPECT_EQ(reply.header.msg_id, ids[i]);
    EXPECT_THAT(reply.payload(), ElementsAreArray(RegionReadPayload(1, i, 4)));
  }
  const ClientStats stats = client->stats();
  EXPECT_EQ(stats.commands_sent, kCount + 1u);
  EXPECT_EQ(stats.replies_received, kCount + 1u);
  EXPECT_EQ(stats.messages_sent, stats.messages_received);
  EXPECT_THAT(client->Await(ids[0]), StatusIs(absl::StatusCode::kNotFound));
}

// Await on an ID never sent, or abandoned, is NotFound.
TEST(ClientTest, AwaitUnknownOrAbandonedIdIsNotFound) {
  absl::Notification abandoned;
  ScriptedServer server([&](FakeServer& s) {
    ASSERT_OK(s.AcceptVersion().status());
    ASSERT_OK_AND_ASSIGN(InboundMessage first, s.main().Receive());
    abandoned.WaitForNotification();
    ASSERT_OK(s.main().Reply(first.header));
    ASSERT_OK_AND_ASSIGN(InboundMessage second, s.main().Receive());
    ASSERT_OK(s.main().Reply(second.header));
  });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(server.TakeClientEnd()));
  EXPECT_THAT(client->Await(4242), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK_AND_ASSIGN(uint16_t id, client->Send(Command::kDeviceReset, {}));
  client->Abandon(id);
  EXPECT_THAT(client->Await(id), StatusIs(absl::StatusCode::kNotFound));
  abandoned.Notify();
  // The abandoned command's reply arrives first and is dropped.
  ASSERT_OK(client->Reset());
}

// A deadline that passes gives DeadlineExceeded; the late reply is dropped
// and never taken for the next command's.
TEST(ClientTest, DeadlineExceededAndLateReplyDropped) {
  absl::Notification gave_up;
  ScriptedServer server([&](FakeServer& s) {
    ASSERT_OK(s.AcceptVersion().status());
    ASSERT_OK_AND_ASSIGN(InboundMessage slow, s.main().Receive());
    gave_up.WaitForNotification();
    ASSERT_OK(s.main().Reply(slow.header, std::vector<uint8_t>{0xaa}));
    ASSERT_OK_AND_ASSIGN(InboundMessage next, s.main().Receive());
    EXPECT_NE(next.header.msg_id, slow.header.msg_id);
    ASSERT_OK(s.main().Reply(next.header, std::vector<uint8_t>{0xbb}));
  });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(server.TakeClientEnd()));
  EXPECT_THAT(client->Call(Command::kDeviceGetInfo, {}, {}, absl::Now() + absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  gave_up.Notify();
  ASSERT_OK_AND_ASSIGN(Reply reply, client->Call(Command::kDeviceGetInfo, {}));
  EXPECT_THAT(reply.payload(), ElementsAre(0xbb));
}

// After Await() times out the command stays outstanding and can be awaited
// again.
TEST(ClientTest, AwaitAgainAfterDeadline) {
  absl::Notification timed_out;
  ScriptedServer server([&](FakeServer& s) {
    ASSERT_OK(s.AcceptVersion().status());
    ASSERT_OK_AND_ASSIGN(InboundMessage request, s.main().Receive());
    timed_out.WaitForNotification();
    ASSERT_OK(s.main().Reply(request.header));
  });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(server.TakeClientEnd()));
  ASSERT_OK_AND_ASSIGN(uint16_t id, client->Send(Command::kDeviceReset, {}));
  // A deadline in the past still looks once, without blocking.
  EXPECT_THAT(client->Await(id, absl::InfinitePast()),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  timed_out.Notify();
  EXPECT_OK(client->Await(id).status());
}

// The server hanging up fails the waiting call, and every later one, with
// Unavailable; a reply that arrived before the hang-up is still delivered.
TEST(ClientTest, ServerClosingGivesUnavailable) {
  ScriptedServer server([](FakeServer& s) {
    ASSERT_OK(s.AcceptVersion().status());
    ASSERT_OK_AND_ASSIGN(InboundMessage first, s.main().Receive());
    ASSERT_OK_AND_ASSIGN(InboundMessage second, s.main().Receive());
    ASSERT_OK(s.main().Reply(first.header));
    s.main().Close();
  });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(server.TakeClientEnd()));
  ASSERT_OK_AND_ASSIGN(uint16_t first, client->Send(Command::kDeviceReset, {}));
  ASSERT_OK_AND_ASSIGN(uint16_t second, client->Send(Command::kDeviceReset, {}));
  EXPECT_THAT(client->Await(second), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_OK(client->Await(first).status());
  EXPECT_THAT(client->Send(Command::kDeviceReset, {}), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(client->Reset(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(client->Poll(absl::Seconds(1)), StatusIs(absl::StatusCode::kUnavailable));
}

// Replies that match nothing we sent are dropped; a reply naming another
// command, or carrying more fds than we accept, fails its call.
TEST(ClientTest, StrayAndMismatchedRepliesAreRejected) {
  ScriptedServer server([](FakeServer& s) {
    ASSERT_OK(s.AcceptVersion().status());
    ASSERT_OK_AND_ASSIGN(InboundMessage request, s.main().Receive());
    wire::Header stray = request.header;
    stray.msg_id = request.header.msg_id + 100;
    ASSERT_OK(s.main().Reply(stray));
    wire::Header wrong = request.header;
    wrong.command = static_cast<uint16_t>(Command::kDmaMap);
    ASSERT_OK(s.main().Reply(wrong));
    ASSERT_OK_AND_ASSIGN(request, s.main().Receive());
    std::vector<UniqueFd> fds;
    fds.push_back(MakeEventfd());
    fds.push_back(MakeEventfd());
    ASSERT_OK(s.main().Reply(request.header, {}, std::move(fds)));
  });
  ClientOptions options;
  options.max_msg_fds = 1;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client,
                       Client::FromFd(server.TakeClientEnd(), options));
  EXPECT_THAT(client->Reset(), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(client->Reset(), StatusIs(absl::StatusCode::kInvalidArgument));
}

constexpr int kWrites = 8000;
constexpr size_t kSize = 1024;

// A stream of posted writes far larger than the socket buffers arrives
// complete and in order: Send() waits for room, never drops or reorders.
TEST(ClientTest, PostedWritesFlowUnderBackPressure) {
  ScriptedServer server([](FakeServer& s) {
    ASSERT_OK(s.AcceptVersion().status());
    for (int i = 0; i < kWrites; ++i) {
      ASSERT_OK_AND_ASSIGN(InboundMessage write, s.main().Receive());
      EXPECT_TRUE(write.header.no_reply());
      ASSERT_OK_AND_ASSIGN(wire::RegionAccessData data,
                           wire::DecodeRegionWriteRequest(write.payload(), 0, 1 << 20));
      EXPECT_EQ(data.offset, static_cast<uint64_t>(i) * kSize);
      EXPECT_EQ(data.data.size(), kSize);
      EXPECT_EQ(data.data[0], static_cast<uint8_t>(i));
    }
    ASSERT_OK_AND_ASSIGN(InboundMessage sync, s.main().Receive());
    ASSERT_OK(s.main().Reply(sync.header));
  });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(server.TakeClientEnd()));
  std::vector<uint8_t> data(kSize);
  for (int i = 0; i < kWrites; ++i) {
    data[0] = static_cast<uint8_t>(i);
    ASSERT_OK(client->RegionWrite(0, static_cast<uint64_t>(i) * kSize, data, /*posted=*/true));
  }
  ASSERT_OK(client->Reset());
  EXPECT_EQ(client->stats().commands_sent, kWrites + 2u);
}

// ---------------------------------------------------------------------------
// Serving DMA_READ / DMA_WRITE

class ClientDmaTest : public ::testing::TestWithParam<std::tuple<DmaTransferLayout, bool>> {};

// While a REGION_WRITE waits for its reply, the server writes and reads
// client memory through DMA messages in the configured layout; the client
// answers both before the reply arrives.
TEST_P(ClientDmaTest, ServesDmaWhileACallWaits) {
  const auto [layout, busy_poll] = GetParam();
  std::vector<uint8_t> ram = Iota(256);
  const std::vector<uint8_t> dma_data = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3};
  ScriptedServer server([&, layout = layout](FakeServer& s) {
    ASSERT_OK(s.AcceptVersion().status());
    ASSERT_OK_AND_ASSIGN(InboundMessage write, s.main().Receive());
    EXPECT_EQ(write.header.command, static_cast<uint16_t>(Command::kRegionWrite));

    const wire::DmaWriteRequest dma_write{.address = kIova + 0x10, .data = dma_data};
    std::vector<uint8_t> p;
    wire::EncodeDmaWriteRequest(dma_write, layout, p);
    ASSERT_OK(s.main().SendCommand(0x100, Command::kDmaWrite, p));
    InboundMessage ack;
    ASSERT_NO_FATAL_FAILURE(ExpectReplyTo(s.main(), 0x100, Command::kDmaWrite, &ack));
    EXPECT_FALSE(ack.header.is_error());
    ASSERT_OK_AND_ASSIGN(wire::DmaWriteReply write_reply,
                         wire::DecodeDmaWriteReply(ack.payload(), 0, layout));
    EXPECT_OK(wire::CheckDmaReplyEcho(dma_write, write_reply));
    if (layout == DmaTransferLayout::kQemu) {
      EXPECT_EQ(ack.header.msg_size, 16u);
    }

    const wire::DmaReadRequest dma_read{.address = kIova + 0x80, .count = 32};
    p.clear();
    wire::EncodeDmaReadRequest(dma_read, layout, p);
    ASSERT_OK(s.main().SendCommand(0x101, Command::kDmaRead, p));
    InboundMessage data;
    ASSERT_NO_FATAL_FAILURE(ExpectReplyTo(s.main(), 0x101, Command::kDmaRead, &data));
    ASSERT_OK_AND_ASSIGN(wire::DmaReadReply read_reply,
                         wire::DecodeDmaReadReply(data.payload(), 0, layout, 1 << 20));
    EXPECT_OK(wire::CheckDmaReplyEcho(dma_read, read_reply));
    EXPECT_THAT(read_reply.data, ElementsAreArray(Iota(32, 0x80)));
    EXPECT_EQ(data.header.msg_size, 16u + 16u + 32u);

    std::vector<uint8_t> echo;
    wire::EncodeRegionWriteReply({.offset = 0x40, .region = 2, .count = 4}, echo);
    ASSERT_OK(s.main().Reply(write.header, echo));
  });
  ClientOptions options;
  options.dma_layout = layout;
  options.busy_poll = busy_poll;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client,
                       Client::FromFd(server.TakeClientEnd(), options));
  ASSERT_OK(client->AddDmaMemory(kIova, absl::MakeSpan(ram)));
  ASSERT_OK(client->RegionWrite(2, 0x40, std::vector<uint8_t>{1, 2, 3, 4}));
  EXPECT_THAT(absl::MakeSpan(ram).subspan(0x10, dma_data.size()), ElementsAreArray(dma_data));
  EXPECT_EQ(ram[0x0f], 0x0f);
  EXPECT_EQ(ram[0x17], 0x17);
  const ClientStats stats = client->stats();
  EXPECT_EQ(stats.server_commands_received, 2u);
  EXPECT_EQ(stats.server_commands_failed, 0u);
  EXPECT_EQ(stats.dma_write_bytes, dma_data.size());
  EXPECT_EQ(stats.dma_read_bytes, 32u);
  if (busy_poll) {
    EXPECT_GT(stats.busy_poll_rounds, 0u);
    EXPECT_EQ(stats.poll_sleeps, 0u);
  } else {
    EXPECT_EQ(stats.busy_poll_rounds, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(
    LayoutsAndWaits, ClientDmaTest,
    ::testing::Combine(::testing::Values(DmaTransferLayout::kSpec, DmaTransferLayout::kQemu),
                       ::testing::Bool()),
    [](const ::testing::TestParamInfo<ClientDmaTest::ParamType>& info) {
      return std::string(std::get<0>(info.param) == DmaTransferLayout::kSpec ? "Spec" : "Qemu") +
             (std::get<1>(info.param) ? "BusyPoll" : "Poll");
    });

// DMA outside registered memory, in a forbidden direction, too large,
// malformed, with fds, or a command a client does not serve: each gets its
// error reply (none under NO_REPLY) and client memory stays untouched.
TEST(ClientTest, AnswersBadDmaWithErrors) {
  std::vector<uint8_t> ram(64, 0x11);
  std::vector<uint8_t> read_only(16, 0x22);
  struct Case {
    std::string name;
    Command command;
    std::vector<uint8_t> payload;
    int expected_errno;
    bool with_fd = false;
  };
  auto read = [](uint64_t address, uint64_t count) {
    std::vector<uint8_t> p;
    wire::EncodeDmaReadRequest({.address = address, .count = count}, DmaTransferLayout::kSpec, p);
    return p;
  };
  auto write = [](uint64_t address, size_t count) {
    std::vector<uint8_t> data(count, 0xff);
    std::vector<uint8_t> p;
    wire::EncodeDmaWriteRequest({.address = address, .data = data}, DmaTransferLayout::kSpec, p);
    return p;
  };
  std::vector<Case> cases;
  cases.push_back({"read below memory", Command::kDmaRead, read(kIova - 1, 4), EFAULT});
  cases.push_back({"write past the end", Command::kDmaWrite, write(kIova + 48, 32), EFAULT});
  cases.push_back({"write to read-only memory", Command::kDmaWrite, write(0x90000, 1), EPERM});
  cases.push_back({"read above max_data_xfer_size", Command::kDmaRead, read(kIova, 2 << 20), E2BIG});
  cases.push_back({"write above max_data_xfer_size", Command::kDmaWrite,
                   write(kIova, (1 << 20) + 1), E2BIG});
  cases.push_back({"read with a 20-byte payload", Command::kDmaRead,
                   std::vector<uint8_t>(20, 0), EINVAL});
  cases.push_back({"write with a short payload", Command::kDmaWrite,
                   std::vector<uint8_t>(8, 0), EINVAL});
  cases.push_back({"a command clients do not serve", Command::kDeviceReset, {}, ENOSYS});
  cases.push_back({"read with an fd", Command::kDmaRead, read(kIova, 4), EINVAL, true});
  ScriptedServer server([&](FakeServer& s) {
    ASSERT_OK(s.AcceptVersion().status());
    ASSERT_OK_AND_ASSIGN(InboundMessage reset, s.main().Receive());
    uint16_t id = 1;
    for (const Case& c : cases) {
      SCOPED_TRACE(c.name);
      std::vector<uint8_t> message = wire::StartMessage();
      message.insert(message.end(), c.payload.begin(), c.payload.end());
      wire::FinishMessage(wire::CommandHeader(id, c.command), message);
      std::vector<UniqueFd> fds;
      if (c.with_fd) fds.push_back(MakeEventfd());
      ASSERT_OK(s.main().Send(std::move(message), std::move(fds)));
      InboundMessage reply;
      ASSERT_NO_FATAL_FAILURE(ExpectReplyTo(s.main(), id, c.command, &reply));
      EXPECT_TRUE(reply.header.is_error());
      EXPECT_EQ(reply.header.error, static_cast<uint32_t>(c.expected_errno));
      EXPECT_EQ(reply.header.msg_size, 16u);
      ++id;
    }
    // A failing DMA with NO_REPLY gets no answer at all: the next message
    // is the reply to the command after it.
    ASSERT_OK(s.main().SendCommand(id, Command::kDmaWrite, write(0, 4), /*no_reply=*/true));
    ASSERT_OK(s.main().SendCommand(id + 1, Command::kDmaRead, read(kIova, 4)));
    InboundMessage reply;
    ASSERT_NO_FATAL_FAILURE(ExpectReplyTo(s.main(), id + 1, Command::kDmaRead, &reply));
    EXPECT_FALSE(reply.header.is_error());
    ASSERT_OK(s.main().Reply(reset.header));
  });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(server.TakeClientEnd()));
  ASSERT_OK(client->AddDmaMemory(kIova, absl::MakeSpan(ram)));
  ASSERT_OK(client->AddDmaMemory(0x90000, absl::MakeSpan(read_only), wire::kDmaMapFlagRead));
  ASSERT_OK(client->Reset());
  EXPECT_EQ(ram, std::vector<uint8_t>(64, 0x11));
  EXPECT_EQ(read_only, std::vector<uint8_t>(16, 0x22));
  const ClientStats stats = client->stats();
  EXPECT_EQ(stats.server_commands_received, cases.size() + 2);
  EXPECT_EQ(stats.server_commands_failed, cases.size() + 1);
}

// Poll() serves a DMA request that arrives while no call is pending, and
// returns once it has.
TEST(ClientTest, PollServesDmaWithoutPendingCall) {
  std::vector<uint8_t> ram(16, 0);
  absl::Notification memory_registered;
  absl::Notification served;
  ScriptedServer server([&](FakeServer& s) {
    ASSERT_OK(s.AcceptVersion().status());
    // Else the request could be served (EFAULT) during negotiation.
    memory_registered.WaitForNotification();
    const std::vector<uint8_t> data = {5, 6};
    std::vector<uint8_t> p;
    wire::EncodeDmaWriteRequest({.address = kIova + 2, .data = data}, DmaTransferLayout::kSpec, p);
    ASSERT_OK(s.main().SendCommand(3, Command::kDmaWrite, p));
    InboundMessage ack;
    ASSERT_NO_FATAL_FAILURE(ExpectReplyTo(s.main(), 3, Command::kDmaWrite, &ack));
    EXPECT_FALSE(ack.header.is_error());
    served.Notify();
  });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(server.TakeClientEnd()));
  ASSERT_OK(client->AddDmaMemory(kIova, absl::MakeSpan(ram)));
  memory_registered.Notify();
  ASSERT_OK(client->Poll(kWait));
  EXPECT_TRUE(served.WaitForNotificationWithTimeout(kWait));
  EXPECT_THAT(absl::MakeSpan(ram).subspan(0, 4), ElementsAre(0, 0, 5, 6));
  // Nothing more comes: Poll() times out quietly.
  EXPECT_OK(client->Poll(absl::Milliseconds(10)));
}

constexpr int kQueuedReads = 8;
constexpr uint64_t kReadCount = 1 << 20;

std::vector<uint8_t> DmaReadPayload(uint64_t address, uint64_t count) {
  std::vector<uint8_t> p;
  wire::EncodeDmaReadRequest({.address = address, .count = count}, DmaTransferLayout::kSpec, p);
  return p;
}

// Reads the replies to DMA_READs 1..kQueuedReads of kReadCount bytes at
// kIova and checks that each carries `expected`.
void ExpectQueuedReadReplies(FakeEndpoint& endpoint, const std::vector<uint8_t>& expected) {
  for (uint16_t id = 1; id <= kQueuedReads; ++id) {
    InboundMessage reply;
    ASSERT_NO_FATAL_FAILURE(ExpectReplyTo(endpoint, id, Command::kDmaRead, &reply));
    ASSERT_OK_AND_ASSIGN(wire::DmaReadReply data,
                         wire::DecodeDmaReadReply(reply.payload(), 0, DmaTransferLayout::kSpec,
                                                  kReadCount));
    ASSERT_EQ(data.address, kIova);
    EXPECT_TRUE(std::equal(data.data.begin(), data.data.end(), expected.begin(), expected.end()))
        << "reply " << id << " does not carry the memory as it was read";
  }
}

// DMA_READ replies go out from the registered memory itself. Replies still
// queued (more than a socket buffer holds) when a DMA_WRITE to the same
// memory is served carry the bytes as they were read, before the write.
TEST(ClientTest, QueuedDmaReadRepliesKeepTheirBytesAcrossDmaWrite) {
  std::vector<uint8_t> ram(kReadCount);
  for (size_t i = 0; i < ram.size(); ++i) ram[i] = static_cast<uint8_t>(i * 7 + 3);
  const std::vector<uint8_t> original = ram;
  absl::Notification memory_registered;
  absl::Notification done;
  ScriptedServer server([&](FakeServer& s) {
    ASSERT_OK(s.AcceptVersion().status());
    memory_registered.WaitForNotification();
    // No reply is read before the DMA_WRITE is sent.
    for (uint16_t id = 1; id <= kQueuedReads; ++id) {
      ASSERT_OK(s.main().SendCommand(id, Command::kDmaRead, DmaReadPayload(kIova, kReadCount)));
    }
    std::vector<uint8_t> p;
    wire::EncodeDmaWriteRequest({.address = kIova, .data = std::vector<uint8_t>(4096, 0xee)},
                                DmaTransferLayout::kSpec, p);
    ASSERT_OK(s.main().SendCommand(kQueuedReads + 1, Command::kDmaWrite, p));
    ASSERT_NO_FATAL_FAILURE(ExpectQueuedReadReplies(s.main(), original));
    InboundMessage ack;
    ASSERT_NO_FATAL_FAILURE(ExpectReplyTo(s.main(), kQueuedReads + 1, Command::kDmaWrite, &ack));
    EXPECT_FALSE(ack.header.is_error());
    done.Notify();
  });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(server.TakeClientEnd()));
  ASSERT_OK(client->AddDmaMemory(kIova, absl::MakeSpan(ram)));
  memory_registered.Notify();
  ASSERT_OK(client->StartServingThread());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  client->StopServingThread();
  EXPECT_EQ(ram[0], 0xee);
  EXPECT_EQ(ram[4096], original[4096]);
}

// Memory unregistered while replies read from it are still queued may be
// changed (or freed) at once: the replies carry the bytes as they were read.
TEST(ClientTest, QueuedDmaReadRepliesKeepTheirBytesAcrossRemoval) {
  std::vector<uint8_t> ram(kReadCount);
  for (size_t i = 0; i < ram.size(); ++i) ram[i] = static_cast<uint8_t>(i * 5 + 1);
  const std::vector<uint8_t> original = ram;
  absl::Notification memory_registered;
  absl::Notification memory_removed;
  absl::Notification done;
  ScriptedServer server([&](FakeServer& s) {
    ASSERT_OK(s.AcceptVersion().status());
    memory_registered.WaitForNotification();
    for (uint16_t id = 1; id <= kQueuedReads; ++id) {
      ASSERT_OK(s.main().SendCommand(id, Command::kDmaRead, DmaReadPayload(kIova, kReadCount)));
    }
    ASSERT_TRUE(memory_removed.WaitForNotificationWithTimeout(kWait));
    ASSERT_NO_FATAL_FAILURE(ExpectQueuedReadReplies(s.main(), original));
    done.Notify();
  });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(server.TakeClientEnd()));
  ASSERT_OK(client->AddDmaMemory(kIova, absl::MakeSpan(ram)));
  memory_registered.Notify();
  // Serve every DMA_READ; their replies fill the socket and the rest queue.
  while (client->stats().server_commands_received < kQueuedReads) {
    ASSERT_OK(client->Poll(kWait));
  }
  ASSERT_OK(client->RemoveDmaMemory(kIova));
  std::fill(ram.begin(), ram.end(), 0xee);
  memory_removed.Notify();
  ASSERT_OK(client->StartServingThread());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  client->StopServingThread();
  EXPECT_EQ(client->stats().server_commands_failed, 0u);
}

// ---------------------------------------------------------------------------
// The serving thread and concurrent callers

// In twin mode the serving thread answers DMA on the twin socket while the
// caller's thread does nothing with the client.
TEST(ClientTest, ServingThreadServesTwinSocket) {
  std::vector<uint8_t> ram(16, 0);
  absl::Notification served;
  ScriptedServer server([&](FakeServer& s) {
    wire::ServerVersionPolicy policy;
    policy.twin_socket = true;
    ASSERT_OK(s.AcceptVersion(policy).status());
    ASSERT_NE(s.twin(), nullptr);
    const std::vector<uint8_t> data = {1, 2, 3};
    std::vector<uint8_t> p;
    wire::EncodeDmaWriteRequest({.address = kIova, .data = data}, DmaTransferLayout::kSpec, p);
    ASSERT_OK(s.twin()->SendCommand(1, Command::kDmaWrite, p));
    InboundMessage ack;
    ASSERT_NO_FATAL_FAILURE(ExpectReplyTo(*s.twin(), 1, Command::kDmaWrite, &ack));
    EXPECT_FALSE(ack.header.is_error());
    served.Notify();
    ASSERT_OK_AND_ASSIGN(InboundMessage reset, s.main().Receive());
    ASSERT_OK(s.main().Reply(reset.header));
  });
  ClientOptions options;
  options.twin_socket = true;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client,
                       Client::FromFd(server.TakeClientEnd(), options));
  ASSERT_OK(client->AddDmaMemory(kIova, absl::MakeSpan(ram)));
  ASSERT_OK(client->StartServingThread());
  EXPECT_THAT(client->StartServingThread(), StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_TRUE(served.WaitForNotificationWithTimeout(kWait));
  ASSERT_OK(client->Reset());
  // Joining orders the thread's writes before our reads.
  client->StopServingThread();
  EXPECT_THAT(ram, ElementsAre(1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
}

// On a single socket the serving thread drives it whenever no caller does.
TEST(ClientTest, ServingThreadServesMainSocket) {
  std::vector<uint8_t> ram(8, 0);
  absl::Notification memory_registered;
  absl::Notification served;
  ScriptedServer server([&](FakeServer& s) {
    ASSERT_OK(s.AcceptVersion().status());
    memory_registered.WaitForNotification();
    std::vector<uint8_t> p;
    wire::EncodeDmaWriteRequest({.address = kIova, .data = std::vector<uint8_t>{7}},
                                DmaTransferLayout::kSpec, p);
    ASSERT_OK(s.main().SendCommand(1, Command::kDmaWrite, p));
    InboundMessage ack;
    ASSERT_NO_FATAL_FAILURE(ExpectReplyTo(s.main(), 1, Command::kDmaWrite, &ack));
    served.Notify();
  });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(server.TakeClientEnd()));
  ASSERT_OK(client->AddDmaMemory(kIova, absl::MakeSpan(ram)));
  memory_registered.Notify();
  ASSERT_OK(client->StartServingThread());
  ASSERT_TRUE(served.WaitForNotificationWithTimeout(kWait));
  client->StopServingThread();
  EXPECT_EQ(ram[0], 7);
}

// Held server commands stay unanswered while a call waits (its reply still
// comes); releasing them serves them in order.
TEST(ClientTest, HeldServerCommandsWaitForRelease) {
  std::vector<uint8_t> ram(8, 0);
  absl::Notification memory_registered;
  absl::Notification served;
  ScriptedServer server([&](FakeServer& s) {
    ASSERT_OK(s.AcceptVersion().status());
    memory_registered.WaitForNotification();
    for (uint16_t id = 1; id <= 2; ++id) {
      const std::vector<uint8_t> data = {static_cast<uint8_t>(id)};
      std::vector<uint8_t> p;
      wire::EncodeDmaWriteRequest({.address = kIova + id, .data = data}, DmaTransferLayout::kSpec,
                                  p);
      ASSERT_OK(s.main().SendCommand(id, Command::kDmaWrite, p));
    }
    // The client reads both requests before this reply, which is what its
    // Reset() waits for.
    ASSERT_OK_AND_ASSIGN(InboundMessage reset, s.main().Receive());
    EXPECT_EQ(reset.header.command, static_cast<uint16_t>(Command::kDeviceReset));
    ASSERT_OK(s.main().Reply(reset.header));
    // Nothing comes before the release; then both answers, in order.
    for (uint16_t id = 1; id <= 2; ++id) {
      InboundMessage ack;
      ASSERT_NO_FATAL_FAILURE(ExpectReplyTo(s.main(), id, Command::kDmaWrite, &ack));
      EXPECT_FALSE(ack.header.is_error());
    }
    served.Notify();
  });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(server.TakeClientEnd()));
  ASSERT_OK(client->AddDmaMemory(kIova, absl::MakeSpan(ram)));
  client->HoldServerCommands();
  memory_registered.Notify();
  ASSERT_OK(client->Reset());
  EXPECT_EQ(client->stats().server_commands_received, 2u);
  EXPECT_THAT(ram, ElementsAre(0, 0, 0, 0, 0, 0, 0, 0)) << "a held DMA_WRITE was served";

  client->ReleaseServerCommands();
  EXPECT_THAT(ram, ElementsAre(0, 1, 2, 0, 0, 0, 0, 0));
  ASSERT_TRUE(served.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(client->stats().server_commands_failed, 0u);
}

class ClientConcurrencyTest : public ::testing::TestWithParam<bool> {};

// Several threads call at once (with and without the serving thread
// driving the socket); each gets exactly its own replies.
TEST_P(ClientConcurrencyTest, ConcurrentCallersGetTheirOwnReplies) {
  constexpr int kThreads = 4;
  constexpr int kCalls = 100;
  ScriptedServer server([](FakeServer& s) {
    ASSERT_OK(s.AcceptVersion().status());
    for (int i = 0; i < kThreads * kCalls; ++i) {
      ASSERT_OK_AND_ASSIGN(InboundMessage request, s.main().Receive());
      ASSERT_OK(s.main().Reply(request.header, request.payload()));
    }
  });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(server.TakeClientEnd()));
  if (GetParam()) {
    ASSERT_OK(client->StartServingThread());
  }
  std::vector<std::thread> callers;
  for (int t = 0; t < kThreads; ++t) {
    callers.emplace_back([&client, t] {
      for (int i = 0; i < kCalls; ++i) {
        const std::vector<uint8_t> payload = RegionReadPayload(t, i, 8);
        absl::StatusOr<Reply> reply = client->Call(Command::kRegionRead, payload);
        ASSERT_OK(reply.status());
        EXPECT_THAT(reply->payload(), ElementsAreArray(payload));
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(client->stats().replies_received, kThreads * kCalls + 1u);
}

INSTANTIATE_TEST_SUITE_P(WithAndWithoutServingThread, ClientConcurrencyTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "ServingThread" : "CallersOnly";
                         });

// ---------------------------------------------------------------------------
// Typed commands

// GET_INFO and GET_IRQ_INFO send argsz 16 and decode the answers.
TEST(ClientTest, GetDeviceInfoAndIrqInfo) {
  ScriptedServer server([](FakeServer& s) {
    ASSERT_OK(s.AcceptVersion().status());
    ASSERT_OK_AND_ASSIGN(InboundMessage info, s.main().Receive());
    EXPECT_EQ(info.header.command, static_cast<uint16_t>(Command::kDeviceGetInfo));
    ASSERT_OK_AND_ASSIGN(wire::DeviceInfo request,
                         wire::DecodeDeviceGetInfoRequest(info.payload(), 0));
    EXPECT_EQ(request.argsz, 16u);
    std::vector<uint8_t> p;
    wire::EncodeDeviceGetInfoReply({.argsz = 16, .flags = 3, .num_regions = 9, .num_irqs = 5}, p);
    ASSERT_OK(s.main().Reply(info.header, p));

    ASSERT_OK_AND_ASSIGN(InboundMessage irq, s.main().Receive());
    ASSERT_OK_AND_ASSIGN(wire::IrqInfo irq_request,
                         wire::DecodeIrqInfoRequest(irq.payload(), 0));
    EXPECT_EQ(irq_request.index, 4u);
    p.clear();
    wire::EncodeIrqInfoReply({.argsz = 16, .flags = 1, .index = 4, .count = 1}, p);
    ASSERT_OK(s.main().Reply(irq.header, p));
  });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(server.TakeClientEnd()));
  ASSERT_OK_AND_ASSIGN(wire::DeviceInfo info, client->GetDeviceInfo());
  EXPECT_EQ(info.flags, 3u);
  EXPECT_EQ(info.num_regions, 9u);
  EXPECT_EQ(info.num_irqs, 5u);
  ASSERT_OK_AND_ASSIGN(wire::IrqInfo irq, client->GetIrqInfo(4));
  EXPECT_EQ(irq.count, 1u);
  EXPECT_EQ(irq.flags, 1u);
}

// A truncated REGION_INFO reply is retried with the argsz it reports; the
// capabilities and the fd come from the complete reply.
TEST(ClientTest, GetRegionInfoRetriesWithLargerArgsz) {
  wire::RegionInfoReply region;
  region.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
                 VFIO_REGION_INFO_FLAG_MMAP;
  region.index = 2;
  region.size = 0x4000;
  region.offset = 0x10000;
  region.sparse_mmap = std::vector<wire::SparseMmapArea>{{0, 0x1000}, {0x2000, 0x2000}};
  ScriptedServer server([&](FakeServer& s) {
    ASSERT_OK(s.AcceptVersion().status());
    ASSERT_OK_AND_ASSIGN(InboundMessage first, s.main().Receive());
    ASSERT_OK_AND_ASSIGN(wire::RegionInfoRequest request,
                         wire::DecodeRegionInfoRequest(first.payload(), 0));
    EXPECT_EQ(request.argsz, 32u);
    EXPECT_EQ(request.index, 2u);
    std::vector<uint8_t> p;
    EXPECT_EQ(wire::EncodeRegionInfoReply(region, request.argsz, p),
              wire::RegionInfoReplyKind::kFixedPartOnly);
    ASSERT_OK(s.main().Reply(first.header, p));

    ASSERT_OK_AND_ASSIGN(InboundMessage second, s.main().Receive());
    ASSERT_OK_AND_ASSIGN(request, wire::DecodeRegionInfoRequest(second.payload(), 0));
    EXPECT_EQ(request.argsz, wire::RegionInfoReplyFullSize(region));
    p.clear();
    EXPECT_EQ(wire::EncodeRegionInfoReply(region, request.argsz, p),
              wire::RegionInfoReplyKind::kComplete);
    std::vector<UniqueFd> fds;
    fds.push_back(MakeEventfd());
    ASSERT_OK(s.main().Reply(second.header, p, std::move(fds)));
  });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(server.TakeClientEnd()));
  ASSERT_OK_AND_ASSIGN(RegionInfo info, client->GetRegionInfo(2));
  EXPECT_EQ(info.info.size, 0x4000u);
  EXPECT_EQ(info.info.offset, 0x10000u);
  EXPECT_EQ(info.info.sparse_mmap, region.sparse_mmap);
  ASSERT_TRUE(info.fd.valid());
  EXPECT_GE(::fcntl(info.fd.get(), F_GETFD), 0);
}

// Eventfds go out in messages of at most the server's max_msg_fds, and a
// run of absent fds as a de-assign, like QEMU; the messages are pipelined.
TEST(ClientTest, SetIrqEventfdsSplitsLikeQemu) {
  struct Expected {
    uint32_t start;
    uint32_t count;
    size_t fds;
  };
  const std::vector<Expected> expected = {{10, 2, 2}, {12, 1, 1}, {13, 1, 0}, {14, 1, 1}};
  ScriptedServer server([&](FakeServer& s) {
    wire::ServerVersionPolicy policy;
    policy.max_msg_fds = 2;
    ASSERT_OK(s.AcceptVersion(policy).status());
    std::vector<InboundMessage> requests;
    for (size_t i = 0; i < expected.size(); ++i) {
      ASSERT_OK_AND_ASSIGN(InboundMessage m, s.main().Receive());
      requests.push_back(std::move(m));
    }
    for (size_t i = 0; i < expected.size(); ++i) {
      SCOPED_TRACE(i);
      const InboundMessage& m = requests[i];
      ASSERT_OK_AND_ASSIGN(wire::SetIrqsRequest r,
                           wire::DecodeSetIrqsRequest(m.payload(), m.fds.size()));
      EXPECT_EQ(r.argsz, 20u);
      EXPECT_EQ(r.flags, uint32_t{VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER});
      EXPECT_EQ(r.index, uint32_t{VFIO_PCI_MSIX_IRQ_INDEX});
      EXPECT_EQ(r.start, expected[i].start);
      EXPECT_EQ(r.count, expected[i].count);
      EXPECT_EQ(m.fds.size(), expected[i].fds);
      ASSERT_OK(s.main().Reply(m.header));
    }
  });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(server.TakeClientEnd()));
  std::vector<UniqueFd> eventfds;
  eventfds.push_back(MakeEventfd());
  eventfds.push_back(MakeEventfd());
  eventfds.push_back(MakeEventfd());
  eventfds.push_back(UniqueFd());
  eventfds.push_back(MakeEventfd());
  ASSERT_OK(client->SetIrqEventfds(VFIO_PCI_MSIX_IRQ_INDEX, 10, std::move(eventfds)));
}

// DisableIrqs sends TRIGGER|NONE with start 0 and count 0.
TEST(ClientTest, DisableIrqs) {
  ScriptedServer server([](FakeServer& s) {
    ASSERT_OK(s.AcceptVersion().status());
    ASSERT_OK_AND_ASSIGN(InboundMessage m, s.main().Receive());
    ASSERT_OK_AND_ASSIGN(wire::SetIrqsRequest r, wire::DecodeSetIrqsRequest(m.payload(), 0));
    EXPECT_EQ(r.flags, uint32_t{VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER});
    EXPECT_EQ(r.index, 1u);
    EXPECT_EQ(r.count, 0u);
    ASSERT_OK(s.main().ReplyError(m.header, EINVAL));
  });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(server.TakeClientEnd()));
  EXPECT_THAT(client->DisableIrqs(1), FailsWithErrno(EINVAL));
}

// REGION_READ/WRITE encode and check; a posted write carries NO_REPLY; an
// access beyond the server's max_data_xfer_size is refused without sending.
TEST(ClientTest, RegionAccessHelpers) {
  ScriptedServer server([](FakeServer& s) {
    wire::ServerVersionPolicy policy;
    policy.max_data_xfer_size = 4096;
    ASSERT_OK(s.AcceptVersion(policy).status());

    ASSERT_OK_AND_ASSIGN(InboundMessage read, s.main().Receive());
    ASSERT_OK_AND_ASSIGN(wire::RegionAccess r,
                         wire::DecodeRegionReadRequest(read.payload(), 0, 4096));
    EXPECT_EQ(r.region, 7u);
    EXPECT_EQ(r.offset, 0x20u);
    EXPECT_EQ(r.count, 4u);
    std::vector<uint8_t> p;
    wire::EncodeRegionReadReply(r, std::vector<uint8_t>{1, 2, 3, 4}, p);
    ASSERT_OK(s.main().Reply(read.header, p));

    ASSERT_OK_AND_ASSIGN(InboundMessage posted, s.main().Receive());
    EXPECT_TRUE(posted.header.no_reply());
    ASSERT_OK_AND_ASSIGN(InboundMessage write, s.main().Receive());
    EXPECT_FALSE(write.header.no_reply());
    ASSERT_OK_AND_ASSIGN(wire::RegionAccessData w,
                         wire::DecodeRegionWriteRequest(write.payload(), 0, 4096));
    EXPECT_THAT(w.data, ElementsAre(9, 9));
    p.clear();
    // Report a short write.
    wire::EncodeRegionWriteReply({.offset = w.offset, .region = w.region, .count = 1}, p);
    ASSERT_OK(s.main().Reply(write.header, p));

    // The oversized read never left the client: next is the reset.
    ASSERT_OK_AND_ASSIGN(InboundMessage reset, s.main().Receive());
    EXPECT_EQ(reset.header.command, static_cast<uint16_t>(Command::kDeviceReset));
    EXPECT_EQ(reset.header.msg_size, 16u);
    ASSERT_OK(s.main().Reply(reset.header));
  });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(server.TakeClientEnd()));
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> data, client->RegionRead(7, 0x20, 4));
  EXPECT_THAT(data, ElementsAre(1, 2, 3, 4));
  ASSERT_OK(client->RegionWrite(7, 0, std::vector<uint8_t>{1}, /*posted=*/true));
  EXPECT_THAT(client->RegionWrite(7, 0, std::vector<uint8_t>{9, 9}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(client->RegionRead(7, 0, 4097), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK(client->Reset());
}

// DMA_MAP with and without an fd; once DMA_UNMAP is confirmed the memory is
// no longer served.
TEST(ClientTest, DmaMapAndUnmap) {
  std::vector<uint8_t> ram(4096, 0x5a);
  ScriptedServer server([](FakeServer& s) {
    ASSERT_OK(s.AcceptVersion().status());
    ASSERT_OK_AND_ASSIGN(InboundMessage with_fd, s.main().Receive());
    ASSERT_OK_AND_ASSIGN(wire::DmaMapRequest map,
                         wire::DecodeDmaMapRequest(with_fd.payload(), with_fd.fds.size()));
    EXPECT_EQ(with_fd.fds.size(), 1u);
    EXPECT_EQ(map.addr, 0x100000u);
    EXPECT_EQ(map.size, 0x200000u);
    EXPECT_EQ(map.offset, 0x1000u);
    EXPECT_EQ(map.flags, wire::kDmaMapFlagRead);
    ASSERT_OK(s.main().Reply(with_fd.header));

    ASSERT_OK_AND_ASSIGN(InboundMessage without_fd, s.main().Receive());
    ASSERT_OK_AND_ASSIGN(map, wire::DecodeDmaMapRequest(without_fd.payload(), 0));
    EXPECT_TRUE(without_fd.fds.empty());
    EXPECT_EQ(map.addr, kIova);
    EXPECT_EQ(map.size, 4096u);
    EXPECT_EQ(map.flags, wire::kDmaMapFlagRead | wire::kDmaMapFlagWrite);
    ASSERT_OK(s.main().Reply(without_fd.header));

    ASSERT_OK_AND_ASSIGN(InboundMessage unmap, s.main().Receive());
    ASSERT_OK_AND_ASSIGN(wire::DmaUnmapRequest u, wire::DecodeDmaUnmapRequest(unmap.payload(), 0));
    EXPECT_EQ(u.addr, kIova);
    EXPECT_EQ(u.size, 4096u);
    std::vector<uint8_t> p;
    wire::EncodeDmaUnmapReply(wire::DmaUnmapReplyFor(u), p);
    ASSERT_OK(s.main().Reply(unmap.header, p));

    // The unmapped memory is no longer served.
    ASSERT_OK_AND_ASSIGN(InboundMessage reset, s.main().Receive());
    p.clear();
    wire::EncodeDmaReadRequest({.address = kIova, .count = 4}, DmaTransferLayout::kSpec, p);
    ASSERT_OK(s.main().SendCommand(1, Command::kDmaRead, p));
    InboundMessage reply;
    ASSERT_NO_FATAL_FAILURE(ExpectReplyTo(s.main(), 1, Command::kDmaRead, &reply));
    EXPECT_EQ(reply.header.error, static_cast<uint32_t>(EFAULT));
    ASSERT_OK(s.main().Reply(reset.header));
  });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(server.TakeClientEnd()));
  ASSERT_OK(client->DmaMap(0x100000, 0x200000, wire::kDmaMapFlagRead, MakeEventfd(), 0x1000));
  ASSERT_OK(client->DmaMapMemory(kIova, absl::MakeSpan(ram)));
  ASSERT_OK(client->DmaUnmap(kIova, 4096));
  EXPECT_THAT(client->RemoveDmaMemory(kIova), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(client->Reset());
}

// A failed DMA_MAP leaves no memory registered.
TEST(ClientTest, DmaMapMemoryUnregistersOnFailure) {
  std::vector<uint8_t> ram(64);
  ScriptedServer server([](FakeServer& s) {
    ASSERT_OK(s.AcceptVersion().status());
    ASSERT_OK_AND_ASSIGN(InboundMessage map, s.main().Receive());
    ASSERT_OK(s.main().ReplyError(map.header, EEXIST));
  });
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Client> client, Client::FromFd(server.TakeClientEnd()));
  EXPECT_THAT(client->DmaMapMemory(kIova, absl::MakeSpan(ram)), FailsWithErrno(EEXIST));
  EXPECT_THAT(client->RemoveDmaMemory(kIova), StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace vfu
