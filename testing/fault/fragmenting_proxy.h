// FragmentingProxy: a vfio-user man-in-the-middle that re-sends every
// message in chosen fragments, to prove that a server (or client) copes with
// partial IO.
//
//   FragmentingProxy::Options options;
//   options.listen_path = dir.File("proxy.sock");
//   options.upstream_path = server_socket_path;
//   options.to_upstream = FragmentPolicy::OneByte();
//   options.to_client = FragmentPolicy::RandomChunks(/*seed=*/7);
//   FragmentingProxy proxy(std::move(options));
//   ASSERT_OK(proxy.Start());            // listening when this returns
//   ... connect the client under test to options.listen_path ...
//   proxy.Stop();                         // or let the destructor do it
//   EXPECT_GT(proxy.stats().to_upstream.sendmsg_calls, ...);
//
// For each accepted client the proxy connects to `upstream_path` and relays
// both directions. It reassembles whole messages (MessageReader), so it
// knows where each message starts and which SCM_RIGHTS fds belong to it,
// then sends each message on as the direction's FragmentPolicy dictates. Two
// rules keep fd ownership unambiguous for the receiver (see the comment of
// vfu/transport/message_assembler.h): a message's fds ride on the sendmsg of
// its first fragment, and that sendmsg holds no bytes of any other message.
// Each fragment is sent completely (short writes continue where they
// stopped, EAGAIN waits for POLLOUT) before the next one starts.
//
// What is relayed: only whole, well-formed messages. A stream the proxy
// cannot frame (msg_size < 16), a message above `max_message_size`, or fds
// lost to MSG_CTRUNC close the connection pair with a warning. When either
// side disconnects, the messages it completed before are still delivered,
// then both sockets are closed (so the disconnect propagates); bytes of an
// incomplete trailing message are dropped. A half-close (shutdown(SHUT_WR))
// counts as a disconnect.
//
// Flow control: a direction stops reading from its source while more than
// `max_buffered_bytes` wait to be sent, so a slow receiver still pushes back
// on the sender as it would without the proxy.
//
// Threads: one proxy thread (spawned by Start()) owns every socket and runs
// a ppoll() loop over the listening socket, a wakeup eventfd and all
// connections; any number of clients may be connected, concurrently or one
// after another. Start(), Stop() and the destructor: any thread but the proxy
// thread, not concurrently with each other. stats(): any thread.
//
// Lifetime: Start() at most once. Stop() wakes and joins the proxy thread,
// closes every connection and the listening socket, and unlinks
// `listen_path`; it is idempotent, and the destructor calls it. stats()
// remains valid after Stop().
#ifndef VFU_TESTING_FAULT_FRAGMENTING_PROXY_H_
#define VFU_TESTING_FAULT_FRAGMENTING_PROXY_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "vfu/base/unique_fd.h"
#include "vfu/reactor/wakeup_fd.h"
#include "vfu/wire/constants.h"

namespace vfu::testing {

// How one direction of the proxy cuts messages into sendmsg calls.
struct FragmentPolicy {
  enum class Mode {
    // One fragment per message: the message in a single sendmsg (the kernel
    // may still take it in several if the socket buffer fills up).
    kWhole,
    // Every byte in a sendmsg of its own.
    kOneByte,
    // The i-th message of the direction on a connection (counting from 0)
    // in two fragments, split at offset (i mod (size - 1)) + 1, so over
    // enough messages every split point of every size is exercised.
    kSplitAt,
    // Fragments of random size in [1, max_chunk] from a seeded RNG, with
    // random pauses of up to `max_pause` between fragments. With `coalesce`,
    // half of the fragments that reach the end of their message continue
    // into the messages queued behind it (never into one that carries fds,
    // and never from a fragment that carries fds itself).
    kRandomChunks,
  };

  Mode mode = Mode::kWhole;

  // kRandomChunks only. Each connection draws from its own RNG, seeded from
  // `seed`, the connection's number and the direction, so runs repeat.
  uint64_t seed = 1;
  size_t max_chunk = 4096;
  bool coalesce = true;
  // Pauses delay the next fragment (fault injection, not synchronization);
  // the proxy thread keeps serving other sockets meanwhile.
  absl::Duration max_pause = absl::Microseconds(200);

