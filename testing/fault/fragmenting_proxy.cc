#include "testing/fault/fragmenting_proxy.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <random>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "vfu/base/log.h"
#include "vfu/base/syscalls.h"
#include "vfu/server/unix_listener.h"
#include "vfu/transport/message.h"
#include "vfu/transport/message_reader.h"

namespace vfu::testing {
namespace {

// Most iovecs in one sendmsg. A coalesced fragment spanning more messages
// than this goes out in several calls, like a short write.
constexpr size_t kMaxIovecs = 64;

// One direction of one connection: reassembles messages from the source
// socket and re-sends them to the destination in policy-chosen fragments.
//
//   queue_: [ front (offset_ bytes of it sent) | msg | msg | ... ]
//            |<- current fragment: fragment_left_ bytes from offset_ ->|
//
// A fragment may cover the tail of the front message and bytes of the
// messages behind it (kRandomChunks with coalescing).
//
// Proxy thread only.
class Relay {
 public:
  enum class SendResult {
    // Everything queued has been sent.
    kIdle,
    // The destination is full: wait for POLLOUT.
    kBlocked,
    // Waiting out a pause before the next fragment: see wake_time().
    kPaused,
    // The destination is gone or sendmsg failed.
    kFailed,
  };

  Relay(const FragmentPolicy& policy, const FragmentingProxy::Options& options,
        uint64_t connection_number, uint32_t direction)
      : policy_(policy),
        max_buffered_bytes_(options.max_buffered_bytes),
        reader_(options.max_message_size, options.max_fds_per_message) {
    std::seed_seq seq{static_cast<uint32_t>(policy.seed), static_cast<uint32_t>(policy.seed >> 32),
                      static_cast<uint32_t>(connection_number), direction};
    rng_.seed(seq);
  }

  bool source_closed() const { return source_closed_; }
  bool idle() const { return queue_.empty(); }
  // Whether to poll the source for POLLIN (not after EOF, nor while too
  // much waits to be sent: back-pressure).
  bool wants_read() const { return !source_closed_ && queued_bytes_ < max_buffered_bytes_; }
  // Whether to poll the destination for POLLOUT.
  bool blocked() const { return blocked_; }
  // When a paused relay wants to send again; InfiniteFuture otherwise.
  absl::Time wake_time() const {
    return !queue_.empty() && fragment_left_ == 0 ? resume_at_ : absl::InfiniteFuture();
  }

  // Counters since the last TakeStats().
  FragmentingProxy::DirectionStats TakeStats() { return std::exchange(stats_, {}); }

  // Reads what the source has and queues the complete messages.
  //   OK           the source would block
  //   Unavailable  the source disconnected (source_closed() is now true)
  //   other        a message the proxy cannot relay faithfully; close
  absl::Status ReadFrom(int fd) {
    std::vector<InboundMessage> messages;
    absl::Status status = reader_.ReadAvailable(fd, PosixSyscalls::Instance(), messages);
    for (InboundMessage& m : messages) {
      if (m.oversized) {
        return absl::ResourceExhaustedError(
            absl::StrCat("message of ", m.header.msg_size, " bytes is above the proxy's limit"));
      }
      if (m.fds_truncated) {
        return absl::ResourceExhaustedError("message lost fds to MSG_CTRUNC");
      }
      queued_bytes_ += m.bytes.size();
      queue_.push_back(OutboundMessage{std::move(m.bytes), std::move(m.fds)});
    }
    if (absl::IsUnavailable(status)) {
      source_closed_ = true;
      if (reader_.assembler().buffered_bytes() > 0) {
        VFU_LOG(kDebug, "proxy: dropping ", reader_.assembler().buffered_bytes(),
                " bytes of an incomplete message at disconnect");
      }
    }
    return status;
  }

