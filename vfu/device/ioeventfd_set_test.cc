#include "vfu/device/ioeventfd_set.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "testing/status_matchers.h"

namespace vfu {
namespace {

using ::vfu::testing::IsOk;
using ::vfu::testing::StatusIs;

// Region 0: 4 KiB; region 1: none.
bool Fits(uint32_t region, uint64_t offset, uint64_t size) {
  return region == 0 && offset < 4096 && size <= 4096 - offset;
}

absl::StatusOr<IoeventfdSet> Make(std::vector<IoeventfdSpec> specs) {
  return IoeventfdSet::Create(std::move(specs), Fits);
}

bool Readable(int fd) {
  pollfd p{.fd = fd, .events = POLLIN};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

void WriteEventfd(int fd) {
  const uint64_t one = 1;
  ASSERT_EQ(::write(fd, &one, sizeof one), static_cast<ssize_t>(sizeof one));
}

TEST(IoeventfdSetTest, BadSpecsAreRefused) {
  EXPECT_THAT(Make({{.region = 1, .offset = 0}}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Make({{.offset = 4096 - 2, .size = 4}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Make({{.offset = 0, .size = 3}}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Make({{.offset = 2, .size = 4}}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Make({{.offset = 0, .size = 1, .datamatch = 0x100}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Make({{.offset = 0, .size = 8}, {.offset = 4, .size = 4}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Make({{.offset = 0, .size = 4, .datamatch = 1}, {.offset = 0, .size = 4}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Make({{.offset = 0, .size = 4, .datamatch = 1},
                    {.offset = 0, .size = 4, .datamatch = 2}}),
              IsOk());
}

TEST(IoeventfdSetTest, DescribeListsTheRegionsDoorbellsWithTheirOwnFds) {
  absl::StatusOr<IoeventfdSet> set = Make({{.offset = 0x100, .size = 4},
                                           {.offset = 0x108, .size = 8, .datamatch = 7}});
  ASSERT_THAT(set, IsOk());
  std::vector<wire::IoFdEntry> entries;
  std::vector<int> fds;
  set->Describe(0, entries, fds);
  ASSERT_EQ(entries.size(), 2u);
  ASSERT_EQ(fds.size(), 2u);
  EXPECT_EQ(entries[0].offset, 0x100u);
  EXPECT_EQ(entries[0].size, 4u);
  EXPECT_EQ(entries[0].flags, 0u);
  EXPECT_EQ(entries[1].offset, 0x108u);
  EXPECT_EQ(entries[1].flags, 1u) << "KVM_IOEVENTFD_FLAG_DATAMATCH";
  EXPECT_EQ(entries[1].datamatch, 7u);
  EXPECT_NE(fds[entries[0].fd_index], fds[entries[1].fd_index]);

  std::vector<wire::IoFdEntry> none;
  std::vector<int> no_fds;
  set->Describe(1, none, no_fds);
  EXPECT_TRUE(none.empty());
}

// A write to the fd the client got makes wait_fd readable; Consume takes
// the count and re-arms it.
TEST(IoeventfdSetTest, ClientWritesWakeTheWaitFd) {
  absl::StatusOr<IoeventfdSet> set = Make({{.offset = 0, .size = 4}, {.offset = 4, .size = 4}});
  ASSERT_THAT(set, IsOk());
  std::vector<wire::IoFdEntry> entries;
  std::vector<int> fds;
  set->Describe(0, entries, fds);
  UniqueFd client_copy = DuplicateFd(fds[entries[1].fd_index]);

  EXPECT_FALSE(Readable(set->wait_fd(1)));
  WriteEventfd(client_copy.get());
  WriteEventfd(client_copy.get());
  EXPECT_TRUE(Readable(set->wait_fd(1)));
  EXPECT_FALSE(Readable(set->wait_fd(0)));
  EXPECT_EQ(set->Consume(1), 2u);
  EXPECT_FALSE(Readable(set->wait_fd(1)));
  EXPECT_EQ(set->Consume(1), 0u);
}

TEST(IoeventfdSetTest, MatchFollowsKvm) {
  absl::StatusOr<IoeventfdSet> set = Make({{.offset = 0x10, .size = 4},
                                           {.offset = 0x20, .size = 2, .datamatch = 0x1234},
                                           {.offset = 0x20, .size = 2, .datamatch = 0x5678}});
  ASSERT_THAT(set, IsOk());
  const uint8_t four[4] = {1, 2, 3, 4};
  EXPECT_EQ(set->Match(0, 0x10, four), 0u);
  EXPECT_EQ(set->Match(0, 0x10, absl::MakeConstSpan(four, 2)), std::nullopt) << "other width";
  EXPECT_EQ(set->Match(0, 0x14, four), std::nullopt);
  EXPECT_EQ(set->Match(1, 0x10, four), std::nullopt);
  const uint8_t match[2] = {0x78, 0x56};
  EXPECT_EQ(set->Match(0, 0x20, match), 2u);
  const uint8_t miss[2] = {0x34, 0x13};
  EXPECT_EQ(set->Match(0, 0x20, miss), std::nullopt);

  set->Ring(2);
  EXPECT_TRUE(Readable(set->wait_fd(2)));
  EXPECT_EQ(set->Consume(2), 1u);
}

TEST(IoeventfdSetTest, DoorbellsThatWantTheValueAreNotMatched) {
  absl::StatusOr<IoeventfdSet> set =
      Make({{.offset = 0x10, .size = 4, .trapped_write_rings = false}});
  ASSERT_THAT(set, IsOk());
  const uint8_t four[4] = {1, 2, 3, 4};
  EXPECT_EQ(set->Match(0, 0x10, four), std::nullopt);
}

// The client shares the file description: clearing O_NONBLOCK on its copy
// must not make Consume block.
TEST(IoeventfdSetTest, ConsumeNeverBlocksOnAClientMadeBlockingFd) {
  absl::StatusOr<IoeventfdSet> set = Make({{.offset = 0, .size = 4}});
  ASSERT_THAT(set, IsOk());
  std::vector<wire::IoFdEntry> entries;
  std::vector<int> fds;
  set->Describe(0, entries, fds);
  UniqueFd client_copy = DuplicateFd(fds[0]);
  ASSERT_EQ(::fcntl(client_copy.get(), F_SETFL, 0), 0);
  EXPECT_EQ(set->Consume(0), 0u);  // would hang forever with a plain read
  WriteEventfd(client_copy.get());
  EXPECT_EQ(set->Consume(0), 1u);
}

// After Renew the previous client's copy rings nothing, the wait fd stays
// the same, and the new fd works.
TEST(IoeventfdSetTest, RenewCutsOffThePreviousClient) {
  absl::StatusOr<IoeventfdSet> set = Make({{.offset = 0, .size = 4}});
  ASSERT_THAT(set, IsOk());
  std::vector<wire::IoFdEntry> entries;
  std::vector<int> fds;
  set->Describe(0, entries, fds);
  UniqueFd old_copy = DuplicateFd(fds[0]);
  const int wait_fd = set->wait_fd(0);

  ASSERT_THAT(set->Renew(), IsOk());
  WriteEventfd(old_copy.get());
  EXPECT_FALSE(Readable(set->wait_fd(0)));
  EXPECT_EQ(set->Consume(0), 0u);

  std::vector<wire::IoFdEntry> fresh_entries;
  std::vector<int> fresh_fds;
  set->Describe(0, fresh_entries, fresh_fds);
  UniqueFd new_copy = DuplicateFd(fresh_fds[0]);
  WriteEventfd(new_copy.get());
  EXPECT_EQ(set->wait_fd(0), wait_fd);
  EXPECT_TRUE(Readable(wait_fd));
  EXPECT_EQ(set->Consume(0), 1u);
}

}  // namespace
}  // namespace vfu
