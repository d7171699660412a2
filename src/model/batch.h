// A batch for one forward step: several sequences, each contributing some new tokens (a prompt
// chunk when prefilling, one token when decoding) on top of what its KV cache already holds.
#pragma once
#include <cstdint>
#include <vector>

#include "memory/kv_pool.h"

namespace strata {

struct SeqChunk {
  const int32_t* tokens = nullptr;
  int64_t n_tokens = 0;
  KvSeq* kv = nullptr;      // n_past = kv->n_tokens before the step
  bool all_logits = false;  // logits for every new token (perplexity); else only the last
  bool want_logits = true;  // false: a prompt chunk that does not reach the end needs none
};

struct Batch {
  std::vector<SeqChunk> seqs;
  int64_t n_tokens() const {
    int64_t n = 0;
    for (const auto& s : seqs) n += s.n_tokens;
    return n;
  }
  int64_t n_logit_rows() const {
    int64_t n = 0;
    for (const auto& s : seqs)
      n += s.all_logits ? s.n_tokens : (s.want_logits && s.n_tokens > 0 ? 1 : 0);
    return n;
  }
};

}  // namespace strata
