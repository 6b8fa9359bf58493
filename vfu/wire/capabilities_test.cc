#include "vfu/wire/capabilities.h"

#include <cerrno>
#include <string>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"
#include "testing/wire_matchers.h"

namespace vfu::wire {
namespace {

using ::vfu::testing::FailsWithErrno;

// Wraps members in {"capabilities":{...}}.
std::string Caps(const std::string& members) {
  return "{\"capabilities\":{" + members + "}}";
}

// No `capabilities` member, or an empty one, means every default of 3.3.
TEST(CapabilitiesTest, AbsentMembersTakeDefaults) {
  for (const char* json : {"{}", "{\"capabilities\":{}}", " { } "}) {
    ASSERT_OK_AND_ASSIGN(Capabilities c, ParseCapabilities(json));
    EXPECT_EQ(c.max_msg_fds, 1u) << json;
    EXPECT_EQ(c.max_data_xfer_size, 1048576u) << json;
    EXPECT_EQ(c.max_dma_maps, 65535u) << json;
    EXPECT_EQ(c.pgsizes, 4096u) << json;
    EXPECT_FALSE(c.twin_socket.supported) << json;
    EXPECT_FALSE(c.twin_socket.fd_index.has_value()) << json;
    EXPECT_FALSE(c.write_multiple) << json;
    EXPECT_FALSE(c.migration.has_value()) << json;
  }
}

// QEMU's actual proposal (3.3 "Deployed values") parses into every field.
TEST(CapabilitiesTest, ParsesQemuProposal) {
  ASSERT_OK_AND_ASSIGN(
      Capabilities c,
      ParseCapabilities(R"({"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576,)"
                        R"("pgsizes":4096,"max_dma_maps":65535,"write_multiple":true,)"
                        R"("migration":{"pgsize":4096,"max_bitmap_size":268435456}}})"));
  Capabilities expected;
  expected.max_msg_fds = 16;
  expected.write_multiple = true;
  expected.migration = MigrationCapability{.pgsize = 4096, .max_bitmap_size = 268435456};
  EXPECT_EQ(c, expected);
}

// Twin-socket members are read, fd_index included.
TEST(CapabilitiesTest, ParsesTwinSocket) {
  ASSERT_OK_AND_ASSIGN(Capabilities c,
                       ParseCapabilities(Caps(R"("twin_socket":{"supported":true,"fd_index":0})")));
  EXPECT_TRUE(c.twin_socket.supported);
  EXPECT_EQ(c.twin_socket.fd_index, 0u);
  ASSERT_OK_AND_ASSIGN(Capabilities empty, ParseCapabilities(Caps(R"("twin_socket":{})")));
  EXPECT_EQ(empty.twin_socket, TwinSocketCapability{});
}

// 3.4: unknown members are ignored at every level, whatever their type.
TEST(CapabilitiesTest, UnknownMembersAreIgnoredEverywhere) {
  ASSERT_OK_AND_ASSIGN(
      Capabilities c,
      ParseCapabilities(R"({"vendor":"x","capabilities":{"future":[1,"a",{}],"max_msg_fds":4,)"
                        R"("twin_socket":{"supported":true,"colour":"red"},)"
                        R"("migration":{"pgsize":8192,"extra":-1.5},"z":null},"n":-3})"));
  EXPECT_EQ(c.max_msg_fds, 4u);
  EXPECT_TRUE(c.twin_socket.supported);
  ASSERT_TRUE(c.migration.has_value());
  EXPECT_EQ(c.migration->pgsize, 8192u);
}

// Every numeric member, in each nesting, as a numeric string.
const char* const kNumericMembers[] = {
    R"("max_msg_fds":V)",
    R"("max_data_xfer_size":V)",
    R"("max_dma_maps":V)",
    R"("pgsizes":V)",
    R"("twin_socket":{"fd_index":V})",
    R"("migration":{"pgsize":V})",
    R"("migration":{"max_bitmap_size":V})",
};

std::string WithValue(std::string member, const std::string& value) {
  member.replace(member.find('V'), 1, value);
  return Caps(member);
}

// 3.4: numbers given as strings are rejected (QEMU aborts on them).
TEST(CapabilitiesTest, NumberAsStringIsEinval) {
  for (const char* member : kNumericMembers) {
    std::string json = WithValue(member, "\"8\"");
    EXPECT_THAT(ParseCapabilities(json), FailsWithErrno(EINVAL)) << json;
  }
}

// 3.4: 8.0 and 8e0 are floats, not integers, and are rejected.
TEST(CapabilitiesTest, FloatIsEinval) {
  for (const char* member : kNumericMembers) {
    for (const char* value : {"4096.0", "4096e0", "0.5"}) {
      std::string json = WithValue(member, value);
      EXPECT_THAT(ParseCapabilities(json), FailsWithErrno(EINVAL)) << json;
    }
  }
}

// 3.4, row 12: negative numbers (even -0) are rejected.
TEST(CapabilitiesTest, NegativeIsEinval) {
  for (const char* member : kNumericMembers) {
    for (const char* value : {"-1", "-0", "-4096"}) {
      std::string json = WithValue(member, value);
      EXPECT_THAT(ParseCapabilities(json), FailsWithErrno(EINVAL)) << json;
    }
  }
}

// Other wrong types for a number (bool, null, object, array) are rejected.
TEST(CapabilitiesTest, NonNumberIsEinval) {
  for (const char* member : kNumericMembers) {
    for (const char* value : {"true", "null", "{}", "[8]"}) {
      std::string json = WithValue(member, value);
      EXPECT_THAT(ParseCapabilities(json), FailsWithErrno(EINVAL)) << json;
    }
  }
}

// 3.4: booleans must be true/false, not 0/1, strings or null.
TEST(CapabilitiesTest, BoolAsNumberOrStringIsEinval) {
  for (const char* value : {"1", "0", "\"true\"", "null"}) {
    std::string multi = Caps(std::string("\"write_multiple\":") + value);
    EXPECT_THAT(ParseCapabilities(multi), FailsWithErrno(EINVAL)) << multi;
    std::string twin = Caps(std::string("\"twin_socket\":{\"supported\":") + value + "}");
    EXPECT_THAT(ParseCapabilities(twin), FailsWithErrno(EINVAL)) << twin;
  }
  ASSERT_OK_AND_ASSIGN(Capabilities c, ParseCapabilities(Caps(R"("write_multiple":false)")));
  EXPECT_FALSE(c.write_multiple);
}

// 3.4, row 10: `capabilities` present but not an object.
TEST(CapabilitiesTest, CapabilitiesNotObjectIsEinval) {
  for (const char* value : {"[]", "1", "\"x\"", "null", "true"}) {
    std::string json = std::string("{\"capabilities\":") + value + "}";
    EXPECT_THAT(ParseCapabilities(json), FailsWithErrno(EINVAL)) << json;
  }
}

// The nested known objects must be objects too.
TEST(CapabilitiesTest, NestedNotObjectIsEinval) {
  for (const char* value : {"true", "1", "[]", "null"}) {
    EXPECT_THAT(ParseCapabilities(Caps(std::string("\"twin_socket\":") + value)),
                FailsWithErrno(EINVAL))
        << value;
    EXPECT_THAT(ParseCapabilities(Caps(std::string("\"migration\":") + value)),
                FailsWithErrno(EINVAL))
        << value;
  }
}

// The top level must be an object.
TEST(CapabilitiesTest, TopLevelNotObjectIsEinval) {
  for (const char* json : {"[]", "1", "null", "\"capabilities\"", "true"}) {
    EXPECT_THAT(ParseCapabilities(json), FailsWithErrno(EINVAL)) << json;
  }
}

// Row 10: text that is not JSON at all, including trailing garbage, an
// embedded NUL and invalid UTF-8 in a string.
TEST(CapabilitiesTest, MalformedJsonIsEinval) {
  const std::string cases[] = {
      "", " ", "{", "{\"capabilities\":}", "{} x", "{}{}", "{'a':1}",
      std::string("{}\0", 3), "{\"\xff\":1}", "{\"capabilities\":{\"max_msg_fds\":08}}",
  };
  for (const std::string& json : cases) {
    EXPECT_THAT(ParseCapabilities(json), FailsWithErrno(EINVAL)) << json;
  }
}

// Row 12 and our sanity ranges: the edges are accepted, one past is not.
TEST(CapabilitiesTest, RangeEdges) {
  struct Case {
    std::string member;
    bool ok;
  };
  const Case cases[] = {
      {R"("max_msg_fds":0)", true},
      {R"("max_msg_fds":1024)", true},
      {R"("max_msg_fds":1025)", false},
      {R"("max_data_xfer_size":1)", true},
      {R"("max_data_xfer_size":0)", false},
      {R"("max_data_xfer_size":67108864)", true},
      {R"("max_data_xfer_size":67108865)", false},
      {R"("pgsizes":0)", false},
      {R"("pgsizes":18446744073709551615)", true},
      {R"("pgsizes":18446744073709551616)", false},  // parses as a float
      {R"("max_dma_maps":4294967295)", true},
      {R"("max_dma_maps":4294967296)", false},
      {R"("twin_socket":{"fd_index":4294967295})", true},
      {R"("twin_socket":{"fd_index":4294967296})", false},
      {R"("migration":{"pgsize":4096})", true},
      {R"("migration":{"pgsize":0})", false},
      {R"("migration":{"pgsize":3000})", false},
      {R"("migration":{"max_bitmap_size":0})", true},
  };
  for (const Case& c : cases) {
    std::string json = Caps(c.member);
    if (c.ok) {
      EXPECT_THAT(ParseCapabilities(json), ::vfu::testing::IsOk()) << json;
    } else {
      EXPECT_THAT(ParseCapabilities(json), FailsWithErrno(EINVAL)) << json;
    }
  }
}

// Text up to kMaxCapabilitiesJsonSize is parsed; one byte more is refused.
TEST(CapabilitiesTest, LengthCap) {
  std::string at_limit = "{}" + std::string(kMaxCapabilitiesJsonSize - 2, ' ');
  EXPECT_THAT(ParseCapabilities(at_limit), ::vfu::testing::IsOk());
  EXPECT_THAT(ParseCapabilities(at_limit + " "), FailsWithErrno(EINVAL));
}

// Deep nesting inside an unknown member neither crashes nor overflows the
// stack (the parser and the destructor are iterative); unbalanced is EINVAL.
TEST(CapabilitiesTest, DeepNestingIsHandled) {
  const size_t depth = (kMaxCapabilitiesJsonSize - 100) / 2;
  std::string nested = std::string(depth, '[') + std::string(depth, ']');
  EXPECT_THAT(ParseCapabilities("{\"x\":" + nested + "}"), ::vfu::testing::IsOk());
  EXPECT_THAT(ParseCapabilities("{\"x\":" + std::string(depth, '[') + "}"),
              FailsWithErrno(EINVAL));
}

// A repeated key: the last one counts (nlohmann's rule, documented).
TEST(CapabilitiesTest, DuplicateKeyLastWins) {
  ASSERT_OK_AND_ASSIGN(Capabilities c,
                       ParseCapabilities(Caps(R"("max_msg_fds":2,"max_msg_fds":3)")));
  EXPECT_EQ(c.max_msg_fds, 3u);
}

// The exact text of a libvfio-user-like reply: plain numbers, spec order.
TEST(CapabilitiesTest, SerializesExactText) {
  Capabilities c;
  c.max_msg_fds = 8;
  EXPECT_EQ(SerializeCapabilities(c, {.max_msg_fds = true,
                                      .max_data_xfer_size = true,
                                      .max_dma_maps = true,
                                      .pgsizes = true}),
            R"({"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576,)"
            R"("max_dma_maps":65535,"pgsizes":4096}})");
  EXPECT_EQ(SerializeCapabilities(c, {}), R"({"capabilities":{}})");
}

