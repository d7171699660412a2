// Scale searches shared by the reference quantizers. Both try a range of candidate scales around
// the obvious max-magnitude mapping, re-fit the scale (and offset) by least squares for the
// integer codes each candidate produces, and keep the candidate with the lowest squared error.
// That beats "scale = max / qmax" by 10-20% RMSE on Gaussian-like weights at almost no cost.
#pragma once
#include <cmath>
#include <cstdint>

namespace strata::qk {

inline int round_clamp(float v, int lo, int hi) {
  const int r = static_cast<int>(std::nearbyint(v));
  return r < lo ? lo : (r > hi ? hi : r);
}

// x ~= d * q, q integer in [qmin, qmax] with qmin = -(qmax + 1) (e.g. [-8, 7]). The element of
// largest magnitude is mapped toward qmin (using the sign of d), which uses the extra negative
// level. Returns d (0 for an all-zero input); q gets the codes for that d.
float fit_symmetric(const float* x, int n, int qmax, int8_t* q);

// x ~= a * q + b, q integer in [0, qmax]. With b_nonpos the offset is kept <= 0 (K-quant mins
// are stored as non-negative amounts subtracted). a >= 0 always. q gets the codes.
void fit_asymmetric(const float* x, int n, int qmax, bool b_nonpos, float* a, float* b, uint8_t* q);

}  // namespace strata::qk
