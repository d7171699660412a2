#include "quant/quant.h"

#include "quant/kernels.h"

namespace strata {
namespace {

// Picks the kernel for best_isa() on every call: one predictable branch per row, and
// set_isa_cap() (tests, benchmarks, STRATA_ISA) is honoured immediately. K[isa] is the kernel
// for each ISA level (avx512vnni falls back to avx512 where it has no kernel of its own).
template <class Fn>
struct PerIsa {
  Fn k[4];
  Fn at(Isa isa) const { return k[static_cast<int>(isa)]; }
};

template <VecDotFn S, VecDotFn A2, VecDotFn A5>
void dispatch_dot(int64_t n, float* out, const void* w, const void* act) {
  constexpr PerIsa<VecDotFn> t{{S, A2, A5, A5}};
  t.at(best_isa())(n, out, w, act);
}

template <VecDotTokensFn S, VecDotTokensFn A2, VecDotTokensFn A5>
void dispatch_tokens(int64_t n, int64_t n_tok, const void* w, const void* act, int64_t act_stride,
                     float* out, int64_t out_stride) {
  constexpr PerIsa<VecDotTokensFn> t{{S, A2, A5, A5}};
  t.at(best_isa())(n, n_tok, w, act, act_stride, out, out_stride);
}

template <VecDotRowsFn S, VecDotRowsFn A2, VecDotRowsFn A5, VecDotRowsFn A5V>
void dispatch_rows(int64_t n, int64_t n_rows, const void* w, int64_t w_stride, const void* act,
                   float* out) {
  constexpr PerIsa<VecDotRowsFn> t{{S, A2, A5, A5V}};
  t.at(best_isa())(n, n_rows, w, w_stride, act, out);
}

struct Entry {
  QuantKernels k;
  PerIsa<VecDotFn> dot;
  PerIsa<VecDotTokensFn> tok;
  PerIsa<VecDotRowsFn> rows;
};

// ROWS5V: the avx512vnni rows kernel (avx512vnni::vec_dot_rows_<name>, or the avx512 one).
#define STRATA_QK_ENTRY(T, VT, name, ROWS5V)                                                \
  Entry {                                                                                   \
    {DType::T,                                                                              \
     DType::VT,                                                                             \
     qk::dequantize_row_##name,                                                             \
     qk::quantize_row_##name,                                                               \
     dispatch_dot<qk::scalar::vec_dot_##name, qk::avx2::vec_dot_##name,                     \
                  qk::avx512::vec_dot_##name>,                                              \
     qk::scalar::vec_dot_##name,                                                            \
     dispatch_tokens<qk::scalar::vec_dot_tokens_##name, qk::avx2::vec_dot_tokens_##name,    \
                     qk::avx512::vec_dot_tokens_##name>,                                    \
     dispatch_rows<qk::scalar::vec_dot_rows_##name, qk::avx2::vec_dot_rows_##name,          \
                   qk::avx512::vec_dot_rows_##name, ROWS5V>},                               \
        {{qk::scalar::vec_dot_##name, qk::avx2::vec_dot_##name, qk::avx512::vec_dot_##name, \
          qk::avx512::vec_dot_##name}},                                                     \
        {{qk::scalar::vec_dot_tokens_##name, qk::avx2::vec_dot_tokens_##name,               \
          qk::avx512::vec_dot_tokens_##name, qk::avx512::vec_dot_tokens_##name}},           \
        {{qk::scalar::vec_dot_rows_##name, qk::avx2::vec_dot_rows_##name,                   \
          qk::avx512::vec_dot_rows_##name, ROWS5V}},                                        \
  }
#define STRATA_QK_ACT_ENTRY(T, name)                                                           \
  Entry {                                                                                      \
    {DType::T, DType::T, qk::dequantize_row_##name, qk::quantize_row_##name, nullptr, nullptr, \
     nullptr,  nullptr},                                                                       \
        {}, {}, {},                                                                            \
  }
#define STRATA_QK_SAME(name) qk::avx512::vec_dot_rows_##name
#define STRATA_QK_VNNI(name) qk::avx512vnni::vec_dot_rows_##name

const Entry kEntries[] = {
    STRATA_QK_ENTRY(Q4_0, Q8_1, q4_0, STRATA_QK_VNNI(q4_0)),
    STRATA_QK_ENTRY(Q4_1, Q8_1, q4_1, STRATA_QK_SAME(q4_1)),
    STRATA_QK_ENTRY(Q5_0, Q8_1, q5_0, STRATA_QK_SAME(q5_0)),
    STRATA_QK_ENTRY(Q5_1, Q8_1, q5_1, STRATA_QK_SAME(q5_1)),
    STRATA_QK_ENTRY(Q8_0, Q8_0, q8_0, STRATA_QK_SAME(q8_0)),
    STRATA_QK_ACT_ENTRY(Q8_1, q8_1),
    STRATA_QK_ENTRY(Q2_K, Q8_K, q2_k, STRATA_QK_SAME(q2_k)),
    STRATA_QK_ENTRY(Q3_K, Q8_K, q3_k, STRATA_QK_SAME(q3_k)),
    STRATA_QK_ENTRY(Q4_K, Q8_K, q4_k, STRATA_QK_SAME(q4_k)),
    STRATA_QK_ENTRY(Q5_K, Q8_K, q5_k, STRATA_QK_SAME(q5_k)),
    STRATA_QK_ENTRY(Q6_K, Q8_K, q6_k, STRATA_QK_SAME(q6_k)),
    STRATA_QK_ACT_ENTRY(Q8_K, q8_k),
};

const Entry* find(DType t) {
  for (const Entry& e : kEntries)
    if (e.k.type == t) return &e;
  return nullptr;
}

bool isa_runs_here(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::Scalar:
      return true;
    case Isa::Avx2:
      return f.avx2 && f.fma && f.f16c;
    case Isa::Avx512:
      return f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl;
    case Isa::Avx512Vnni:
      return isa_runs_here(Isa::Avx512) && f.avx512vnni && f.avx512vbmi;
  }
  return false;
}

}  // namespace

const QuantKernels* quant_kernels(DType t) {
  const Entry* e = find(t);
  return e ? &e->k : nullptr;
}

VecDotFn vec_dot_for_isa(DType t, Isa isa) {
  const Entry* e = find(t);
  if (!e || !isa_runs_here(isa)) return nullptr;
  return e->dot.at(isa);
}

VecDotTokensFn vec_dot_tokens_for_isa(DType t, Isa isa) {
  const Entry* e = find(t);
  if (!e || !isa_runs_here(isa)) return nullptr;
  return e->tok.at(isa);
}

VecDotRowsFn vec_dot_rows_for_isa(DType t, Isa isa) {
  const Entry* e = find(t);
  if (!e || !isa_runs_here(isa)) return nullptr;
  return e->rows.at(isa);
}

}  // namespace strata
