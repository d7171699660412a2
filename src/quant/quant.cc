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

template <const PerIsa<VecDotFn>& T>
void dispatch_dot(int64_t n, float* out, const void* w, const void* act) {
  T.at(best_isa())(n, out, w, act);
}

template <const PerIsa<VecDotTokensFn>& T>
void dispatch_tokens(int64_t n, int64_t n_tok, const void* w, const void* act, int64_t act_stride,
                     float* out, int64_t out_stride) {
  T.at(best_isa())(n, n_tok, w, act, act_stride, out, out_stride);
}

template <const PerIsa<QuantizeRowFn>& T>
void dispatch_act(const float* x, void* dst, int64_t n) {
  T.at(best_isa())(x, dst, n);
}

template <const PerIsa<VecDotRowsFn>& T>
void dispatch_rows(int64_t n, int64_t n_rows, const void* w, int64_t w_stride, const void* act,
                   float* out) {
  T.at(best_isa())(n, n_rows, w, w_stride, act, out);
}

// Each type's kernels per ISA level, once: the dispatchers and vec_dot*_for_isa read the same
// tables. Multi-row entries loop over the one-row kernel unless ROWS5V names a kernel of the
// avx512vnni level.
#define STRATA_QK_ROWS_BY_DOT(isa, name) qk::rows_by_dot<qk::isa::vec_dot_##name>
#define STRATA_QK_TABLES(name, ROWS5V)                                                          \
  constexpr PerIsa<VecDotFn> kDot_##name{{qk::scalar::vec_dot_##name, qk::avx2::vec_dot_##name, \
                                          qk::avx512::vec_dot_##name,                           \
                                          qk::avx512::vec_dot_##name}};                         \
  constexpr PerIsa<VecDotTokensFn> kTok_##name{                                                 \
      {qk::scalar::vec_dot_tokens_##name, qk::avx2::vec_dot_tokens_##name,                      \
       qk::avx512::vec_dot_tokens_##name, qk::avx512::vec_dot_tokens_##name}};                  \
  constexpr PerIsa<VecDotRowsFn> kRows_##name{{STRATA_QK_ROWS_BY_DOT(scalar, name),             \
                                               STRATA_QK_ROWS_BY_DOT(avx2, name),               \
                                               STRATA_QK_ROWS_BY_DOT(avx512, name), ROWS5V}};
STRATA_QK_TABLES(q4_0, qk::avx512vnni::vec_dot_rows_q4_0)
STRATA_QK_TABLES(q4_1, STRATA_QK_ROWS_BY_DOT(avx512, q4_1))
STRATA_QK_TABLES(q5_0, STRATA_QK_ROWS_BY_DOT(avx512, q5_0))
STRATA_QK_TABLES(q5_1, STRATA_QK_ROWS_BY_DOT(avx512, q5_1))
STRATA_QK_TABLES(q8_0, STRATA_QK_ROWS_BY_DOT(avx512, q8_0))
STRATA_QK_TABLES(q2_k, STRATA_QK_ROWS_BY_DOT(avx512, q2_k))
STRATA_QK_TABLES(q3_k, STRATA_QK_ROWS_BY_DOT(avx512, q3_k))
STRATA_QK_TABLES(q4_k, STRATA_QK_ROWS_BY_DOT(avx512, q4_k))
STRATA_QK_TABLES(q5_k, STRATA_QK_ROWS_BY_DOT(avx512, q5_k))
STRATA_QK_TABLES(q6_k, STRATA_QK_ROWS_BY_DOT(avx512, q6_k))

