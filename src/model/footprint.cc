#include "model/footprint.h"

#include <algorithm>

namespace strata {

Footprint compute_footprint(const ModelSpec& spec, const ModelFiles& files, DType kv_dtype,
                            int64_t step_tokens, int64_t logit_rows) {
  const HParams& h = spec.hp;
  Footprint f;
  f.weight_bytes = files.total_tensor_bytes();
  const uint64_t elem = kv_dtype == DType::F16 ? 2 : 4;
  f.kv_bytes_per_token = 2 * static_cast<uint64_t>(h.n_layer * h.kv_dim()) * elem;
  // ForwardPass buffers: x, xn, tmp, q, k, v, attn, up (+gate, +qkv), all f32.
  int64_t per_tok = 3 * std::max(h.n_embd, h.n_embd_io) + 2 * h.q_dim() + 2 * h.kv_dim() + h.n_ff;
  if (spec.arch.gated_ffn) per_tok += h.n_ff;
  if (spec.arch.qkv == QkvKind::Fused) per_tok += h.q_dim() + 2 * h.kv_dim();
  f.activation_bytes = static_cast<uint64_t>(per_tok * step_tokens) * 4;
  f.logits_bytes = static_cast<uint64_t>(logit_rows * h.n_vocab) * 4;
  return f;
}

}  // namespace strata
