// CPU linear layer. Paths by weight type and number of tokens:
//  - one token with f16/bf16 or quantized weights: ops/cpu/matmul_decode.cc (decode_group).
//  - decode (few tokens, and one token with f32 weights): each output row is one fused dot
//    product of the weight row, in its stored type, with each token's activations (quantized
//    types: activations quantized once to the type's Q8 format, integer dot products, never an
//    f32 copy of the weights). Threads split the rows; memory-bound, the weight bytes cross the
//    bus once. Small batches of quantized weights use the multi-token fused integer dot, of half
//    weights the few-token kernel.
//  - prefill (many tokens), compute-bound:
//    - Q4_0 and Q8_0 on AVX-512 VNNI: the integer panel GEMM (quant/panel_gemm.h);
//    - other types on AVX-512: strips of 32 rows packed k-major and strata's strip GEMM
//      (strip_matmul);
//    - elsewhere: blocks of rows widened to f32 once into a thread-local tile (dequantizing
//      quantized types) and multiplied with every token by OpenBLAS sgemm (float_gemm).
//  G4 (FlexGen 4-bit, groups of 64 rows) has its own fused kernel over row groups.
#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <vector>

#include <cblas.h>

#include "core/cpu_features.h"
#include "core/error.h"
#include "ops/cpu/float_kernels.h"
#include "ops/cpu/matmul_parts.h"
#include "ops/matmul.h"
#include "quant/g4.h"
#include "quant/panel_gemm.h"
#include "quant/quant.h"

namespace strata::cpu {
namespace {

// OpenBLAS's pthread build starts its worker threads in a static constructor, sized from
// OPENBLAS_NUM_THREADS. strata never lets OpenBLAS thread (see float_gemm), so ask for one thread
// before that constructor runs: the library is linked statically, and constructors with a
// priority run before the default ones in the same image. Without this, idle OpenBLAS threads
// would exist before main() and could take signals that strata serve blocks on its own threads.
__attribute__((constructor(101))) void openblas_single_thread() {
  setenv("OPENBLAS_NUM_THREADS", "1", 1);
}

constexpr int64_t kGemmMinTokens = 4;  // float weights: widening a row block once pays off
constexpr int64_t kFewMaxTokens = 96;  // half weights, 2..95 tokens: float_few (64 tokens:
                                       // 112 vs 106 GFLOP/s for sgemm; 128: 127 vs 144)
constexpr int64_t kGemmRowBlock = kPrefillRowBlock;  // rows widened per sgemm call (256 measured
                                                     // 1.24x faster pp512 than 64: less repacking)

// Columns [c, c + nk) of rows [r0, r0 + nr) as f32, nk floats per row. For block types c and nk
// are multiples of the block size (prefill_k_chunk's 256 columns are, for every type); G4 (groups
// along the rows) widens whole rows only.
void widen(const Tensor& w, int64_t r0, int64_t nr, int64_t c, int64_t nk, float* dst) {
  const FloatKernels& fk = float_kernels();
  if (w.dtype == DType::G4) {
    if (c != 0 || nk != w.cols()) fail("matmul: G4 weights widen whole rows only");
    for (int64_t i = 0; i < nr; ++i) g4_dequantize_row(w.data, w.rows(), nk, r0 + i, dst + i * nk);
    return;
  }
  const QuantKernels* q = is_float_type(w.dtype) ? nullptr : quant_kernels(w.dtype);
  if (!is_float_type(w.dtype) && !q)
    fail("matmul: weight type {} is not supported on the CPU", dtype_name(w.dtype));
  const uint8_t* base =
      static_cast<const uint8_t*>(w.data) + r0 * w.row_bytes() + row_bytes(w.dtype, c);
  for (int64_t i = 0; i < nr; ++i) {
    const uint8_t* src = base + i * w.row_bytes();
    float* out = dst + i * nk;
    if (w.dtype == DType::F32)
      std::copy_n(reinterpret_cast<const float*>(src), nk, out);
    else if (w.dtype == DType::F16)
      fk.f16_to_f32(nk, reinterpret_cast<const uint16_t*>(src), out);
    else if (w.dtype == DType::BF16)
      fk.bf16_to_f32(nk, reinterpret_cast<const uint16_t*>(src), out);
    else
      q->dequantize_row(src, out, nk);
  }
}

void float_decode(ThreadPool& pool, const Tensor& w, const float* x, int64_t n_tok, float* y,
                  const float* bias) {
  const FloatKernels& fk = float_kernels();
  const int64_t n_out = w.rows(), k = w.cols(), rb = w.row_bytes();
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  pool.parallel_for(n_out, rows_grain(k, n_tok), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* row = base + r * rb;
      const float b = bias ? bias[r] : 0.0f;
      for (int64_t t = 0; t < n_tok; ++t) {
        const float* xt = x + t * k;
        float s;
        switch (w.dtype) {
          case DType::F32:
            s = fk.dot_f32(k, reinterpret_cast<const float*>(row), xt);
            break;
          case DType::F16:
            s = fk.dot_f16(k, reinterpret_cast<const uint16_t*>(row), xt);
            break;
          default:
            s = fk.dot_bf16(k, reinterpret_cast<const uint16_t*>(row), xt);
            break;
        }
        y[t * n_out + r] = s + b;
      }
    }
  });
}

