// The panel GEMM (panel_gemm.h) for CPUs with AVX-512 VNNI.
//
// Weights go through in strips of 32 rows. A strip is first packed into a thread-local buffer
// (k / 32 blocks of 1152 bytes, in L2): per block, for each half of 16 rows, eight vectors (one
// per group of four elements; lane i = row i's four codes, unsigned) and then the two halves'
// scales as f32. Gathers read the 16 rows' four bytes at once, so packing costs a few dozen
// instructions per block against the thousands the tokens spend on it.
//
// The tile kernel then runs kTile tokens at a time over the packed strip: per block and token
// two int32 accumulators (16 rows each) start from the panel's -offset x sum, take eight
// vpdpbusd each (weights unsigned, the token's four activation bytes broadcast as the signed
// side), and are scaled into two f32 accumulators with one multiply and one FMA each.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "quant/kernels.h"
#include "quant/simd_avx2.h"

namespace strata::qk::avx512vnni {
namespace {

using avx2::unroll;

constexpr int kStrip = kPanelStripRows;  // two halves of 16 lanes
constexpr int kGroups = kPanelBlock / 4;
constexpr int64_t kHalfBytes = kGroups * 64;         // one half's codes of one block
constexpr int64_t kPackedBlock = kPanelPackedBlock;  // codes of both halves, then 32 scales
static_assert(kPackedBlock == 2 * kHalfBytes + 4 * kStrip);
// Tokens per pass: 10 int32 + 10 f32 accumulators and 2 weight vectors. 5 measured 2-4% faster
// than 6 and 4 (matmul_bench, 256 tokens, Zen 5).
constexpr int kTile = 5;

struct alignas(64) Line {
  uint8_t b[64];
};

// Byte offsets of the strip's rows for the gathers: lane i of half h reads row 16h + i, rows
// past the last valid one repeat it (their results are never stored).
void row_offsets(int64_t ws, int nr, __m512i off[2]) {
  alignas(64) int32_t o[kStrip];
  for (int i = 0; i < kStrip; ++i) o[i] = static_cast<int32_t>(std::min(i, nr - 1) * ws);
  off[0] = _mm512_load_si512(o);
  off[1] = _mm512_load_si512(o + 16);
}

// The 16 rows' f16 scales (the first two bytes of each block at blk) as f32.
inline __m512 gather_scales(__m512i off, const uint8_t* blk) {
  const __m512i d = _mm512_i32gather_epi32(off, blk, 1);
  return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(d));
}

// Q4_0 (2-byte scale, 16 bytes of nibbles): element j < 16 is the low nibble of byte j, element
// j + 16 its high nibble; the raw nibbles are the codes plus 8.
void pack_q4_0(const uint8_t* w, const __m512i off[2], int64_t nb, uint8_t* dst) {
  const __m512i low4 = _mm512_set1_epi8(15);
  for (int64_t b = 0; b < nb; ++b, dst += kPackedBlock) {
    const uint8_t* blk = w + b * sizeof(BlockQ4_0);
    for (int h = 0; h < 2; ++h) {
      _mm512_store_ps(dst + 2 * kHalfBytes + 64 * h, gather_scales(off[h], blk));
      uint8_t* o = dst + h * kHalfBytes;
      for (int j = 0; j < 4; ++j) {
        const __m512i v = _mm512_i32gather_epi32(off[h], blk + 2 + 4 * j, 1);
        _mm512_store_si512(o + 64 * j, _mm512_and_si512(v, low4));
        _mm512_store_si512(o + 64 * (j + 4), _mm512_and_si512(_mm512_srli_epi32(v, 4), low4));
      }
    }
  }
}

// Q8_0 (2-byte scale, 32 signed codes): stored as codes + 128.
void pack_q8_0(const uint8_t* w, const __m512i off[2], int64_t nb, uint8_t* dst) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t b = 0; b < nb; ++b, dst += kPackedBlock) {
    const uint8_t* blk = w + b * sizeof(BlockQ8_0);
    for (int h = 0; h < 2; ++h) {
      _mm512_store_ps(dst + 2 * kHalfBytes + 64 * h, gather_scales(off[h], blk));
      uint8_t* o = dst + h * kHalfBytes;
      for (int g = 0; g < kGroups; ++g) {
        const __m512i v = _mm512_i32gather_epi32(off[h], blk + 2 + 4 * g, 1);
        _mm512_store_si512(o + 64 * g, _mm512_xor_si512(v, flip));
      }
    }
  }
}

