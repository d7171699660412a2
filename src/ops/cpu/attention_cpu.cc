// CPU attention. Grouped-query attention shares a KV head among n_head/n_head_kv query heads.
//  - Few queries (decode) with an f32 or f16 cache: one task per (query token, KV head) takes
//    the queries of every head sharing it; per block of the cache, one small product (gemm_nn)
//    gives their scores and, after the softmax, one more adds the block's values.
//  - A G4 cache (and more than kMaxGroup heads per KV head): one task per (query token, head);
//    scores are dot products with the cached keys, then softmax, then a weighted sum of the
//    cached values.
//  - Many queries (prefill) with an f32 or f16 cache: one task per (tile of query tokens, KV
//    head) takes the queries of every head that shares the KV head as one matrix and walks the
//    keys in chunks (flash-attention style): scores = Q . K^T and P . V are register-blocked
//    products (gemm_nn), and the softmax runs online, rescaling the partial sums when a chunk
//    raises a row's maximum. Each chunk of keys and values is widened once for all those rows
//    instead of once per (query, head).
#include <algorithm>
#include <cmath>
#include <limits>
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

constexpr int64_t kTiledMinQueries = 4;  // fewer queries take the grouped decode path
constexpr int64_t kQueryTile = 16;       // query tokens per task, at most
constexpr int64_t kKeyChunk = 64;        // keys per step of the online softmax
constexpr int64_t kMaxGroup = 64;        // query heads per KV head the grouped path takes
constexpr int64_t kPrefetchBlocks = 2;   // cache blocks the grouped path asks for ahead

void attention_tiled(ThreadPool& pool, const AttentionParams& p, const KvView& kv, const float* q,
                     int64_t n_q, int64_t pos0, float* out) {
  const cpu::FloatKernels& fk = cpu::float_kernels();
  const int64_t hd = p.head_dim, group = p.n_head / p.n_head_kv, qdim = p.n_head * hd;
  // Smaller tiles when there would be too few tasks to keep every thread busy.
  const int64_t per_tile = std::clamp<int64_t>(
      n_q * p.n_head_kv / (4 * static_cast<int64_t>(pool.size())), 1, kQueryTile);
  const int64_t tiles = (n_q + per_tile - 1) / per_tile;
  // Tasks run latest tile first: those see the most keys, so the last tasks are the short ones.
  pool.parallel_for(tiles * p.n_head_kv, 1, [&](int64_t b, int64_t e) {
    thread_local std::vector<float> qs, kt, vc, krow, sc, acc, mx, sum;
    for (int64_t task = b; task < e; ++task) {
      const int64_t tile = tiles - 1 - task / p.n_head_kv, kvh = task % p.n_head_kv;
      const int64_t t0 = tile * per_tile, nt = std::min(per_tile, n_q - t0);
      const int64_t rows = group * nt;  // row hh * nt + i: head kvh * group + hh, token t0 + i
      qs.resize(static_cast<size_t>(rows * hd));
      for (int64_t hh = 0; hh < group; ++hh)
        for (int64_t i = 0; i < nt; ++i) {
          const float* src = q + (t0 + i) * qdim + (kvh * group + hh) * hd;
          float* dst = qs.data() + (hh * nt + i) * hd;
          for (int64_t d = 0; d < hd; ++d) dst[d] = src[d] * p.scale;
        }
      acc.assign(static_cast<size_t>(rows * hd), 0.0f);
      mx.assign(static_cast<size_t>(rows), -std::numeric_limits<float>::infinity());
      sum.assign(static_cast<size_t>(rows), 0.0f);
      kt.resize(static_cast<size_t>(hd * kKeyChunk));
      vc.resize(static_cast<size_t>(kKeyChunk * hd));
      krow.resize(static_cast<size_t>(hd));
      sc.resize(static_cast<size_t>(rows * kKeyChunk));
      const int64_t n_keys = pos0 + t0 + nt;  // the tile's last query sees keys [0, n_keys)
      for (int64_t j0 = 0; j0 < n_keys; j0 += kKeyChunk) {
        const int64_t kc = std::min(kKeyChunk, n_keys - j0);
        // The chunk's keys transposed ([hd][kc]) and values ([kc][hd]), as f32.
        for (int64_t jj = 0; jj < kc; ++jj) {
          const uint8_t* kr = row_ptr(kv.k_blocks, kv, j0 + jj);
          const uint8_t* vr = row_ptr(kv.v_blocks, kv, j0 + jj);
          const float* kf;
          if (kv.dtype == DType::F32) {
            kf = reinterpret_cast<const float*>(kr) + kvh * hd;
            std::copy_n(reinterpret_cast<const float*>(vr) + kvh * hd, hd, vc.data() + jj * hd);
          } else {
            fk.f16_to_f32(hd, reinterpret_cast<const uint16_t*>(kr) + kvh * hd, krow.data());
            fk.f16_to_f32(hd, reinterpret_cast<const uint16_t*>(vr) + kvh * hd,
                          vc.data() + jj * hd);
            kf = krow.data();
          }
          for (int64_t d = 0; d < hd; ++d) kt[static_cast<size_t>(d * kc + jj)] = kf[d];
        }
        fk.gemm_nn(rows, kc, hd, qs.data(), hd, kt.data(), kc, sc.data(), kc, false);
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t hh = r / nt, i = r % nt;
          // Causal: token t0 + i sees keys up to pos0 + t0 + i.
          const int64_t valid = std::min(kc, pos0 + t0 + i + 1 - j0);
          float* srow = sc.data() + r * kc;
          if (valid <= 0) {
            std::fill(srow, srow + kc, 0.0f);
            continue;
          }
          if (p.alibi_slopes) {
            const float slope = p.alibi_slopes[kvh * group + hh];
            for (int64_t jj = 0; jj < valid; ++jj) srow[jj] += slope * static_cast<float>(j0 + jj);
          }
          const float m_new = std::max(mx[r], *std::max_element(srow, srow + valid));
          if (m_new > mx[r]) {
            const float alpha = std::exp(mx[r] - m_new);  // 0 on the first chunk
            sum[r] *= alpha;
            float* ar = acc.data() + r * hd;
            for (int64_t d = 0; d < hd; ++d) ar[d] *= alpha;
            mx[r] = m_new;
          }
          sum[r] += fk.exp_sum(valid, srow, m_new);
          std::fill(srow + valid, srow + kc, 0.0f);
        }
        fk.gemm_nn(rows, hd, kc, sc.data(), kc, vc.data(), hd, acc.data(), hd, true);
      }
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t hh = r / nt, i = r % nt;
        float* o = out + (t0 + i) * qdim + (kvh * group + hh) * hd;
        const float inv = 1.0f / sum[r];
        for (int64_t d = 0; d < hd; ++d) o[d] = acc[r * hd + d] * inv;
      }
    }
  });
}