// A few tokens with half-precision weights: the register-blocked kernel reads each weight row
// once from memory for all tokens (widening to f32 for sgemm would write and re-read the whole
// matrix, 3x slower at 16 tokens). Threads split blocks of four rows.
using FewKernel = decltype(FloatKernels::gemm_few_f16);

// The few-token kernel for this weight type on this CPU, or nullptr.
FewKernel few_kernel(DType t) {
  const FloatKernels& fk = float_kernels();
  return t == DType::F16 ? fk.gemm_few_f16 : t == DType::BF16 ? fk.gemm_few_bf16 : nullptr;
}

void float_few(ThreadPool& pool, FewKernel gemm, const Tensor& w, const float* x, int64_t n_tok,
               float* y, const float* bias) {
  const int64_t n_out = w.rows(), k = w.cols(), ld = w.row_bytes() / 2;
  const auto* base = static_cast<const uint16_t*>(w.data);
  const int64_t blocks = (n_out + 3) / 4;
  pool.parallel_for(blocks, (rows_grain(k, n_tok) + 3) / 4, [&](int64_t b0, int64_t b1) {
    const int64_t r0 = b0 * 4, r1 = std::min(n_out, b1 * 4);
    gemm(n_tok, r1 - r0, k, base + r0 * ld, ld, x, k, y + r0, n_out);
    add_bias(bias, r0, r1, n_tok, y, n_out);
  });
}

// The prefill multiply of one widened block: y[t, r0..] (= or +=) x[t, c..c+nk] . wf rows.
void block_gemm(const float* x, int64_t k, int64_t n_tok, const float* wf, int64_t ldw, int64_t nr,
                int64_t nk, bool add, float* y, int64_t n_out) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n_tok),
              static_cast<int>(nr), static_cast<int>(nk), 1.0f, x, static_cast<int>(k), wf,
              static_cast<int>(ldw), add ? 1.0f : 0.0f, y, static_cast<int>(n_out));
}

// Prefill on AVX-512: threads take strips of 32 weight rows; each strip is packed k-major
// (f16/bf16/f32 straight from the weights, other types from their widened f32 rows) a chunk of
// kStripK columns at a time and multiplied with every token by gemm_strip, the chunks adding
// into y.
constexpr int64_t kStripK = 1024;  // a multiple of every block size; 128 KB packed, in L2

void strip_matmul(ThreadPool& pool, const StripGemm& sg, const Tensor& w, const float* x,
                  int64_t n_tok, float* y, const float* bias) {
  const int64_t n_out = w.rows(), k = w.cols(), rb = w.row_bytes();
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  const int64_t strips = (n_out + kStripRows - 1) / kStripRows;
  pool.parallel_for(strips, 1, [&](int64_t s0, int64_t s1) {
    struct alignas(64) Line {
      float f[16];
    };
    thread_local std::vector<Line> packed;
    thread_local std::vector<float> tile;
    packed.resize(static_cast<size_t>(kStripK * kStripRows / 16));
    float* bp = packed.data()->f;
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t r0 = s * kStripRows, nr = std::min(kStripRows, n_out - r0);
      const uint8_t* rows = base + r0 * rb;
      for (int64_t c = 0; c < k; c += kStripK) {
        const int64_t nk = std::min(kStripK, k - c);
        switch (w.dtype) {
          case DType::F32:
            sg.pack_f32(rows + c * 4, rb, nr, nk, bp);
            break;
          case DType::F16:
            sg.pack_f16(rows + c * 2, rb, nr, nk, bp);
            break;
          case DType::BF16:
            sg.pack_bf16(rows + c * 2, rb, nr, nk, bp);
            break;
          default:
            tile.resize(static_cast<size_t>(nr * nk));
            widen(w, r0, nr, c, nk, tile.data());
            sg.pack_f32(tile.data(), nk * 4, nr, nk, bp);
        }
        sg.gemm(n_tok, nr, nk, x + c, k, bp, y + r0, n_out, c != 0);
      }
      add_bias(bias, r0, r0 + nr, n_tok, y, n_out);
    }
  });
}