inline int32_t load32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Tokens [t0, t0 + T) against a packed strip; m0 and m1 mask the rows each half stores.
template <int T>
void tile(const uint8_t* pk, const Q8Panel& p, int64_t t0, float* y, int64_t ldy, __mmask16 m0,
          __mmask16 m1) {
  const int64_t nb = p.n / kPanelBlock, n = p.n;
  const int8_t* c = p.codes + t0 * n;
  const float* d = p.d + t0 * nb;
  const int32_t* s = p.start + t0 * nb;
  __m512 f0[T], f1[T];
  unroll<T>([&](auto t) { f0[t] = f1[t] = _mm512_setzero_ps(); });
  for (int64_t b = 0; b < nb; ++b, pk += kPackedBlock, c += kPanelBlock) {
    __m512i i0[T], i1[T];
    unroll<T>([&](auto t) { i0[t] = i1[t] = _mm512_set1_epi32(s[t * nb + b]); });
    unroll<kGroups>([&](auto g) {
      const __m512i w0 = _mm512_load_si512(pk + 64 * g);
      const __m512i w1 = _mm512_load_si512(pk + kHalfBytes + 64 * g);
      unroll<T>([&](auto t) {
        const __m512i a = _mm512_set1_epi32(load32(c + t * n + 4 * g));
        i0[t] = _mm512_dpbusd_epi32(i0[t], w0, a);
        i1[t] = _mm512_dpbusd_epi32(i1[t], w1, a);
      });
    });
    const __m512 dw0 = _mm512_load_ps(pk + 2 * kHalfBytes),
                 dw1 = _mm512_load_ps(pk + 2 * kHalfBytes + 64);
    unroll<T>([&](auto t) {
      const __m512 da = _mm512_set1_ps(d[t * nb + b]);
      f0[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0[t]), _mm512_mul_ps(dw0, da), f0[t]);
      f1[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1[t]), _mm512_mul_ps(dw1, da), f1[t]);
    });
  }
  unroll<T>([&](auto t) {
    float* yt = y + (t0 + t) * ldy;
    _mm512_mask_storeu_ps(yt, m0, f0[t]);
    _mm512_mask_storeu_ps(yt + 16, m1, f1[t]);
  });
}

using TileFn = void (*)(const uint8_t*, const Q8Panel&, int64_t, float*, int64_t, __mmask16,
                        __mmask16);
constexpr TileFn kTiles[kTile + 1] = {nullptr, tile<1>, tile<2>, tile<3>, tile<4>, tile<5>};

// Prefetches (into L2) the weight rows [r0, r0 + nr) of the next strip, each row_bytes long, in
// one share per tile of the n_tok tokens.
class NextStrip {
 public:
  NextStrip(const void* w, int64_t stride, int64_t r0, int64_t nr, int64_t n_tok, int64_t row_bytes)
      : base_(static_cast<const char*>(w) + r0 * stride),
        stride_(stride),
        row_lines_((row_bytes + 63) / 64),
        total_(nr > 0 ? nr * row_lines_ : 0),
        share_((total_ * kTile + n_tok - 1) / std::max<int64_t>(1, n_tok)) {}
  // Prefetches lines [line, line + share) and returns where the next share starts.
  int64_t prefetch(int64_t line) const {
    const int64_t end = std::min(total_, line + share_);
    for (; line < end; ++line)
      _mm_prefetch(base_ + line / row_lines_ * stride_ + line % row_lines_ * 64, _MM_HINT_T1);
    return line;
  }

 private:
  const char* base_;
  int64_t stride_, row_lines_, total_, share_;
};

