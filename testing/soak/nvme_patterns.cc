// The NVMe controller under churn, through the guest-side driver
// (devices/nvme/nvme_driver.h):
//
//   good_nvme          connect, map guest memory (fd-backed memfd and fd-less
//                      memory in alternate sessions), enable, create one or
//                      two I/O queue pairs, write random blocks and read them
//                      back (every byte compared, and against a model of the
//                      whole image kept across sessions), MSI-X or polled
//                      completions, then disable (after deleting the queues,
//                      or a shutdown, or neither) and leave
//   nvme_abrupt_close  the same session, closing the socket at a random
//                      point: before enable, while enabling, after enable,
//                      with queues created, with I/O submitted and not
//                      reaped, mid-admin command; the image model forgets
//                      what was in flight, and every session first checks
//                      what earlier ones completed
//   nvme_hostile       a valid vfio-user session whose guest misbehaves at
//                      the NVMe level (one misdeed per session, see
//                      Misdeed), then checks the controller is still sane:
//                      a reset clears RDY and CFS, and a good write and read
//                      work again (on a new connection when the misdeed took
//                      the guest memory away)
//
// Expectations counted as errors are those the NVMe 1.4 specification makes
// clear (cited where checked), plus the controller's documented contract on
// a departed client (devices/nvme/README.md, "Reset, shutdown, detach").
#include "testing/soak/nvme_patterns.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "devices/nvme/nvme_defs.h"
#include "devices/nvme/nvme_driver.h"
#include "testing/soak/session_helpers.h"
#include "vfu/device/pci_device_spec.h"

namespace vfu::soak {
namespace {

using nvme::Completion;
using nvme::NvmeDriver;
using nvme::SubmissionEntry;

// soak_server's nvme image: 8 MiB of 512-byte LBAs, namespace 1.
constexpr uint64_t kLbaBytes = 512;
constexpr uint64_t kImageBlocks = (8ull << 20) / kLbaBytes;
constexpr uint32_t kNsid = 1;
// Guest memory per session: queues (64 KiB aligned), buffers, PRP lists.
constexpr uint64_t kGuestMemory = 4ull << 20;
// Commands one round writes (and then reads back) at once; blocks each.
constexpr uint32_t kSlots = 6;
constexpr uint32_t kMaxBlocks = 32;
constexpr uint64_t kSlotBytes = kMaxBlocks * kLbaBytes;
// Rounds of a good session: small, so that the short run still sees many
// sessions (and so many connects, enables and resets) of each pattern.
constexpr int kGoodRounds = 6;
// An address no session ever maps.
constexpr uint64_t kUnmappedIova = 0x7ff000000000ull;

bool SessionOver(const SessionContext& context) { return absl::Now() >= context.session_deadline; }

// Status field without DNR and M: the type and code the specification fixes.
uint16_t TypeAndCode(uint16_t status) { return status & 0x7ff; }

std::string Hex(uint64_t value) { return absl::StrCat("0x", absl::Hex(value)); }

// What the image must hold, block by block, as far as completed writes tell:
// a block written by a command that did not complete (the client left, or
// the command failed) is unknown until written again.
class ImageModel {
 public:
  ImageModel() : bytes_(kImageBlocks * kLbaBytes, 0), known_(kImageBlocks, true) {}

  void Forget(uint64_t slba, uint32_t blocks) {
    for (uint64_t b = slba; b < slba + blocks; ++b) known_[b] = false;
  }
  void Record(uint64_t slba, absl::Span<const uint8_t> data) {
    std::memcpy(bytes_.data() + slba * kLbaBytes, data.data(), data.size());
    for (uint64_t b = slba; b < slba + data.size() / kLbaBytes; ++b) known_[b] = true;
  }
  // Offset of the first byte of a known block that differs from `data`
  // (read from `slba`), or -1.
  int64_t Check(uint64_t slba, absl::Span<const uint8_t> data, uint64_t& verified) const {
    for (uint64_t i = 0; i < data.size() / kLbaBytes; ++i) {
      if (!known_[slba + i]) continue;
      const int64_t at = FirstDifference(
          data.subspan(i * kLbaBytes, kLbaBytes),
          absl::MakeConstSpan(bytes_).subspan((slba + i) * kLbaBytes, kLbaBytes));
      if (at >= 0) return static_cast<int64_t>(i * kLbaBytes) + at;
      verified += kLbaBytes;
    }
    return -1;
  }