  // Sends fragments until the queue is empty, the destination is full, or
  // a pause starts. `now` times the pauses.
  SendResult SendTo(int fd, absl::Time now) {
    blocked_ = false;
    while (!queue_.empty()) {
      if (fragment_left_ == 0) {
        if (now < resume_at_) return SendResult::kPaused;
        StartFragment();
      }

      // Gather the rest of the fragment, from offset_ in the front message.
      struct iovec iov[kMaxIovecs];
      size_t count = 0;
      size_t gathered = 0;
      size_t skip = offset_;
      for (size_t i = 0; i < queue_.size() && count < kMaxIovecs && gathered < fragment_left_;
           ++i) {
        std::vector<uint8_t>& bytes = queue_[i].bytes;
        const size_t take = std::min(bytes.size() - skip, fragment_left_ - gathered);
        iov[count++] = {bytes.data() + skip, take};
        gathered += take;
        skip = 0;
      }

      struct msghdr msg = {};
      msg.msg_iov = iov;
      msg.msg_iovlen = count;
      // The planner never lets a fragment that starts a message with fds
      // extend into another message, so these fds travel with bytes of
      // their own message only, the first of them leading.
      OutboundMessage& front = queue_.front();
      const bool with_fds = offset_ == 0 && !front.fds.empty();
      if (with_fds) {
        const size_t fd_bytes = sizeof(int) * front.fds.size();
        control_.assign(CMSG_SPACE(fd_bytes), 0);
        msg.msg_control = control_.data();
        msg.msg_controllen = control_.size();
        struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(fd_bytes);
        for (size_t i = 0; i < front.fds.size(); ++i) {
          const int raw = front.fds[i].get();
          std::memcpy(CMSG_DATA(c) + i * sizeof(int), &raw, sizeof raw);
        }
      }

      SyscallResult r = PosixSyscalls::Instance().SendMsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (r.would_block()) {
        blocked_ = true;
        return SendResult::kBlocked;
      }
      if (!r.ok()) {
        if (r.error != EPIPE && r.error != ECONNRESET) {
          VFU_LOG(kWarning, "proxy: sendmsg failed: ", std::strerror(r.error));
        }
        return SendResult::kFailed;
      }

      ++stats_.sendmsg_calls;
      size_t written = static_cast<size_t>(r.value);
      stats_.bytes += written;
      if (with_fds) {
        // The kernel took the fds with the first byte; our copies can close.
        stats_.fds += front.fds.size();
        front.fds.clear();
      }
      fragment_left_ -= written;
      while (written > 0) {
        const size_t left = queue_.front().bytes.size() - offset_;
        if (written < left) {
          offset_ += written;
          break;
        }
        written -= left;
        offset_ = 0;
        queued_bytes_ -= queue_.front().bytes.size();
        queue_.pop_front();
        ++stats_.messages;
      }
      if (fragment_left_ == 0) resume_at_ = now + NextPause();
    }
    return SendResult::kIdle;
  }

 private:
  // Cuts the next fragment, starting at offset_ of the front message.
  void StartFragment() {
    const OutboundMessage& front = queue_.front();
    const size_t size = front.bytes.size();
    const size_t rest = size - offset_;
    size_t length = rest;
    switch (policy_.mode) {
      case FragmentPolicy::Mode::kWhole:
        break;
      case FragmentPolicy::Mode::kOneByte:
        length = 1;
        break;
      case FragmentPolicy::Mode::kSplitAt:
        // Messages are at least a header long, so size - 1 >= 15.
        if (offset_ == 0) length = (split_count_++ % (size - 1)) + 1;
        break;
      case FragmentPolicy::Mode::kRandomChunks: {
        const size_t chunk = std::uniform_int_distribution<size_t>(
            1, std::max<size_t>(policy_.max_chunk, 1))(rng_);
        size_t limit = rest;
        // Coalesce only half the time, so fragments also end exactly at
        // message boundaries. fds must lead their sendmsg and own it alone:
        // never coalesce from a fragment carrying fds, nor into one.
        const bool carries_fds = offset_ == 0 && !front.fds.empty();
        if (policy_.coalesce && !carries_fds && rng_() % 2 == 0) {
          for (size_t i = 1; i < queue_.size() && limit < chunk; ++i) {
            if (!queue_[i].fds.empty()) break;
            limit += queue_[i].bytes.size();
          }
        }
        length = std::min(chunk, limit);
        break;
      }
    }
    fragment_left_ = length;
    ++stats_.fragments;
    if (length > rest) ++stats_.coalesced_fragments;
  }

  absl::Duration NextPause() {
    if (policy_.mode != FragmentPolicy::Mode::kRandomChunks ||
        policy_.max_pause <= absl::ZeroDuration()) {
      return absl::ZeroDuration();
    }
    const int64_t max_ns = absl::ToInt64Nanoseconds(policy_.max_pause);
    return absl::Nanoseconds(std::uniform_int_distribution<int64_t>(0, max_ns)(rng_));
  }

