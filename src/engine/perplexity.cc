#include "engine/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.h"

namespace strata {
namespace {

// -log softmax(logits)[target], in double so long vocabularies lose nothing to rounding.
double nll_of(const float* logits, int64_t n, int32_t target) {
  float mx = logits[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  return std::log(sum) - (static_cast<double>(logits[target]) - mx);
}

struct Stats {
  double sum = 0, sum2 = 0;
  int64_t n = 0;
  void add(double x) {
    sum += x;
    sum2 += x * x;
    ++n;
  }
  double mean() const { return n ? sum / double(n) : 0; }
  double ppl() const { return std::exp(mean()); }
  double ppl_stderr() const {
    if (n < 2) return 0;
    const double m = mean();
    const double var = std::max(0.0, sum2 / double(n) - m * m);
    return ppl() * std::sqrt(var / double(n - 1));
  }
};

}  // namespace

PerplexityResult compute_perplexity(Executor& exec, KvPool& kv, const std::vector<int32_t>& tokens,
                                    const PerplexityOptions& o,
                                    const std::function<void(const PerplexityChunk&)>& on_chunk) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.ctx < 4) fail("perplexity: a context of {} tokens is too small (at least 4)", o.ctx);
  if (o.batch < 1) fail("perplexity: batch size must be positive");
  const int64_t n_vocab = exec.model().hp().n_vocab;
  const auto n_tok = static_cast<int64_t>(tokens.size());
  int64_t n_chunks = n_tok / o.ctx;
  if (n_chunks == 0)
    fail("perplexity: the text has {} tokens; one chunk needs {} (use a smaller context)", n_tok,
         o.ctx);
  if (o.max_chunks > 0) n_chunks = std::min(n_chunks, o.max_chunks);
  for (int32_t t : tokens)
    if (t < 0 || t >= n_vocab)
      fail("perplexity: token id {} is outside the model's {} rows", t, n_vocab);

  PerplexityResult res;
  res.n_tokens = n_tok;
  res.n_chunks = n_chunks;
  Stats all;
  const int64_t first = o.ctx / 2;
  std::vector<int32_t> ids(static_cast<size_t>(o.ctx));
  std::vector<float> logits;
  for (int64_t c = 0; c < n_chunks; ++c) {
    std::copy(tokens.begin() + c * o.ctx, tokens.begin() + (c + 1) * o.ctx, ids.begin());
    if (o.bos >= 0) ids[0] = o.bos;
    KvSeq seq;
    Stats chunk;
    try {
      for (int64_t start = 0; start < o.ctx; start += o.batch) {
        const int64_t n = std::min(o.batch, o.ctx - start);
        // Steps that end before the scored half need no logits at all.
        const bool need = start + n > first;
        Batch b;
        b.seqs.push_back({ids.data() + start, n, &seq, need, need});
        exec.forward(b, logits);
        res.tokens_evaluated += n;
        if (!need) continue;
        if (static_cast<int64_t>(logits.size()) != n * n_vocab)
          fail("perplexity: internal error: {} logits for {} tokens", logits.size(), n);
        for (int64_t p = std::max(start, first); p < std::min(start + n, o.ctx - 1); ++p) {
          const double nll = nll_of(logits.data() + (p - start) * n_vocab, n_vocab,
                                    ids[static_cast<size_t>(p + 1)]);
          chunk.add(nll);
          all.add(nll);
        }
      }
    } catch (...) {
      seq.release(kv);
      throw;
    }
    seq.release(kv);
    res.running_ppl.push_back(all.ppl());
    if (on_chunk) on_chunk({c, n_chunks, chunk.ppl(), all.ppl(), all.ppl_stderr()});
  }
  res.n_scored = all.n;
  res.nll_mean = all.mean();
  res.ppl = all.ppl();
  res.ppl_stderr = all.ppl_stderr();
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace strata
