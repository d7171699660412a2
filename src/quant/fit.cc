#include "quant/fit.h"

#include <algorithm>

namespace strata::qk {
namespace {
// Candidate grid: the max-magnitude element lands on qmax + kStep * k levels, k in [-kSpan, kSpan].
constexpr int kSpan = 8;
constexpr float kStep = 0.1f;
}  // namespace

float fit_symmetric(const float* x, int n, int qmax, int8_t* q) {
  const int qmin = -qmax - 1;
  float amax = 0, vmax = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), vmax = x[i];
  if (amax == 0) {
    for (int i = 0; i < n; ++i) q[i] = 0;
    return 0;
  }
  float best_d = vmax / static_cast<float>(qmin), best_err = INFINITY;
  int8_t tmp[256];
  for (int k = -kSpan; k <= kSpan; ++k) {
    // vmax maps to -(|qmin| + step*k): the largest value sits at (or near) the negative end.
    const float iscale = -(static_cast<float>(-qmin) + kStep * static_cast<float>(k)) / vmax;
    double sxq = 0, sqq = 0;
    for (int i = 0; i < n; ++i) {
      tmp[i] = static_cast<int8_t>(round_clamp(x[i] * iscale, qmin, qmax));
      sxq += static_cast<double>(x[i]) * tmp[i];
      sqq += static_cast<double>(tmp[i]) * tmp[i];
    }
    if (sqq == 0) continue;
    const float d = static_cast<float>(sxq / sqq);
    // Codes for the refitted d (the fit can move the best code of some elements).
    double err = 0;
    for (int i = 0; i < n; ++i) {
      const int c = round_clamp(x[i] / d, qmin, qmax);
      const double e = x[i] - d * c;
      err += e * e;
    }
    if (err < best_err) best_err = static_cast<float>(err), best_d = d;
  }
  for (int i = 0; i < n; ++i) q[i] = static_cast<int8_t>(round_clamp(x[i] / best_d, qmin, qmax));
  return best_d;
}

void fit_asymmetric(const float* x, int n, int qmax, bool b_nonpos, float* a_out, float* b_out,
                    uint8_t* q) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  if (b_nonpos) lo = std::min(lo, 0.0f);
  if (hi <= lo) {  // constant block (or all-positive constant with b_nonpos: hi == lo == 0 only)
    *a_out = 0;
    *b_out = lo;
    for (int i = 0; i < n; ++i) q[i] = 0;
    if (b_nonpos && hi > 0) *b_out = 0;
    return;
  }
  float best_a = (hi - lo) / static_cast<float>(qmax), best_b = lo;
  auto error_of = [&](float a, float b) {
    double err = 0;
    const float ia = a > 0 ? 1.0f / a : 0.0f;
    for (int i = 0; i < n; ++i) {
      const int c = round_clamp((x[i] - b) * ia, 0, qmax);
      const double e = x[i] - (a * c + b);
      err += e * e;
    }
    return err;
  };
  double best_err = error_of(best_a, best_b);
  uint8_t tmp[256];
  for (int k = -kSpan; k <= kSpan; ++k) {
    const float iscale = (static_cast<float>(qmax) + kStep * static_cast<float>(k)) / (hi - lo);
    double sw = n, sq = 0, sqq = 0, sx = 0, sqx = 0;
    for (int i = 0; i < n; ++i) {
      tmp[i] = static_cast<uint8_t>(round_clamp((x[i] - lo) * iscale, 0, qmax));
      sq += tmp[i];
      sqq += static_cast<double>(tmp[i]) * tmp[i];
      sx += x[i];
      sqx += static_cast<double>(tmp[i]) * x[i];
    }
    const double det = sw * sqq - sq * sq;
    if (det <= 0) continue;
    double a = (sw * sqx - sq * sx) / det;
    double b = (sqq * sx - sq * sqx) / det;
    if (b_nonpos && b > 0) {  // constrained fit: b = 0
      b = 0;
      a = sqx / sqq;
    }
    if (a <= 0) continue;
    const double err = error_of(static_cast<float>(a), static_cast<float>(b));
    if (err < best_err)
      best_err = err, best_a = static_cast<float>(a), best_b = static_cast<float>(b);
  }
  *a_out = best_a;
  *b_out = best_b;
  const float ia = 1.0f / best_a;
  for (int i = 0; i < n; ++i)
    q[i] = static_cast<uint8_t>(round_clamp((x[i] - best_b) * ia, 0, qmax));
}

}  // namespace strata::qk
