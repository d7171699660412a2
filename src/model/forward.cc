#include "model/forward.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/rope.h"

namespace strata {

std::vector<float> alibi_slopes(int64_t n_head) {
  // Slopes form a geometric sequence starting at 2^(-8/n) for the largest power of two n <= heads;
  // extra heads take every other slope of the sequence for 2n.
  int64_t p2 = 1;
  while (p2 * 2 <= n_head) p2 *= 2;
  std::vector<float> s;
  const double base = std::pow(2.0, -8.0 / double(p2));
  for (int64_t i = 1; i <= p2; ++i) s.push_back(static_cast<float>(std::pow(base, double(i))));
  if (p2 < n_head) {
    const double extra = std::pow(2.0, -4.0 / double(p2));
    for (int64_t i = 0; i < n_head - p2; ++i) s.push_back(static_cast<float>(std::pow(extra, double(2 * i + 1))));
  }
  return s;
}

ForwardPass::ForwardPass(const ModelSpec& spec, ThreadPool& pool) : spec_(spec), pool_(pool) {
  if (spec.arch.pos == PosKind::Alibi) alibi_ = alibi_slopes(spec.hp.n_head);
}

void ForwardPass::begin(const Batch& batch, KvPool& kv) {
  const HParams& h = spec_.hp;
  batch_ = batch;
  n_ = batch.n_tokens();
  pos_.assign(static_cast<size_t>(n_), 0);
  seq_start_.clear();
  int64_t row = 0;
  for (const SeqChunk& s : batch_.seqs) {
    if (!s.kv) fail("forward: a sequence has no KV cache");
    seq_start_.push_back(row);
    for (int64_t j = 0; j < s.n_tokens; ++j) pos_[static_cast<size_t>(row + j)] = static_cast<int32_t>(s.kv->n_tokens + j);
    s.kv->reserve(kv, s.kv->n_tokens + s.n_tokens);
    row += s.n_tokens;
  }
  auto sz = [&](std::vector<float>& v, int64_t w) { v.resize(static_cast<size_t>(n_ * w)); };
  sz(x_, h.n_embd);
  sz(xn_, h.n_embd);
  sz(tmp_, std::max(h.n_embd, h.n_embd_io));
  sz(q_, h.q_dim());
  sz(k_, h.kv_dim());
  sz(v_, h.kv_dim());
  sz(attn_, h.q_dim());
  sz(up_, h.n_ff);
  if (spec_.arch.gated_ffn) sz(gate_, h.n_ff);
  if (spec_.arch.qkv == QkvKind::Fused) sz(qkv_, h.q_dim() + 2 * h.kv_dim());
}

void ForwardPass::norm(const float* in, const float* w, const float* b, float* out, int64_t n) const {
  if (spec_.arch.norm == NormKind::RMSNorm)
    rms_norm(pool_, in, w, n, spec_.hp.n_embd, spec_.hp.norm_eps, out);
  else
    layer_norm(pool_, in, w, b, n, spec_.hp.n_embd, spec_.hp.norm_eps, out);
}

void ForwardPass::embed(const GlobalWeights& g) {
  const HParams& h = spec_.hp;
  int64_t row = 0;
  float* e = g.proj_in ? tmp_.data() : x_.data();
  for (const SeqChunk& s : batch_.seqs)
    for (int64_t j = 0; j < s.n_tokens; ++j, ++row) {
      const int32_t id = s.tokens[j];
      if (id < 0 || id >= h.n_vocab) fail("token id {} is outside the vocabulary (0..{})", id, h.n_vocab - 1);
      get_row(*g.tok_embd, id, e + row * h.n_embd_io);
    }
  if (g.proj_in) matmul(pool_, *g.proj_in, tmp_.data(), n_, x_.data());
  if (g.pos_embd) {
    std::vector<float> pe(static_cast<size_t>(h.n_embd));
    for (int64_t i = 0; i < n_; ++i) {
      const int64_t p = pos_[static_cast<size_t>(i)] + spec_.arch.learned_pos_offset;
      if (p >= g.pos_embd->shape[0])
        fail("position {} is beyond the {} positions this model learned", pos_[static_cast<size_t>(i)],
             g.pos_embd->shape[0] - spec_.arch.learned_pos_offset);
      get_row(*g.pos_embd, p, pe.data());
      add_inplace(x_.data() + i * h.n_embd, pe.data(), h.n_embd);
    }
  }
  if (g.embd_norm) layer_norm(pool_, x_.data(), g.embd_norm, g.embd_norm_b, n_, h.n_embd, h.norm_eps, x_.data());
}

void ForwardPass::store_kv(int64_t l, KvPool& kv, const float* k, const float* v) {
  const int64_t rowb = kv.row_bytes(), bt = kv.config().block_tokens, dim = spec_.hp.kv_dim();
  const bool f16 = kv.config().dtype == DType::F16;
  for (size_t s = 0; s < batch_.seqs.size(); ++s) {
    const SeqChunk& sc = batch_.seqs[s];
    for (int64_t j = 0; j < sc.n_tokens; ++j) {
      const int64_t p = sc.kv->n_tokens + j, r = seq_start_[s] + j;
      const int32_t blk = sc.kv->blocks[static_cast<size_t>(p / bt)];
      uint8_t* kd = kv.k_block(l, blk) + (p % bt) * rowb;
      uint8_t* vd = kv.v_block(l, blk) + (p % bt) * rowb;
      if (f16) {
        auto* kh = reinterpret_cast<uint16_t*>(kd);
        auto* vh = reinterpret_cast<uint16_t*>(vd);
        for (int64_t i = 0; i < dim; ++i) {
          kh[i] = f32_to_fp16(k[r * dim + i]);
          vh[i] = f32_to_fp16(v[r * dim + i]);
        }
      } else {
        std::memcpy(kd, k + r * dim, static_cast<size_t>(dim) * 4);
        std::memcpy(vd, v + r * dim, static_cast<size_t>(dim) * 4);
      }
    }
  }
}

void ForwardPass::attention_block(int64_t l, const LayerWeights& w, KvPool& kv, const float* in, float* out) {
  const HParams& h = spec_.hp;
  const int64_t qd = h.q_dim(), kd = h.kv_dim();
  if (w.wqkv) {
    matmul(pool_, *w.wqkv, in, n_, qkv_.data(), w.bqkv);
    const int64_t stride = qd + 2 * kd;
    for (int64_t i = 0; i < n_; ++i) {
      const float* r = qkv_.data() + i * stride;
      std::memcpy(q_.data() + i * qd, r, static_cast<size_t>(qd) * 4);
      std::memcpy(k_.data() + i * kd, r + qd, static_cast<size_t>(kd) * 4);
      std::memcpy(v_.data() + i * kd, r + qd + kd, static_cast<size_t>(kd) * 4);
    }
  } else {
    matmul(pool_, *w.wq, in, n_, q_.data(), w.bq);
    matmul(pool_, *w.wk, in, n_, k_.data(), w.bk);
    matmul(pool_, *w.wv, in, n_, v_.data(), w.bv);
  }
  if (spec_.arch.pos == PosKind::Rope) {
    rope(q_.data(), n_, pos_.data(), h.n_head, h.head_dim, h.rope_dim, h.rope_theta, spec_.arch.rope_layout);
    rope(k_.data(), n_, pos_.data(), h.n_head_kv, h.head_dim, h.rope_dim, h.rope_theta, spec_.arch.rope_layout);
  }
  store_kv(l, kv, k_.data(), v_.data());

  AttentionParams ap;
  ap.n_head = h.n_head;
  ap.n_head_kv = h.n_head_kv;
  ap.head_dim = h.head_dim;
  ap.scale = 1.0f / std::sqrt(static_cast<float>(h.head_dim));
  ap.alibi_slopes = alibi_.empty() ? nullptr : alibi_.data();
  std::vector<const void*> kb, vb;
  for (size_t s = 0; s < batch_.seqs.size(); ++s) {
    const SeqChunk& sc = batch_.seqs[s];
    if (sc.n_tokens == 0) continue;
    kb.clear();
    vb.clear();
    for (int32_t b : sc.kv->blocks) {
      kb.push_back(kv.k_block(l, b));
      vb.push_back(kv.v_block(l, b));
    }
    KvView view;
    view.k_blocks = kb.data();
    view.v_blocks = vb.data();
    view.n_blocks = static_cast<int64_t>(kb.size());
    view.block_tokens = kv.config().block_tokens;
    view.dtype = kv.config().dtype;
    view.row_elems = kd;
    view.row_bytes = kv.row_bytes();
    const int64_t r0 = seq_start_[s];
    attention(pool_, ap, view, q_.data() + r0 * qd, sc.n_tokens, sc.kv->n_tokens, attn_.data() + r0 * qd);
  }
  matmul(pool_, *w.wo, attn_.data(), n_, out, w.bo);
}

void ForwardPass::ffn_block(const LayerWeights& w, const float* in, float* out) {
  const HParams& h = spec_.hp;
  matmul(pool_, *w.w_up, in, n_, up_.data(), w.b_up);
  if (spec_.arch.gated_ffn) {
    matmul(pool_, *w.w_gate, in, n_, gate_.data(), w.b_gate);
    activate_gated(pool_, spec_.arch.act, gate_.data(), up_.data(), n_ * h.n_ff);
    matmul(pool_, *w.w_down, gate_.data(), n_, out, w.b_down);
  } else {
    activate(pool_, spec_.arch.act, up_.data(), n_ * h.n_ff);
    matmul(pool_, *w.w_down, up_.data(), n_, out, w.b_down);
  }
}

void ForwardPass::layer(int64_t l, const LayerWeights& w, KvPool& kv) {
  const int64_t d = spec_.hp.n_embd;
  float* x = x_.data();
  if (spec_.arch.pre_norm) {
    norm(x, w.attn_norm, w.attn_norm_b, xn_.data(), n_);
    attention_block(l, w, kv, xn_.data(), tmp_.data());
    add_inplace(x, tmp_.data(), n_ * d);
    norm(x, w.ffn_norm, w.ffn_norm_b, xn_.data(), n_);
    ffn_block(w, xn_.data(), tmp_.data());
    add_inplace(x, tmp_.data(), n_ * d);
  } else {  // post-LayerNorm (OPT-350m): normalise after each residual add
    attention_block(l, w, kv, x, tmp_.data());
    add_inplace(tmp_.data(), x, n_ * d);
    norm(tmp_.data(), w.attn_norm, w.attn_norm_b, x, n_);
    ffn_block(w, x, tmp_.data());
    add_inplace(tmp_.data(), x, n_ * d);
    norm(tmp_.data(), w.ffn_norm, w.ffn_norm_b, x, n_);
  }
}

void ForwardPass::head(const GlobalWeights& g, std::vector<float>& logits) {
  const HParams& h = spec_.hp;
  const int64_t rows = batch_.n_logit_rows();
  std::vector<float> hsel(static_cast<size_t>(rows * h.n_embd));
  int64_t r = 0;
  for (size_t s = 0; s < batch_.seqs.size(); ++s) {
    const SeqChunk& sc = batch_.seqs[s];
    if (sc.n_tokens == 0 || (!sc.all_logits && !sc.want_logits)) continue;
    const int64_t first = sc.all_logits ? 0 : sc.n_tokens - 1;
    for (int64_t j = first; j < sc.n_tokens; ++j, ++r)
      std::memcpy(hsel.data() + r * h.n_embd, x_.data() + (seq_start_[s] + j) * h.n_embd, static_cast<size_t>(h.n_embd) * 4);
  }
  if (g.out_norm) norm(hsel.data(), g.out_norm, g.out_norm_b, hsel.data(), rows);
  const float* hin = hsel.data();
  std::vector<float> projected;
  if (g.proj_out) {
    projected.resize(static_cast<size_t>(rows * h.n_embd_io));
    matmul(pool_, *g.proj_out, hsel.data(), rows, projected.data());
    hin = projected.data();
  }
  logits.resize(static_cast<size_t>(rows * h.n_vocab));
  matmul(pool_, *g.output, hin, rows, logits.data());
  for (const SeqChunk& s : batch_.seqs) s.kv->n_tokens += s.n_tokens;
}

}  // namespace strata
