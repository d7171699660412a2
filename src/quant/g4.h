// FlexGen's group-wise asymmetric 4-bit format (DType::G4, strata-internal; never in a GGUF).
// Codes q in [0, 15]; value = q * scale + min with f16 scale and min per group;
// q = clamp(round((x - min) / scale), 0, 15) where scale = (max - min) / 15 over the group.
//
// WEIGHTS [out, in] (PyTorch Linear layout) are grouped like FlexGen does for weights: along dim
// 0, i.e. 64 consecutive OUTPUT rows share a per-column scale and min. The tensor is
// ceil(out/64) groups back to back; each group is
//     f16 scale[in], f16 min[in], then 64 rows x in/2 bytes of codes
// (byte k of a row holds column 2k in its low nibble and 2k+1 in its high nibble; rows past
// `out` in the last group are zero). So a group is 36 * in bytes, and `in` must be even.
//
// KV-CACHE rows are grouped along the head dimension instead: groups of 64 consecutive elements
// of one row (the last may be shorter), each f16 scale, f16 min, then ceil(len/2) code bytes
// with the same nibble order. A row of n elements is g4_kv_row_bytes(n) bytes.
#pragma once
#include <cstdint>

namespace strata {

constexpr int64_t kG4Group = 64;
constexpr int64_t kG4KvGroupBytes = 4 + kG4Group / 2;  // a full KV-row group

inline int64_t g4_groups(int64_t out) {
  return (out + kG4Group - 1) / kG4Group;
}
uint64_t g4_weight_bytes(int64_t out, int64_t in);

// Whole matrix; w is [out, in] row-major f32.
void g4_quantize_weight(const float* w, int64_t out, int64_t in, void* dst);
// Streaming: quantizes groups [group_begin, group_end) only. `rows` holds rows
// 64*group_begin .. min(64*group_end, out) - 1 (so a big matrix can be converted a few groups at
// a time); dst is the whole tensor's buffer, only those groups' bytes are written.
void g4_quantize_weight_groups(const float* rows, int64_t out, int64_t in, int64_t group_begin,
                               int64_t group_end, void* dst);
// One dequantized row (in floats) of the [out, in] matrix.
void g4_dequantize_row(const void* src, int64_t out, int64_t in, int64_t row, float* dst);

// y[t*out + o] = sum_i w'[o,i] * x[t*in + i] for t < n_tok and every row o in groups
// [group_begin, group_end). Per group it forms xs = scale * x and c = sum_i min_i x_i once, then
// each row is a 4-bit-code . f32 dot plus c; weights are never expanded to f32 in memory.
// Best ISA via best_isa(). Rows outside the groups are not touched.
void g4_matmul_groups(const void* w, int64_t out, int64_t in, const float* x, int64_t n_tok,
                      float* y, int64_t group_begin, int64_t group_end);

// KV-cache row format.
int64_t g4_kv_row_bytes(int64_t n);
void g4_quantize_kv_row(const float* src, int64_t n, void* dst);
void g4_dequantize_kv_row(const void* src, int64_t n, float* dst);

// Attention over G4 KV rows without expanding them: one head's slice of whole groups (head_dim a
// multiple of 64). A query is put once into the order the codes unpack in (code order: per 32
// elements, the 16 even ones, then the 16 odd ones) with its sum per group; then a key is
// sum over groups of scale * (codes . query) + min * sum(query), and a value is accumulated as
// (a * scale) * codes into an output kept in code order plus a * min per group.
void g4_kv_to_code_order(const float* x, int64_t n, float* xp);  // n a multiple of 32
// x[i] = xp[code position of i] + msum[i / 64].
void g4_kv_from_code_order(const float* xp, const float* msum, int64_t n, float* x);
struct G4KvKernels {
  float (*dot)(const void* slice, int64_t groups, const float* qp, const float* qsum);
  void (*axpy)(const void* slice, int64_t groups, float a, float* op, float* msum);
};
// For best_isa() (AVX-512 CPUs use the AVX2 kernels: a group is one 256-bit pass).
const G4KvKernels& g4_kv_kernels();

}  // namespace strata
