// Read-copy-update, for data that device threads read on every DMA and the
// protocol side changes rarely (liburcu's "bulletproof" flavour, Debian's
// liburcu-dev).
//
//   // Reader, any thread, never blocks:
//   {
//     RcuReadSection section;
//     const Index* index = published.load(std::memory_order_acquire);
//     ... use index and what it points at ...
//   }
//   // Writer:
//   const Index* old = published.exchange(new_index, std::memory_order_acq_rel);
//   RcuSynchronize();  // every section that could see `old` has ended
//   delete old;
//
// Why: a reader pays no atomic read-modify-write at all (the writer pays
// instead, with one membarrier() system call per grace period), so a 4 KiB
// DMA copy costs about what its memcpy costs. Threads register themselves on
// their first section and unregister when they exit.
//
// Rules: a section must not block (no waiting for the client, no locks a
// writer may hold while synchronizing), and RcuSynchronize must not be
// called inside one (it would wait for itself). Sections may nest.
#ifndef VFU_BASE_RCU_H_
#define VFU_BASE_RCU_H_

namespace vfu {

namespace rcu_internal {
void ReadLock();
void ReadUnlock();
}  // namespace rcu_internal

// A read-side critical section, for its scope.
class RcuReadSection {
 public:
  RcuReadSection() { rcu_internal::ReadLock(); }
  ~RcuReadSection() { rcu_internal::ReadUnlock(); }
  RcuReadSection(const RcuReadSection&) = delete;
  RcuReadSection& operator=(const RcuReadSection&) = delete;
};

// Waits until every read-side section that started before the call has
// ended (a grace period). Not from inside a section.
void RcuSynchronize();

}  // namespace vfu

#endif  // VFU_BASE_RCU_H_