#define STRATA_QK_ACT_TABLE(name)                                                               \
  constexpr PerIsa<QuantizeRowFn> kAct_##name{                                                  \
      {qk::quantize_row_##name, qk::avx2::quantize_act_##name, qk::avx512::quantize_act_##name, \
       qk::avx512::quantize_act_##name}};
STRATA_QK_ACT_TABLE(q8_0)
STRATA_QK_ACT_TABLE(q8_1)
STRATA_QK_ACT_TABLE(q8_k)

struct Entry {
  QuantKernels k;
  const PerIsa<VecDotFn>* dot;
  const PerIsa<VecDotTokensFn>* tok;
  const PerIsa<VecDotRowsFn>* rows;
  const PerIsa<QuantizeRowFn>* act;
};

// A weight type's entry; ACT_FN, ACT: its activation quantizer and table where the type is also
// an activation format (Q8_0), else nullptr.
#define STRATA_QK_ENTRY_ACT(T, VT, name, ACT_FN, ACT)  \
  Entry {                                              \
    {DType::T,                                         \
     DType::VT,                                        \
     qk::dequantize_row_##name,                        \
     qk::quantize_row_##name,                          \
     dispatch_dot<kDot_##name>,                        \
     qk::scalar::vec_dot_##name,                       \
     dispatch_tokens<kTok_##name>,                     \
     dispatch_rows<kRows_##name>,                      \
     ACT_FN},                                          \
        &kDot_##name, &kTok_##name, &kRows_##name, ACT \
  }
#define STRATA_QK_ENTRY(T, VT, name) STRATA_QK_ENTRY_ACT(T, VT, name, nullptr, nullptr)
#define STRATA_QK_ACT_ENTRY(T, name)                                                           \
  Entry {                                                                                      \
    {DType::T, DType::T, qk::dequantize_row_##name, qk::quantize_row_##name, nullptr, nullptr, \
     nullptr,  nullptr,  dispatch_act<kAct_##name>},                                           \
        nullptr, nullptr, nullptr, &kAct_##name                                                \
  }

const Entry kEntries[] = {
    STRATA_QK_ENTRY(Q4_0, Q8_1, q4_0),
    STRATA_QK_ENTRY(Q4_1, Q8_1, q4_1),
    STRATA_QK_ENTRY(Q5_0, Q8_1, q5_0),
    STRATA_QK_ENTRY(Q5_1, Q8_1, q5_1),
    STRATA_QK_ENTRY_ACT(Q8_0, Q8_0, q8_0, dispatch_act<kAct_q8_0>, &kAct_q8_0),
    STRATA_QK_ACT_ENTRY(Q8_1, q8_1),
    STRATA_QK_ENTRY(Q2_K, Q8_K, q2_k),
    STRATA_QK_ENTRY(Q3_K, Q8_K, q3_k),
    STRATA_QK_ENTRY(Q4_K, Q8_K, q4_k),
    STRATA_QK_ENTRY(Q5_K, Q8_K, q5_k),
    STRATA_QK_ENTRY(Q6_K, Q8_K, q6_k),
    STRATA_QK_ACT_ENTRY(Q8_K, q8_k),
};

const Entry* find(DType t) {
  for (const Entry& e : kEntries)
    if (e.k.type == t) return &e;
  return nullptr;
}

}  // namespace

const QuantKernels* quant_kernels(DType t) {
  const Entry* e = find(t);
  return e ? &e->k : nullptr;
}

VecDotFn vec_dot_for_isa(DType t, Isa isa) {
  const Entry* e = find(t);
  if (!e || !isa_runs_here(isa)) return nullptr;
  return e->dot ? e->dot->at(isa) : nullptr;
}

VecDotTokensFn vec_dot_tokens_for_isa(DType t, Isa isa) {
  const Entry* e = find(t);
  if (!e || !isa_runs_here(isa)) return nullptr;
  return e->tok ? e->tok->at(isa) : nullptr;
}

VecDotRowsFn vec_dot_rows_for_isa(DType t, Isa isa) {
  const Entry* e = find(t);
  if (!e || !isa_runs_here(isa)) return nullptr;
  return e->rows ? e->rows->at(isa) : nullptr;
}

QuantizeRowFn quantize_act_for_isa(DType t, Isa isa) {
  const Entry* e = find(t);
  if (!e || !isa_runs_here(isa)) return nullptr;
  return e->act ? e->act->at(isa) : nullptr;
}

}  // namespace strata