  const FragmentPolicy policy_;
  const size_t max_buffered_bytes_;
  MessageReader reader_;
  std::mt19937_64 rng_;

  std::deque<OutboundMessage> queue_;
  size_t queued_bytes_ = 0;
  size_t offset_ = 0;
  size_t fragment_left_ = 0;
  // Messages started so far (kSplitAt's i).
  uint64_t split_count_ = 0;
  absl::Time resume_at_ = absl::InfinitePast();
  bool source_closed_ = false;
  bool blocked_ = false;
  std::vector<char> control_;
  FragmentingProxy::DirectionStats stats_;
};

void AddStats(FragmentingProxy::DirectionStats& total,
              const FragmentingProxy::DirectionStats& delta) {
  total.messages += delta.messages;
  total.bytes += delta.bytes;
  total.fragments += delta.fragments;
  total.coalesced_fragments += delta.coalesced_fragments;
  total.sendmsg_calls += delta.sendmsg_calls;
  total.fds += delta.fds;
}

}  // namespace

// A client socket, its upstream socket, and the two relays between them.
// Proxy thread only.
class FragmentingProxy::Connection {
 public:
  Connection(UniqueFd client, UniqueFd upstream, const Options& options, uint64_t number)
      : client_(std::move(client)),
        upstream_(std::move(upstream)),
        to_upstream_(options.to_upstream, options, number, 0),
        to_client_(options.to_client, options, number, 1) {}

  // Appends this connection's two pollfds (client, then upstream) and
  // lowers `wake_at` to the end of any pause.
  void AddPollFds(std::vector<struct pollfd>& pollfds, absl::Time& wake_at) {
    AddPollFd(pollfds, client_.get(), to_upstream_, to_client_);
    AddPollFd(pollfds, upstream_.get(), to_client_, to_upstream_);
    wake_at = std::min({wake_at, to_upstream_.wake_time(), to_client_.wake_time()});
  }

  // Moves data after ppoll() returned `client_revents` and `upstream_revents`
  // for this connection's sockets. Returns false when the pair must close.
  bool Service(short client_revents, short upstream_revents, absl::Time now) {
    if (!Read(to_upstream_, client_.get(), client_revents, "client")) return false;
    if (!Read(to_client_, upstream_.get(), upstream_revents, "upstream")) return false;
    if (!Send(to_upstream_, upstream_.get(), upstream_revents, now)) return false;
    if (!Send(to_client_, client_.get(), client_revents, now)) return false;
    // A side that disconnected has had everything it sent delivered: pass
    // the disconnect on.
    if (to_upstream_.source_closed() && to_upstream_.idle()) return false;
    if (to_client_.source_closed() && to_client_.idle()) return false;
    return true;
  }

  void TakeStats(DirectionStats& to_upstream, DirectionStats& to_client) {
    AddStats(to_upstream, to_upstream_.TakeStats());
    AddStats(to_client, to_client_.TakeStats());
  }

 private:
  static void AddPollFd(std::vector<struct pollfd>& pollfds, int fd, const Relay& from,
                        const Relay& to) {
    short events = 0;
    if (from.wants_read()) events |= POLLIN;
    if (to.blocked()) events |= POLLOUT;
    // A negative fd is skipped, so a hung-up socket we are not waiting on
    // cannot make ppoll() spin on POLLHUP.
    pollfds.push_back({events != 0 ? fd : -1, events, 0});
  }

  static bool Read(Relay& relay, int fd, short revents, const char* side) {
    if ((revents & (POLLIN | POLLHUP | POLLERR)) == 0 || !relay.wants_read()) return true;
    absl::Status status = relay.ReadFrom(fd);
    if (status.ok() || absl::IsUnavailable(status)) return true;
    VFU_LOG(kWarning, "proxy: closing the connection: ", side, ": ", status.ToString());
    return false;
  }

  static bool Send(Relay& relay, int fd, short revents, absl::Time now) {
    if (relay.blocked() && (revents & (POLLOUT | POLLHUP | POLLERR)) == 0) return true;
    return relay.SendTo(fd, now) != Relay::SendResult::kFailed;
  }

