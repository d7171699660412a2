#include "model/hparams.h"

#include "core/error.h"

namespace strata {
namespace {

using json = nlohmann::json;

int64_t cfg_int(const json& c, const char* key, int64_t def = -1) {
  if (!c.contains(key) || c[key].is_null()) {
    if (def < 0) fail("config.json: missing '{}'", key);
    return def;
  }
  if (!c[key].is_number_integer()) fail("config.json: '{}' must be an integer", key);
  const int64_t v = c[key].get<int64_t>();
  if (v < 0 || v > (int64_t(1) << 32)) fail("config.json: '{}' = {} is out of range", key, v);
  return v;
}

double cfg_num(const json& c, const char* key, double def) {
  if (!c.contains(key) || c[key].is_null()) return def;
  if (!c[key].is_number()) fail("config.json: '{}' must be a number", key);
  return c[key].get<double>();
}

bool cfg_bool(const json& c, const char* key, bool def) {
  if (!c.contains(key) || c[key].is_null()) return def;
  if (!c[key].is_boolean()) fail("config.json: '{}' must be true or false", key);
  return c[key].get<bool>();
}

Activation activation_from_hf(const std::string& s) {
  if (s == "relu") return Activation::ReLU;
  if (s == "gelu") return Activation::GELU;
  if (s == "gelu_new" || s == "gelu_pytorch_tanh" || s == "gelu_fast") return Activation::GELUTanh;
  if (s == "silu" || s == "swish") return Activation::SiLU;
  fail("config.json: unsupported activation_function '{}'", s);
}

ModelSpec from_hf(const ModelFiles& f) {
  const json& c = f.hf_config;
  std::string mt = c.contains("model_type") && c["model_type"].is_string()
                       ? c["model_type"].get<std::string>()
                       : "";
  if (mt.empty()) fail("{}/config.json: missing 'model_type'", f.path);
  ModelSpec s;
  s.arch = arch_by_name(mt);
  s.arch.rope_layout = RopeLayout::HalfSplit;  // HF rotate_half
  HParams& h = s.hp;
  if (s.arch.name == "llama") {
    if (c.contains("rope_scaling") && !c["rope_scaling"].is_null())
      fail("config.json: rope_scaling is not supported yet");
    h.n_embd = cfg_int(c, "hidden_size");
    h.n_ff = cfg_int(c, "intermediate_size");
    h.n_layer = cfg_int(c, "num_hidden_layers");
    h.n_head = cfg_int(c, "num_attention_heads");
    h.n_head_kv = cfg_int(c, "num_key_value_heads", h.n_head);
    h.head_dim = cfg_int(c, "head_dim", h.n_head ? h.n_embd / h.n_head : 0);
    h.norm_eps = static_cast<float>(cfg_num(c, "rms_norm_eps", 1e-6));
    h.rope_theta = static_cast<float>(cfg_num(c, "rope_theta", 10000.0));
    h.n_ctx_train = cfg_int(c, "max_position_embeddings", 2048);
    if (c.contains("hidden_act") && c["hidden_act"].is_string())
      s.arch.act = activation_from_hf(c["hidden_act"].get<std::string>());
  } else if (s.arch.name == "opt") {
    h.n_embd = cfg_int(c, "hidden_size");
    h.n_ff = cfg_int(c, "ffn_dim");
    h.n_layer = cfg_int(c, "num_hidden_layers");
    h.n_head = cfg_int(c, "num_attention_heads");
    h.n_ctx_train = cfg_int(c, "max_position_embeddings", 2048);
    h.n_embd_io = cfg_int(c, "word_embed_proj_dim", h.n_embd);
    s.arch.pre_norm = cfg_bool(c, "do_layer_norm_before", true);
    if (c.contains("activation_function") && c["activation_function"].is_string())
      s.arch.act = activation_from_hf(c["activation_function"].get<std::string>());
  } else if (s.arch.name == "gpt2") {
    h.n_embd = cfg_int(c, "n_embd");
    h.n_layer = cfg_int(c, "n_layer");
    h.n_head = cfg_int(c, "n_head");
    h.n_ff = cfg_int(c, "n_inner", 4 * h.n_embd);
    h.n_ctx_train = cfg_int(c, "n_positions", 1024);
    h.norm_eps = static_cast<float>(cfg_num(c, "layer_norm_epsilon", 1e-5));
    if (c.contains("activation_function") && c["activation_function"].is_string())
      s.arch.act = activation_from_hf(c["activation_function"].get<std::string>());
  } else if (s.arch.name == "bloom") {
    h.n_embd = c.contains("n_embed") ? cfg_int(c, "n_embed") : cfg_int(c, "hidden_size");
    h.n_layer = cfg_int(c, "n_layer");
    h.n_head = c.contains("n_head") ? cfg_int(c, "n_head") : cfg_int(c, "num_attention_heads");
    h.n_ff = 4 * h.n_embd;
    h.n_ctx_train = cfg_int(c, "seq_length", 2048);
    h.norm_eps = static_cast<float>(cfg_num(c, "layer_norm_epsilon", 1e-5));
    if (cfg_bool(c, "apply_residual_connection_post_layernorm", false))
      fail("config.json: BLOOM with apply_residual_connection_post_layernorm is not supported");
  }
  if (h.n_head_kv == 0) h.n_head_kv = h.n_head;
  if (h.head_dim == 0 && h.n_head) h.head_dim = h.n_embd / h.n_head;
  return s;
}

ModelSpec from_gguf(const ModelFiles& f) {
  const GgufFile& g = *f.gguf;
  const std::string arch = g.get_str("general.architecture");
  ModelSpec s;
  s.arch = arch_by_name(arch);
  s.arch.rope_layout = RopeLayout::Interleaved;  // llama.cpp's converter permutes Q/K for this
  HParams& h = s.hp;
  const std::string p = arch + ".";
  h.n_embd = g.get_int(p + "embedding_length");
  h.n_layer = g.get_int(p + "block_count");
  h.n_ff = g.get_int(p + "feed_forward_length");
  h.n_head = g.get_int(p + "attention.head_count");
  h.n_head_kv = g.get_int(p + "attention.head_count_kv", h.n_head);
  h.n_ctx_train = g.get_int(p + "context_length", 2048);
  h.head_dim = g.get_int(p + "attention.key_length", h.n_head > 0 ? h.n_embd / h.n_head : 0);
  if (s.arch.norm == NormKind::RMSNorm)
    h.norm_eps = static_cast<float>(g.get_float(p + "attention.layer_norm_rms_epsilon", 1e-5));
  else
    h.norm_eps = static_cast<float>(g.get_float(p + "attention.layer_norm_epsilon", 1e-5));
  h.rope_theta = static_cast<float>(g.get_float(p + "rope.freq_base", 10000.0));
  h.rope_dim = g.get_int(p + "rope.dimension_count", 0);
  if (s.arch.name == "opt") {
    s.arch.pre_norm = g.get_bool("opt.pre_norm", true);
    h.n_embd_io = g.get_int("opt.word_embed_proj_dim", h.n_embd);
  }
  return s;
}

}  // namespace

ModelSpec read_model_spec(const ModelFiles& files) {
  ModelSpec s = files.kind == ModelFiles::Kind::Gguf ? from_gguf(files) : from_hf(files);
  HParams& h = s.hp;
  if (h.n_embd_io == 0) h.n_embd_io = h.n_embd;
  if (h.rope_dim == 0) h.rope_dim = h.head_dim;
  auto bad = [&](const std::string& what) {
    fail("{}: inconsistent hyper-parameters: {}", files.path, what);
  };
  if (h.n_embd <= 0 || h.n_layer <= 0 || h.n_head <= 0 || h.n_ff <= 0) bad("a size is zero");
  if (h.n_layer > 4096 || h.n_head > 4096 || h.n_embd > (1 << 20)) bad("absurd sizes");
  if (h.n_head_kv <= 0 || h.n_head % h.n_head_kv != 0)
    bad(fmt::format("{} heads are not a multiple of {} KV heads", h.n_head, h.n_head_kv));
  if (h.head_dim <= 0 || h.head_dim > 1024) bad(fmt::format("head dimension {}", h.head_dim));
  if (h.rope_dim <= 0 || h.rope_dim > h.head_dim || h.rope_dim % 2)
    bad(fmt::format("rope dimension {}", h.rope_dim));
  if (!(h.norm_eps > 0) || h.norm_eps > 1) bad(fmt::format("norm epsilon {}", h.norm_eps));
  if (!(h.rope_theta > 0)) bad(fmt::format("rope theta {}", h.rope_theta));
  // The vocabulary size is whatever the embedding table holds.
  const char* emb = files.kind == ModelFiles::Kind::Gguf ? "token_embd.weight" : nullptr;
  const TensorInfo* t = emb ? files.find(emb) : nullptr;
  if (!t) {
    for (const auto& ti : files.tensors)
      if (ti.name.find("embed_tokens.weight") != std::string::npos ||
          ti.name.find("wte.weight") != std::string::npos ||
          ti.name.find("word_embeddings.weight") != std::string::npos) {
        t = &ti;
        break;
      }
  }
  if (!t || t->shape.size() != 2) fail("{}: no token embedding table found", files.path);
  h.n_vocab = t->shape[0];
  return s;
}

int64_t count_parameters(const ModelFiles& files) {
  int64_t n = 0;
  for (const auto& t : files.tensors) {
    int64_t e = 1;
    for (int64_t d : t.shape) e *= d;
    n += e;
  }
  return n;
}

}  // namespace strata
