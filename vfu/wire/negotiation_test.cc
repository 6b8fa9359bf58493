#include "vfu/wire/negotiation.h"

#include <cerrno>
#include <string>
#include <string_view>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/wire_matchers.h"

namespace vfu::wire {
namespace {

using ::vfu::testing::FailsWithErrno;
using ::vfu::testing::IsOk;

// QEMU's proposal, as its client sends it (PROTOCOL.md 3.3 "Deployed values").
constexpr std::string_view kQemuJson =
    R"({"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576,"pgsizes":4096,)"
    R"("max_dma_maps":65535,"write_multiple":true,)"
    R"("migration":{"pgsize":4096,"max_bitmap_size":268435456}}})";

Version DecodeClient(uint16_t major, uint16_t minor, std::string_view json) {
  std::vector<uint8_t> payload;
  EncodeVersionWithJson(major, minor, json, payload);
  absl::StatusOr<Version> v = DecodeVersionRequest(payload, 0);
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *v : Version{};
}

// The reply's JSON text, read back from the encoded payload.
std::string ReplyJson(const NegotiatedVersion& n) {
  std::vector<uint8_t> out;
  EncodeVersionReply(n, out);
  if (out.size() < 5 || out.back() != 0) return "<malformed reply>";
  return std::string(out.begin() + 4, out.end() - 1);
}

// Checks what QEMU's client checks in a server reply (3.2, 3.3).
void ExpectQemuAccepts(const NegotiatedVersion& n) {
  EXPECT_EQ(n.reply.major, 0);
  EXPECT_EQ(n.reply.minor, 0);
  const Capabilities& c = n.reply.capabilities;
  EXPECT_LE(c.max_msg_fds, 16u);
  EXPECT_LE(c.max_data_xfer_size, 64u << 20);
  EXPECT_LE(c.max_dma_maps, 65535u);
  EXPECT_NE(c.pgsizes, 0u);
  EXPECT_EQ(c.pgsizes & 0xfff, 0u);
  EXPECT_FALSE(n.twin_socket());  // QEMU never offers it.
  if (c.migration.has_value()) {
    EXPECT_EQ(c.migration->pgsize.value_or(1) % 4096, 0u);
  }
}

// QEMU's real proposal against the default policy: 0.0, our limits, no
// features (the default device neither migrates nor takes WRITE_MULTI), and
// limits taken from QEMU's side. The whole exchange goes through bytes.
TEST(NegotiationTest, QemuProposalWithDefaultPolicy) {
  Version qemu = DecodeClient(0, 0, kQemuJson);
  ASSERT_OK_AND_ASSIGN(NegotiatedVersion n, NegotiateVersion(qemu, ServerVersionPolicy{}));
  ExpectQemuAccepts(n);
  EXPECT_FALSE(n.write_multiple());
  EXPECT_FALSE(n.migration());
  EXPECT_EQ(ReplyJson(n),
            R"({"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576,)"
            R"("max_dma_maps":65535,"pgsizes":4096}})");
  EXPECT_EQ(n.limits, (ConnectionLimits{.max_fds_to_client = 16,
                                        .max_fds_from_client = 8,
                                        .max_data_xfer_to_client = 1048576,
                                        .max_data_xfer_from_client = 1048576,
                                        .max_incoming_message_size = 1048608}));

  std::vector<uint8_t> reply_bytes;
  EncodeVersionReply(n, reply_bytes);
  ASSERT_OK_AND_ASSIGN(Version reply, DecodeVersionReply(reply_bytes, 0));
  EXPECT_EQ(reply, n.reply);
  EXPECT_THAT(ValidateServerVersionReply(qemu, reply, 0), IsOk());
}