  UniqueFd client_;
  UniqueFd upstream_;
  Relay to_upstream_;
  Relay to_client_;
};

FragmentingProxy::FragmentingProxy(Options options) : options_(std::move(options)) {}

FragmentingProxy::~FragmentingProxy() { Stop(); }

absl::Status FragmentingProxy::Start() {
  if (started_) return absl::FailedPreconditionError("FragmentingProxy started twice");
  absl::StatusOr<WakeupFd> wakeup = WakeupFd::Create();
  if (!wakeup.ok()) return wakeup.status();
  absl::StatusOr<UniqueFd> listen_fd = ListenUnix(options_.listen_path);
  if (!listen_fd.ok()) return listen_fd.status();
  started_ = true;
  wakeup_ = std::make_unique<WakeupFd>(*std::move(wakeup));
  listen_fd_ = *std::move(listen_fd);
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void FragmentingProxy::Stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  absl::Status status = wakeup_->Wake();
  if (!status.ok()) VFU_LOG(kError, "proxy: cannot wake the proxy thread: ", status.ToString());
  thread_.join();
  listen_fd_.reset();
  UnlinkSocketPath(options_.listen_path);
}

FragmentingProxy::Stats FragmentingProxy::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void FragmentingProxy::Run() {
  std::vector<std::unique_ptr<Connection>> connections;
  std::vector<struct pollfd> pollfds;
  while (true) {
    pollfds.clear();
    pollfds.push_back({wakeup_->fd(), POLLIN, 0});
    pollfds.push_back({listen_fd_.get(), POLLIN, 0});
    absl::Time wake_at = absl::InfiniteFuture();
    for (const std::unique_ptr<Connection>& c : connections) c->AddPollFds(pollfds, wake_at);

    struct timespec timeout;
    struct timespec* timeout_ptr = nullptr;
    if (wake_at != absl::InfiniteFuture()) {
      timeout = absl::ToTimespec(std::max(wake_at - absl::Now(), absl::ZeroDuration()));
      timeout_ptr = &timeout;
    }
    if (::ppoll(pollfds.data(), pollfds.size(), timeout_ptr, nullptr) < 0) {
      if (errno == EINTR) continue;
      VFU_LOG(kError, "proxy: ppoll failed: ", std::strerror(errno));
      break;
    }
    if (pollfds[0].revents != 0) break;  // Stop()

    const absl::Time now = absl::Now();
    uint64_t closed = 0;
    DirectionStats to_upstream, to_client;
    // Connections accepted below have no pollfds yet: they are served from
    // the next iteration on.
    size_t index = 2;
    for (auto it = connections.begin(); it != connections.end(); index += 2) {
      const bool alive = (*it)->Service(pollfds[index].revents, pollfds[index + 1].revents, now);
      (*it)->TakeStats(to_upstream, to_client);
      if (alive) {
        ++it;
      } else {
        it = connections.erase(it);
        ++closed;
      }
    }

    uint64_t accepted = 0;
    if (pollfds[1].revents != 0) accepted = AcceptClients(connections);

    absl::MutexLock lock(&mu_);
    AddStats(stats_.to_upstream, to_upstream);
    AddStats(stats_.to_client, to_client);
    stats_.connections_accepted += accepted;
    stats_.connections_closed += closed;
  }
  connections.clear();
}

uint64_t FragmentingProxy::AcceptClients(std::vector<std::unique_ptr<Connection>>& connections) {
  uint64_t accepted = 0;
  while (true) {
    const int fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        VFU_LOG(kWarning, "proxy: accept failed: ", std::strerror(errno));
      }
      return accepted;
    }
    UniqueFd client(fd);
    // A blocking connect: a UNIX socket connects at once unless the
    // server's backlog is full.
    absl::StatusOr<UniqueFd> upstream = ConnectUnix(options_.upstream_path);
    if (!upstream.ok()) {
      // Closing the client tells it the server is unreachable.
      VFU_LOG(kWarning, "proxy: cannot reach the upstream: ", upstream.status().ToString());
      continue;
    }
    connections.push_back(std::make_unique<Connection>(std::move(client), *std::move(upstream),
                                                       options_, next_connection_number_++));
    ++accepted;
  }
}

}  // namespace vfu::testing