 private:
  std::vector<uint8_t> bytes_;
  std::vector<bool> known_;
};

// A data buffer in guest memory (at a random dword offset into its first
// page, so that PRP1 carries an offset) and a page for its PRP list.
struct Slot {
  uint64_t iova = 0;
  uint64_t list = 0;
};

// One connection: the driver is declared first so that it (and the guest
// memory the client serves) outlives the client.
struct NvmeSession {
  std::unique_ptr<NvmeDriver> driver;
  std::unique_ptr<Client> client;
  bool shared = false;
  bool interrupts = false;  // MSI-X eventfds installed (else polled)
  std::vector<Slot> writes, reads;
  Slot extra;  // a read of a random range, checked against the model
  uint32_t entries = 0;  // of every I/O SQ and CQ
  uint16_t queues = 0;   // I/O queue pairs 1 .. queues
  uint16_t next_cid = 0x4000;  // for commands the session builds itself
};

// Connects, maps guest memory and installs interrupt eventfds; checks that
// the controller it finds is reset (the previous client's detach resets it).
absl::StatusOr<std::unique_ptr<NvmeSession>> OpenSession(SessionContext& context,
                                                         PatternStats& stats, bool shared,
                                                         bool interrupts,
                                                         bool ioeventfds = false) {
  auto session = std::make_unique<NvmeSession>();
  session->shared = shared;
  session->interrupts = interrupts;
  absl::StatusOr<std::unique_ptr<Client>> client = ConnectClient(context, stats, absl::Seconds(30));
  if (!client.ok()) return client.status();
  session->client = *std::move(client);
  nvme::NvmeDriverOptions options;
  options.memory_bytes = kGuestMemory;
  options.shared_memory = shared;
  options.interrupts = interrupts;
  options.ioeventfds = ioeventfds;
  options.admin_entries = 32;
  options.timeout = context.scale.call_timeout;
  absl::StatusOr<std::unique_ptr<NvmeDriver>> driver =
      NvmeDriver::Attach(*session->client, options);
  if (!driver.ok()) return driver.status();
  session->driver = *std::move(driver);
  absl::StatusOr<uint32_t> csts = session->driver->Read32(nvme::kRegCsts);
  if (!csts.ok()) return csts.status();
  if ((*csts & (nvme::kCstsReady | nvme::kCstsFatal)) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("a new client found CSTS ", Hex(*csts), " (not reset)"));
  }
  NvmeDriver& d = *session->driver;
  auto slot = [&]() -> Slot {
    const uint64_t base = d.Allocate(kSlotBytes + NvmeDriver::kPage);
    return Slot{.iova = base + 4 * context.Uniform(0, NvmeDriver::kPage / 4 - 1),
                .list = d.Allocate(NvmeDriver::kPage)};
  };
  for (uint32_t i = 0; i < kSlots; ++i) {
    session->writes.push_back(slot());
    session->reads.push_back(slot());
  }
  session->extra = slot();
  return session;
}

// Optional controller features a well-behaved session may turn on.
struct Features {
  bool shadow_doorbells = false;  // Doorbell Buffer Config
  bool shadow_late = false;       // ... after the queues exist
  bool coalescing = false;        // Set Features 08h, random THR and TIME
  bool small_cqs = false;         // CQs smaller than a round: the controller
                                  // must wait for head doorbells
};

Features RandomFeatures(SessionContext& context) {
  return Features{.shadow_doorbells = context.Uniform(0, 2) == 0,
                  .shadow_late = context.Uniform(0, 1) == 1,
                  .coalescing = context.Uniform(0, 3) == 0,
                  .small_cqs = context.Uniform(0, 3) == 0};
}

std::string Describe(const Features& features) {
  return absl::StrCat(features.shadow_doorbells
                          ? (features.shadow_late ? ", late shadow doorbells" : ", shadow doorbells")
                          : "",
                      features.coalescing ? ", coalescing" : "",
                      features.small_cqs ? ", small CQs" : "");
}

absl::Status EnableWithQueues(SessionContext& context, NvmeSession& session, uint16_t queues,
                              Features features = {}) {
  NvmeDriver& d = *session.driver;
  if (absl::Status s = d.Enable(); !s.ok()) return s;
  if (features.shadow_doorbells && !features.shadow_late) {
    if (absl::Status s = d.EnableShadowDoorbells(); !s.ok()) return s;
  }
  if (features.coalescing) {
    SubmissionEntry sqe = {};
    sqe.opcode = nvme::kAdminSetFeatures;
    sqe.cdw10 = nvme::kFeatInterruptCoalescing;
    sqe.cdw11 = static_cast<uint32_t>(context.Uniform(0, 7) | (context.Uniform(0, 5) << 8));
    absl::StatusOr<Completion> done = d.Run(0, sqe);
    if (!done.ok()) return done.status();
    if (done->status != nvme::kSuccess) {
      return absl::DataLossError(absl::StrCat("Set Features 08h: status ", Hex(done->status)));
    }
  }
  session.entries = static_cast<uint32_t>(context.Uniform(kSlots + 2, 64));
  for (uint16_t q = 1; q <= queues; ++q) {
    const uint32_t cq_entries =
        features.small_cqs ? static_cast<uint32_t>(context.Uniform(2, kSlots)) : session.entries;
    if (absl::Status s = d.CreateIoQueuePair(q, session.entries, cq_entries); !s.ok()) return s;
  }
  session.queues = queues;
  if (features.shadow_doorbells && features.shadow_late) {
    if (absl::Status s = d.EnableShadowDoorbells(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

SubmissionEntry ReadWrite(NvmeSession& session, uint8_t opcode, uint64_t slba, uint32_t blocks,
                          const Slot& slot) {
  SubmissionEntry sqe = {};
  sqe.opcode = opcode;
  sqe.cid = session.next_cid++;
  sqe.nsid = kNsid;
  sqe.cdw10 = static_cast<uint32_t>(slba);
  sqe.cdw11 = static_cast<uint32_t>(slba >> 32);
  sqe.cdw12 = blocks - 1;
  session.driver->SetPrps(sqe, slot.iova, uint64_t{blocks} * kLbaBytes, slot.list);
  return sqe;
}

// Reaps completions of queue `qid` until every CID of `pending` has one (or
// the call timeout); each must be unique, from this queue, and of a pending
// command. Returns them by CID.
absl::StatusOr<std::vector<Completion>> ReapAll(SessionContext& context, NvmeSession& session,
                                                uint16_t qid, std::set<uint16_t> pending) {
  std::vector<Completion> done;
  const absl::Time deadline = context.CallDeadline();
  while (!pending.empty()) {
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(pending.size(), " commands on queue ", qid, " never completed"));
    }
    Completion batch[kSlots * 2 + 2];
    absl::StatusOr<size_t> n = session.driver->Reap(qid, absl::MakeSpan(batch), /*wait=*/true);
    if (!n.ok()) return n.status();
    for (size_t i = 0; i < *n; ++i) {
      if (batch[i].sq_id != qid || pending.erase(batch[i].cid) != 1) {
        return absl::DataLossError(absl::StrCat("queue ", qid, ": unexpected completion cid ",
                                                batch[i].cid, " sq ", batch[i].sq_id));
      }
      done.push_back(batch[i]);
    }
  }
  return done;
}

// Draws `count` disjoint LBA ranges.
std::vector<std::pair<uint64_t, uint32_t>> DisjointRanges(SessionContext& context,
                                                          uint32_t count) {
  std::vector<std::pair<uint64_t, uint32_t>> ranges;
  const uint64_t region = kImageBlocks / count;
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t blocks = static_cast<uint32_t>(context.Uniform(1, kMaxBlocks));
    ranges.emplace_back(i * region + context.Uniform(0, region - blocks), blocks);
  }
  return ranges;
}

// Submits writes of random data to disjoint ranges on queue `qid` (rung once)
// and returns what they are, without reaping. The model forgets the ranges.
struct Submitted {
  std::vector<std::pair<uint64_t, uint32_t>> ranges;
  std::set<uint16_t> cids;
  std::vector<uint16_t> cid_of;
};
absl::StatusOr<Submitted> SubmitWrites(SessionContext& context, NvmeSession& session,
                                       uint16_t qid, uint32_t count, ImageModel* model) {
  Submitted out;
  out.ranges = DisjointRanges(context, count);
  for (uint32_t i = 0; i < count; ++i) {
    const auto [slba, blocks] = out.ranges[i];
    FillRandom(context, absl::MakeSpan(session.driver->Host(session.writes[i].iova),
                                       blocks * kLbaBytes));
    SubmissionEntry sqe = ReadWrite(session, nvme::kNvmWrite, slba, blocks, session.writes[i]);
    if (model != nullptr) model->Forget(slba, blocks);
    if (absl::Status s = session.driver->Submit(qid, sqe, /*ring=*/false); !s.ok()) return s;
    out.cids.insert(sqe.cid);
    out.cid_of.push_back(sqe.cid);
  }
  if (absl::Status s = session.driver->RingSubmission(qid); !s.ok()) return s;
  return out;
}

// Waits up to the call timeout for MSI-X vector `vector`. With fd-less
// memory the controller may still be moving bytes through us (a shadow
// doorbell, an EventIdx) before it signals, so the client is served
// meanwhile.
bool AwaitInterrupt(SessionContext& context, NvmeSession& session, uint16_t vector) {
  const UniqueFd fd = DuplicateFd(session.driver->interrupt_fd(vector));
  const absl::Time deadline = context.CallDeadline();
  // Bounded by the deadline; 1 ms per look.
  while (absl::Now() < deadline) {
    if (!session.shared && !session.client->Poll(absl::ZeroDuration()).ok()) return false;
    if (ReadEventfd(fd, absl::Now() + absl::Milliseconds(1)).has_value()) return true;
  }
  return false;
}

// One round on queue `qid`: writes random data to disjoint ranges, reaps,
// reads the ranges back (and one random range, compared with the model)
// and compares every byte. A failure is the round's error message.
absl::Status VerifiedRound(SessionContext& context, NvmeSession& session, uint16_t qid,
                           ImageModel* model, PatternStats& stats) {
  NvmeDriver& d = *session.driver;
  // Interrupts of earlier rounds are not this round's.
  const uint64_t interrupts_before = d.interrupts_seen();
  if (session.interrupts) DrainEventfd(UniqueFd(DuplicateFd(d.interrupt_fd(qid))));
  const uint32_t count = static_cast<uint32_t>(
      context.Uniform(1, std::min<uint32_t>(kSlots, session.entries - 2)));
  absl::StatusOr<Submitted> writes = SubmitWrites(context, session, qid, count, model);
  if (!writes.ok()) return writes.status();
  absl::StatusOr<std::vector<Completion>> written = ReapAll(context, session, qid, writes->cids);
  if (!written.ok()) return written.status();
  stats.operations += count;
  for (const Completion& c : *written) {
    // NVMe 1.4 section 6.15 (Write): in range, mapped buffers: success.
    if (c.status != nvme::kSuccess) {
      return absl::DataLossError(absl::StrCat("Write cid ", c.cid, " status ", Hex(c.status)));
    }
  }
  for (uint32_t i = 0; i < count; ++i) {
    const auto [slba, blocks] = writes->ranges[i];
    if (model != nullptr) {
      model->Record(slba, absl::MakeConstSpan(d.Host(session.writes[i].iova), blocks * kLbaBytes));
    }
  }
  // Read back into poisoned buffers, plus one random range.
  std::set<uint16_t> cids;
  for (uint32_t i = 0; i < count; ++i) {
    const auto [slba, blocks] = writes->ranges[i];
    std::memset(d.Host(session.reads[i].iova), 0xa5, blocks * kLbaBytes);
    SubmissionEntry sqe = ReadWrite(session, nvme::kNvmRead, slba, blocks, session.reads[i]);
    if (absl::Status s = d.Submit(qid, sqe, /*ring=*/false); !s.ok()) return s;
    cids.insert(sqe.cid);
  }
  const uint32_t extra_blocks = static_cast<uint32_t>(context.Uniform(1, kMaxBlocks));
  const uint64_t extra_slba = context.Uniform(0, kImageBlocks - extra_blocks);
  std::memset(d.Host(session.extra.iova), 0x5a, extra_blocks * kLbaBytes);
  SubmissionEntry extra = ReadWrite(session, nvme::kNvmRead, extra_slba, extra_blocks,
                                    session.extra);
  if (absl::Status s = d.Submit(qid, extra, /*ring=*/false); !s.ok()) return s;
  cids.insert(extra.cid);
  if (absl::Status s = d.RingSubmission(qid); !s.ok()) return s;
  absl::StatusOr<std::vector<Completion>> read = ReapAll(context, session, qid, cids);
  if (!read.ok()) return read.status();
  stats.operations += count + 1;
  for (const Completion& c : *read) {
    if (c.status != nvme::kSuccess) {
      return absl::DataLossError(absl::StrCat("Read cid ", c.cid, " status ", Hex(c.status)));
    }
  }
  // fd-less memory: the data arrived as DMA_WRITE messages before the
  // completions that Reap served after them.
  for (uint32_t i = 0; i < count; ++i) {
    const auto [slba, blocks] = writes->ranges[i];
    const uint64_t bytes = blocks * kLbaBytes;
    const int64_t at = FirstDifference(absl::MakeConstSpan(d.Host(session.reads[i].iova), bytes),
                                       absl::MakeConstSpan(d.Host(session.writes[i].iova), bytes));
    if (at >= 0) {
      return absl::DataLossError(absl::StrCat("LBA ", slba, " +", blocks, " (",
                                              session.shared ? "fd" : "fd-less",
                                              " memory): byte ", at, " read back differs"));
    }
    stats.bytes_verified += bytes;
  }
  // NVMe 1.4 section 7.5 (Interrupts): with MSI-X, posting to a CQ whose
  // interrupts are enabled signals its vector (coalescing only delays it, by
  // at most TIME), so a round's completions raised vector `qid` at least once.
  if (session.interrupts && d.interrupts_seen() == interrupts_before &&
      !AwaitInterrupt(context, session, qid)) {
    return absl::DataLossError(absl::StrCat("no MSI-X interrupt on vector ", qid, " for ",
                                            2 * count + 1, " completions"));
  }
  if (model != nullptr) {
    const int64_t at = model->Check(
        extra_slba, absl::MakeConstSpan(d.Host(session.extra.iova), extra_blocks * kLbaBytes),
        stats.bytes_verified);
    if (at >= 0) {
      return absl::DataLossError(absl::StrCat("LBA ", extra_slba, " +", extra_blocks,
                                              ": byte ", at,
                                              " differs from what earlier writes left"));
    }
  }
  return absl::OkStatus();
}

// The end of a well-behaved session: delete the queues, or shut down, or
// neither; then disable (CC.EN 1 -> 0 must bring CSTS.RDY to 0 within
// CAP.TO, NVMe 1.4 section 3.1.5 (CC.EN) and 3.1.1 (CAP.TO)).
absl::Status CleanEnd(SessionContext& context, NvmeSession& session) {
  switch (context.Uniform(0, 2)) {
    case 0:
      for (uint16_t q = 1; q <= session.queues; ++q) {
        if (absl::Status s = session.driver->DeleteIoQueuePair(q); !s.ok()) return s;
      }
      break;
    case 1:
      if (absl::Status s = session.driver->Shutdown(); !s.ok()) return s;
      break;
    default:
      break;
  }
  return session.driver->Disable();
}

class GoodNvme : public Pattern {
 public:
  std::string_view name() const override { return "good_nvme"; }
  DeviceKind device() const override { return DeviceKind::kNvme; }
  bool hostile() const override { return false; }

  void RunSession(SessionContext& context, PatternStats& stats) override {
    // fd-backed and fd-less memory in alternate sessions.
    const bool shared = (++sessions_ % 2) == 0;
    const bool interrupts = context.Uniform(0, 1) == 1;
    const Features features = RandomFeatures(context);
    // Shadowed queues may be rung through the ioeventfds the device offers.
    const bool ioeventfds = features.shadow_doorbells && context.Uniform(0, 1) == 1;
    const std::string how =
        absl::StrCat(shared ? "fd" : "fd-less", " memory, ", interrupts ? "MSI-X" : "polled",
                     Describe(features), ioeventfds ? ", ioeventfds" : "");
    absl::StatusOr<std::unique_ptr<NvmeSession>> opened =
        OpenSession(context, stats, shared, interrupts, ioeventfds);
    if (!opened.ok()) return stats.Fail("open (", how, "): ", opened.status().ToString());
    NvmeSession& session = **opened;
    const uint16_t queues = static_cast<uint16_t>(context.Uniform(1, 2));
    if (absl::Status s = EnableWithQueues(context, session, queues, features); !s.ok()) {
      return stats.Fail("enable (", how, "): ", s.ToString());
    }
    for (int round = 0; round < kGoodRounds && !SessionOver(context); ++round) {
      const uint16_t qid = static_cast<uint16_t>(context.Uniform(1, queues));
      if (absl::Status s = VerifiedRound(context, session, qid, &model_, stats); !s.ok()) {
        return stats.Fail("round (", how, ", queue ", qid, "): ", s.ToString());
      }
    }
    if (absl::Status s = CleanEnd(context, session); !s.ok()) {
      return stats.Fail("clean end (", how, "): ", s.ToString());
    }
  }

 private:
  uint64_t sessions_ = 0;
  ImageModel model_;
};

class NvmeAbruptClose : public Pattern {
 public:
  std::string_view name() const override { return "nvme_abrupt_close"; }
  DeviceKind device() const override { return DeviceKind::kNvme; }
  bool hostile() const override { return true; }

  enum class Point {
    kBeforeEnable,
    kWhileEnabling,
    kAfterEnable,
    kQueuesCreated,
    kIoInFlight,
    kAdminInFlight,
    kCount
  };

  void RunSession(SessionContext& context, PatternStats& stats) override {
    const bool shared = (++sessions_ % 2) == 0;
    const bool interrupts = context.Uniform(0, 1) == 1;
    const auto point =
        static_cast<Point>(context.Uniform(0, static_cast<uint64_t>(Point::kCount) - 1));
    absl::StatusOr<std::unique_ptr<NvmeSession>> opened =
        OpenSession(context, stats, shared, interrupts);
    if (!opened.ok()) return stats.Fail("open: ", opened.status().ToString());
    NvmeSession& session = **opened;
    NvmeDriver& d = *session.driver;
    ++stats.operations;
    if (point == Point::kBeforeEnable) return;
    if (point == Point::kWhileEnabling) {
      // Admin queue programmed by hand, CC.EN set, gone before RDY.
      const uint64_t sq = d.Allocate(4096, NvmeDriver::kQueueAlignment);
      const uint64_t cq = d.Allocate(4096, NvmeDriver::kQueueAlignment);
      absl::Status s = d.Write32(nvme::kRegAqa, 31 | (31u << 16));
      for (auto [reg, value] : {std::pair<uint64_t, uint64_t>{nvme::kRegAsq, sq},
                                {nvme::kRegAcq, cq}}) {
        if (s.ok()) s = d.Write32(reg, static_cast<uint32_t>(value));
        if (s.ok()) s = d.Write32(reg + 4, static_cast<uint32_t>(value >> 32));
      }
      if (s.ok()) s = d.Write32(nvme::kRegCc, (6u << 16) | (4u << 20) | nvme::kCcEnable);
      if (!s.ok()) stats.Fail("enable by hand: ", s.ToString());
      return;
    }
    const uint16_t queues = static_cast<uint16_t>(context.Uniform(1, 2));
    if (point == Point::kAfterEnable || (point == Point::kAdminInFlight && context.Uniform(0, 1) == 0)) {
      if (absl::Status s = d.Enable(); !s.ok()) return stats.Fail("enable: ", s.ToString());
      // Gone at once, or with an admin command the controller may be running.
      if (point == Point::kAfterEnable) return;
      return SubmitAdminAndLeave(context, session, stats);
    }
    const Features features = RandomFeatures(context);
    if (absl::Status s = EnableWithQueues(context, session, queues, features); !s.ok()) {
      return stats.Fail("enable", Describe(features), ": ", s.ToString());
    }
    // What earlier sessions completed must be there (and a round of our own).
    if (absl::Status s = VerifiedRound(context, session, 1, &model_, stats); !s.ok()) {
      return stats.Fail("round: ", s.ToString());
    }
    if (point == Point::kQueuesCreated) return;
    if (point == Point::kAdminInFlight) return SubmitAdminAndLeave(context, session, stats);
    // I/O in flight on every queue, some of it perhaps reaped.
    for (uint16_t q = 1; q <= queues; ++q) {
      const uint32_t count =
          static_cast<uint32_t>(context.Uniform(1, std::min<uint32_t>(kSlots, session.entries - 2)));
      absl::StatusOr<Submitted> writes = SubmitWrites(context, session, q, count, &model_);
      if (!writes.ok()) return stats.Fail("submit: ", writes.status().ToString());
      stats.operations += count;
      if (context.Uniform(0, 1) == 0) {
        Completion some[kSlots];
        absl::StatusOr<size_t> n = d.Reap(q, absl::MakeSpan(some), /*wait=*/false);
        if (!n.ok()) return stats.Fail("reap: ", n.status().ToString());
      }
    }
  }

 private:
  // Submits Identify, Get Log Page, Create I/O CQ, an Asynchronous Event
  // Request or (with queues) Delete I/O SQ 1 behind I/O, and leaves unreaped.
  void SubmitAdminAndLeave(SessionContext& context, NvmeSession& session, PatternStats& stats) {
    NvmeDriver& d = *session.driver;
    SubmissionEntry sqe = {};
    sqe.cid = session.next_cid++;
    switch (context.Uniform(0, session.queues > 0 ? 4 : 3)) {
      case 3:
        sqe.opcode = nvme::kAdminAsyncEvent;
        break;
      case 4: {
        absl::StatusOr<Submitted> writes = SubmitWrites(
            context, session, 1, std::min<uint32_t>(kSlots, session.entries - 2), &model_);
        if (!writes.ok()) return stats.Fail("submit: ", writes.status().ToString());
        sqe.opcode = nvme::kAdminDeleteSq;
        sqe.cdw10 = 1;
        break;
      }
      case 0:
        sqe.opcode = nvme::kAdminIdentify;
        sqe.cdw10 = nvme::kCnsController;
        sqe.prp1 = d.Allocate(4096);
        break;
      case 1:
        sqe.opcode = nvme::kAdminGetLogPage;
        sqe.cdw10 = nvme::kLogSmart | ((512 / 4 - 1) << 16);
        sqe.prp1 = d.Allocate(4096);
        break;
      default:
        sqe.opcode = nvme::kAdminCreateCq;
        sqe.prp1 = d.Allocate(4096, NvmeDriver::kQueueAlignment);
        sqe.cdw10 = 9 | (63u << 16);
        sqe.cdw11 = 1 | 2 | (9u << 16);
        break;
    }
    if (absl::Status s = d.Submit(0, sqe); !s.ok()) stats.Fail("admin submit: ", s.ToString());
  }

  uint64_t sessions_ = 0;
  ImageModel model_;
};

// One misbehaviour per nvme_hostile session.
enum class Misdeed {
  kUnmappedPrp,
  kBadPrpList,
  kBadDoorbellValue,
  kMissingQueueDoorbell,
  kBogusQueueCommands,
  kQueuesInUnmappedMemory,
  kDeleteWithIoInFlight,
  kUnmapWhileIo,
  kDisableWithIoInFlight,
  kGarbageIo,
  kGarbageAdmin,
  kEventRequestLimit,
  kDoorbellStorm,
  kDeviceResetWithIoInFlight,
  kShutdownWithIoInFlight,
  kBadEnable,
  kCount
};

const char* MisdeedName(Misdeed misdeed) {
  switch (misdeed) {
    case Misdeed::kUnmappedPrp: return "unmapped PRP";
    case Misdeed::kBadPrpList: return "bad PRP list";
    case Misdeed::kBadDoorbellValue: return "doorbell beyond the queue size";
    case Misdeed::kMissingQueueDoorbell: return "doorbell of a missing queue";
    case Misdeed::kBogusQueueCommands: return "bogus queue commands";
    case Misdeed::kQueuesInUnmappedMemory: return "queues in unmapped memory";
    case Misdeed::kDeleteWithIoInFlight: return "Delete I/O SQ with I/O in flight";
    case Misdeed::kUnmapWhileIo: return "DMA_UNMAP with I/O in flight";
    case Misdeed::kDisableWithIoInFlight: return "CC.EN 0 with I/O in flight";
    case Misdeed::kGarbageIo: return "garbage I/O commands";
    case Misdeed::kGarbageAdmin: return "garbage admin commands";
    case Misdeed::kEventRequestLimit: return "event requests beyond the limit";
    case Misdeed::kDoorbellStorm: return "doorbell storm with I/O in flight";
    case Misdeed::kDeviceResetWithIoInFlight: return "DEVICE_RESET with I/O in flight";
    case Misdeed::kShutdownWithIoInFlight: return "shutdown with I/O in flight";
    case Misdeed::kBadEnable: return "enable with a bad admin queue";
    case Misdeed::kCount: break;
  }
  return "?";
}

// What a misdeed leaves: whether I/O queue 1 must still work as it is, and
// whether the guest memory is gone (the sanity check then reconnects).
struct Aftermath {
  bool queue_intact = false;
  bool memory_gone = false;
};

class NvmeHostile : public Pattern {
 public:
  std::string_view name() const override { return "nvme_hostile"; }
  DeviceKind device() const override { return DeviceKind::kNvme; }
  bool hostile() const override { return true; }

  void RunSession(SessionContext& context, PatternStats& stats) override {
    const bool shared = (++sessions_ % 2) == 0;
    const bool interrupts = context.Uniform(0, 1) == 1;
    const auto misdeed =
        static_cast<Misdeed>(context.Uniform(0, static_cast<uint64_t>(Misdeed::kCount) - 1));
    const std::string what =
        absl::StrCat(MisdeedName(misdeed), " (", shared ? "fd" : "fd-less", " memory)");
    absl::StatusOr<std::unique_ptr<NvmeSession>> opened =
        OpenSession(context, stats, shared, interrupts);
    if (!opened.ok()) return stats.Fail(what, ": open: ", opened.status().ToString());
    std::unique_ptr<NvmeSession> session = *std::move(opened);
    if (absl::Status s = EnableWithQueues(context, *session, 1); !s.ok()) {
      return stats.Fail(what, ": enable: ", s.ToString());
    }
    absl::StatusOr<Aftermath> after = Misbehave(context, *session, misdeed, stats);
    ++stats.operations;
    if (!after.ok()) return stats.Fail(what, ": ", after.status().ToString());
    if (absl::Status s = CheckSane(context, session, *after, stats); !s.ok()) {
      return stats.Fail(what, ": afterwards: ", s.ToString());
    }
  }

 private:
  absl::StatusOr<Aftermath> Misbehave(SessionContext& context, NvmeSession& session,
                                      Misdeed misdeed, PatternStats& stats);
  absl::Status CheckSane(SessionContext& context, std::unique_ptr<NvmeSession>& session,
                         Aftermath after, PatternStats& stats);

  uint64_t sessions_ = 0;
};

// A command that cannot move its data completes with an error status:
// NVMe 1.4 section 4.6.1.2.1 (Generic Command Status: Data Transfer Error,
// PRP Offset Invalid); a success would mean data went nowhere.
absl::Status ExpectOneFailure(SessionContext& context, NvmeSession& session, uint16_t cid,
                              const std::string& what) {
  absl::StatusOr<std::vector<Completion>> done = ReapAll(context, session, 1, {cid});
  if (!done.ok()) return done.status();
  if ((*done)[0].status == nvme::kSuccess) {
    return absl::DataLossError(absl::StrCat(what, " completed with success"));
  }
  return absl::OkStatus();
}

// Random 64-bit address outside the session's guest memory.
uint64_t WildAddress(SessionContext& context, const NvmeDriver& d) {
  uint64_t address = (*context.rng)() & ~uint64_t{3};
  if (address >= d.iova() && address - d.iova() < d.memory_bytes()) address ^= 1ull << 63;
  return address;
}

// Waits up to the call timeout for an Asynchronous Event Request completion
// with CID `cid` on the admin queue.
absl::StatusOr<Completion> AwaitEvent(SessionContext& context, NvmeSession& session,
                                      uint16_t cid) {
  absl::StatusOr<std::vector<Completion>> done = ReapAll(context, session, 0, {cid});
  if (!done.ok()) return done.status();
  return (*done)[0];
}

absl::StatusOr<Aftermath> NvmeHostile::Misbehave(SessionContext& context, NvmeSession& session,
                                                 Misdeed misdeed, PatternStats& stats) {
  NvmeDriver& d = *session.driver;
  const uint64_t end_of_memory = d.iova() + d.memory_bytes();
  switch (misdeed) {
    case Misdeed::kUnmappedPrp: {
      // Data far from any mapping (PRP1, and PRP2 or a mapped list of
      // unmapped pages), or a transfer that runs off the end of the mapping.
      const bool read = context.Uniform(0, 1) == 1;
      const bool far = context.Uniform(0, 1) == 1;
      const uint32_t blocks =
          far ? static_cast<uint32_t>(context.Uniform(1, kMaxBlocks)) : kMaxBlocks;
      const uint64_t data = far ? kUnmappedIova + 4 * context.Uniform(0, 1023)
                                : end_of_memory - NvmeDriver::kPage;
      SubmissionEntry sqe = ReadWrite(session, read ? nvme::kNvmRead : nvme::kNvmWrite,
                                      context.Uniform(0, kImageBlocks - kMaxBlocks), blocks,
                                      session.writes[0]);
      d.SetPrps(sqe, data, uint64_t{blocks} * kLbaBytes, session.writes[0].list);
      if (absl::Status s = d.Submit(1, sqe); !s.ok()) return s;
      if (absl::Status s = ExpectOneFailure(context, session, sqe.cid, "unmapped PRP");
          !s.ok()) {
        return s;
      }
      return Aftermath{.queue_intact = true};
    }
    case Misdeed::kBadPrpList: {
      // 32 blocks at a page-aligned buffer: PRP1 and a list of 3 entries.
      const bool read = context.Uniform(0, 1) == 1;
      Slot slot = session.writes[1];
      slot.iova &= ~(NvmeDriver::kPage - 1);
      SubmissionEntry sqe = ReadWrite(session, read ? nvme::kNvmRead : nvme::kNvmWrite,
                                      context.Uniform(0, kImageBlocks - kMaxBlocks), kMaxBlocks,
                                      slot);
      auto* list = reinterpret_cast<uint64_t*>(d.Host(slot.list));
      const uint64_t entry = context.Uniform(0, 2);
      bool must_fail = true;
      switch (context.Uniform(0, 3)) {
        case 0:
          list[entry] = kUnmappedIova;
          break;
        case 1:
          list[entry] = WildAddress(context, d) & ~(NvmeDriver::kPage - 1);
          break;
        case 2:
          sqe.prp2 = kUnmappedIova;  // the list itself
          break;
        default:
          // A non-zero offset in a list entry: the controller may refuse it
          // (Invalid PRP Offset) or not; only its completion is required.
          list[entry] += 4 * context.Uniform(1, 1023);
          must_fail = false;
          break;
      }
      if (absl::Status s = d.Submit(1, sqe); !s.ok()) return s;
      if (must_fail) {
        if (absl::Status s = ExpectOneFailure(context, session, sqe.cid, "bad PRP list");
            !s.ok()) {
          return s;
        }
      } else {
        absl::StatusOr<std::vector<Completion>> done =
            ReapAll(context, session, 1, {sqe.cid});
        if (!done.ok()) return done.status();
      }
      return Aftermath{.queue_intact = true};
    }
    case Misdeed::kBadDoorbellValue:
    case Misdeed::kMissingQueueDoorbell: {
      // An event request first, so the error can be reported.
      SubmissionEntry aer = {};
      aer.opcode = nvme::kAdminAsyncEvent;
      aer.cid = 0xf000;
      if (absl::Status s = d.Submit(0, aer); !s.ok()) return s;
      uint64_t offset;
      uint32_t value;
      uint32_t expected_info;
      if (misdeed == Misdeed::kBadDoorbellValue) {
        // NVMe 1.4 section 3.1.24/3.1.25 (SQyTDBL, CQyHDBL): a value beyond
        // the queue is an invalid doorbell write value, reported by an
        // error event (section 5.2, error information 01h) when a request
        // is outstanding.
        const bool tail = context.Uniform(0, 1) == 1;
        offset = tail ? nvme::SqTailDoorbell(1) : nvme::CqHeadDoorbell(1);
        value = static_cast<uint32_t>(context.Uniform(session.entries, 0xffff));
        expected_info = nvme::kAerInfoInvalidDoorbellValue;
      } else {
        // A queue never created: write to an invalid doorbell register
        // (section 5.2, error information 00h).
        const uint16_t qid = static_cast<uint16_t>(context.Uniform(2, nvme::kMaxIoQueues));
        offset = context.Uniform(0, 1) == 1 ? nvme::SqTailDoorbell(qid) : nvme::CqHeadDoorbell(qid);
        value = static_cast<uint32_t>(context.Uniform(0, 64));
        expected_info = nvme::kAerInfoInvalidDoorbell;
      }
      if (absl::Status s = d.Write32(offset, value, context.Uniform(0, 1) == 1); !s.ok()) {
        return absl::InternalError(absl::StrCat("doorbell write refused: ", s.ToString()));
      }
      absl::StatusOr<Completion> event = AwaitEvent(context, session, aer.cid);
      if (!event.ok()) return event.status();
      const uint32_t expected = nvme::AerResult(nvme::kAerTypeError, expected_info, nvme::kLogError);
      if (event->status != nvme::kSuccess || event->dw0 != expected) {
        return absl::DataLossError(absl::StrCat("doorbell ", Hex(offset), " = ", value,
                                                ": event status ", Hex(event->status), " dw0 ",
                                                Hex(event->dw0), ", expected ", Hex(expected)));
      }
      // A doorbell past the doorbells (still BAR 0, below the MSI-X table)
      // gets a reply, whatever it says.
      (void)d.Write32(nvme::kDoorbellEnd + 4 * context.Uniform(0, 64), value);
      return Aftermath{};
    }
    case Misdeed::kBogusQueueCommands: {
      // Each with the status NVMe 1.4 sections 5.3-5.6 fix for it.
      struct Case {
        uint8_t opcode;
        uint32_t cdw10, cdw11;
        uint64_t prp1;
        uint16_t expected;
        const char* what;
      };
      const uint64_t base = d.Allocate(4096, NvmeDriver::kQueueAlignment);
      const Case cases[] = {
          // 5.3 Create I/O CQ: QID 0, beyond the queues, or in use.
          {nvme::kAdminCreateCq, 0 | (15u << 16), 1 | 2, base, nvme::kInvalidQueueId, "CQ 0"},
          {nvme::kAdminCreateCq, (nvme::kMaxIoQueues + 1) | (15u << 16), 1 | 2, base,
           nvme::kInvalidQueueId, "CQ beyond the maximum"},
          {nvme::kAdminCreateCq, 1 | (15u << 16), 1 | 2 | (1u << 16), base,
           nvme::kInvalidQueueId, "CQ 1 again"},
          // 5.3: QSIZE 0 (one entry) or beyond CAP.MQES.
          {nvme::kAdminCreateCq, 2, 1 | 2 | (2u << 16), base, nvme::kInvalidQueueSize,
           "CQ of one entry"},
          {nvme::kAdminCreateCq, 2 | (nvme::kMaxQueueEntries << 16), 1 | 2 | (2u << 16), base,
           nvme::kInvalidQueueSize, "CQ beyond MQES"},
          // 5.3: a vector the controller does not have.
          {nvme::kAdminCreateCq, 2 | (15u << 16), 1 | 2 | (200u << 16), base,
           nvme::kInvalidInterruptVector, "CQ on vector 200"},
          // 5.4 Create I/O SQ: a CQ that does not exist; QID in use.
          {nvme::kAdminCreateSq, 2 | (15u << 16), 1 | (7u << 16), base,
           nvme::kCompletionQueueInvalid, "SQ on missing CQ 7"},
          {nvme::kAdminCreateSq, 1 | (15u << 16), 1 | (1u << 16), base, nvme::kInvalidQueueId,
           "SQ 1 again"},
          // 5.5 Delete I/O CQ with its SQ still there.
          {nvme::kAdminDeleteCq, 1, 0, 0, nvme::kInvalidQueueDeletion, "Delete CQ 1 under SQ 1"},
          // 5.5 / 5.6: queues that do not exist, or the admin queue.
          {nvme::kAdminDeleteSq, 9, 0, 0, nvme::kInvalidQueueId, "Delete missing SQ 9"},
          {nvme::kAdminDeleteSq, 0, 0, 0, nvme::kInvalidQueueId, "Delete SQ 0"},
          {nvme::kAdminDeleteCq, 9, 0, 0, nvme::kInvalidQueueId, "Delete missing CQ 9"},
      };
      const uint64_t n = std::size(cases);
      for (uint64_t k = 0, first = context.Uniform(0, n - 1); k < 5; ++k) {
        const Case& c = cases[(first + k * 5) % n];
        SubmissionEntry sqe = {};
        sqe.opcode = c.opcode;
        sqe.cdw10 = c.cdw10;
        sqe.cdw11 = c.cdw11;
        sqe.prp1 = c.prp1;
        absl::StatusOr<Completion> done = d.Run(0, sqe);
        if (!done.ok()) return done.status();
        if (TypeAndCode(done->status) != TypeAndCode(c.expected)) {
          return absl::DataLossError(absl::StrCat(c.what, ": status ", Hex(done->status),
                                                  ", expected ", Hex(c.expected)));
        }
      }
      return Aftermath{.queue_intact = true};
    }
    case Misdeed::kQueuesInUnmappedMemory: {
      // Creating them need not fail (the controller cannot know); using
      // them must not hurt it. Only completions are required.
      SubmissionEntry cq = {};
      cq.opcode = nvme::kAdminCreateCq;
      cq.prp1 = kUnmappedIova;
      cq.cdw10 = 2 | (15u << 16);
      cq.cdw11 = 1 | 2 | (2u << 16);
      absl::StatusOr<Completion> done = d.Run(0, cq);
      if (!done.ok()) return done.status();
      SubmissionEntry sq = {};
      sq.opcode = nvme::kAdminCreateSq;
      sq.prp1 = context.Uniform(0, 1) == 1 ? kUnmappedIova + 0x100000
                                           : d.Allocate(4096, NvmeDriver::kQueueAlignment);
      sq.cdw10 = 2 | (15u << 16);
      sq.cdw11 = 1 | (2u << 16);
      done = d.Run(0, sq);
      if (!done.ok()) return done.status();
      if (done->status == nvme::kSuccess) {
        if (absl::Status s = d.Write32(nvme::SqTailDoorbell(2), 3, /*posted=*/true); !s.ok()) {
          return s;
        }
      }
      return Aftermath{};
    }
    case Misdeed::kDeleteWithIoInFlight: {
      const uint32_t count = std::min<uint32_t>(kSlots, session.entries - 2);
      absl::StatusOr<Submitted> writes = SubmitWrites(context, session, 1, count, nullptr);
      if (!writes.ok()) return writes.status();
      SubmissionEntry del = {};
      del.opcode = nvme::kAdminDeleteSq;
      del.cdw10 = 1;
      absl::StatusOr<Completion> done = d.Run(0, del);
      if (!done.ok()) return done.status();
      // NVMe 1.4 section 5.6: deleting an existing I/O SQ succeeds.
      if (done->status != nvme::kSuccess) {
        return absl::DataLossError(absl::StrCat("Delete I/O SQ 1: status ", Hex(done->status)));
      }
      // Its commands completed (success) or aborted (08h), or implicitly
      // aborted without a completion; never completed otherwise or twice.
      Completion seen[kSlots + 2];
      absl::StatusOr<size_t> n = d.Reap(1, absl::MakeSpan(seen), /*wait=*/false);
      if (!n.ok()) return n.status();
      for (size_t i = 0; i < *n; ++i) {
        if (writes->cids.erase(seen[i].cid) != 1 ||
            (seen[i].status != nvme::kSuccess &&
             TypeAndCode(seen[i].status) != TypeAndCode(nvme::kAbortedSqDeletion))) {
          return absl::DataLossError(absl::StrCat("after Delete I/O SQ: completion cid ",
                                                  seen[i].cid, " status ",
                                                  Hex(seen[i].status)));
        }
      }
      SubmissionEntry del_cq = {};
      del_cq.opcode = nvme::kAdminDeleteCq;
      del_cq.cdw10 = 1;
      done = d.Run(0, del_cq);
      if (!done.ok()) return done.status();
      if (done->status != nvme::kSuccess) {
        return absl::DataLossError(absl::StrCat("Delete I/O CQ 1: status ", Hex(done->status)));
      }
      return Aftermath{};
    }
    case Misdeed::kUnmapWhileIo: {
      const uint32_t count = std::min<uint32_t>(kSlots, session.entries - 2);
      absl::StatusOr<Submitted> writes = SubmitWrites(context, session, 1, count, nullptr);
      if (!writes.ok()) return writes.status();
      // A valid unmap of the whole mapping: vfio-user says it succeeds.
      if (absl::Status s = session.client->DmaUnmap(d.iova(), d.memory_bytes()); !s.ok()) {
        return absl::InternalError(absl::StrCat("DMA_UNMAP: ", s.ToString()));
      }
      return Aftermath{.memory_gone = true};
    }
    case Misdeed::kDisableWithIoInFlight: {
      const uint32_t count = std::min<uint32_t>(kSlots, session.entries - 2);
      absl::StatusOr<Submitted> writes = SubmitWrites(context, session, 1, count, nullptr);
      if (!writes.ok()) return writes.status();
      // NVMe 1.4 section 3.1.1 (CAP.TO): RDY follows CC.EN 1 -> 0 within TO
      // whatever is in flight.
      if (absl::Status s = d.Disable(); !s.ok()) return s;
      return Aftermath{};
    }
    case Misdeed::kGarbageIo:
    case Misdeed::kGarbageAdmin: {
      const bool admin = misdeed == Misdeed::kGarbageAdmin;
      const uint16_t qid = admin ? 0 : 1;
      static constexpr uint8_t kIoOpcodes[] = {nvme::kNvmFlush, nvme::kNvmWrite, nvme::kNvmRead,
                                               nvme::kNvmWriteZeroes,
                                               nvme::kNvmDatasetManagement};
      static constexpr uint8_t kAdminOpcodes[] = {
          nvme::kAdminDeleteSq,     nvme::kAdminCreateSq,   nvme::kAdminGetLogPage,
          nvme::kAdminDeleteCq,     nvme::kAdminCreateCq,   nvme::kAdminIdentify,
          nvme::kAdminAbort,        nvme::kAdminSetFeatures, nvme::kAdminGetFeatures,
          nvme::kAdminKeepAlive,    nvme::kAdminDoorbellBufferConfig};
      const uint32_t count = static_cast<uint32_t>(context.Uniform(2, admin ? 12 : session.entries - 2));
      std::set<uint16_t> cids;
      for (uint32_t i = 0; i < count; ++i) {
        SubmissionEntry sqe;
        FillRandom(context, absl::MakeSpan(reinterpret_cast<uint8_t*>(&sqe), sizeof sqe));
        const uint64_t pick = context.Uniform(0, 3);
        if (pick != 0) {
          sqe.opcode = admin ? kAdminOpcodes[context.Uniform(0, std::size(kAdminOpcodes) - 1)]
                             : kIoOpcodes[context.Uniform(0, std::size(kIoOpcodes) - 1)];
        }
        // Asynchronous Event Requests complete only on an event.
        if (sqe.opcode == nvme::kAdminAsyncEvent && admin) sqe.opcode = nvme::kAdminKeepAlive;
        if (context.Uniform(0, 1) == 1) sqe.nsid = static_cast<uint32_t>(context.Uniform(0, 2));
        // Data pointers never into our own memory (it holds our queues).
        sqe.prp1 = WildAddress(context, d);
        sqe.prp2 = WildAddress(context, d);
        sqe.cid = session.next_cid++;
        cids.insert(sqe.cid);
        if (absl::Status s = d.Submit(qid, sqe, /*ring=*/false); !s.ok()) return s;
      }
      if (absl::Status s = d.RingSubmission(qid); !s.ok()) return s;
      // NVMe 1.4 section 4.6: every command fetched is completed by an entry
      // in its completion queue (an Asynchronous Event Request excepted).
      absl::StatusOr<std::vector<Completion>> done = ReapAll(context, session, qid, cids);
      if (!done.ok()) return done.status();
      stats.operations += count;
      return Aftermath{.queue_intact = !admin};
    }
    case Misdeed::kEventRequestLimit: {
      // NVMe 1.4 section 5.2: requests beyond AERL + 1 outstanding complete
      // with Asynchronous Event Request Limit Exceeded; the others wait.
      const uint32_t excess = static_cast<uint32_t>(context.Uniform(1, 3));
      std::set<uint16_t> beyond;
      for (uint32_t i = 0; i < nvme::kAerLimit + excess; ++i) {
        SubmissionEntry aer = {};
        aer.opcode = nvme::kAdminAsyncEvent;
        aer.cid = static_cast<uint16_t>(0xf000 + i);
        if (i >= nvme::kAerLimit) beyond.insert(aer.cid);
        if (absl::Status s = d.Submit(0, aer, /*ring=*/false); !s.ok()) return s;
      }
      if (absl::Status s = d.RingSubmission(0); !s.ok()) return s;
      absl::StatusOr<std::vector<Completion>> done = ReapAll(context, session, 0, beyond);
      if (!done.ok()) return done.status();
      for (const Completion& c : *done) {
        if (TypeAndCode(c.status) != TypeAndCode(nvme::kAerLimitExceeded)) {
          return absl::DataLossError(absl::StrCat("event request ", c.cid - 0xf000 + 1,
                                                  " of ", nvme::kAerLimit + excess, ": status ",
                                                  Hex(c.status)));
        }
      }
      return Aftermath{.queue_intact = true};
    }
    case Misdeed::kDoorbellStorm: {
      const uint32_t count = std::min<uint32_t>(kSlots, session.entries - 2);
      absl::StatusOr<Submitted> writes = SubmitWrites(context, session, 1, count, nullptr);
      if (!writes.ok()) return writes.status();
      const uint32_t storm = std::min<uint32_t>(context.scale.burst, 300);
      for (uint32_t i = 0; i < storm; ++i) {
        const uint64_t offset = nvme::kDoorbellBase + 4 * context.Uniform(0, 2 * nvme::kMaxIoQueues + 1);
        const uint32_t value = static_cast<uint32_t>(
            context.Uniform(0, 1) == 1 ? context.Uniform(0, session.entries) : (*context.rng)());
        if (absl::Status s = d.Write32(offset, value, /*posted=*/true); !s.ok()) return s;
      }
      stats.operations += storm;
      return Aftermath{};
    }
    case Misdeed::kDeviceResetWithIoInFlight: {
      const uint32_t count = std::min<uint32_t>(kSlots, session.entries - 2);
      absl::StatusOr<Submitted> writes = SubmitWrites(context, session, 1, count, nullptr);
      if (!writes.ok()) return writes.status();
      if (absl::Status s = session.client->Reset(); !s.ok()) {
        return absl::InternalError(absl::StrCat("DEVICE_RESET: ", s.ToString()));
      }
      // DEVICE_RESET is a function-level reset: registers return to their
      // reset values (NVMe 1.4 section 3.1.5: CC resets to 0), and RDY
      // follows within CAP.TO (section 3.1.1).
      absl::StatusOr<uint32_t> cc = d.Read32(nvme::kRegCc);
      if (!cc.ok()) return cc.status();
      if ((*cc & nvme::kCcEnable) != 0) {
        return absl::DataLossError(absl::StrCat("CC ", Hex(*cc), " after DEVICE_RESET"));
      }
      if (absl::Status s = d.WaitForCsts(nvme::kCstsReady | nvme::kCstsFatal, 0); !s.ok()) {
        return absl::DataLossError(absl::StrCat("after DEVICE_RESET: ", s.ToString()));
      }
      return Aftermath{};
    }
    case Misdeed::kShutdownWithIoInFlight: {
      const uint32_t count = std::min<uint32_t>(kSlots, session.entries - 2);
      absl::StatusOr<Submitted> writes = SubmitWrites(context, session, 1, count, nullptr);
      if (!writes.ok()) return writes.status();
      // NVMe 1.4 section 7.6.2: shutdown processing ends with SHST 10b.
      if (absl::Status s = d.Shutdown(); !s.ok()) return s;
      // Commands after a shutdown may fail; each still gets its completion.
      return Aftermath{};
    }
    case Misdeed::kBadEnable: {
      if (absl::Status s = d.Disable(); !s.ok()) return s;
      // One-entry admin queues (AQA 0), or queues in unmapped memory; what
      // the controller makes of it (RDY, CFS, neither) is its business, but
      // it must answer and come back with the next reset.
      const bool tiny = context.Uniform(0, 1) == 1;
      absl::Status s = d.Write32(nvme::kRegAqa, tiny ? 0 : (15u | (15u << 16)));
      const uint64_t base = tiny ? d.iova() : kUnmappedIova;
      for (uint64_t reg : {nvme::kRegAsq, nvme::kRegAcq}) {
        if (s.ok()) s = d.Write32(reg, static_cast<uint32_t>(base));
        if (s.ok()) s = d.Write32(reg + 4, static_cast<uint32_t>(base >> 32));
      }
      if (s.ok()) s = d.Write32(nvme::kRegCc, (6u << 16) | (4u << 20) | nvme::kCcEnable);
      if (s.ok()) s = d.Write32(nvme::SqTailDoorbell(0), 1, /*posted=*/true);
      if (!s.ok()) return s;
      absl::StatusOr<uint32_t> csts = d.Read32(nvme::kRegCsts);
      if (!csts.ok()) return csts.status();
      return Aftermath{};
    }
    case Misdeed::kCount:
      break;
  }
  return Aftermath{};
}

absl::Status NvmeHostile::CheckSane(SessionContext& context,
                                    std::unique_ptr<NvmeSession>& session, Aftermath after,
                                    PatternStats& stats) {
  if (after.memory_gone) {
    // The guest memory is gone: leave, and a new client must be served.
    const bool shared = session->shared;
    session.reset();
    absl::StatusOr<std::unique_ptr<NvmeSession>> opened =
        OpenSession(context, stats, !shared, context.Uniform(0, 1) == 1);
    if (!opened.ok()) return absl::UnavailableError(absl::StrCat("reconnect: ", opened.status().ToString()));
    session = *std::move(opened);
    if (absl::Status s = EnableWithQueues(context, *session, 1); !s.ok()) return s;
    return VerifiedRound(context, *session, 1, nullptr, stats);
  }
  NvmeDriver& d = *session->driver;
  absl::StatusOr<uint32_t> csts = d.Read32(nvme::kRegCsts);
  if (!csts.ok()) return csts.status();
  if (after.queue_intact && (*csts & nvme::kCstsFatal) == 0) {
    // A command that failed leaves its queue working: good I/O on it now.
    if (absl::Status s = VerifiedRound(context, *session, 1, nullptr, stats); !s.ok()) {
      return absl::DataLossError(absl::StrCat("queue 1 afterwards: ", s.ToString()));
    }
  }
  // A controller reset clears RDY and CFS within CAP.TO (NVMe 1.4 section
  // 3.1.1 CAP.TO, 3.1.6 CSTS; section 7.3.2 controller level reset), and
  // the controller then works again.
  if (absl::Status s = d.Disable(); !s.ok()) {
    return absl::DataLossError(absl::StrCat("reset (CSTS was ", Hex(*csts), "): ", s.ToString()));
  }
  if (absl::Status s = EnableWithQueues(context, *session, 1); !s.ok()) {
    return absl::DataLossError(absl::StrCat("enable after reset: ", s.ToString()));
  }
  return VerifiedRound(context, *session, 1, nullptr, stats);
}

}  // namespace

void ProbeNvme(Client& client, PatternStats& stats) {
  absl::StatusOr<std::vector<uint8_t>> cap = client.RegionRead(kBar0Region, nvme::kRegCap, 8);
  absl::StatusOr<uint32_t> vs = Read32(client, kBar0Region, nvme::kRegVs);
  absl::StatusOr<uint32_t> cc = Read32(client, kBar0Region, nvme::kRegCc);
  absl::StatusOr<uint32_t> csts = Read32(client, kBar0Region, nvme::kRegCsts);
  if (!cap.ok() || cap->size() != 8 || !vs.ok() || !cc.ok() || !csts.ok()) {
    return stats.Fail("after a session, the nvme registers could not be read");
  }
  uint64_t cap_value;
  std::memcpy(&cap_value, cap->data(), 8);
  if (cap_value != nvme::kCapValue || *vs != nvme::kVersion14) {
    return stats.Fail("after a session, CAP ", Hex(cap_value), " VS ", Hex(*vs));
  }
  if ((*cc & nvme::kCcEnable) != 0 || (*csts & (nvme::kCstsReady | nvme::kCstsFatal)) != 0) {
    stats.Fail("after a session, a new client found CC ", Hex(*cc), " CSTS ", Hex(*csts),
               " (not reset)");
  }
}

std::vector<std::unique_ptr<Pattern>> NvmePatterns() {
  std::vector<std::unique_ptr<Pattern>> patterns;
  patterns.push_back(std::make_unique<GoodNvme>());
  patterns.push_back(std::make_unique<NvmeAbruptClose>());
  patterns.push_back(std::make_unique<NvmeHostile>());
  return patterns;
}

}  // namespace vfu::soak