// QEMU against a migrating device that handles WRITE_MULTI: both features
// are granted and written, in the spec's order.
TEST(NegotiationTest, QemuProposalGetsOfferedFeatures) {
  ServerVersionPolicy policy{.write_multiple = true, .migration_pgsize = 4096};
  Version qemu = DecodeClient(0, 0, kQemuJson);
  ASSERT_OK_AND_ASSIGN(NegotiatedVersion n, NegotiateVersion(qemu, policy));
  ExpectQemuAccepts(n);
  EXPECT_TRUE(n.write_multiple());
  EXPECT_TRUE(n.migration());
  EXPECT_EQ(ReplyJson(n),
            R"({"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576,)"
            R"("max_dma_maps":65535,"pgsizes":4096,"write_multiple":true,)"
            R"("migration":{"pgsize":4096}}})");
}

// 3.2: the reply's minor is min(client's, ours); the major is ours.
TEST(NegotiationTest, ReplyMinorIsTheSmaller) {
  for (auto [client_minor, expected] : {std::pair<uint16_t, uint16_t>{0, 0},
                                        {1, 1},
                                        {2, 2},
                                        {3, 2},
                                        {0xffff, 2}}) {
    Version client{.major = 0, .minor = client_minor};
    ASSERT_OK_AND_ASSIGN(NegotiatedVersion n, NegotiateVersion(client, ServerVersionPolicy{}));
    EXPECT_EQ(n.reply.major, 0);
    EXPECT_EQ(n.reply.minor, expected) << client_minor;
  }
}

// Row 11: a major other than ours fails with EINVAL (caller then closes).
TEST(NegotiationTest, MajorMismatchIsEinval) {
  EXPECT_THAT(NegotiateVersion(Version{.major = 1, .minor = 0}, ServerVersionPolicy{}),
              FailsWithErrno(EINVAL));
  EXPECT_THAT(NegotiateVersion(Version{.major = 0xffff}, ServerVersionPolicy{}),
              FailsWithErrno(EINVAL));
}

// A client without JSON has the defaults: one fd, 1 MiB; we still reply with
// JSON, and grant no feature even where the policy would.
TEST(NegotiationTest, ClientWithoutJson) {
  std::vector<uint8_t> payload;
  EncodeVersionWithJson(0, 2, "", payload);
  ASSERT_EQ(payload.size(), 4u);
  ASSERT_OK_AND_ASSIGN(Version client, DecodeVersionRequest(payload, 0));
  ServerVersionPolicy policy{.write_multiple = true, .twin_socket = true, .migration_pgsize = 4096};
  ASSERT_OK_AND_ASSIGN(NegotiatedVersion n, NegotiateVersion(client, policy));
  EXPECT_EQ(n.reply.minor, 2);
  EXPECT_FALSE(n.twin_socket());
  EXPECT_FALSE(n.write_multiple());
  EXPECT_FALSE(n.migration());
  EXPECT_EQ(n.limits.max_fds_to_client, 1u);
  EXPECT_EQ(n.limits.max_data_xfer_to_client, 1048576u);
  EXPECT_EQ(ReplyJson(n),
            R"({"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576,)"
            R"("max_dma_maps":65535,"pgsizes":4096}})");
}

// 3.5: twin mode is granted with fd_index 0 when offered, the client can
// take an fd and the policy enables it; the client side accepts it with
// exactly one fd.
TEST(NegotiationTest, TwinSocketOfferedAndGranted) {
  Version client = DecodeClient(0, 2, R"({"capabilities":{"twin_socket":{"supported":true}}})");
  ASSERT_OK_AND_ASSIGN(NegotiatedVersion n,
                       NegotiateVersion(client, ServerVersionPolicy{.twin_socket = true}));
  EXPECT_TRUE(n.twin_socket());
  EXPECT_EQ(n.reply.capabilities.twin_socket.fd_index, 0u);
  EXPECT_EQ(ReplyJson(n),
            R"({"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576,)"
            R"("max_dma_maps":65535,"pgsizes":4096,)"
            R"("twin_socket":{"supported":true,"fd_index":0}}})");
  EXPECT_THAT(ValidateServerVersionReply(client, n.reply, 1), IsOk());
  EXPECT_THAT(ValidateServerVersionReply(client, n.reply, 0), FailsWithErrno(EINVAL));
}