// Prefill: row blocks of the weight are widened to f32 (once per block, shared by every token)
// and multiplied with OpenBLAS's sgemm, one call per block on strata's own threads. OpenBLAS
// measured 1.3-1.5x faster than the hand-written 3x4 kernel here (docs/design.md).
//
// Block shape: at most kGemmRowBlock rows, and a number of blocks that is a multiple of the
// threads (768 rows on 2 threads as 3 blocks of 256 kept one thread idle a third of the time);
// k in chunks (prefill_k_chunk) so the widened tile stays in L2 (a 256-row tile of a
// 16384-wide matrix would be 16 MB), the chunks accumulating into y.
void float_gemm(ThreadPool& pool, const Tensor& w, const float* x, int64_t n_tok, float* y,
                const float* bias) {
  if (const StripGemm* sg = strip_gemm(); sg && w.row_bytes() < (int64_t(1) << 26))
    return strip_matmul(pool, *sg, w, x, n_tok, y, bias);
  // strata's threads already split the rows; OpenBLAS must not start its own on top.
  static std::once_flag one_thread;
  std::call_once(one_thread, [] { openblas_set_num_threads(1); });
  const int64_t n_out = w.rows(), k = w.cols(), threads = pool.size();
  int64_t n_blocks = (n_out + kGemmRowBlock - 1) / kGemmRowBlock;
  n_blocks = (n_blocks + threads - 1) / threads * threads;
  const int64_t rb = std::min(kGemmRowBlock, ((n_out + n_blocks - 1) / n_blocks + 15) / 16 * 16);
  n_blocks = (n_out + rb - 1) / rb;
  const int64_t kc = prefill_k_chunk(k);
  const int64_t grain =
      std::max<int64_t>(1, (int64_t(1) << 18) / std::max<int64_t>(1, rb * k * n_tok));
  pool.parallel_for(n_blocks, grain, [&](int64_t b0, int64_t b1) {
    thread_local std::vector<float> tile;
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * rb, nr = std::min(rb, n_out - r0);
      for (int64_t c = 0; c < k; c += kc) {
        const int64_t nk = std::min(kc, k - c);
        const float* wf;
        int64_t ldw = nk;
        if (w.dtype == DType::F32) {
          wf = static_cast<const float*>(w.data) + r0 * k + c;
          ldw = k;
        } else {
          tile.resize(static_cast<size_t>(nr * nk));
          widen(w, r0, nr, c, nk, tile.data());
          wf = tile.data();
        }
        block_gemm(x + c, k, n_tok, wf, ldw, nr, nk, c != 0, y + r0, n_out);
      }
      add_bias(bias, r0, r0 + nr, n_tok, y, n_out);
    }
  });
}

// Prefill with integer products (quant/panel_gemm.h): up to kQ8PanelTokens tokens at a time are
// quantized into a Q8 panel (threads split the tokens), then threads split the weight rows in
// strips of 32, each strip packed once and multiplied with every token of the panel.
void panel_matmul(ThreadPool& pool, const Tensor& w, const PanelGemm& pg, const float* x,
                  int64_t n_tok, float* y, const float* bias) {
  const int64_t n_out = w.rows(), k = w.cols(), rb = w.row_bytes();
  const int64_t chunk = std::min(n_tok, kQ8PanelTokens);
  void* buf = act_scratch(q8_panel_bytes(k, chunk));
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  const int64_t strips = (n_out + kPanelStripRows - 1) / kPanelStripRows;
  for (int64_t t0 = 0; t0 < n_tok; t0 += chunk) {
    const int64_t nt = std::min(chunk, n_tok - t0);
    const Q8Panel p = q8_panel_view(buf, k, nt);
    const float* xt = x + t0 * k;
    pool.parallel_for(nt, 8, [&](int64_t a, int64_t b) { pg.quantize(xt, k, a, b, pg.offset, p); });
    float* yt = y + t0 * n_out;
    pool.parallel_for(strips, 1, [&](int64_t s0, int64_t s1) {
      const int64_t r0 = s0 * kPanelStripRows, r1 = std::min(n_out, s1 * kPanelStripRows);
      pg.gemm(base + r0 * rb, rb, r1 - r0, p, yt + r0, n_out);
      add_bias(bias, r0, r1, nt, yt, n_out);
    });
  }
}