// Every member, nested ones too, with 64-bit values: the text is exact, has
// no quoted numbers, and parses back to the same Capabilities.
TEST(CapabilitiesTest, SerializesAllMembersAndParsesBack) {
  Capabilities c{.max_msg_fds = 1024,
                 .max_data_xfer_size = 64ull << 20,
                 .max_dma_maps = 4294967295u,
                 .pgsizes = 0xfffffffffffff000ull,
                 .twin_socket = {.supported = true, .fd_index = 3},
                 .write_multiple = true,
                 .migration = MigrationCapability{.pgsize = 4096, .max_bitmap_size = 1ull << 40}};
  std::string text = SerializeCapabilities(c, CapabilityMembers::All());
  EXPECT_EQ(text,
            R"({"capabilities":{"max_msg_fds":1024,"max_data_xfer_size":67108864,)"
            R"("max_dma_maps":4294967295,"pgsizes":18446744073709547520,)"
            R"("twin_socket":{"supported":true,"fd_index":3},"write_multiple":true,)"
            R"("migration":{"pgsize":4096,"max_bitmap_size":1099511627776}}})");
  ASSERT_OK_AND_ASSIGN(Capabilities back, ParseCapabilities(text));
  EXPECT_EQ(back, c);
}

// Absent optionals are left out rather than written as null.
TEST(CapabilitiesTest, SerializesOnlyPresentOptionals) {
  Capabilities c;
  c.migration = MigrationCapability{.pgsize = 4096};
  c.twin_socket.supported = false;
  EXPECT_EQ(SerializeCapabilities(c, {.twin_socket = true, .migration = true}),
            R"({"capabilities":{"twin_socket":{"supported":false},"migration":{"pgsize":4096}}})");
  c.migration.reset();
  EXPECT_EQ(SerializeCapabilities(c, {.migration = true}), R"({"capabilities":{}})");
}

}  // namespace
}  // namespace vfu::wire
