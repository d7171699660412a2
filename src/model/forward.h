// The forward pass of every architecture, read top to bottom: embed, then each layer (norm,
// attention over the paged KV cache, feed-forward, residuals), then the head. Which variant runs
// is decided by the ArchSpec table, never by the type of an object.
//
// The pass is driven one layer at a time by the scheduler, which owns the schedule and decides
// where weights live; this code only sees the weights it is handed. One ForwardPass holds the
// activations of one micro-batch between layers.
#pragma once
#include <functional>
#include <vector>

#include "core/thread_pool.h"
#include "memory/kv_pool.h"
#include "model/batch.h"
#include "model/hparams.h"
#include "model/weights.h"

namespace strata {

// Scratch space of one forward step (normed input, Q/K/V, attention output, FFN hidden). Shared
// by the micro-batches of a block: only their residual streams persist between layers.
struct Workspace {
  std::vector<float> xn, tmp, q, k, v, qkv, attn, gate, up;
  void reserve(const ModelSpec& spec, int64_t n_tokens);
  uint64_t bytes() const;
};

class ForwardPass {
 public:
  ForwardPass(const ModelSpec& spec, ThreadPool& pool, Workspace& ws);

  // Starts a step: sizes the activations, reserves KV blocks for the new tokens.
  void begin(const Batch& batch, KvPool& kv);
  // Token embedding rows come from the table, or from `row` when the scheduler left the table
  // on disk and reads rows on demand.
  using RowFn = std::function<void(int64_t row, float* out)>;
  void embed(const GlobalWeights& g, const RowFn& row = nullptr);
  void layer(int64_t l, const LayerWeights& w, KvPool& kv);
  // Logits of the requested rows (see Batch), [n_logit_rows, n_vocab]. Also advances every
  // sequence's kv->n_tokens by its new tokens: the step is complete.
  void head(const GlobalWeights& g, std::vector<float>& logits);
  // Completes the step without computing logits (I/O-only timing runs).
  void finish_without_head();

  // The residual stream [n_tokens, n_embd], e.g. for moving activations between tiers or ranks.
  std::vector<float>& hidden() { return x_; }
  int64_t n_tokens() const { return n_; }
  const Batch& batch() const { return batch_; }

 private:
  void norm(const float* in, const float* w, const float* b, float* out, int64_t n) const;
  void attention_block(int64_t l, const LayerWeights& w, KvPool& kv, const float* in, float* out);
  void ffn_block(const LayerWeights& w, const float* in, float* out);
  void store_kv(int64_t l, KvPool& kv, const float* k, const float* v);

  const ModelSpec& spec_;
  ThreadPool& pool_;
  Batch batch_;
  int64_t n_ = 0;                   // tokens in the step
  std::vector<int32_t> pos_;        // position of each token
  std::vector<int64_t> seq_start_;  // first row of each sequence
  Workspace& ws_;
  std::vector<float> x_;
  std::vector<float> alibi_;
};

// ALiBi head slopes (BLOOM), for any head count.
std::vector<float> alibi_slopes(int64_t n_head);

}  // namespace strata
