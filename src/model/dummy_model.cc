#include "model/dummy_model.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "formats/gguf_writer.h"
#include "quant/quant.h"

namespace strata {
namespace {

// Counter-based generator: value i of a tensor depends only on (seed, tensor, i), so threads can
// fill disjoint ranges independently and the file is the same whatever the thread count.
inline uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

inline float uniform(uint64_t seed, uint64_t i) {  // in [-1, 1)
  return static_cast<float>(static_cast<int64_t>(mix(seed ^ (i * 0x9e3779b97f4a7c15ULL)) >> 11)) *
             (2.0f / 9007199254740992.0f) -
         1.0f;
}

uint64_t name_seed(uint64_t seed, const std::string& name) {
  uint64_t h = seed * 0x100000001b3ULL;
  for (char c : name) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ULL;
  return mix(h);
}

// Fills a [rows, cols] tensor of `type`: uniform values of the given scale, or all `fill`.
void fill_tensor(ThreadPool& pool, uint8_t* dst, DType type, int64_t rows, int64_t cols,
                 uint64_t seed, float scale, bool constant, float fill) {
  const int64_t rb = row_bytes(type, cols);
  const QuantKernels* qk = quant_kernels(type);
  if (!is_float_type(type) && !qk) fail("gen-dummy: cannot write type {}", dtype_name(type));
  pool.parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t c = 0; c < cols; ++c)
        row[static_cast<size_t>(c)] =
            constant ? fill : scale * uniform(seed, static_cast<uint64_t>(r * cols + c));
      uint8_t* out = dst + r * rb;
      switch (type) {
        case DType::F32:
          std::memcpy(out, row.data(), static_cast<size_t>(cols) * 4);
          break;
        case DType::F16:
          for (int64_t c = 0; c < cols; ++c)
            reinterpret_cast<uint16_t*>(out)[c] = f32_to_fp16(row[static_cast<size_t>(c)]);
          break;
        case DType::BF16:
          for (int64_t c = 0; c < cols; ++c)
            reinterpret_cast<uint16_t*>(out)[c] = f32_to_bf16(row[static_cast<size_t>(c)]);
          break;
        default:
          qk->quantize_row(row.data(), out, cols);
      }
    }
  });
}

}  // namespace

const std::vector<DummyShape>& dummy_shapes() {
  static const std::vector<DummyShape> shapes = {
      // arch, name, embd, layers, heads, kv heads, ffn, vocab, ctx
      {"llama", "100m", 768, 12, 12, 12, 2048, 32000, 2048},
      {"llama", "1b", 2048, 22, 32, 4, 5632, 32000, 2048},
      {"llama", "7b", 4096, 32, 32, 32, 11008, 32000, 4096},
      {"llama", "13b", 5120, 40, 40, 40, 13824, 32000, 4096},
      {"llama", "70b", 8192, 80, 64, 8, 28672, 32000, 4096},
      {"opt", "125m", 768, 12, 12, 12, 3072, 50272, 2048},
      {"opt", "350m", 1024, 24, 16, 16, 4096, 50272, 2048, 512, false},
      {"opt", "1.3b", 2048, 24, 32, 32, 8192, 50272, 2048},
      {"opt", "6.7b", 4096, 32, 32, 32, 16384, 50272, 2048},
      {"opt", "13b", 5120, 40, 40, 40, 20480, 50272, 2048},
      {"opt", "30b", 7168, 48, 56, 56, 28672, 50272, 2048},
      {"opt", "66b", 9216, 64, 72, 72, 36864, 50272, 2048},
      {"opt", "175b", 12288, 96, 96, 96, 49152, 50272, 2048},
  };
  return shapes;
}

DummyShape find_dummy_shape(const std::string& arch, const std::string& shape) {
  std::string names;
  for (const auto& s : dummy_shapes()) {
    if (s.arch == arch && s.name == shape) return s;
    if (s.arch == arch) names += (names.empty() ? "" : ", ") + s.name;
  }
  if (names.empty()) fail("gen-dummy: unknown architecture '{}' (llama or opt)", arch);
  fail("gen-dummy: unknown {} shape '{}' (known: {})", arch, shape, names);
}

