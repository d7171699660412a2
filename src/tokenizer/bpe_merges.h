// Rank-ordered BPE merges over token ids. apply() runs in O(n log n) for a word of n symbols: a
// doubly linked list of symbols and a min-heap of candidate pairs, where stale heap entries are
// recognised and dropped when popped.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace strata {

class MergeTable {
 public:
  struct Hit {
    int32_t rank;
    int32_t merged;
  };
  // Adds the next merge (its rank is the number of merges added before it). A pair that is
  // already present keeps its first, better rank.
  void add(int32_t left, int32_t right, int32_t merged);
  const Hit* find(int32_t left, int32_t right) const;
  size_t size() const { return size_; }

  // Merges `ids` in place: always the pair with the lowest rank, the leftmost among equals, until
  // no adjacent pair has a merge.
  void apply(std::vector<int32_t>& ids) const;

 private:
  // Open addressing with linear probing: this lookup is the inner loop of encoding.
  struct Slot {
    uint64_t key = kEmpty;
    Hit hit{};
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};  // ids are >= 0, so no real pair has this key
  static uint64_t key(int32_t l, int32_t r) {
    return (uint64_t{static_cast<uint32_t>(l)} << 32) | static_cast<uint32_t>(r);
  }
  // Fibonacci hashing: the top bits of the product depend on every bit of the key.
  size_t slot_of(uint64_t k) const {
    return static_cast<size_t>((k * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  void grow();
  std::vector<Slot> slots_;
  size_t size_ = 0;
  int shift_ = 64;  // 64 - log2(slots_.size())
  int32_t next_rank_ = 0;
};

}  // namespace strata
