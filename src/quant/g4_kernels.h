// Internal: per-ISA G4 matmul kernels behind g4_matmul_groups (arguments already validated).
#pragma once
#include <cstdint>
#include <cstring>

#include "quant/g4.h"

namespace strata::g4 {

// Views into one weight group.
struct Group {
  const uint16_t* scale;  // [in] f16
  const uint16_t* min;    // [in] f16
  const uint8_t* codes;   // [64][in/2]
  int64_t rows;           // valid rows in this group (<= 64)
};

static inline Group group_at(const void* w, int64_t out, int64_t in, int64_t g) {
  const uint8_t* base = static_cast<const uint8_t*>(w) + g * 36 * in;
  Group r;
  r.scale = reinterpret_cast<const uint16_t*>(base);
  r.min = reinterpret_cast<const uint16_t*>(base + 2 * in);
  r.codes = base + 4 * in;
  const int64_t left = out - g * kG4Group;
  r.rows = left < kG4Group ? left : kG4Group;
  return r;
}

// `scratch` holds 4 * in floats (allocated by the caller, so no std:: template code is
// instantiated in the ISA-specific files; see quant/blocks.h on why that matters).
void matmul_scalar(const void* w, int64_t out, int64_t in, const float* x, int64_t n_tok, float* y,
                   int64_t g0, int64_t g1, float* scratch);
void matmul_avx2(const void* w, int64_t out, int64_t in, const float* x, int64_t n_tok, float* y,
                 int64_t g0, int64_t g1, float* scratch);
void matmul_avx512(const void* w, int64_t out, int64_t in, const float* x, int64_t n_tok, float* y,
                   int64_t g0, int64_t g1, float* scratch);

// KV-cache slice kernels (see g4_kv_kernels in g4.h); a group is kG4KvGroupBytes: f16 scale and
// min, then 32 code bytes.
float kv_dot_scalar(const void* slice, int64_t groups, const float* qp, const float* qsum);
void kv_axpy_scalar(const void* slice, int64_t groups, float a, float* op, float* msum);
// One full 64-element KV group: its min and max, and its 32 code bytes for the stored scale and
// min (scale > 0), computed exactly as the scalar code_of does.
void kv_range_avx2(const float* x, float* lo, float* hi);
void kv_codes_avx2(const float* x, float scale, float mn, uint8_t* codes);
float kv_dot_avx2(const void* slice, int64_t groups, const float* qp, const float* qsum);
void kv_axpy_avx2(const void* slice, int64_t groups, float a, float* op, float* msum);

}  // namespace strata::g4
