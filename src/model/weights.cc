#include "model/weights.h"

#include "core/error.h"
#include "model/tensor_names.h"

namespace strata {
namespace {

void check_shape(const Tensor& t, const std::string& name, std::vector<int64_t> want) {
  if (t.shape != want)
    fail("tensor '{}' has shape {} but the hyper-parameters need {}", name, t.shape_str(),
         shape_to_string(want));
}

const Tensor* opt_mat(const WeightStore& s, const std::string& name, std::vector<int64_t> want) {
  const Tensor* t = s.find(name);
  if (t) check_shape(*t, name, std::move(want));
  return t;
}

const Tensor* req_mat(const WeightStore& s, const std::string& name, std::vector<int64_t> want) {
  const Tensor* t = s.find(name);
  if (!t) fail("the model has no tensor '{}'", name);
  check_shape(*t, name, std::move(want));
  return t;
}

const float* vec(const WeightStore& s, const std::string& name, int64_t n, bool required) {
  const Tensor* t = s.find(name);
  if (!t) {
    if (required) fail("the model has no tensor '{}'", name);
    return nullptr;
  }
  check_shape(*t, name, {n});
  if (t->dtype != DType::F32) fail("tensor '{}' should have been widened to f32 at load", name);
  return t->as<const float>();
}

}  // namespace

GlobalWeights bind_global(const ModelSpec& spec, const WeightStore& s) {
  const HParams& h = spec.hp;
  const ArchSpec& a = spec.arch;
  GlobalWeights g;
  g.tok_embd = req_mat(s, "token_embd.weight", {h.n_vocab, h.n_embd_io});
  if (a.pos == PosKind::Learned) {
    g.pos_embd = s.find("position_embd.weight");
    if (!g.pos_embd) fail("the model has no tensor 'position_embd.weight'");
    if (g.pos_embd->shape.size() != 2 || g.pos_embd->shape[1] != h.n_embd)
      fail("tensor 'position_embd.weight' has shape {}, expected [*, {}]", g.pos_embd->shape_str(),
           h.n_embd);
  }
  if (a.embd_norm) {
    g.embd_norm = vec(s, "token_embd_norm.weight", h.n_embd, true);
    g.embd_norm_b = vec(s, "token_embd_norm.bias", h.n_embd, false);
  }
  g.proj_in = opt_mat(s, "proj_in.weight", {h.n_embd, h.n_embd_io});
  g.proj_out = opt_mat(s, "proj_out.weight", {h.n_embd_io, h.n_embd});
  if (h.n_embd_io != h.n_embd && (!g.proj_in || !g.proj_out))
    fail("the embedding width {} differs from the hidden width {} but proj_in/proj_out are missing",
         h.n_embd_io, h.n_embd);
  // OPT-350m-style post-LN models have no final norm.
  g.out_norm = vec(s, "output_norm.weight", h.n_embd, a.pre_norm);
  g.out_norm_b = vec(s, "output_norm.bias", h.n_embd, false);
  g.output = opt_mat(s, "output.weight", {h.n_vocab, h.n_embd_io});
  if (!g.output) g.output = g.tok_embd;
  return g;
}

LayerWeights bind_layer(const ModelSpec& spec, const WeightStore& s, int64_t l) {
  const HParams& h = spec.hp;
  const ArchSpec& a = spec.arch;
  auto n = [&](const char* what) { return layer_tensor(l, what); };
  LayerWeights w;
  w.attn_norm = vec(s, n("attn_norm.weight"), h.n_embd, true);
  w.attn_norm_b = vec(s, n("attn_norm.bias"), h.n_embd, false);
  if (a.qkv == QkvKind::Fused) {
    const int64_t rows = h.q_dim() + 2 * h.kv_dim();
    w.wqkv = req_mat(s, n("attn_qkv.weight"), {rows, h.n_embd});
    w.bqkv = vec(s, n("attn_qkv.bias"), rows, false);
  } else {
    w.wq = req_mat(s, n("attn_q.weight"), {h.q_dim(), h.n_embd});
    w.wk = req_mat(s, n("attn_k.weight"), {h.kv_dim(), h.n_embd});
    w.wv = req_mat(s, n("attn_v.weight"), {h.kv_dim(), h.n_embd});
    w.bq = vec(s, n("attn_q.bias"), h.q_dim(), false);
    w.bk = vec(s, n("attn_k.bias"), h.kv_dim(), false);
    w.bv = vec(s, n("attn_v.bias"), h.kv_dim(), false);
  }
  w.wo = req_mat(s, n("attn_output.weight"), {h.n_embd, h.q_dim()});
  w.bo = vec(s, n("attn_output.bias"), h.n_embd, false);
  w.ffn_norm = vec(s, n("ffn_norm.weight"), h.n_embd, true);
  w.ffn_norm_b = vec(s, n("ffn_norm.bias"), h.n_embd, false);
  if (a.gated_ffn) w.w_gate = req_mat(s, n("ffn_gate.weight"), {h.n_ff, h.n_embd});
  w.b_gate = vec(s, n("ffn_gate.bias"), h.n_ff, false);
  w.w_up = req_mat(s, n("ffn_up.weight"), {h.n_ff, h.n_embd});
  w.b_up = vec(s, n("ffn_up.bias"), h.n_ff, false);
  w.w_down = req_mat(s, n("ffn_down.weight"), {h.n_embd, h.n_ff});
  w.b_down = vec(s, n("ffn_down.bias"), h.n_embd, false);
  return w;
}

std::vector<std::string> layer_tensor_names(const WeightStore& store, int64_t layer) {
  const std::string prefix = "blk." + std::to_string(layer) + ".";
  std::vector<std::string> out;
  for (const auto& n : store.names())
    if (n.compare(0, prefix.size(), prefix) == 0) out.push_back(n);
  return out;
}

}  // namespace strata
