#include "tokenizer/bpe_merges.h"

#include <functional>
#include <queue>

namespace strata {

void MergeTable::grow() {
  std::vector<Slot> old;
  old.swap(slots_);
  slots_.assign(old.empty() ? 1024 : old.size() * 2, Slot{});
  shift_ = 64;
  for (size_t n = slots_.size(); n > 1; n >>= 1) --shift_;
  const size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.key == kEmpty) continue;
    size_t i = slot_of(s.key);
    while (slots_[i].key != kEmpty) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

void MergeTable::add(int32_t left, int32_t right, int32_t merged) {
  const int32_t rank = next_rank_++;
  if ((size_ + 1) * 2 > slots_.size()) grow();  // keep the load factor at most 1/2
  const uint64_t k = key(left, right);
  const size_t mask = slots_.size() - 1;
  size_t i = slot_of(k);
  for (; slots_[i].key != kEmpty; i = (i + 1) & mask)
    if (slots_[i].key == k) return;  // a repeated merge keeps its first rank
  slots_[i] = {k, {rank, merged}};
  ++size_;
}

const MergeTable::Hit* MergeTable::find(int32_t left, int32_t right) const {
  if (slots_.empty()) return nullptr;
  const uint64_t k = key(left, right);
  const size_t mask = slots_.size() - 1;
  for (size_t i = slot_of(k); slots_[i].key != kEmpty; i = (i + 1) & mask)
    if (slots_[i].key == k) return &slots_[i].hit;
  return nullptr;
}

void MergeTable::apply(std::vector<int32_t>& ids) const {
  const auto n = static_cast<int32_t>(ids.size());
  if (n < 2 || size_ == 0) return;
  // Heap entries are (rank << 32 | left position): smallest first gives the lowest rank, then the
  // leftmost. They are checked against the current symbols when popped, since merges nearby
  // change or remove the pair an entry was made for.
  std::vector<uint64_t> init;
  std::vector<int32_t> prev(static_cast<size_t>(n)), next(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    prev[static_cast<size_t>(i)] = i - 1;
    next[static_cast<size_t>(i)] = i + 1 < n ? i + 1 : -1;
  }
  const auto entry = [](int32_t rank, int32_t pos) {
    return (uint64_t{static_cast<uint32_t>(rank)} << 32) | static_cast<uint32_t>(pos);
  };
  for (int32_t i = 0; i + 1 < n; ++i)
    if (const Hit* h = find(ids[static_cast<size_t>(i)], ids[static_cast<size_t>(i) + 1]))
      init.push_back(entry(h->rank, i));
  std::priority_queue<uint64_t, std::vector<uint64_t>, std::greater<>> heap(std::greater<>{},
                                                                            std::move(init));
  const auto push = [&](int32_t l) {
    if (l < 0) return;
    const int32_t r = next[static_cast<size_t>(l)];
    if (r < 0) return;
    if (const Hit* h = find(ids[static_cast<size_t>(l)], ids[static_cast<size_t>(r)]))
      heap.push(entry(h->rank, l));
  };
  constexpr int32_t kGone = -2;  // prev[] of a symbol merged into its left neighbour
  while (!heap.empty()) {
    const uint64_t e = heap.top();
    heap.pop();
    const auto l = static_cast<int32_t>(static_cast<uint32_t>(e));
    const auto rank = static_cast<int32_t>(e >> 32);
    const auto ul = static_cast<size_t>(l);
    const int32_t r = next[ul];
    if (prev[ul] == kGone || r < 0) continue;
    const Hit* h = find(ids[ul], ids[static_cast<size_t>(r)]);
    if (!h || h->rank != rank) continue;  // the pair at l is no longer the one this entry was for
    const auto ur = static_cast<size_t>(r);
    ids[ul] = h->merged;
    next[ul] = next[ur];
    prev[ur] = kGone;
    if (next[ur] >= 0) prev[static_cast<size_t>(next[ur])] = l;
    push(prev[ul]);
    push(l);
  }
  size_t w = 0;
  for (int32_t i = 0; i >= 0; i = next[static_cast<size_t>(i)])
    ids[w++] = ids[static_cast<size_t>(i)];
  ids.resize(w);
}

}  // namespace strata