void quant_matmul(ThreadPool& pool, const Tensor& w, const QuantKernels& q, const float* x,
                  int64_t n_tok, float* y, const float* bias) {
  const int64_t n_out = w.rows(), k = w.cols(), rb = w.row_bytes();
  const QuantKernels* act = quant_kernels(q.vec_dot_type);
  if (!act || !act->quantize_act) fail("matmul: no activation format for {}", dtype_name(w.dtype));
  const int64_t ab = row_bytes(q.vec_dot_type, k);
  // Activations quantized once per token (vectorised, bit-identical to the reference), shared by
  // every row.
  uint8_t* xqp = act_scratch(ab * n_tok);
  pool.parallel_for(n_tok, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) act->quantize_act(x + t * k, xqp + t * ab, k);
  });
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  // This ISA's kernels, resolved once rather than per row.
  VecDotTokensFn dot_tokens = vec_dot_tokens_for_isa(w.dtype, best_isa());
  if (!dot_tokens) dot_tokens = q.vec_dot_tokens;
  pool.parallel_for(n_out, rows_grain(k, n_tok), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) dot_tokens(k, n_tok, base + r * rb, xqp, ab, y + r, n_out);
    add_bias(bias, r0, r1, n_tok, y, n_out);
  });
}

void g4_matmul(ThreadPool& pool, const Tensor& w, const float* x, int64_t n_tok, float* y,
               const float* bias) {
  const int64_t n_out = w.rows(), k = w.cols();
  pool.parallel_for(g4_groups(n_out), 1, [&](int64_t g0, int64_t g1) {
    g4_matmul_groups(w.data, n_out, k, x, n_tok, y, g0, g1);
    add_bias(bias, g0 * kG4Group, std::min(n_out, g1 * kG4Group), n_tok, y, n_out);
  });
}

}  // namespace

uint8_t* act_scratch(int64_t bytes) {
  thread_local std::vector<uint8_t> buf;
  if (static_cast<int64_t>(buf.size()) < bytes) buf.resize(static_cast<size_t>(bytes));
  return buf.data();
}

bool supports(DType t) {
  if (is_float_type(t) || t == DType::G4) return true;
  const QuantKernels* q = quant_kernels(t);
  return q && q->vec_dot;
}

void matmul(ThreadPool& pool, const Tensor& w, const float* x, int64_t n_tok, float* y,
            const float* bias) {
  if (n_tok == 1 && decode_group_supports(w.dtype)) {  // decode: matmul_decode.cc
    const MatmulOut out{&w, y, bias};
    return decode_group(pool, &out, 1, x);
  }
  if (w.dtype == DType::G4) return g4_matmul(pool, w, x, n_tok, y, bias);
  if (is_float_type(w.dtype)) {
    const FewKernel few = few_kernel(w.dtype);
    if (n_tok > 1 && n_tok < kFewMaxTokens && few)
      float_few(pool, few, w, x, n_tok, y, bias);
    else if (n_tok >= kGemmMinTokens)
      float_gemm(pool, w, x, n_tok, y, bias);
    else
      float_decode(pool, w, x, n_tok, y, bias);
    return;
  }
  const QuantKernels* q = quant_kernels(w.dtype);
  if (!q || !q->vec_dot)
    fail("matmul: weight type {} is not supported on the CPU", dtype_name(w.dtype));
  // Many tokens (prefill, large batches) are compute-bound: the integer panel GEMM where this CPU
  // has one for the type (from its min_tokens; the panel's gathers address 32 rows with 32-bit
  // offsets), else dequantizing a row block once and using sgemm (which beats the one-row integer
  // dot products there); decoding stays on the fused integer path.
  const PanelGemm* pg = panel_gemm(w.dtype);
  if (pg && n_tok >= pg->min_tokens && w.row_bytes() < (int64_t(1) << 26))
    return panel_matmul(pool, w, *pg, x, n_tok, y, bias);
  if (n_tok >= kQuantGemmMinTokens) return float_gemm(pool, w, x, n_tok, y, bias);
  quant_matmul(pool, w, *q, x, n_tok, y, bias);
}

void get_row(const Tensor& w, int64_t r, float* out) {
  widen(w, r, 1, 0, w.cols(), out);
}

}  // namespace strata::cpu
