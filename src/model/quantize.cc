#include "model/quantize.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <tuple>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "formats/gguf_validate.h"
#include "formats/gguf_writer.h"
#include "model/gguf_export.h"
#include "model/model.h"
#include "ops/matmul.h"
#include "quant/quant.h"

namespace strata {
namespace {

// 32-element type standing in for a K-quant whose super-blocks do not fit the row.
DType k_fallback(DType t) {
  switch (t) {
    case DType::Q2_K:
    case DType::Q3_K:
      return DType::Q4_0;
    case DType::Q4_K:
      return DType::Q5_0;
    case DType::Q5_K:
      return DType::Q5_1;
    default:
      return DType::Q8_0;
  }
}

bool high_precision(DType t) {
  return is_float_type(t) || t == DType::Q8_0;
}

// Canonical tensor order: embeddings first, then the layers in number order (each layer's
// tensors in the order the forward pass uses them), then the final norm and the head.
struct OrderKey {
  int group = 0;
  int64_t layer = 0;
  int stem = 0;
  std::string name;
  bool operator<(const OrderKey& o) const {
    return std::tie(group, layer, stem, name) < std::tie(o.group, o.layer, o.stem, o.name);
  }
};

OrderKey order_key(const std::string& name) {
  OrderKey k;
  k.name = name;
  static const char* globals_first[] = {"token_embd.", "token_embd_norm.", "position_embd.",
                                        "proj_in."};
  static const char* stems[] = {"attn_norm.",   "attn_q.",   "attn_k.",   "attn_v.", "attn_qkv.",
                                "attn_output.", "ffn_norm.", "ffn_gate.", "ffn_up.", "ffn_down."};
  if (name.rfind("blk.", 0) == 0) {
    k.group = 1;
    const size_t dot = name.find('.', 4);
    k.layer = std::strtoll(name.c_str() + 4, nullptr, 10);
    const std::string rest = dot == std::string::npos ? "" : name.substr(dot + 1);
    k.stem = 100;
    for (int i = 0; i < 10; ++i)
      if (rest.rfind(stems[i], 0) == 0) k.stem = i;
    return k;
  }
  k.group = 2;
  for (int i = 0; i < 4; ++i)
    if (name.rfind(globals_first[i], 0) == 0) k.group = 0, k.stem = i;
  if (name.rfind("output.", 0) == 0) k.stem = 10;  // the head last, after output_norm / proj_out
  return k;
}

// "blk.3.attn_q.weight" -> "blk.*.attn_q.weight", for grouping messages.
std::string name_pattern(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return name;
  const size_t dot = name.find('.', 4);
  return dot == std::string::npos ? name : "blk.*" + name.substr(dot);
}

// HF Llama rows are in rotate-half order (per head: the first halves of all pairs, then the
// second halves); GGUF's interleaved RoPE wants pair (i, i + d/2) at rows (2i, 2i + 1).
void rotate_half_to_interleaved(const uint8_t* src, uint8_t* dst, int64_t n_head, int64_t head_dim,
                                int64_t unit) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j)
        std::memcpy(dst + (h * head_dim + 2 * i + j) * unit,
                    src + (h * head_dim + i + j * half) * unit, static_cast<size_t>(unit));
}

struct Plan {
  std::string name;
  std::vector<int64_t> shape;
  DType from, to;
  bool vector;
  int64_t permute_heads = 0;  // > 0: HF Llama Q/K rows to permute, over this many heads
  std::string why;
};

// f32 row -> one row of `to` at dst. Returns how many values were clamped into F16's range.
int64_t encode_row(const float* x, int64_t n, DType to, uint8_t* dst) {
  int64_t clamped = 0;
  switch (to) {
    case DType::F32:
      std::memcpy(dst, x, static_cast<size_t>(n) * 4);
      break;
    case DType::F16: {
      auto* o = reinterpret_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) {
        float v = x[i];
        if (std::fabs(v) > 65504.0f && std::isfinite(v))
          v = v > 0 ? 65504.0f : -65504.0f, ++clamped;
        o[i] = f32_to_fp16(v);
      }
      break;
    }
    case DType::BF16: {
      auto* o = reinterpret_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) o[i] = f32_to_bf16(x[i]);
      break;
    }
    default:
      quant_kernels(to)->quantize_row(x, dst, n);
  }
  return clamped;
}

}  // namespace

bool quantize_type_supported(DType t) {
  if (is_float_type(t)) return true;
  switch (t) {
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
    case DType::Q8_0:
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      return quant_kernels(t) && quant_kernels(t)->quantize_row;
    default:
      return false;
  }
}

