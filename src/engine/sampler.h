// Turns logits into the next token: repetition / presence / frequency penalties, then top-k,
// top-p, min-p, temperature and a seeded draw (the order llama.cpp uses). temperature <= 0 is
// greedy. The same seed and the same logits give the same tokens.
#pragma once
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace strata {

struct SamplingParams {
  float temperature = 0.8f;
  int32_t top_k = 40;           // <= 0: off
  float top_p = 0.95f;          // >= 1: off
  float min_p = 0.05f;          // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off
  int32_t repeat_last_n = 64;   // tokens of history the penalties look at (-1: all)
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  uint64_t seed = 0xC0FFEE;
};

struct TokenLogprob {
  int32_t token;
  float logprob;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  const SamplingParams& params() const { return p_; }

  // logits are modified (penalties). history: prompt + generated tokens so far. with_logprob:
  // also compute last_logprob() (a log-sum-exp over the whole vocabulary, skipped when no one
  // reads it; last_logprob() is then 0).
  int32_t sample(float* logits, int64_t n_vocab, const std::vector<int32_t>& history,
                 bool with_logprob = true);

  // Log-probabilities (of the model's distribution after penalties, before truncation) of the
  // last sampled token and the n most likely tokens: what OpenAI's logprobs report.
  float last_logprob() const { return last_logprob_; }
  std::vector<TokenLogprob> top_logprobs(const float* logits, int64_t n_vocab, int n) const;

 private:
  void apply_penalties(float* logits, int64_t n_vocab, const std::vector<int32_t>& history) const;
  SamplingParams p_;
  std::mt19937_64 rng_;
  float last_logprob_ = 0;
};

int32_t argmax(const float* x, int64_t n);
// log-softmax value of x[i]
float log_softmax_at(const float* x, int64_t n, int64_t i);

}  // namespace strata
