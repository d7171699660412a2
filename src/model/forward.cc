#include "model/forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/rope.h"
#include "quant/g4.h"

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
    for (int64_t i = 0; i < n_head - p2; ++i)
      s.push_back(static_cast<float>(std::pow(extra, double(2 * i + 1))));
  }
  return s;
}

void Workspace::reserve(const ModelSpec& spec, int64_t n) {
  const HParams& h = spec.hp;
  auto sz = [&](std::vector<float>& v, int64_t w) {
    if (static_cast<int64_t>(v.size()) < n * w) v.resize(static_cast<size_t>(n * w));
  };
  sz(xn, h.n_embd);
  sz(tmp, std::max(h.n_embd, h.n_embd_io));
  sz(q, h.q_dim());
  sz(k, h.kv_dim());
  sz(v, h.kv_dim());
  sz(attn, h.q_dim());
  sz(up, h.n_ff);
  if (spec.arch.gated_ffn) sz(gate, h.n_ff);
  if (spec.arch.qkv == QkvKind::Fused) sz(qkv, h.q_dim() + 2 * h.kv_dim());
}

uint64_t Workspace::bytes() const {
  uint64_t n = 0;
  for (const auto* v : {&xn, &tmp, &q, &k, &v, &qkv, &attn, &gate, &up}) n += v->capacity() * 4;
  return n;
}

ForwardPass::ForwardPass(const ModelSpec& spec, ThreadPool& pool, Workspace& ws)
    : spec_(spec), pool_(pool), ws_(ws) {
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
    for (int64_t j = 0; j < s.n_tokens; ++j)
      pos_[static_cast<size_t>(row + j)] = static_cast<int32_t>(s.kv->n_tokens + j);
    s.kv->reserve(kv, s.kv->n_tokens + s.n_tokens);
    row += s.n_tokens;
  }
  x_.assign(static_cast<size_t>(n_ * h.n_embd), 0.0f);
  ws_.reserve(spec_, n_);
}

void ForwardPass::norm(const float* in, const float* w, const float* b, float* out,
                       int64_t n) const {
  if (spec_.arch.norm == NormKind::RMSNorm)
    rms_norm(pool_, in, w, n, spec_.hp.n_embd, spec_.hp.norm_eps, out);
  else
    layer_norm(pool_, in, w, b, n, spec_.hp.n_embd, spec_.hp.norm_eps, out);
}

void ForwardPass::finish_without_head() {
  for (const SeqChunk& s : batch_.seqs) s.kv->n_tokens += s.n_tokens;
}

void ForwardPass::embed(const GlobalWeights& g, const RowFn& row_fn) {
  const HParams& h = spec_.hp;
  int64_t row = 0;
  float* e = g.proj_in ? ws_.tmp.data() : x_.data();
  for (const SeqChunk& s : batch_.seqs)
    for (int64_t j = 0; j < s.n_tokens; ++j, ++row) {
      const int32_t id = s.tokens[j];
      if (id < 0 || id >= h.n_vocab)
        fail("token id {} is outside the vocabulary (0..{})", id, h.n_vocab - 1);
      if (row_fn)
        row_fn(id, e + row * h.n_embd_io);
      else
        get_row(*g.tok_embd, id, e + row * h.n_embd_io);
    }
  if (g.proj_in) matmul(pool_, *g.proj_in, ws_.tmp.data(), n_, x_.data());
  if (g.pos_embd) {
    std::vector<float> pe(static_cast<size_t>(h.n_embd));
    for (int64_t i = 0; i < n_; ++i) {
      const int64_t p = pos_[static_cast<size_t>(i)] + spec_.arch.learned_pos_offset;
      if (p >= g.pos_embd->shape[0])
        fail("position {} is beyond the {} positions this model learned",
             pos_[static_cast<size_t>(i)], g.pos_embd->shape[0] - spec_.arch.learned_pos_offset);
      get_row(*g.pos_embd, p, pe.data());
      add_inplace(x_.data() + i * h.n_embd, pe.data(), h.n_embd);
    }
  }
  if (g.embd_norm)
    layer_norm(pool_, x_.data(), g.embd_norm, g.embd_norm_b, n_, h.n_embd, h.norm_eps, x_.data());
}

void ForwardPass::store_kv(int64_t l, KvPool& kv, const float* k, const float* v) {
  const int64_t rowb = kv.row_bytes(), bt = kv.config().block_tokens, dim = spec_.hp.kv_dim();
  const DType kvt = kv.config().dtype;
  // Rows in parallel, each into its own cache slot (256 sequences' G4 rows of the 6.7B model
  // took 0.3 s of a decode step on one thread).
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, dim));
  pool_.parallel_for(n_, grain, [&](int64_t r0, int64_t r1) {
    auto s = static_cast<size_t>(std::upper_bound(seq_start_.begin(), seq_start_.end(), r0) -
                                 seq_start_.begin() - 1);
    for (int64_t r = r0; r < r1; ++r) {
      while (s + 1 < seq_start_.size() && seq_start_[s + 1] <= r) ++s;
      const SeqChunk& sc = batch_.seqs[s];
      const int64_t p = sc.kv->n_tokens + (r - seq_start_[s]);
      const int32_t blk = sc.kv->blocks[static_cast<size_t>(p / bt)];
      uint8_t* kd = kv.k_block(l, blk) + (p % bt) * rowb;
      uint8_t* vd = kv.v_block(l, blk) + (p % bt) * rowb;
      if (kvt == DType::G4) {
        g4_quantize_kv_row(k + r * dim, dim, kd);
        g4_quantize_kv_row(v + r * dim, dim, vd);
      } else if (kvt == DType::F16) {
        to_f16(k + r * dim, dim, reinterpret_cast<uint16_t*>(kd));
        to_f16(v + r * dim, dim, reinterpret_cast<uint16_t*>(vd));
      } else {
        std::memcpy(kd, k + r * dim, static_cast<size_t>(dim) * 4);
        std::memcpy(vd, v + r * dim, static_cast<size_t>(dim) * 4);
      }
    }
  });
}