uint32_t gguf_file_type(DType t) {
  switch (t) {
    case DType::F32:
      return 0;
    case DType::F16:
      return 1;
    case DType::Q4_0:
      return 2;
    case DType::Q4_1:
      return 3;
    case DType::Q8_0:
      return 7;
    case DType::Q5_0:
      return 8;
    case DType::Q5_1:
      return 9;
    case DType::Q2_K:
      return 10;
    case DType::Q3_K:
      return 11;  // "Q3_K_S": every matrix Q3_K
    case DType::Q4_K:
      return 14;  // "Q4_K_S"
    case DType::Q5_K:
      return 16;  // "Q5_K_S"
    case DType::Q6_K:
      return 18;
    case DType::BF16:
      return 32;
    default:
      fail("no GGUF file type for {}", dtype_name(t));
  }
}

DType fit_type(DType want, int64_t cols, DType src, std::string* why) {
  const int64_t be = dtype_info(want).block_elems;
  if (cols % be == 0) return want;
  if (be == 256 && cols % 32 == 0) {
    const DType fb = k_fallback(want);
    if (why)
      *why = fmt::format("rows of {} are not a multiple of 256: {} instead of {}", cols,
                         dtype_name(fb), dtype_name(want));
    return fb;
  }
  const DType fb = src == DType::BF16 ? DType::BF16 : DType::F16;
  if (why)
    *why = fmt::format("rows of {} are not a multiple of {}: {} instead of {}", cols,
                       be == 256 ? 32 : be, dtype_name(fb), dtype_name(want));
  return fb;
}