  static FragmentPolicy Whole() { return {}; }
  static FragmentPolicy OneByte() { return {.mode = Mode::kOneByte}; }
  static FragmentPolicy SplitAt() { return {.mode = Mode::kSplitAt}; }
  static FragmentPolicy RandomChunks(uint64_t seed, size_t max_chunk = 4096,
                                     bool coalesce = true,
                                     absl::Duration max_pause = absl::Microseconds(200)) {
    return {.mode = Mode::kRandomChunks,
            .seed = seed,
            .max_chunk = max_chunk,
            .coalesce = coalesce,
            .max_pause = max_pause};
  }
};

class FragmentingProxy {
 public:
  struct Options {
    // Where clients connect (created by Start(), unlinked by Stop()).
    std::string listen_path;
    // The real server, connected once per accepted client.
    std::string upstream_path;
    // Client -> server.
    FragmentPolicy to_upstream;
    // Server -> client.
    FragmentPolicy to_client;
    // Largest whole message relayed (header included); default: the largest
    // a vfio-user peer may be asked to accept.
    size_t max_message_size = wire::MaxMessageSizeFor(wire::kMaxDataXferSizeLimit);
    // Most fds one message may carry (Linux's SCM_MAX_FD by default).
    size_t max_fds_per_message = 253;
    // Per direction: stop reading from the source while more than this many
    // bytes wait to be sent on.
    size_t max_buffered_bytes = 8 * 1024 * 1024;
  };

  // Counters of one direction, summed over all connections.
  struct DirectionStats {
    // Messages whose last byte has been sent.
    uint64_t messages = 0;
    uint64_t bytes = 0;
    // Fragments started, as the policy cut them.
    uint64_t fragments = 0;
    // Fragments that held bytes of more than one message (kRandomChunks
    // with `coalesce`).
    uint64_t coalesced_fragments = 0;
    // Successful sendmsg calls: at least `fragments`, more after short
    // writes.
    uint64_t sendmsg_calls = 0;
    // fds passed on.
    uint64_t fds = 0;
  };

  struct Stats {
    DirectionStats to_upstream;
    DirectionStats to_client;
    // Client/upstream pairs made (a client whose upstream connect failed is
    // closed at once and not counted).
    uint64_t connections_accepted = 0;
    // Pairs closed by a disconnect or an error (not those Stop() closed).
    uint64_t connections_closed = 0;
  };

  explicit FragmentingProxy(Options options);
  ~FragmentingProxy();

  FragmentingProxy(const FragmentingProxy&) = delete;
  FragmentingProxy& operator=(const FragmentingProxy&) = delete;

  // Listens at `listen_path` and spawns the proxy thread. Errors are those
  // of ListenUnix() or of creating the wakeup eventfd; FailedPrecondition if
  // called twice.
  absl::Status Start();

  // Stops relaying, closes everything and unlinks `listen_path`.
  void Stop();

  // A snapshot of the counters. Counters are updated after each sendmsg, so
  // a peer may see bytes before they are counted: read them after Stop()
  // for exact totals.
  Stats stats() const ABSL_LOCKS_EXCLUDED(mu_);

  const Options& options() const { return options_; }

 private:
  class Connection;
  friend class Connection;

  // The proxy thread's loop; returns when woken by Stop().
  void Run() ABSL_LOCKS_EXCLUDED(mu_);
  // Accepts every pending client, connects each to the upstream and appends
  // the pair to `connections`. Returns how many pairs were made.
  uint64_t AcceptClients(std::vector<std::unique_ptr<Connection>>& connections);

  const Options options_;
  // Start() / Stop() state (their caller's thread).
  bool started_ = false;
  bool stopped_ = false;
  // Created by Start() before the proxy thread exists, used by it while it
  // runs, closed by Stop() after the join: never touched concurrently.
  UniqueFd listen_fd_;
  std::unique_ptr<WakeupFd> wakeup_;
  std::thread thread_;
  // Proxy thread only: numbers connections, to seed their RNGs.
  uint64_t next_connection_number_ = 0;

  mutable absl::Mutex mu_;
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vfu::testing

#endif  // VFU_TESTING_FAULT_FRAGMENTING_PROXY_H_
