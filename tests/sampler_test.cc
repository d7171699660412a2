// Sampling: greedy, truncation sets, penalties, reproducibility and the drawn distribution.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "engine/sampler.h"

namespace strata {
namespace {

SamplingParams plain(float temp) {
  SamplingParams p;
  p.temperature = temp;
  p.top_k = 0;
  p.top_p = 1;
  p.min_p = 0;
  return p;
}

TEST(Sampler, GreedyIsArgmaxAndLogprobIsLogSoftmax) {
  Sampler s(plain(0));
  std::vector<float> l = {0.1f, 2.0f, -1.0f, 1.9f};
  auto c = l;
  EXPECT_EQ(s.sample(c.data(), 4, {}), 1);
  double z = 0;
  for (float v : l) z += std::exp(double(v));
  EXPECT_NEAR(s.last_logprob(), 2.0 - std::log(z), 1e-6);
  auto top = s.top_logprobs(l.data(), 4, 2);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].token, 1);
  EXPECT_EQ(top[1].token, 3);
  EXPECT_NEAR(top[1].logprob, 1.9 - std::log(z), 1e-6);
}

TEST(Sampler, TopKOneIsGreedy) {
  SamplingParams p = plain(1.5f);
  p.top_k = 1;
  Sampler s(p);
  for (int i = 0; i < 100; ++i) {
    std::vector<float> l = {0.0f, 0.5f, 0.4f};
    EXPECT_EQ(s.sample(l.data(), 3, {}), 1);
  }
}

std::vector<int> draw_counts(SamplingParams p, const std::vector<float>& logits, int n) {
  Sampler s(p);
  std::vector<int> c(logits.size());
  for (int i = 0; i < n; ++i) {
    auto l = logits;
    ++c[static_cast<size_t>(s.sample(l.data(), static_cast<int64_t>(l.size()), {}))];
  }
  return c;
}

TEST(Sampler, DrawsFollowTheDistribution) {
  const auto c = draw_counts(plain(1.0f), {0.0f, std::log(3.0f)}, 20000);
  EXPECT_NEAR(c[1] / 20000.0, 0.75, 0.02);
  // Temperature 2 flattens: p1 = 3^(1/2) / (1 + 3^(1/2)).
  const auto t = draw_counts(plain(2.0f), {0.0f, std::log(3.0f)}, 20000);
  EXPECT_NEAR(t[1] / 20000.0, std::sqrt(3.0) / (1 + std::sqrt(3.0)), 0.02);
}

TEST(Sampler, TopPAndMinPCutTheTail) {
  const std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  SamplingParams p = plain(1.0f);
  p.top_p = 0.7f;
  auto c = draw_counts(p, l, 3000);
  EXPECT_EQ(c[2], 0);
  EXPECT_GT(c[1], 0);
  p = plain(1.0f);
  p.min_p = 0.5f;  // keep p >= 0.25
  c = draw_counts(p, l, 3000);
  EXPECT_EQ(c[2], 0);
  EXPECT_GT(c[1], 0);
}

TEST(Sampler, SameSeedSameTokens) {
  SamplingParams p = plain(1.0f);
  p.seed = 99;
  std::vector<float> l(50);
  for (size_t i = 0; i < l.size(); ++i) l[i] = std::sin(float(i));
  Sampler a(p), b(p);
  for (int i = 0; i < 200; ++i) {
    auto x = l, y = l;
    EXPECT_EQ(a.sample(x.data(), 50, {}), b.sample(y.data(), 50, {}));
  }
}

TEST(Sampler, Penalties) {
  SamplingParams p = plain(0);
  p.repeat_penalty = 2.0f;
  Sampler s(p);
  std::vector<float> l = {3.0f, 2.0f, -1.0f};
  s.sample(l.data(), 3, {0, 2});
  EXPECT_FLOAT_EQ(l[0], 1.5f);   // positive: divided
  EXPECT_FLOAT_EQ(l[1], 2.0f);   // not in history
  EXPECT_FLOAT_EQ(l[2], -2.0f);  // negative: multiplied
  p = plain(0);
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  Sampler f(p);
  l = {3.0f, 2.0f, -1.0f};
  f.sample(l.data(), 3, {0, 0, 0, 2});
  EXPECT_FLOAT_EQ(l[0], 3.0f - 0.75f - 0.5f);
  EXPECT_FLOAT_EQ(l[2], -1.0f - 0.25f - 0.5f);
  // repeat_last_n limits the window.
  p = plain(0);
  p.repeat_penalty = 2.0f;
  p.repeat_last_n = 1;
  Sampler w(p);
  l = {3.0f, 2.0f, -1.0f};
  w.sample(l.data(), 3, {0, 1});
  EXPECT_FLOAT_EQ(l[0], 3.0f);
  EXPECT_FLOAT_EQ(l[1], 1.0f);
}

}  // namespace
}  // namespace strata