QuantizeResult quantize_model(const std::string& in, const std::string& out,
                              const QuantizeOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto log = [&](const std::string& s) {
    if (o.log)
      o.log(s);
    else
      std::fprintf(stderr, "%s\n", s.c_str());
  };
  if (!quantize_type_supported(o.type))
    fail("quantize: unsupported output type {}", dtype_name(o.type));
  if (o.embd_type && !quantize_type_supported(*o.embd_type))
    fail("quantize: unsupported embedding type {}", dtype_name(*o.embd_type));
  if (in == out) fail("quantize: the output '{}' is the input", out);

  LoadOptions lo;
  lo.progress = false;
  lo.lazy_matrices = true;  // nothing is read until a tensor is written
  auto model = Model::load(in, lo);
  const bool hf = model->files().kind == ModelFiles::Kind::HfDir;
  const HParams& hp = model->hp();
  const bool permute_qk =
      model->arch().pos == PosKind::Rope && model->arch().rope_layout == RopeLayout::HalfSplit;

  GgufWriter w;
  export_metadata(*model, w, log);
  w.set_u32("general.file_type", gguf_file_type(o.type));
  w.set_u32("general.quantization_version", 2);
  if (!hf) {
    const uint64_t a = model->files().gguf->alignment();
    if (a != 32) w.set_alignment(static_cast<uint32_t>(a));
  }

  const DType embd_type =
      o.embd_type ? *o.embd_type : (high_precision(o.type) ? o.type : DType::Q8_0);
  const bool tied = !model->store().has("output.weight");
  std::vector<std::string> names = model->store().names();
  std::sort(names.begin(), names.end(),
            [](const auto& a, const auto& b) { return order_key(a) < order_key(b); });

  QuantizeResult res;
  std::vector<Plan> plans;
  bool requant = false;
  for (const auto& name : names) {
    const Tensor& t = model->store().get(name);
    Plan p{name, t.shape, t.dtype, t.dtype, t.shape.size() == 1, 0, ""};
    if (permute_qk &&
        (name.find(".attn_q.") != std::string::npos || name.find(".attn_k.") != std::string::npos))
      p.permute_heads = name.find(".attn_q.") != std::string::npos ? hp.n_head : hp.n_head_kv;
    if (p.vector) {
      p.to = DType::F32;  // the store widened it already
    } else {
      const bool head = name == "output.weight" || (tied && name == "token_embd.weight");
      const bool embd = head || name == "token_embd.weight" || name == "position_embd.weight";
      DType want = embd ? embd_type : o.type;
      if (o.keep_output && head) want = t.dtype;
      p.to = fit_type(want, t.shape.back(), t.dtype, &p.why);
      requant |= !is_float_type(t.dtype) && p.to != t.dtype;
    }
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    res.n_params += numel;
    plans.push_back(std::move(p));
  }
  if (requant)
    log("warning: the input is already quantized; converting quantized tensors again loses "
        "precision");

  // What will be done, one line per kind of tensor.
  struct Group {
    int count = 0;
    std::string shape;
  };
  std::map<std::string, Group> groups;
  std::vector<std::string> order;
  for (const auto& p : plans) {
    const std::string key = fmt::format("{}: {} -> {}{}", name_pattern(p.name), dtype_name(p.from),
                                        dtype_name(p.to), p.why.empty() ? "" : " (" + p.why + ")");
    if (!groups.count(key)) order.push_back(key);
    Group& g = groups[key];
    ++g.count;
    g.shape = shape_to_string(p.shape);
  }
  log(fmt::format(
      "quantizing {} ({}, {} tensors, {:.2f} M parameters) to {}; embeddings and head {}{}", in,
      model->arch().name, plans.size(), double(res.n_params) / 1e6, dtype_name(o.type),
      dtype_name(embd_type), o.keep_output ? ", head kept as is" : ""));
  for (const auto& key : order)
    log(fmt::format("  {:>3} x {:<14} {}", groups[key].count, groups[key].shape, key));

  auto pool =
      std::make_shared<ThreadPool>(o.threads > 0 ? o.threads : ThreadPool::default_threads());
  auto clamped = std::make_shared<std::map<std::string, int64_t>>();
  const Model* mp = model.get();
  for (const Plan& p : plans) {
    res.tensors.push_back({p.name, p.shape, p.from, p.to, p.why});
    if (p.vector) {
      const int64_t n = p.shape[0];
      res.bytes_in += static_cast<uint64_t>(n) * 4;
      res.bytes_out += static_cast<uint64_t>(n) * 4;
      w.add_tensor(p.name, DType::F32, p.shape, [mp, p, n](uint8_t* dst, uint64_t) {
        const float* src = mp->store().get(p.name).as<const float>();
        if (p.permute_heads > 0)
          rotate_half_to_interleaved(reinterpret_cast<const uint8_t*>(src), dst, p.permute_heads,
                                     n / p.permute_heads, 4);
        else
          std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      });
      continue;
    }
    const int64_t rows = p.shape[0], cols = p.shape[1];
    const int64_t src_rb = row_bytes(p.from, cols), dst_rb = row_bytes(p.to, cols);
    res.bytes_in += static_cast<uint64_t>(rows * src_rb);
    res.bytes_out += static_cast<uint64_t>(rows * dst_rb);
    w.add_tensor(p.name, p.to, p.shape,
                 [mp, p, rows, cols, src_rb, dst_rb, pool, clamped](uint8_t* dst, uint64_t) {
                   std::vector<uint8_t> buf(static_cast<size_t>(rows * src_rb));
                   mp->read_tensor(p.name, buf.data());
                   if (p.permute_heads > 0) {
                     std::vector<uint8_t> tmp(buf.size());
                     rotate_half_to_interleaved(buf.data(), tmp.data(), p.permute_heads,
                                                rows / p.permute_heads, src_rb);
                     buf.swap(tmp);
                   }
                   if (p.to == p.from) {
                     std::memcpy(dst, buf.data(), buf.size());
                     return;
                   }
                   const Tensor view{p.from, {rows, cols}, buf.data()};
                   std::atomic<int64_t> n_clamped{0};
                   pool->parallel_for(rows, 8, [&](int64_t r0, int64_t r1) {
                     std::vector<float> row(static_cast<size_t>(cols));
                     int64_t c = 0;
                     for (int64_t r = r0; r < r1; ++r) {
                       get_row(view, r, row.data());
                       c += encode_row(row.data(), cols, p.to, dst + r * dst_rb);
                     }
                     n_clamped += c;
                   });
                   if (n_clamped) (*clamped)[p.name] = n_clamped;
                 });
  }
  w.write(out, o.progress ? "writing " + out : "");
  for (const auto& [name, n] : *clamped)
    log(fmt::format("warning: {}: {} values beyond F16's range were clamped to +-65504", name, n));

  // Check the result as a reader will see it; a file that fails is removed, not left behind.
  auto reject = [&](const std::string& why) {
    std::remove(out.c_str());
    fail("quantize: internal error, the written file was removed: {}", why);
  };
  const GgufValidation v = validate_gguf(out);
  if (!v.ok()) reject(fmt::format("{} fails validation: {}", out, v.problems.front()));
  const ModelFiles back = open_model_files(out);
  const auto diffs = compare_specs(model->spec(), read_model_spec(back));
  if (!diffs.empty())
    reject(fmt::format("hyper-parameters read back differ: {}", fmt::join(diffs, "; ")));
  if (hf) {
    const auto src_tok = Tokenizer::from_model_files(model->files());
    const auto out_tok = Tokenizer::from_model_files(back);
    const std::string d = compare_tokenizers(*src_tok, *out_tok);
    if (!d.empty())
      log("warning: the converted tokenizer does not tokenize like the original: " + d);
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace strata
