#include <cmath>
#include <vector>

#include "ops/rope.h"

namespace strata {

void rope(float* x, int64_t n_tok, const int32_t* positions, int64_t n_heads, int64_t head_dim,
          int64_t rope_dim, float theta, RopeLayout layout) {
  const int64_t half = rope_dim / 2;
  std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
  for (int64_t t = 0; t < n_tok; ++t) {
    // Angles in double: positions reach many thousands and f32 angle error grows with them.
    for (int64_t i = 0; i < half; ++i) {
      const double freq = std::pow(double(theta), -2.0 * double(i) / double(rope_dim));
      const double ang = double(positions[t]) * freq;
      cs[i] = static_cast<float>(std::cos(ang));
      sn[i] = static_cast<float>(std::sin(ang));
    }
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
