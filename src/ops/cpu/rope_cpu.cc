#include <cmath>
#include <vector>

#include "ops/rope.h"

namespace strata {

namespace {

// One position's cos and sin per rotated pair. Decode rotates the same position in every layer,
// for the queries and the keys (44 times per token in the 1B Llama), so the last position's
// table is kept: working it out took ~3.5 us per call (a pow, a cos and a sin in double per pair).
struct AngleTable {
  float theta = 0;
  int64_t rope_dim = 0;
  int32_t pos = -1;
  std::vector<float> cs, sn;

  void set(float th, int64_t dim, int32_t p) {
    if (th == theta && dim == rope_dim && p == pos) return;
    theta = th, rope_dim = dim, pos = p;
    const int64_t half = dim / 2;
    cs.resize(static_cast<size_t>(half));
    sn.resize(static_cast<size_t>(half));
    // Angles in double: positions reach many thousands and f32 angle error grows with them.
    for (int64_t i = 0; i < half; ++i) {
      const double freq = std::pow(double(th), -2.0 * double(i) / double(dim));
      const double ang = double(p) * freq;
      cs[size_t(i)] = static_cast<float>(std::cos(ang));
      sn[size_t(i)] = static_cast<float>(std::sin(ang));
    }
  }
};

}  // namespace

void rope(float* x, int64_t n_tok, const int32_t* positions, int64_t n_heads, int64_t head_dim,
          int64_t rope_dim, float theta, RopeLayout layout) {
  const int64_t half = rope_dim / 2;
  thread_local AngleTable table;
  for (int64_t t = 0; t < n_tok; ++t) {
    table.set(theta, rope_dim, positions[t]);
    const float* cs = table.cs.data();
    const float* sn = table.sn.data();
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + (t * n_heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const int64_t a = layout == RopeLayout::Interleaved ? 2 * i : i;
        const int64_t b = layout == RopeLayout::Interleaved ? 2 * i + 1 : i + half;
        const float x0 = v[a], x1 = v[b];
        v[a] = x0 * cs[i] - x1 * sn[i];
        v[b] = x0 * sn[i] + x1 * cs[i];
      }
    }
  }
}

}  // namespace strata
