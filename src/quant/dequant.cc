// Exact scalar dequantizers: each output is the block formula evaluated in f32, as ggml does, so
// results match a GGUF reader bit for bit.
#include "core/half.h"
#include "quant/kernels.h"

namespace strata::qk {
namespace {

template <class B>
const B* blocks(const void* p) {
  return static_cast<const B*>(p);
}

// Bit 4 of element j of a Q5 block (j < 32).
inline int q5_high(const uint8_t* qh, int j) {
  uint32_t h;
  std::memcpy(&h, qh, 4);
  return ((h >> j) & 1) << 4;
}

}  // namespace

void dequantize_row_q4_0(const void* src, float* y, int64_t n) {
  const BlockQ4_0* x = blocks<BlockQ4_0>(src);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const float d = fp16_to_f32(x[i].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>((x[i].qs[j] & 15) - 8);
      y[j + 16] = d * static_cast<float>((x[i].qs[j] >> 4) - 8);
    }
  }
}

void dequantize_row_q4_1(const void* src, float* y, int64_t n) {
  const BlockQ4_1* x = blocks<BlockQ4_1>(src);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const float d = fp16_to_f32(x[i].d), m = fp16_to_f32(x[i].m);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(x[i].qs[j] & 15) + m;
      y[j + 16] = d * static_cast<float>(x[i].qs[j] >> 4) + m;
    }
  }
}

void dequantize_row_q5_0(const void* src, float* y, int64_t n) {
  const BlockQ5_0* x = blocks<BlockQ5_0>(src);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const float d = fp16_to_f32(x[i].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(((x[i].qs[j] & 15) | q5_high(x[i].qh, j)) - 16);
      y[j + 16] = d * static_cast<float>(((x[i].qs[j] >> 4) | q5_high(x[i].qh, j + 16)) - 16);
    }
  }
}

void dequantize_row_q5_1(const void* src, float* y, int64_t n) {
  const BlockQ5_1* x = blocks<BlockQ5_1>(src);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const float d = fp16_to_f32(x[i].d), m = fp16_to_f32(x[i].m);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>((x[i].qs[j] & 15) | q5_high(x[i].qh, j)) + m;
      y[j + 16] = d * static_cast<float>((x[i].qs[j] >> 4) | q5_high(x[i].qh, j + 16)) + m;
    }
  }
}

void dequantize_row_q8_0(const void* src, float* y, int64_t n) {
  const BlockQ8_0* x = blocks<BlockQ8_0>(src);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const float d = fp16_to_f32(x[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = d * static_cast<float>(x[i].qs[j]);
  }
}

void dequantize_row_q8_1(const void* src, float* y, int64_t n) {
  const BlockQ8_1* x = blocks<BlockQ8_1>(src);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const float d = fp16_to_f32(x[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = d * static_cast<float>(x[i].qs[j]);
  }
}

void dequantize_row_q2_k(const void* src, float* y, int64_t n) {
  const BlockQ2_K* x = blocks<BlockQ2_K>(src);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float d = fp16_to_f32(x[i].d), dmin = fp16_to_f32(x[i].dmin);
    for (int h = 0; h < 2; ++h) {
      const uint8_t* q = x[i].qs + 32 * h;
      for (int j = 0; j < 4; ++j) {
        for (int half = 0; half < 2; ++half) {
          const uint8_t sc = x[i].scales[8 * h + 2 * j + half];
          const float dl = d * static_cast<float>(sc & 15), ml = dmin * static_cast<float>(sc >> 4);
          for (int l = 16 * half; l < 16 * half + 16; ++l)
            *y++ = dl * static_cast<float>((q[l] >> (2 * j)) & 3) - ml;
        }
      }
    }
  }
}

void dequantize_row_q3_k(const void* src, float* y, int64_t n) {
  const BlockQ3_K* x = blocks<BlockQ3_K>(src);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float d = fp16_to_f32(x[i].d);
    int8_t sc[16];
    q3k_scales(x[i].scales, sc);
    for (int h = 0; h < 2; ++h) {
      const uint8_t* q = x[i].qs + 32 * h;
      for (int j = 0; j < 4; ++j) {
        const int plane = 4 * h + j;
        for (int l = 0; l < 32; ++l) {
          const int lo = (q[l] >> (2 * j)) & 3;
          const int v = lo - (((x[i].hmask[l] >> plane) & 1) ? 0 : 4);
          const float dl = d * static_cast<float>(sc[8 * h + 2 * j + l / 16]);
          *y++ = dl * static_cast<float>(v);
        }
      }
    }
  }
}

void dequantize_row_q4_k(const void* src, float* y, int64_t n) {
  const BlockQ4_K* x = blocks<BlockQ4_K>(src);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float d = fp16_to_f32(x[i].d), dmin = fp16_to_f32(x[i].dmin);
    uint8_t sc[8], mn[8];
    q4k_scales_mins(x[i].scales, sc, mn);
    for (int k = 0; k < 4; ++k) {
      const uint8_t* q = x[i].qs + 32 * k;
      const float d1 = d * sc[2 * k], m1 = dmin * mn[2 * k];
      const float d2 = d * sc[2 * k + 1], m2 = dmin * mn[2 * k + 1];
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 15) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

void dequantize_row_q5_k(const void* src, float* y, int64_t n) {
  const BlockQ5_K* x = blocks<BlockQ5_K>(src);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float d = fp16_to_f32(x[i].d), dmin = fp16_to_f32(x[i].dmin);
    uint8_t sc[8], mn[8];
    q4k_scales_mins(x[i].scales, sc, mn);
    for (int k = 0; k < 4; ++k) {
      const uint8_t* q = x[i].qs + 32 * k;
      const float d1 = d * sc[2 * k], m1 = dmin * mn[2 * k];
      const float d2 = d * sc[2 * k + 1], m2 = dmin * mn[2 * k + 1];
      for (int l = 0; l < 32; ++l) {
        const int v = (q[l] & 15) | ((x[i].qh[l] >> (2 * k)) & 1) << 4;
        *y++ = d1 * static_cast<float>(v) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        const int v = (q[l] >> 4) | ((x[i].qh[l] >> (2 * k + 1)) & 1) << 4;
        *y++ = d2 * static_cast<float>(v) - m2;
      }
    }
  }
}

void dequantize_row_q6_k(const void* src, float* y, int64_t n) {
  const BlockQ6_K* x = blocks<BlockQ6_K>(src);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const float d = fp16_to_f32(x[i].d);
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = x[i].ql + 64 * h;
      const uint8_t* qh = x[i].qh + 32 * h;
      for (int j = 0; j < 4; ++j) {
        for (int l = 0; l < 32; ++l) {
          const uint8_t lb = ql[l + 32 * (j & 1)];
          const int lo = j >= 2 ? lb >> 4 : lb & 15;
          const int v = (lo | ((qh[l] >> (2 * j)) & 3) << 4) - 32;
          const float dl = d * static_cast<float>(x[i].scales[8 * h + 2 * j + l / 16]);
          *y++ = dl * static_cast<float>(v);
        }
      }
    }
  }
}

void dequantize_row_q8_k(const void* src, float* y, int64_t n) {
  const BlockQ8_K* x = blocks<BlockQ8_K>(src);
  for (int64_t i = 0; i < n / kQKK; ++i)
    for (int j = 0; j < kQKK; ++j) *y++ = x[i].d * static_cast<float>(x[i].qs[j]);
}

}  // namespace strata::qk
