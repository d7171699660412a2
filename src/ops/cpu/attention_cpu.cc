// CPU attention: one task per (query token, head). Scores are dot products with the cached keys
// of the head's KV group (grouped-query attention shares a KV head among n_head/n_head_kv query
// heads), then softmax, then a weighted sum of the cached values.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "ops/attention.h"
#include "ops/cpu/float_kernels.h"
#include "quant/g4.h"

namespace strata {
namespace {

inline const uint8_t* row_ptr(const void* const* blocks, const KvView& kv, int64_t j) {
  return static_cast<const uint8_t*>(blocks[j / kv.block_tokens]) +
         (j % kv.block_tokens) * kv.row_bytes;
}

// One head's slice of a G4 row as f32, for head dimensions that are not whole groups (heads of 64,
// 128, ... take the fused kernels instead).
void g4_head_slice(const uint8_t* row, int64_t n, int64_t head, int64_t hd, std::vector<float>& out,
                   std::vector<float>& full) {
  out.resize(static_cast<size_t>(hd));
  full.resize(static_cast<size_t>(n));
  g4_dequantize_kv_row(row, n, full.data());
  std::copy_n(full.data() + head * hd, hd, out.data());
}

}  // namespace

void attention(ThreadPool& pool, const AttentionParams& p, const KvView& kv, const float* q,
               int64_t n_q, int64_t pos0, float* out) {
  if (p.n_head_kv <= 0 || p.n_head % p.n_head_kv != 0)
    fail("attention: {} heads cannot share {} KV heads", p.n_head, p.n_head_kv);
  if (kv.dtype != DType::F32 && kv.dtype != DType::F16 && kv.dtype != DType::G4)
    fail("attention: KV cache type {} is not supported on the CPU", dtype_name(kv.dtype));
  if ((pos0 + n_q + kv.block_tokens - 1) / kv.block_tokens > kv.n_blocks)
    fail("attention: the KV cache holds {} blocks, fewer than {} positions need", kv.n_blocks,
         pos0 + n_q);
  const cpu::FloatKernels& fk = cpu::float_kernels();
  const int64_t hd = p.head_dim, group = p.n_head / p.n_head_kv, qdim = p.n_head * hd;
  // G4 heads of whole groups: keys and values are read as codes, never widened to f32.
  const bool g4_fused = kv.dtype == DType::G4 && hd % kG4Group == 0;
  const G4KvKernels& g4k = g4_kv_kernels();
  const int64_t g4_groups_per_head = hd / kG4Group;
  // Each task reads (pos0 + t) keys of head_dim values; group small tasks together.
  const int64_t work = std::max<int64_t>(1, (pos0 + 1) * hd);
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / work);
  pool.parallel_for(n_q * p.n_head, grain, [&](int64_t b, int64_t e) {
    thread_local std::vector<float> scores, vrow, krow, full, qp, qsum, op, msum;
    for (int64_t task = b; task < e; ++task) {
      const int64_t t = task / p.n_head, h = task % p.n_head, kvh = h / group;
      const int64_t n_keys = pos0 + t + 1;
      const float* qv = q + t * qdim + h * hd;
      scores.resize(static_cast<size_t>(n_keys));
      const float slope = p.alibi_slopes ? p.alibi_slopes[h] : 0.0f;
      const int64_t g4_off = kvh * g4_groups_per_head * kG4KvGroupBytes;
      if (g4_fused) {
        qp.resize(static_cast<size_t>(hd));
        qsum.assign(static_cast<size_t>(g4_groups_per_head), 0.0f);
        g4_kv_to_code_order(qv, hd, qp.data());
        for (int64_t i = 0; i < hd; ++i) qsum[i / kG4Group] += qv[i];
      }
      for (int64_t j = 0; j < n_keys; ++j) {
        const uint8_t* kr = row_ptr(kv.k_blocks, kv, j);
        float s;
        if (kv.dtype == DType::F32) {
          s = fk.dot_f32(hd, reinterpret_cast<const float*>(kr) + kvh * hd, qv);
        } else if (kv.dtype == DType::F16) {
          s = fk.dot_f16(hd, reinterpret_cast<const uint16_t*>(kr) + kvh * hd, qv);
        } else if (g4_fused) {
          s = g4k.dot(kr + g4_off, g4_groups_per_head, qp.data(), qsum.data());
        } else {
          g4_head_slice(kr, kv.row_elems, kvh, hd, krow, full);
          s = fk.dot_f32(hd, krow.data(), qv);
        }
        scores[j] = s * p.scale + slope * static_cast<float>(j);
      }
      // softmax
      const float m = *std::max_element(scores.begin(), scores.end());
      double sum = 0;
      for (auto& s : scores) {
        s = std::exp(s - m);
        sum += s;
      }
      const float inv = static_cast<float>(1.0 / sum);
      float* o = out + t * qdim + h * hd;
      if (g4_fused) {
        op.assign(static_cast<size_t>(hd), 0.0f);
        msum.assign(static_cast<size_t>(g4_groups_per_head), 0.0f);
        for (int64_t j = 0; j < n_keys; ++j)
          g4k.axpy(row_ptr(kv.v_blocks, kv, j) + g4_off, g4_groups_per_head, scores[j] * inv,
                   op.data(), msum.data());
        g4_kv_from_code_order(op.data(), msum.data(), hd, o);
        continue;
      }
      std::fill(o, o + hd, 0.0f);
      vrow.resize(static_cast<size_t>(hd));
      for (int64_t j = 0; j < n_keys; ++j) {
        const uint8_t* vr = row_ptr(kv.v_blocks, kv, j);
        const float* v;
        if (kv.dtype == DType::F32) {
          v = reinterpret_cast<const float*>(vr) + kvh * hd;
        } else if (kv.dtype == DType::G4) {
          g4_head_slice(vr, kv.row_elems, kvh, hd, vrow, full);
          v = vrow.data();
        } else {
          fk.f16_to_f32(hd, reinterpret_cast<const uint16_t*>(vr) + kvh * hd, vrow.data());
          v = vrow.data();
        }
        fk.axpy(hd, scores[j] * inv, v, o);
      }
    }
  });
}

}  // namespace strata