// One block's rows [j0, j0 + kc) of KV head kvh as f32 rows: in place for an f32 cache (*ld is
// the row stride in floats), else widened into buf (*ld = hd).
const float* head_rows(const void* const* blocks, const KvView& kv, int64_t j0, int64_t kc,
                       int64_t kvh, int64_t hd, std::vector<float>& buf, int64_t* ld) {
  const auto* base = static_cast<const uint8_t*>(blocks[j0 / kv.block_tokens]) +
                     (j0 % kv.block_tokens) * kv.row_bytes;
  if (kv.dtype == DType::F32) {
    *ld = kv.row_bytes / 4;
    return reinterpret_cast<const float*>(base) + kvh * hd;
  }
  const cpu::FloatKernels& fk = cpu::float_kernels();
  buf.resize(static_cast<size_t>(kc * hd));
  for (int64_t jj = 0; jj < kc; ++jj)
    fk.f16_to_f32(hd, reinterpret_cast<const uint16_t*>(base + jj * kv.row_bytes) + kvh * hd,
                  buf.data() + jj * hd);
  *ld = hd;
  return buf.data();
}

// Asks for the head's slices of the cache rows [j0, j0 + kc) (clamped to the first n) ahead of
// use: a task reads every row's slice of one KV head, a small piece of each row, which the
// hardware prefetcher alone fetched at a fraction of the memory bandwidth.
void prefetch_head_rows(const void* const* blocks, const KvView& kv, int64_t j0, int64_t kc,
                        int64_t n, int64_t kvh, int64_t hd) {
  const int64_t es = kv.dtype == DType::F32 ? 4 : 2;
  for (int64_t j = j0; j < std::min(j0 + kc, n); ++j) {
    const uint8_t* r = row_ptr(blocks, kv, j) + kvh * hd * es;
    for (int64_t o = 0; o < hd * es; o += 64) __builtin_prefetch(r + o);
  }
}

