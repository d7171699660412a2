// Weight names. Inside strata every weight has its GGUF-style canonical name
// ("token_embd.weight", "blk.3.attn_q.weight", ...). GGUF files already use them; Hugging Face
// names are mapped per architecture here, together with the few layout fixes some
// architectures need at load (GPT-2's Conv1D stores [in, out]; BLOOM interleaves Q/K/V per head).
#pragma once
#include <optional>
#include <string>

namespace strata {

enum class LoadTransform {
  None,
  Transpose,           // stored [in, out] (GPT-2 Conv1D): transpose to [out, in]
  QkvPerHeadToConcat,  // rows [h0:q,k,v, h1:q,k,v, ...] -> [Q; K; V] (BLOOM)
};

struct MappedName {
  std::string name;  // canonical
  LoadTransform transform = LoadTransform::None;
};

// Canonical name for a Hugging Face tensor name; nullopt for tensors strata does not use
// (attention mask buffers, rotary caches). Throws for an unrecognised name.
std::optional<MappedName> map_hf_name(const std::string& arch, const std::string& hf_name);

// Canonical names.
std::string layer_tensor(int64_t layer, const char* what);  // "blk.<layer>.<what>"

}  // namespace strata
