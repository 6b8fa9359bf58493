// MigratingDevice: a small Device for tests and fuzzers of the migration
// and quiesce paths. Region 0 is 64 bytes of memory; its migration stream
// is those bytes (half of them offered in PRE_COPY, the rest in STOP_COPY),
// and a stream written in RESUMING must be exactly 64 bytes to be applied at
// RESUMING -> STOP. It records the arcs and quiesces it sees, can fail a
// chosen arc, and quiesces at once, later (the test completes), with an
// error, or by dropping its completion.
//
// Thread-safe: a test may complete a deferred quiesce from its own thread.
#ifndef VFU_ENGINE_TESTING_MIGRATING_DEVICE_H_
#define VFU_ENGINE_TESTING_MIGRATING_DEVICE_H_

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "vfu/device/device.h"
#include "vfu/device/migration_state.h"
#include "vfu/wire/errno_status.h"

namespace vfu::testing {

class MigratingDevice : public Device {
 public:
  static constexpr size_t kStateSize = 64;

  enum class QuiesceMode { kImmediate, kDeferred, kFail, kDrop };

  struct Arc {
    MigrationState from;
    MigrationState to;
    friend bool operator==(const Arc&, const Arc&) = default;
  };

  // ---- Test controls ----
  void set_migratable(bool on) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    migratable_ = on;
  }
  void set_quiesce_mode(QuiesceMode mode, absl::Status failure = absl::OkStatus())
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    quiesce_mode_ = mode;
    quiesce_failure_ = std::move(failure);
  }
  // Makes arc `from` -> `to` fail with `status`.
  void FailArc(MigrationState from, MigrationState to, absl::Status status)
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    failing_arc_ = Arc{from, to};
    arc_failure_ = std::move(status);
  }
  // Completes a deferred quiesce (false if none is held).
  bool CompleteQuiesce(absl::Status status) ABSL_LOCKS_EXCLUDED(mu_) {
    QuiesceDone done;
    {
      absl::MutexLock lock(&mu_);
      if (!held_done_) return false;
      done = std::move(*held_done_);
      held_done_.reset();
      if (status.ok()) quiesced_ = true;
    }
    std::move(done)(std::move(status));
    return true;
  }
  // Blocks until a deferred quiesce is held.
  void AwaitHeldQuiesce() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](std::optional<QuiesceDone>* held) { return held->has_value(); }, &held_done_));
  }

  // ---- Observations ----
  std::vector<Arc> arcs() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return arcs_;
  }
  void ClearLog() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    arcs_.clear();
    events_.clear();
  }
  // "quiesce <reason>", "unquiesce", "map", "unmap (quiesced)", "reset",
  // "write", ... in order.
  std::vector<std::string> events() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  bool quiesced() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return quiesced_;
  }
  std::array<uint8_t, kStateSize> memory() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return memory_;
  }

  // ---- Device ----
  RegionDescription DescribeRegion(uint32_t index) const override {
    if (index != 0) return {};
    return {.size = kStateSize, .readable = true, .writable = true};
  }
  absl::Status ReadRegion(uint32_t, uint64_t offset, absl::Span<uint8_t> out) override
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    std::memcpy(out.data(), memory_.data() + offset, out.size());
    return absl::OkStatus();
  }
  absl::Status WriteRegion(uint32_t, uint64_t offset, absl::Span<const uint8_t> data) override
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    std::memcpy(memory_.data() + offset, data.data(), data.size());
    events_.push_back(quiesced_ ? "write (quiesced)" : "write");
    return absl::OkStatus();
  }
  absl::Status Reset() override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    events_.push_back(quiesced_ ? "reset (quiesced)" : "reset");
    saving_ = false;
    incoming_.clear();
    return absl::OkStatus();
  }
  // Byte 0 of region 0 set to 0xf1 is this device's "function-level reset".
  bool IsFunctionLevelReset(uint32_t region, uint64_t offset,
                            absl::Span<const uint8_t> data) const override {
    return region == 0 && offset == 0 && !data.empty() && data[0] == 0xf1;
  }
  void OnDmaMapped(const DmaRange&) override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    events_.push_back(quiesced_ ? "map (quiesced)" : "map");
  }
  void OnDmaUnmapped(const DmaRange&) override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    events_.push_back(quiesced_ ? "unmap (quiesced)" : "unmap");
  }
  void OnDetach() override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    events_.push_back(quiesced_ ? "detach (quiesced)" : "detach");
  }

  void Quiesce(QuiesceReason reason, QuiesceDone done) override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::Status result;
    {
      absl::MutexLock lock(&mu_);
      events_.push_back(std::string("quiesce ") + std::string(QuiesceReasonName(reason)));
      switch (quiesce_mode_) {
        case QuiesceMode::kImmediate:
          quiesced_ = true;
          break;
        case QuiesceMode::kDeferred:
          held_done_.emplace(std::move(done));
          return;
        case QuiesceMode::kFail:
          result = quiesce_failure_;
          break;
        case QuiesceMode::kDrop:
          return;  // `done` destroyed unanswered
      }
    }
    std::move(done)(std::move(result));
  }
  void Unquiesce() override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    events_.push_back("unquiesce");
    quiesced_ = false;
  }

  bool SupportsMigration() const override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return migratable_;
  }
  absl::Status OnMigrationArc(MigrationState from, MigrationState to) override
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    arcs_.push_back({from, to});
    if (failing_arc_ && *failing_arc_ == Arc{from, to}) return arc_failure_;
    if (to == MigrationState::kPreCopy || (from == MigrationState::kStop &&
                                           to == MigrationState::kStopCopy)) {
      // Begin saving: a snapshot of the memory.
      saving_ = true;
      outgoing_ = memory_;
      cursor_ = 0;
    }
    if (to == MigrationState::kStopCopy) {
      outgoing_ = memory_;  // bytes not read yet come from the stopped state
      limit_ = kStateSize;
    } else if (to == MigrationState::kPreCopy) {
      limit_ = kStateSize / 2;
    }
    if (to == MigrationState::kStop || to == MigrationState::kRunning) saving_ = false;
    if (to == MigrationState::kResuming) incoming_.clear();
    if (from == MigrationState::kResuming) {
      if (incoming_.size() != kStateSize) {
        return wire::WireError(EBADMSG, "incomplete migration stream");
      }
      std::copy(incoming_.begin(), incoming_.end(), memory_.begin());
    }
    return absl::OkStatus();
  }
  absl::StatusOr<size_t> ReadMigrationData(absl::Span<uint8_t> out) override
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (!saving_) return wire::WireError(EINVAL, "not saving");
    const size_t n = std::min(out.size(), limit_ - std::min(limit_, cursor_));
    std::memcpy(out.data(), outgoing_.data() + cursor_, n);
    cursor_ += n;
    return n;
  }
  absl::Status WriteMigrationData(absl::Span<const uint8_t> data) override
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (data.size() > kStateSize - incoming_.size()) {
      return wire::WireError(EFBIG, "migration stream longer than the device state");
    }
    incoming_.insert(incoming_.end(), data.begin(), data.end());
    return absl::OkStatus();
  }
  uint64_t MigrationDataEstimate() override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return saving_ ? limit_ - std::min(limit_, cursor_) : 0;
  }

 private:
  mutable absl::Mutex mu_;
  bool migratable_ ABSL_GUARDED_BY(mu_) = true;
  QuiesceMode quiesce_mode_ ABSL_GUARDED_BY(mu_) = QuiesceMode::kImmediate;
  absl::Status quiesce_failure_ ABSL_GUARDED_BY(mu_);
  std::optional<QuiesceDone> held_done_ ABSL_GUARDED_BY(mu_);
  bool quiesced_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<Arc> failing_arc_ ABSL_GUARDED_BY(mu_);
  absl::Status arc_failure_ ABSL_GUARDED_BY(mu_);
  std::vector<Arc> arcs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
  std::array<uint8_t, kStateSize> memory_ ABSL_GUARDED_BY(mu_) = {};
  bool saving_ ABSL_GUARDED_BY(mu_) = false;
  std::array<uint8_t, kStateSize> outgoing_ ABSL_GUARDED_BY(mu_) = {};
  size_t cursor_ ABSL_GUARDED_BY(mu_) = 0;
  size_t limit_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<uint8_t> incoming_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vfu::testing

#endif  // VFU_ENGINE_TESTING_MIGRATING_DEVICE_H_