template <void (*Pack)(const uint8_t*, const __m512i*, int64_t, uint8_t*),
          int64_t row_bytes_per_block>
void gemm(const void* w, int64_t w_stride, int64_t n_rows, const Q8Panel& p, float* y,
          int64_t ldy) {
  const int64_t nb = p.n / kPanelBlock;
  thread_local std::vector<Line> buf;
  buf.resize(static_cast<size_t>(panel_strip_bytes(p.n) / 64));
  uint8_t* pk = buf.data()->b;
  for (int64_t r0 = 0; r0 < n_rows; r0 += kStrip) {
    const int nr = static_cast<int>(std::min<int64_t>(kStrip, n_rows - r0));
    __m512i off[2];
    row_offsets(w_stride, nr, off);
    Pack(static_cast<const uint8_t*>(w) + r0 * w_stride, off, nb, pk);
    const __mmask16 m0 = nr >= 16 ? 0xffff : static_cast<__mmask16>((1u << nr) - 1);
    const __mmask16 m1 = nr >= 32   ? 0xffff
                         : nr <= 16 ? 0
                                    : static_cast<__mmask16>((1u << (nr - 16)) - 1);
    // While the tiles run, the next strip's rows are prefetched into L2, a share per tile, so
    // that packing it does not wait on memory.
    const NextStrip next(w, w_stride, r0 + kStrip, std::min<int64_t>(kStrip, n_rows - r0 - kStrip),
                         p.n_tok, nb * row_bytes_per_block);
    int64_t t = 0, line = 0;
    for (; t + kTile <= p.n_tok; t += kTile) {
      line = next.prefetch(line);
      tile<kTile>(pk, p, t, y + r0, ldy, m0, m1);
    }
    if (t < p.n_tok) kTiles[p.n_tok - t](pk, p, t, y + r0, ldy, m0, m1);
  }
}

}  // namespace

void quantize_panel(const float* x, int64_t ldx, int64_t t0, int64_t t1, int offset,
                    const Q8Panel& p) {
  const int64_t nb = p.n / kPanelBlock;
  const __m512 sign = _mm512_set1_ps(-0.0f);
  for (int64_t t = t0; t < t1; ++t)
    for (int64_t b = 0; b < nb; ++b) {
      const float* xb = x + t * ldx + b * kPanelBlock;
      const __m512 lo = _mm512_loadu_ps(xb), hi = _mm512_loadu_ps(xb + 16);
      const float amax = _mm512_reduce_max_ps(
          _mm512_max_ps(_mm512_andnot_ps(sign, lo), _mm512_andnot_ps(sign, hi)));
      const float dv = amax / 127.0f, id = dv != 0 ? 1.0f / dv : 0.0f;
      const __m512 vid = _mm512_set1_ps(id);
      const __m512i qlo = _mm512_cvtps_epi32(_mm512_mul_ps(lo, vid));
      const __m512i qhi = _mm512_cvtps_epi32(_mm512_mul_ps(hi, vid));
      int8_t* c = p.codes + t * p.n + b * kPanelBlock;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(c), _mm512_cvtsepi32_epi8(qlo));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(c + 16), _mm512_cvtsepi32_epi8(qhi));
      p.d[t * nb + b] = _cvtsh_ss(_cvtss_sh(dv, _MM_FROUND_TO_NEAREST_INT));
      p.start[t * nb + b] = -offset * _mm512_reduce_add_epi32(_mm512_add_epi32(qlo, qhi));
    }
}

void panel_gemm_q4_0(const void* w, int64_t w_stride, int64_t n_rows, const Q8Panel& p, float* y,
                     int64_t ldy) {
  gemm<pack_q4_0, sizeof(BlockQ4_0)>(w, w_stride, n_rows, p, y, ldy);
}

void panel_gemm_q8_0(const void* w, int64_t w_stride, int64_t n_rows, const Q8Panel& p, float* y,
                     int64_t ldy) {
  gemm<pack_q8_0, sizeof(BlockQ8_0)>(w, w_stride, n_rows, p, y, ldy);
}

}  // namespace strata::qk::avx512vnni
