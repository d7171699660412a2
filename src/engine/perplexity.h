// Perplexity of a model on a text, the way llama.cpp's perplexity tool measures it, so numbers
// are comparable:
//   - the whole text is tokenized once (no BOS); it is cut into chunks of ctx tokens (a tail
//     shorter than ctx is dropped);
//   - if the model's tokenizer adds BOS, the first token of every chunk is replaced by BOS (so
//     every chunk starts like a document; the replaced token is not scored);
//   - each chunk is evaluated from an empty KV cache, with logits for every position;
//   - only the second half is scored: the logits at positions ctx/2 .. ctx-2 predict tokens
//     ctx/2+1 .. ctx-1, so each scored token has at least ctx/2 tokens of context
//     (ctx/2 - 1 tokens per chunk).
// PPL = exp(mean NLL). Its standard error comes from the spread of the per-token NLL
// (delta method): se(PPL) = PPL * sd(NLL) / sqrt(N - 1).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "memory/kv_pool.h"
#include "schedule/executor.h"

namespace strata {

struct PerplexityOptions {
  int64_t ctx = 512;       // tokens per chunk (>= 4)
  int64_t batch = 512;     // tokens per forward step (a chunk takes ceil(ctx / batch) steps)
  int64_t max_chunks = 0;  // 0: every whole chunk of the text
  int32_t bos = -1;        // >= 0: replaces the first token of each chunk
};

struct PerplexityChunk {
  int64_t index = 0;       // 0-based
  int64_t n_chunks = 0;    // chunks that will be evaluated
  double chunk_ppl = 0;    // this chunk alone
  double running_ppl = 0;  // all chunks so far
  double running_stderr = 0;
};

struct PerplexityResult {
  int64_t n_tokens = 0;  // tokens in the text
  int64_t n_chunks = 0;
  int64_t n_scored = 0;  // tokens whose log-likelihood counts
  double nll_mean = 0;   // mean negative log-likelihood (nats)
  double ppl = 0;
  double ppl_stderr = 0;
  std::vector<double> running_ppl;  // after each chunk
  double seconds = 0;               // forward passes and scoring
  int64_t tokens_evaluated = 0;
};

// Runs `exec` (whatever placement it has) over the chunks, using sequences of `kv`, which must
// hold ctx tokens. on_chunk (optional) is called after each chunk. Throws strata::Error when the
// text has fewer than ctx tokens.
PerplexityResult compute_perplexity(
    Executor& exec, KvPool& kv, const std::vector<int32_t>& tokens, const PerplexityOptions& o,
    const std::function<void(const PerplexityChunk&)>& on_chunk = {});

}  // namespace strata
