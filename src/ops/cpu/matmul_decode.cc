// One token against a group of weights that share it (one weight or several: decode's Q, K and
// V, an FFN's gate and up). The weights' rows form one index space and the threads split it
// once, so the group costs one hand-off and one tail.
//  - F16/BF16: row g is paired with row g + total/2 (FloatKernels::dot2_f16): every thread reads
//    two sequential streams and loads x once per pair, which keeps x in L1 for long rows.
//  - Quantized types: x is quantized once to the type's Q8 format; each thread's range is dotted
//    with vec_dot_rows weight by weight.
#include <algorithm>

#include "core/error.h"
#include "ops/cpu/float_kernels.h"
#include "ops/cpu/matmul_parts.h"
#include "ops/matmul.h"
#include "quant/quant.h"

namespace strata::cpu {
namespace {

// Each range a thread takes starts a new stream of weight reads, and the hardware prefetcher
// needs a while to ramp up on it. Asking for the first 8 KiB at once (into L2) gets the memory
// system busy right away: a model-shaped sequence of decode products streamed 5-12% faster
// (Q8_0 0.80-0.81 -> 0.85-0.91 of the read test, F16 0.82 -> 0.86, Q4_0 0.66 -> 0.72-0.74).
constexpr int64_t kStartBurst = 8192;
inline void start_stream(const uint8_t* p, int64_t bytes) {
#if defined(__x86_64__)
  const int64_t n = std::min(bytes, kStartBurst);
  for (int64_t o = 0; o < n; o += 64)
    __builtin_prefetch(p + o, 0, 2);  // read, into L2 (prefetcht1)
#else
  (void)p, (void)bytes;
#endif
}

// The rows of the group's weights as one index space [0, total).
class RowSpace {
 public:
  struct Part {
    const uint8_t* base;
    int64_t first, rows, row_bytes;
    float* y;
    const float* bias;
    float bias_of(int64_t r) const { return bias ? bias[r] : 0.0f; }
  };

  RowSpace(const MatmulOut* outs, int n) : n_(n) {
    for (int i = 0; i < n; ++i) {
      const Tensor& w = *outs[i].w;
      parts_[i] = {static_cast<const uint8_t*>(w.data),
                   total_,
                   w.rows(),
                   w.row_bytes(),
                   outs[i].y,
                   outs[i].bias};
      total_ += w.rows();
    }
  }
  int64_t total() const { return total_; }
  const Part& part_of(int64_t g) const {
    int i = 0;
    while (g >= parts_[i].first + parts_[i].rows) ++i;
    return parts_[i];
  }
  // f(part, r0, r1) for the local rows [r0, r1) of each part that [g0, g1) overlaps.
  template <class F>
  void for_each(int64_t g0, int64_t g1, F&& f) const {
    for (int i = 0; i < n_; ++i) {
      const Part& p = parts_[i];
      const int64_t a = std::max(g0, p.first), b = std::min(g1, p.first + p.rows);
      if (a < b) f(p, a - p.first, b - p.first);
    }
  }

 private:
  Part parts_[kMaxSharedOuts];
  int n_;
  int64_t total_ = 0;
};

void half_pairs(ThreadPool& pool, const RowSpace& rs, DType t, int64_t k, const float* x) {
  const FloatKernels& fk = float_kernels();
  const auto dot1 = t == DType::F16 ? fk.dot_f16 : fk.dot_bf16;
  const auto dot2 = t == DType::F16 ? fk.dot2_f16 : fk.dot2_bf16;
  const int64_t half = (rs.total() + 1) / 2;
  auto row = [](const RowSpace::Part& p, int64_t r) {
    return reinterpret_cast<const uint16_t*>(p.base + r * p.row_bytes);
  };
  pool.parallel_for(half, std::max<int64_t>(1, rows_grain(k, 1) / 2), [&](int64_t g0, int64_t g1) {
    {
      const RowSpace::Part& a = rs.part_of(g0);
      start_stream(a.base + (g0 - a.first) * a.row_bytes, (g1 - g0) * a.row_bytes);
      if (g0 + half < rs.total()) {
        const RowSpace::Part& b = rs.part_of(g0 + half);
        start_stream(b.base + (g0 + half - b.first) * b.row_bytes, (g1 - g0) * b.row_bytes);
      }
    }
    for (int64_t g = g0; g < g1; ++g) {
      const RowSpace::Part& a = rs.part_of(g);
      const int64_t ra = g - a.first;
      if (g + half >= rs.total()) {  // an odd total: the middle row has no partner
        a.y[ra] = dot1(k, row(a, ra), x) + a.bias_of(ra);
        continue;
      }
      const RowSpace::Part& b = rs.part_of(g + half);
      const int64_t rb = g + half - b.first;
      float out[2];
      dot2(k, row(a, ra), row(b, rb), x, out);
      a.y[ra] = out[0] + a.bias_of(ra);
      b.y[rb] = out[1] + b.bias_of(rb);
    }
  });
}

void quant_rows(ThreadPool& pool, const RowSpace& rs, DType t, int64_t k, const float* x) {
  const QuantKernels* q = quant_kernels(t);
  const QuantKernels* act = quant_kernels(q->vec_dot_type);
  if (!act || !act->quantize_act) fail("matmul: no activation format for {}", dtype_name(t));
  uint8_t* xq = act_scratch(row_bytes(q->vec_dot_type, k));
  act->quantize_act(x, xq, k);  // vectorised, bit-identical to the reference quantizer
  // This ISA's kernel, resolved once rather than per call.
  VecDotRowsFn dot_rows = vec_dot_rows_for_isa(t, best_isa());
  if (!dot_rows) dot_rows = q->vec_dot_rows;
  pool.parallel_for(rs.total(), rows_grain(k, 1), [&](int64_t g0, int64_t g1) {
    rs.for_each(g0, g1, [&](const RowSpace::Part& p, int64_t r0, int64_t r1) {
      start_stream(p.base + r0 * p.row_bytes, (r1 - r0) * p.row_bytes);
      dot_rows(k, r1 - r0, p.base + r0 * p.row_bytes, p.row_bytes, xq, p.y + r0);
      add_bias(p.bias, r0, r1, 1, p.y, p.rows);
    });
  });
}

}  // namespace

bool decode_group_supports(DType t) {
  const FloatKernels& fk = float_kernels();
  if (t == DType::F16) return fk.dot2_f16 != nullptr;
  if (t == DType::BF16) return fk.dot2_bf16 != nullptr;
  if (is_float_type(t) || t == DType::G4) return false;
  const QuantKernels* q = quant_kernels(t);
  return q && q->vec_dot;
}

void decode_group(ThreadPool& pool, const MatmulOut* outs, int n_outs, const float* x) {
  const RowSpace rs(outs, n_outs);
  const DType t = outs[0].w->dtype;
  const int64_t k = outs[0].w->cols();
  if (t == DType::F16 || t == DType::BF16)
    half_pairs(pool, rs, t, k, x);
  else
    quant_rows(pool, rs, t, k, x);
}

}  // namespace strata::cpu
