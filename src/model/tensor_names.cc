#include "model/tensor_names.h"

#include <cstdlib>
#include <map>

#include "core/error.h"

namespace strata {
namespace {

bool starts_with(const std::string& s, const std::string& p) {
  return s.compare(0, p.size(), p) == 0;
}
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

std::string strip_prefixes(std::string s) {
  for (const char* p : {"model.decoder.", "decoder.", "transformer.", "model."})
    if (starts_with(s, p)) return s.substr(std::string(p).size());
  return s;
}

// Per architecture: HF module path (after the layer index or at top level) -> canonical stem.
struct Table {
  std::map<std::string, std::string> global, layer;
  std::map<std::string, LoadTransform> layer_transform;  // by canonical stem
};

const Table& table_for(const std::string& arch) {
  static const std::map<std::string, Table> tables = [] {
    std::map<std::string, Table> t;
    t["llama"].global = {
        {"embed_tokens", "token_embd"}, {"norm", "output_norm"}, {"lm_head", "output"}};
    t["llama"].layer = {
        {"input_layernorm", "attn_norm"},    {"self_attn.q_proj", "attn_q"},
        {"self_attn.k_proj", "attn_k"},      {"self_attn.v_proj", "attn_v"},
        {"self_attn.o_proj", "attn_output"}, {"post_attention_layernorm", "ffn_norm"},
        {"mlp.gate_proj", "ffn_gate"},       {"mlp.up_proj", "ffn_up"},
        {"mlp.down_proj", "ffn_down"}};
    t["opt"].global = {{"embed_tokens", "token_embd"},      {"embed_positions", "position_embd"},
                       {"project_in", "proj_in"},           {"project_out", "proj_out"},
                       {"final_layer_norm", "output_norm"}, {"lm_head", "output"}};
    t["opt"].layer = {{"self_attn_layer_norm", "attn_norm"},
                      {"self_attn.q_proj", "attn_q"},
                      {"self_attn.k_proj", "attn_k"},
                      {"self_attn.v_proj", "attn_v"},
                      {"self_attn.out_proj", "attn_output"},
                      {"final_layer_norm", "ffn_norm"},
                      {"fc1", "ffn_up"},
                      {"fc2", "ffn_down"}};
    t["gpt2"].global = {{"wte", "token_embd"},
                        {"wpe", "position_embd"},
                        {"ln_f", "output_norm"},
                        {"lm_head", "output"}};
    t["gpt2"].layer = {{"ln_1", "attn_norm"},          {"attn.c_attn", "attn_qkv"},
                       {"attn.c_proj", "attn_output"}, {"ln_2", "ffn_norm"},
                       {"mlp.c_fc", "ffn_up"},         {"mlp.c_proj", "ffn_down"}};
    t["gpt2"].layer_transform = {{"attn_qkv", LoadTransform::Transpose},
                                 {"attn_output", LoadTransform::Transpose},
                                 {"ffn_up", LoadTransform::Transpose},
                                 {"ffn_down", LoadTransform::Transpose}};
    t["bloom"].global = {{"word_embeddings", "token_embd"},
                         {"word_embeddings_layernorm", "token_embd_norm"},
                         {"ln_f", "output_norm"},
                         {"lm_head", "output"}};
    t["bloom"].layer = {
        {"input_layernorm", "attn_norm"},        {"self_attention.query_key_value", "attn_qkv"},
        {"self_attention.dense", "attn_output"}, {"post_attention_layernorm", "ffn_norm"},
        {"mlp.dense_h_to_4h", "ffn_up"},         {"mlp.dense_4h_to_h", "ffn_down"}};
    t["bloom"].layer_transform = {{"attn_qkv", LoadTransform::QkvPerHeadToConcat}};
    return t;
  }();
  auto it = tables.find(arch);
  if (it == tables.end()) fail("no Hugging Face weight names known for architecture '{}'", arch);
  return it->second;
}

}  // namespace

std::string layer_tensor(int64_t layer, const char* what) {
  return "blk." + std::to_string(layer) + "." + what;
}

std::optional<MappedName> map_hf_name(const std::string& arch, const std::string& hf_name) {
  // Buffers some checkpoints save that carry no weights.
  if (ends_with(hf_name, ".attn.bias") || ends_with(hf_name, ".attn.masked_bias") ||
      ends_with(hf_name, "rotary_emb.inv_freq"))
    return std::nullopt;
  const Table& tab = table_for(arch);
  std::string s = strip_prefixes(hf_name);
  std::string suffix;
  for (const char* sfx : {".weight", ".bias"})
    if (ends_with(s, sfx)) {
      suffix = sfx;
      s = s.substr(0, s.size() - suffix.size());
    }
  if (suffix.empty()) fail("unrecognised tensor '{}' for architecture {}", hf_name, arch);
  for (const char* lp : {"layers.", "h."}) {
    if (!starts_with(s, lp)) continue;
    const std::string rest = s.substr(std::string(lp).size());
    const size_t dot = rest.find('.');
    if (dot == std::string::npos) break;
    char* end = nullptr;
    const long idx = std::strtol(rest.c_str(), &end, 10);
    if (end != rest.c_str() + dot || idx < 0) break;
    auto it = tab.layer.find(rest.substr(dot + 1));
    if (it == tab.layer.end()) break;
    MappedName m{layer_tensor(idx, it->second.c_str()) + suffix, LoadTransform::None};
    auto tr = tab.layer_transform.find(it->second);
    if (tr != tab.layer_transform.end() &&
        (suffix == ".weight" || tr->second == LoadTransform::QkvPerHeadToConcat))
      m.transform = tr->second;
    return m;
  }
  auto it = tab.global.find(s);
  if (it != tab.global.end()) return MappedName{it->second + suffix, LoadTransform::None};
  fail("unrecognised tensor '{}' for architecture {}", hf_name, arch);
}

}  // namespace strata