void ForwardPass::attention_block(int64_t l, const LayerWeights& w, KvPool& kv, const float* in,
                                  float* out) {
  const HParams& h = spec_.hp;
  const int64_t qd = h.q_dim(), kd = h.kv_dim();
  if (w.wqkv) {
    matmul(pool_, *w.wqkv, in, n_, ws_.qkv.data(), w.bqkv);
    const int64_t stride = qd + 2 * kd;
    for (int64_t i = 0; i < n_; ++i) {
      const float* r = ws_.qkv.data() + i * stride;
      std::memcpy(ws_.q.data() + i * qd, r, static_cast<size_t>(qd) * 4);
      std::memcpy(ws_.k.data() + i * kd, r + qd, static_cast<size_t>(kd) * 4);
      std::memcpy(ws_.v.data() + i * kd, r + qd + kd, static_cast<size_t>(kd) * 4);
    }
  } else {
    const MatmulOut qkv[] = {
        {w.wq, ws_.q.data(), w.bq}, {w.wk, ws_.k.data(), w.bk}, {w.wv, ws_.v.data(), w.bv}};
    matmul_shared(pool_, qkv, 3, in, n_);
  }
  if (spec_.arch.pos == PosKind::Rope) {
    rope(ws_.q.data(), n_, pos_.data(), h.n_head, h.head_dim, h.rope_dim, h.rope_theta,
         spec_.arch.rope_layout);
    rope(ws_.k.data(), n_, pos_.data(), h.n_head_kv, h.head_dim, h.rope_dim, h.rope_theta,
         spec_.arch.rope_layout);
  }
  store_kv(l, kv, ws_.k.data(), ws_.v.data());

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
    attention(pool_, ap, view, ws_.q.data() + r0 * qd, sc.n_tokens, sc.kv->n_tokens,
              ws_.attn.data() + r0 * qd);
  }
  matmul(pool_, *w.wo, ws_.attn.data(), n_, out, w.bo);
}

void ForwardPass::ffn_block(const LayerWeights& w, const float* in, float* out) {
  const HParams& h = spec_.hp;
  if (spec_.arch.gated_ffn) {
    const MatmulOut up_gate[] = {{w.w_up, ws_.up.data(), w.b_up},
                                 {w.w_gate, ws_.gate.data(), w.b_gate}};
    matmul_shared(pool_, up_gate, 2, in, n_);
    activate_gated(pool_, spec_.arch.act, ws_.gate.data(), ws_.up.data(), n_ * h.n_ff);
    matmul(pool_, *w.w_down, ws_.gate.data(), n_, out, w.b_down);
  } else {
    matmul(pool_, *w.w_up, in, n_, ws_.up.data(), w.b_up);
    activate(pool_, spec_.arch.act, ws_.up.data(), n_ * h.n_ff);
    matmul(pool_, *w.w_down, ws_.up.data(), n_, out, w.b_down);
  }
}

void ForwardPass::layer(int64_t l, const LayerWeights& w, KvPool& kv) {
  const int64_t d = spec_.hp.n_embd;
  float* x = x_.data();
  if (spec_.arch.pre_norm) {
    norm(x, w.attn_norm, w.attn_norm_b, ws_.xn.data(), n_);
    attention_block(l, w, kv, ws_.xn.data(), ws_.tmp.data());
    add_inplace(x, ws_.tmp.data(), n_ * d);
    norm(x, w.ffn_norm, w.ffn_norm_b, ws_.xn.data(), n_);
    ffn_block(w, ws_.xn.data(), ws_.tmp.data());
    add_inplace(x, ws_.tmp.data(), n_ * d);
  } else {  // post-LayerNorm (OPT-350m): normalise after each residual add
    attention_block(l, w, kv, x, ws_.tmp.data());
    add_inplace(ws_.tmp.data(), x, n_ * d);
    norm(ws_.tmp.data(), w.attn_norm, w.attn_norm_b, x, n_);
    ffn_block(w, x, ws_.tmp.data());
    add_inplace(ws_.tmp.data(), x, n_ * d);
    norm(ws_.tmp.data(), w.ffn_norm, w.ffn_norm_b, x, n_);
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
      std::memcpy(hsel.data() + r * h.n_embd, x_.data() + (seq_start_[s] + j) * h.n_embd,
                  static_cast<size_t>(h.n_embd) * 4);
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
