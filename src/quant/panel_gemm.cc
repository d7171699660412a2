// The panel GEMM's dispatch and its portable scalar reference (panel_gemm.h).
#include "quant/panel_gemm.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/half.h"
#include "quant/blocks.h"
#include "quant/kernels.h"

namespace strata {
namespace {

// The panel is the decode path's Q8_1 activations, rearranged: the reference quantizes each token
// with quantize_row_q8_1 and copies its codes and (f16) scales out, with the exact code sums.
void quantize_ref(const float* x, int64_t ldx, int64_t t0, int64_t t1, int offset,
                  const Q8Panel& p) {
  const int64_t nb = p.n / kPanelBlock;
  std::vector<BlockQ8_1> row(static_cast<size_t>(nb));
  for (int64_t t = t0; t < t1; ++t) {
    qk::quantize_row_q8_1(x + t * ldx, row.data(), p.n);
    for (int64_t b = 0; b < nb; ++b) {
      const BlockQ8_1& blk = row[static_cast<size_t>(b)];
      std::copy_n(blk.qs, kPanelBlock, p.codes + t * p.n + b * kPanelBlock);
      p.d[t * nb + b] = fp16_to_f32(blk.d);
      p.start[t * nb + b] = -offset * std::accumulate(blk.qs, blk.qs + kPanelBlock, int32_t{0});
    }
  }
}

// Weight block b of a row as signed codes and its scale.
float codes_q4_0(const uint8_t* row, int64_t b, int* q) {
  const auto& blk = reinterpret_cast<const BlockQ4_0*>(row)[b];
  for (int j = 0; j < kQK / 2; ++j) {
    q[j] = (blk.qs[j] & 15) - 8;
    q[j + kQK / 2] = (blk.qs[j] >> 4) - 8;
  }
  return fp16_to_f32(blk.d);
}
float codes_q8_0(const uint8_t* row, int64_t b, int* q) {
  const auto& blk = reinterpret_cast<const BlockQ8_0*>(row)[b];
  for (int j = 0; j < kQK; ++j) q[j] = blk.qs[j];
  return fp16_to_f32(blk.d);
}

template <float (*Codes)(const uint8_t*, int64_t, int*)>
void gemm_ref(const void* w, int64_t w_stride, int64_t n_rows, const Q8Panel& p, float* y,
              int64_t ldy) {
  const int64_t nb = p.n / kPanelBlock;
  for (int64_t r = 0; r < n_rows; ++r) {
    const uint8_t* row = static_cast<const uint8_t*>(w) + r * w_stride;
    for (int64_t t = 0; t < p.n_tok; ++t) {
      float f = 0;
      for (int64_t b = 0; b < nb; ++b) {
        int q[kQK];
        const float dw = Codes(row, b, q);
        const int8_t* a = p.codes + t * p.n + b * kPanelBlock;
        int32_t s = 0;
        for (int j = 0; j < kQK; ++j) s += q[j] * a[j];
        const float scale = dw * p.d[t * nb + b];
        f = std::fma(static_cast<float>(s), scale, f);
      }
      y[t * ldy + r] = f;
    }
  }
}

constexpr PanelGemm kRefQ4_0{8, 8, quantize_ref, gemm_ref<codes_q4_0>};
constexpr PanelGemm kRefQ8_0{128, 12, quantize_ref, gemm_ref<codes_q8_0>};
constexpr PanelGemm kVnniQ4_0{8, 8, qk::avx512vnni::quantize_panel,
                              qk::avx512vnni::panel_gemm_q4_0};
constexpr PanelGemm kVnniQ8_0{128, 12, qk::avx512vnni::quantize_panel,
                              qk::avx512vnni::panel_gemm_q8_0};

}  // namespace

Q8Panel q8_panel_view(void* buf, int64_t n, int64_t n_tok) {
  Q8Panel p;
  p.n = n;
  p.n_tok = n_tok;
  p.codes = static_cast<int8_t*>(buf);
  p.d = reinterpret_cast<float*>(p.codes + n_tok * n);
  p.start = reinterpret_cast<int32_t*>(p.d + n_tok * (n / kPanelBlock));
  return p;
}

const PanelGemm* panel_gemm_for_isa(DType t, Isa isa) {
  if (t != DType::Q4_0 && t != DType::Q8_0) return nullptr;
  const bool q4 = t == DType::Q4_0;
  if (isa == Isa::Scalar) return q4 ? &kRefQ4_0 : &kRefQ8_0;
  if (isa == Isa::Avx512Vnni && isa_runs_here(isa)) return q4 ? &kVnniQ4_0 : &kVnniQ8_0;
  return nullptr;
}

const PanelGemm* panel_gemm(DType t) {
  const Isa isa = best_isa();
  return isa == Isa::Avx512Vnni ? panel_gemm_for_isa(t, isa) : nullptr;
}

}  // namespace strata
