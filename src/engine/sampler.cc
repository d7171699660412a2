#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>

namespace strata {

int32_t argmax(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return static_cast<int32_t>(best);
}

namespace {
double log_sum_exp(const float* x, int64_t n) {
  const float m = *std::max_element(x, x + n);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(double(x[i]) - m);
  return m + std::log(s);
}

// The ids of the k largest logits, largest first (ties: the smaller id first).
std::vector<int32_t> top_ids(const float* logits, int64_t n_vocab, int64_t k) {
  std::vector<int32_t> idx(static_cast<size_t>(n_vocab));
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  idx.resize(static_cast<size_t>(k));
  return idx;
}
}  // namespace

float log_softmax_at(const float* x, int64_t n, int64_t i) {
  return static_cast<float>(double(x[i]) - log_sum_exp(x, n));
}

Sampler::Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) {}

void Sampler::apply_penalties(float* logits, int64_t n_vocab,
                              const std::vector<int32_t>& history) const {
  if (p_.repeat_penalty == 1.0f && p_.presence_penalty == 0.0f && p_.frequency_penalty == 0.0f)
    return;
  const size_t n = p_.repeat_last_n < 0
                       ? history.size()
                       : std::min(history.size(), static_cast<size_t>(p_.repeat_last_n));
  std::unordered_map<int32_t, int> counts;
  for (size_t i = history.size() - n; i < history.size(); ++i) ++counts[history[i]];
  for (const auto& [tok, c] : counts) {
    if (tok < 0 || tok >= n_vocab) continue;
    float& l = logits[tok];
    if (p_.repeat_penalty != 1.0f) l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
    l -= static_cast<float>(c) * p_.frequency_penalty + p_.presence_penalty;
  }
}

int32_t Sampler::sample(float* logits, int64_t n_vocab, const std::vector<int32_t>& history,
                        bool with_logprob) {
  apply_penalties(logits, n_vocab, history);
  const double lse = with_logprob ? log_sum_exp(logits, n_vocab) : 0.0;
  if (p_.temperature <= 0.0f) {
    const int32_t t = argmax(logits, n_vocab);
    last_logprob_ = with_logprob ? static_cast<float>(logits[t] - lse) : 0.0f;
    return t;
  }
  // Candidates sorted by logit, cut by top-k.
  const int64_t k = p_.top_k > 0 ? std::min<int64_t>(p_.top_k, n_vocab) : n_vocab;
  std::vector<int32_t> idx = top_ids(logits, n_vocab, k);
  // Probabilities of the candidates (untempered) for top-p and min-p.
  std::vector<double> pr(idx.size());
  const double m = logits[idx[0]];
  double sum = 0;
  for (size_t i = 0; i < idx.size(); ++i) sum += pr[i] = std::exp(double(logits[idx[i]]) - m);
  for (auto& v : pr) v /= sum;
  size_t keep = idx.size();
  if (p_.top_p < 1.0f) {
    double cum = 0;
    for (size_t i = 0; i < idx.size(); ++i) {
      cum += pr[i];
      if (cum >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  if (p_.min_p > 0.0f) {
    size_t i = 1;
    while (i < keep && pr[i] >= p_.min_p * pr[0]) ++i;
    keep = i;
  }
  // Temperature, then draw.
  std::vector<double> w(keep);
  double wsum = 0;
  for (size_t i = 0; i < keep; ++i)
    wsum += w[i] = std::exp((double(logits[idx[i]]) - m) / p_.temperature);
  std::uniform_real_distribution<double> u(0.0, wsum);
  double r = u(rng_), acc = 0;
  size_t pick = keep - 1;
  for (size_t i = 0; i < keep; ++i) {
    acc += w[i];
    if (r < acc) {
      pick = i;
      break;
    }
  }
  const int32_t t = idx[pick];
  last_logprob_ = with_logprob ? static_cast<float>(logits[t] - lse) : 0.0f;
  return t;
}

std::vector<TokenLogprob> Sampler::top_logprobs(const float* logits, int64_t n_vocab, int n) const {
  std::vector<TokenLogprob> out;
  if (n <= 0) return out;
  const double lse = log_sum_exp(logits, n_vocab);
  const int64_t k = std::min<int64_t>(n, n_vocab);
  const std::vector<int32_t> idx = top_ids(logits, n_vocab, k);
  for (int64_t i = 0; i < k; ++i)
    out.push_back({idx[static_cast<size_t>(i)],
                   static_cast<float>(logits[idx[static_cast<size_t>(i)]] - lse)});
  return out;
}

}  // namespace strata
