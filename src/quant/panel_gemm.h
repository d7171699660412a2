// Prefill with integer products for Q4_0 and Q8_0 weights (many tokens at once).
//
// The tokens' activations are quantized once into a Q8 panel: per token the int8 codes of all n
// elements, and per 32-element block an f32 scale and the integer sum's starting value. The
// weights are read in strips of 32 rows and repacked (in the thread's L2) so that one 64-byte
// vector holds four consecutive elements of 16 rows as unsigned bytes; one VNNI vpdpbusd then
// multiplies them by the same four activation bytes of one token (a 32-bit broadcast), adding
// 16 rows' partial block sums at once. Every lane is one (row, token) pair, so a block's scales
// apply with one multiply and one FMA per 16 rows instead of a horizontal reduction per row.
//
// vpdpbusd takes unsigned by signed bytes: the weight codes carry an offset (Q4_0's raw nibbles
// are w + 8; Q8_0's codes are stored as w + 128), and each block's integer sum starts from
// -offset x (sum of the activation codes) so that it ends exact. The result matches the scalar
// reference bit for bit: both scale each block's exact integer sum by (d_w x d_a), rounded, and
// add the blocks in order with one fused multiply-add each.
#pragma once
#include <cstdint>

#include "core/cpu_features.h"
#include "core/dtype.h"

namespace strata {

// Elements per panel block (the legacy block size, which Q4_0 and Q8_0 share).
inline constexpr int64_t kPanelBlock = 32;

// Weight rows the GEMM packs and multiplies at a time (callers split work in strips of these).
inline constexpr int64_t kPanelStripRows = 32;
// Bytes one packed strip of n-element rows takes (each thread keeps one): per 32-element block,
// both 16-row halves' eight 64-byte vectors of codes, then the 32 rows' scales as f32.
inline constexpr int64_t kPanelPackedBlock = 2 * 8 * 64 + kPanelStripRows * 4;
inline int64_t panel_strip_bytes(int64_t n) {
  return n / kPanelBlock * kPanelPackedBlock;
}

// n_tok tokens of n activations (n a multiple of kPanelBlock), quantized.
struct Q8Panel {
  int64_t n = 0, n_tok = 0;
  int8_t* codes = nullptr;  // [n_tok][n]: round(x / d), in [-127, 127]
  // [n_tok][n / 32]: each block's max |x| / 127, rounded to f16 like the scale Q8_0 and Q8_1
  // store: codes and scales are exactly those of the few-token path's Q8 activations.
  float* d = nullptr;
  int32_t* start = nullptr;  // [n_tok][n / 32]: -offset x the sum of the block's codes
};

// Bytes of the buffer a panel of n_tok tokens of n elements lives in (q8_panel_view).
inline int64_t q8_panel_bytes(int64_t n, int64_t n_tok) {
  return n_tok * (n + n / kPanelBlock * 8);
}
// The panel laid out in buf (q8_panel_bytes(n, n_tok) bytes, 4-byte aligned).
Q8Panel q8_panel_view(void* buf, int64_t n, int64_t n_tok);

struct PanelGemm {
  // The unsigned offset of the packed weight codes: 8 for Q4_0, 128 for Q8_0. The panel's start
  // values depend on it, so the panel is quantized for one weight type.
  int offset;
  // Fewer tokens go through the one-row integer dot products (quant.h), which cost less than
  // packing the strips then: matmul_bench, 4096 x 4096, 2 threads, Zen 5, ms per product: Q4_0
  // at 4 tokens 0.75 (dots) against 0.85 (panel), at 8 1.53 against 0.94-1.03; Q8_0 at 8 1.30-1.35
  // against 1.64-1.75, at 12 2.01-2.09 against 1.76-1.82.
  int64_t min_tokens;
  // Quantizes tokens [t0, t1) of x (row t at x + t * ldx) into p.
  void (*quantize)(const float* x, int64_t ldx, int64_t t0, int64_t t1, int offset,
                   const Q8Panel& p);
  // y[t * ldy + r] = dot(weight row r, token t) for r in [0, n_rows) and every panel token;
  // weight row r at w + r * w_stride bytes in the type's GGUF block layout, p.n elements.
  void (*gemm)(const void* w, int64_t w_stride, int64_t n_rows, const Q8Panel& p, float* y,
               int64_t ldy);
};

// The integer prefill for weight type t on this CPU (best_isa()), or nullptr: it exists for Q4_0
// and Q8_0 at the avx512vnni level; elsewhere widening to f32 and sgemm is faster than scalar
// integer code.
const PanelGemm* panel_gemm(DType t);
// A given ISA's version, for tests and benchmarks: Isa::Scalar is the portable reference (also
// for Q4_0 and Q8_0 only); nullptr where that ISA has none or this CPU cannot run it.
const PanelGemm* panel_gemm_for_isa(DType t, Isa isa);

}  // namespace strata