// 3.5: no twin mode when not offered, offered false, the client takes no
// fds, or the policy disables it; the reply then has no twin_socket member.
TEST(NegotiationTest, TwinSocketNotGranted) {
  struct Case {
    std::string json;
    bool policy;
  };
  const Case cases[] = {
      {R"({"capabilities":{}})", true},
      {R"({"capabilities":{"twin_socket":{"supported":false}}})", true},
      {R"({"capabilities":{"max_msg_fds":0,"twin_socket":{"supported":true}}})", true},
      {R"({"capabilities":{"twin_socket":{"supported":true}}})", false},
  };
  for (const Case& c : cases) {
    Version client = DecodeClient(0, 2, c.json);
    ASSERT_OK_AND_ASSIGN(NegotiatedVersion n,
                         NegotiateVersion(client, ServerVersionPolicy{.twin_socket = c.policy}));
    EXPECT_FALSE(n.twin_socket()) << c.json;
    EXPECT_FALSE(n.reply_members.twin_socket) << c.json;
    EXPECT_EQ(ReplyJson(n).find("twin_socket"), std::string::npos) << c.json;
    EXPECT_THAT(ValidateServerVersionReply(client, n.reply, 0), IsOk()) << c.json;
  }
}

// Row 12: a migrating device refuses a different client migration pgsize.
TEST(NegotiationTest, MigrationPgsizeMismatchIsEinval) {
  Version client = DecodeClient(0, 0, R"({"capabilities":{"migration":{"pgsize":65536}}})");
  EXPECT_THAT(NegotiateVersion(client, ServerVersionPolicy{.migration_pgsize = 4096}),
              FailsWithErrno(EINVAL));
  // A device that does not migrate ignores the client's migration object.
  ASSERT_OK_AND_ASSIGN(NegotiatedVersion n, NegotiateVersion(client, ServerVersionPolicy{}));
  EXPECT_FALSE(n.migration());
}

// A migration object without pgsize is accepted (as libvfio-user does) and
// answered with ours; a device that migrates but was not offered migration
// does not grant it.
TEST(NegotiationTest, MigrationWithoutPgsizeOrNotOffered) {
  ServerVersionPolicy policy{.migration_pgsize = 16384};
  Version client = DecodeClient(0, 0, R"({"capabilities":{"migration":{}}})");
  ASSERT_OK_AND_ASSIGN(NegotiatedVersion n, NegotiateVersion(client, policy));
  ASSERT_TRUE(n.migration());
  EXPECT_EQ(n.reply.capabilities.migration->pgsize, 16384u);

  ASSERT_OK_AND_ASSIGN(NegotiatedVersion none, NegotiateVersion(Version{}, policy));
  EXPECT_FALSE(none.migration());
  EXPECT_EQ(ReplyJson(none).find("migration"), std::string::npos);
}

// write_multiple needs both the client's offer and our support.
TEST(NegotiationTest, WriteMultipleNeedsBothSides) {
  Version offering = DecodeClient(0, 0, R"({"capabilities":{"write_multiple":true}})");
  Version silent = DecodeClient(0, 0, "{}");
  for (auto [client, supported, expected] :
       {std::tuple{offering, true, true}, std::tuple{offering, false, false},
        std::tuple{silent, true, false}}) {
    ASSERT_OK_AND_ASSIGN(NegotiatedVersion n,
                         NegotiateVersion(client, ServerVersionPolicy{.write_multiple = supported}));
    EXPECT_EQ(n.write_multiple(), expected);
    EXPECT_EQ(n.reply_members.write_multiple, expected);
  }
}