int64_t dummy_parameter_count(const DummyShape& s) {
  const int64_t io = s.n_embd_io ? s.n_embd_io : s.n_embd, hd = s.n_embd / s.n_head;
  int64_t per_layer = s.n_embd * (s.n_embd + 2 * s.n_head_kv * hd) + s.n_embd * s.n_embd;
  per_layer += (s.arch == "llama" ? 3 : 2) * s.n_embd * s.n_ff;
  int64_t n = s.n_layer * per_layer + s.n_vocab * io;
  if (s.arch == "llama") n += s.n_vocab * io;  // untied head
  if (s.arch == "opt") n += (s.n_ctx + 2) * s.n_embd + (io != s.n_embd ? 2 * io * s.n_embd : 0);
  return n;
}

void write_dummy_gguf(const DummyShape& shape, const DummyOptions& o, const std::string& path) {
  DummyShape s = shape;
  if (o.layers > 0) s.n_layer = o.layers;
  const bool opt = s.arch == "opt";
  const int64_t io = s.n_embd_io ? s.n_embd_io : s.n_embd, hd = s.n_embd / s.n_head,
                kvd = s.n_head_kv * hd;
  GgufWriter w;
  w.set_str("general.architecture", s.arch);
  w.set_str("general.name",
            fmt::format("strata dummy {}-{}{}", s.arch, s.name,
                        o.layers > 0 ? fmt::format(" ({} layers)", s.n_layer) : ""));
  w.set_u32("general.file_type", static_cast<uint32_t>(o.type));
  const std::string p = s.arch + ".";
  w.set_u32(p + "context_length", static_cast<uint32_t>(s.n_ctx));
  w.set_u32(p + "embedding_length", static_cast<uint32_t>(s.n_embd));
  w.set_u32(p + "block_count", static_cast<uint32_t>(s.n_layer));
  w.set_u32(p + "feed_forward_length", static_cast<uint32_t>(s.n_ff));
  w.set_u32(p + "attention.head_count", static_cast<uint32_t>(s.n_head));
  w.set_u32(p + "attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
  if (opt) {
    w.set_f32(p + "attention.layer_norm_epsilon", 1e-5f);
    w.set_bool("opt.pre_norm", s.pre_norm);
    if (io != s.n_embd) w.set_u32("opt.word_embed_proj_dim", static_cast<uint32_t>(io));
  } else {
    w.set_f32(p + "attention.layer_norm_rms_epsilon", 1e-5f);
    w.set_f32(p + "rope.freq_base", 10000.0f);
    w.set_u32(p + "rope.dimension_count", static_cast<uint32_t>(hd));
  }

  // Tokenizer: copied, or synthetic SentencePiece pieces that decode to readable filler.
  if (!o.vocab_from.empty()) {
    GgufFile src(o.vocab_from);
    bool any = false;
    for (const auto& k : src.keys())
      if (k.rfind("tokenizer.", 0) == 0) {
        w.set(k, src.at(k));
        any = true;
      }
    if (!any) fail("{}: has no tokenizer.* metadata to copy", o.vocab_from);
  } else {
    std::vector<std::string> toks = {"<unk>", "<s>", "</s>"};
    std::vector<int32_t> types = {2, 3, 3};
    for (int b = 0; b < 256; ++b) {
      toks.push_back(fmt::format("<0x{:02X}>", b));
      types.push_back(6);
    }
    static const char* syll[] = {"ka", "lo", "mi", "ne", "ru", "sa",
                                 "ti", "vo", "be", "da", "fu", "go"};
    for (int64_t i = static_cast<int64_t>(toks.size()); i < s.n_vocab; ++i) {
      std::string t = "\xe2\x96\x81";  // '▁': each piece is a word
      for (int64_t v = i; v > 0; v /= 12) t += syll[v % 12];
      toks.push_back(t);
      types.push_back(1);
    }
    std::vector<float> scores(toks.size());
    for (size_t i = 0; i < scores.size(); ++i) scores[i] = -static_cast<float>(i);
    w.set_str("tokenizer.ggml.model", "llama");
    w.set_strs("tokenizer.ggml.tokens", toks);
    w.set_f32s("tokenizer.ggml.scores", scores);
    w.set_i32s("tokenizer.ggml.token_type", types);
    w.set_u32("tokenizer.ggml.bos_token_id", 1);
    w.set_u32("tokenizer.ggml.eos_token_id", 2);
    w.set_u32("tokenizer.ggml.unknown_token_id", 0);
    w.set_bool("tokenizer.ggml.add_bos_token", true);
  }

  auto pool = std::make_shared<ThreadPool>(ThreadPool::default_threads());
  auto mat = [&](const std::string& name, DType t, int64_t rows, int64_t cols, float scale) {
    w.add_tensor(name, t, {rows, cols}, [=](uint8_t* dst, uint64_t) {
      fill_tensor(*pool, dst, t, rows, cols, name_seed(o.seed, name), scale, false, 0);
    });
  };
  auto vec = [&](const std::string& name, int64_t n, bool ones) {
    w.add_tensor(name, DType::F32, {n}, [=](uint8_t* dst, uint64_t) {
      fill_tensor(*pool, dst, DType::F32, 1, n, name_seed(o.seed, name), 0.02f, ones, 1.0f);
    });
  };
  // Scales keep activations bounded through many layers: ~1/sqrt(fan_in) for projections.
  const float sc = 1.0f / std::sqrt(static_cast<float>(s.n_embd)),
              sf = 1.0f / std::sqrt(static_cast<float>(s.n_ff));
  mat("token_embd.weight", o.embd_type, s.n_vocab, io, 1.0f);
  if (opt) {
    mat("position_embd.weight", o.embd_type, s.n_ctx + 2, s.n_embd, 0.1f);
    if (io != s.n_embd) {
      mat("proj_in.weight", o.type, s.n_embd, io, 1.0f / std::sqrt(static_cast<float>(io)));
      mat("proj_out.weight", o.type, io, s.n_embd, sc);
    }
  }
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    vec(b + "attn_norm.weight", s.n_embd, true);
    if (opt) vec(b + "attn_norm.bias", s.n_embd, false);
    mat(b + "attn_q.weight", o.type, s.n_embd, s.n_embd, sc);
    mat(b + "attn_k.weight", o.type, kvd, s.n_embd, sc);
    mat(b + "attn_v.weight", o.type, kvd, s.n_embd, sc);
    mat(b + "attn_output.weight", o.type, s.n_embd, s.n_embd, sc);
    if (opt)
      for (const char* t : {"attn_q.bias", "attn_k.bias", "attn_v.bias", "attn_output.bias"})
        vec(b + t,
            std::string(t) == "attn_q.bias" || std::string(t) == "attn_output.bias" ? s.n_embd
                                                                                    : kvd,
            false);
    vec(b + "ffn_norm.weight", s.n_embd, true);
    if (opt) vec(b + "ffn_norm.bias", s.n_embd, false);
    if (!opt) mat(b + "ffn_gate.weight", o.type, s.n_ff, s.n_embd, sc);
    mat(b + "ffn_up.weight", o.type, s.n_ff, s.n_embd, sc);
    mat(b + "ffn_down.weight", o.type, s.n_embd, s.n_ff, sf);
    if (opt) {
      vec(b + "ffn_up.bias", s.n_ff, false);
      vec(b + "ffn_down.bias", s.n_embd, false);
    }
  }
  if (s.pre_norm) {
    vec("output_norm.weight", s.n_embd, true);
    if (opt) vec("output_norm.bias", s.n_embd, false);
  }
  if (!opt) mat("output.weight", o.embd_type, s.n_vocab, io, sc);
  w.write(path, o.progress ? "writing " + path : "");
}

}  // namespace strata