// Few queries (decode) with an f32 or f16 cache: one task per (query token, KV head) takes the
// queries of every head that shares the KV head. Per block of the cache, one small product gives
// all those heads' scores for the block's keys and, after the softmax, one more adds the block's
// values into their outputs (gemm_nn), where the per-head path made a dot product and an axpy
// call per (head, key). One layer of the 1B Llama (32 heads sharing 4 KV heads, f32 cache, 2
// threads; throwaway microbenchmark): cache in L2 20 -> 9 us at 64 keys, 60 -> 28 at 256; cache
// cold (read from RAM) 35 -> 18.6 us at 64 keys, 112 -> 79.5 at 256, 410 -> 305 at 1024.
void attention_grouped(ThreadPool& pool, const AttentionParams& p, const KvView& kv, const float* q,
                       int64_t n_q, int64_t pos0, float* out) {
  const cpu::FloatKernels& fk = cpu::float_kernels();
  const int64_t hd = p.head_dim, group = p.n_head / p.n_head_kv, qdim = p.n_head * hd;
  pool.parallel_for(n_q * p.n_head_kv, 1, [&](int64_t b, int64_t e) {
    thread_local std::vector<float> qt, st, pr, kbuf, vbuf;
    for (int64_t task = b; task < e; ++task) {
      const int64_t t = task / p.n_head_kv, kvh = task % p.n_head_kv;
      const int64_t n_keys = pos0 + t + 1;
      // The group's scaled queries as columns: qt[d * group + g].
      qt.resize(static_cast<size_t>(hd * group));
      for (int64_t g = 0; g < group; ++g) {
        const float* src = q + t * qdim + (kvh * group + g) * hd;
        for (int64_t d = 0; d < hd; ++d) qt[static_cast<size_t>(d * group + g)] = src[d] * p.scale;
      }
      // Scores, key-major: st[j * group + g].
      st.resize(static_cast<size_t>(n_keys * group));
      const int64_t bt = kv.block_tokens;
      prefetch_head_rows(kv.k_blocks, kv, 0, kPrefetchBlocks * bt, n_keys, kvh, hd);
      prefetch_head_rows(kv.v_blocks, kv, 0, kPrefetchBlocks * bt, n_keys, kvh, hd);
      for (int64_t j0 = 0; j0 < n_keys; j0 += bt) {
        const int64_t kc = std::min(bt, n_keys - j0);
        prefetch_head_rows(kv.k_blocks, kv, j0 + kPrefetchBlocks * bt, bt, n_keys, kvh, hd);
        int64_t ld = 0;
        const float* k = head_rows(kv.k_blocks, kv, j0, kc, kvh, hd, kbuf, &ld);
        fk.gemm_nn(kc, group, hd, k, ld, qt.data(), group, st.data() + j0 * group, group, false);
      }
      // Softmax per head, head-major: pr[g * n_keys + j].
      pr.resize(static_cast<size_t>(group * n_keys));
      float inv[kMaxGroup];
      for (int64_t g = 0; g < group; ++g) {
        float* row = pr.data() + g * n_keys;
        const float slope = p.alibi_slopes ? p.alibi_slopes[kvh * group + g] : 0.0f;
        for (int64_t j = 0; j < n_keys; ++j)
          row[j] = st[static_cast<size_t>(j * group + g)] + slope * static_cast<float>(j);
        inv[g] = 1.0f / fk.exp_sum(n_keys, row, *std::max_element(row, row + n_keys));
      }
      float* o = out + t * qdim + kvh * group * hd;  // the group's heads are adjacent
      for (int64_t j0 = 0; j0 < n_keys; j0 += bt) {
        const int64_t kc = std::min(bt, n_keys - j0);
        prefetch_head_rows(kv.v_blocks, kv, j0 + kPrefetchBlocks * bt, bt, n_keys, kvh, hd);
        int64_t ld = 0;
        const float* v = head_rows(kv.v_blocks, kv, j0, kc, kvh, hd, vbuf, &ld);
        fk.gemm_nn(group, hd, kc, pr.data() + j0, n_keys, v, ld, o, hd, j0 > 0);
      }
      for (int64_t g = 0; g < group; ++g)
        for (int64_t d = 0; d < hd; ++d) o[g * hd + d] *= inv[g];
    }
  });
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
  if (n_q >= kTiledMinQueries && kv.dtype != DType::G4)
    return attention_tiled(pool, p, kv, q, n_q, pos0, out);
  if (kv.dtype != DType::G4 && p.n_head / p.n_head_kv <= kMaxGroup)
    return attention_grouped(pool, p, kv, q, n_q, pos0, out);
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
      const float inv = 1.0f / fk.exp_sum(n_keys, scores.data(), m);
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