// Our limits are clamped to what QEMU accepts, and the incoming message limit
// follows the advertised transfer size.
TEST(NegotiationTest, PolicyIsClampedToQemuLimits) {
  ServerVersionPolicy policy{.max_msg_fds = 100,
                             .max_data_xfer_size = 1ull << 30,
                             .max_dma_maps = 1000000,
                             .pgsizes = 0x201fff};
  ASSERT_OK_AND_ASSIGN(NegotiatedVersion n, NegotiateVersion(Version{}, policy));
  EXPECT_EQ(n.reply.capabilities.max_msg_fds, 16u);
  EXPECT_EQ(n.reply.capabilities.max_data_xfer_size, 64u << 20);
  EXPECT_EQ(n.reply.capabilities.max_dma_maps, 65535u);
  EXPECT_EQ(n.reply.capabilities.pgsizes, 0x201000u);
  EXPECT_EQ(n.limits.max_fds_from_client, 16u);
  EXPECT_EQ(n.limits.max_data_xfer_from_client, 64u << 20);
  EXPECT_EQ(n.limits.max_incoming_message_size, MaxMessageSizeFor(64u << 20));
}

// A policy clamping cannot fix is refused, at setup and at negotiation.
TEST(NegotiationTest, InvalidPolicyIsEinval) {
  const ServerVersionPolicy bad[] = {
      {.max_data_xfer_size = 0},
      {.pgsizes = 0x800},
      {.migration_pgsize = 1000},
      {.migration_pgsize = 2048},
  };
  for (const ServerVersionPolicy& policy : bad) {
    EXPECT_THAT(ValidateServerVersionPolicy(policy), FailsWithErrno(EINVAL));
    EXPECT_THAT(NegotiateVersion(Version{}, policy), FailsWithErrno(EINVAL));
  }
  EXPECT_THAT(ValidateServerVersionPolicy(ServerVersionPolicy{}), IsOk());
}

// Client side: a reply that breaks 3.2 or 3.5 is refused with EINVAL.
TEST(NegotiationTest, ClientRefusesInconsistentReplies) {
  Version proposed{.major = 0, .minor = 2};
  proposed.capabilities.max_msg_fds = 4;
  proposed.capabilities.twin_socket.supported = true;
  proposed.capabilities.migration = MigrationCapability{.pgsize = 4096};
  const Version good{.major = 0, .minor = 1};
  EXPECT_THAT(ValidateServerVersionReply(proposed, good, 0), IsOk());

  auto expect_refused = [&](Version reply, size_t num_fds, const char* what) {
    EXPECT_THAT(ValidateServerVersionReply(proposed, reply, num_fds), FailsWithErrno(EINVAL))
        << what;
  };
  expect_refused(Version{.major = 1, .minor = 0}, 0, "major differs");
  expect_refused(Version{.major = 0, .minor = 3}, 0, "minor above ours");
  expect_refused(good, 1, "fd without twin mode");
  expect_refused(good, 5, "more fds than we accept");

  Version twin = good;
  twin.capabilities.twin_socket = {.supported = true, .fd_index = 0};
  EXPECT_THAT(ValidateServerVersionReply(proposed, twin, 1), IsOk());
  expect_refused(twin, 0, "twin fd_index names no received fd");
  expect_refused(twin, 2, "extra fd with twin mode");
  twin.capabilities.twin_socket.fd_index = 1;
  expect_refused(twin, 1, "fd_index out of range");
  twin.capabilities.twin_socket.fd_index.reset();
  expect_refused(twin, 1, "twin without fd_index");

  Version index_only = good;
  index_only.capabilities.twin_socket.fd_index = 0;
  expect_refused(index_only, 1, "fd_index without supported");

  Version multi = good;
  multi.capabilities.write_multiple = true;
  expect_refused(multi, 0, "write_multiple not offered");

  Version migration = good;
  migration.capabilities.migration = MigrationCapability{.pgsize = 8192};
  expect_refused(migration, 0, "migration pgsize differs");
  migration.capabilities.migration->pgsize = 4096;
  EXPECT_THAT(ValidateServerVersionReply(proposed, migration, 0), IsOk());

  Version plain_proposal{.major = 0, .minor = 2};
  EXPECT_THAT(ValidateServerVersionReply(plain_proposal, migration, 0), FailsWithErrno(EINVAL));
  twin.capabilities.twin_socket.fd_index = 0;
  EXPECT_THAT(ValidateServerVersionReply(plain_proposal, twin, 1), FailsWithErrno(EINVAL));
}

}  // namespace
}  // namespace vfu::wire
