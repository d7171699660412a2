// strata quantize and strata validate: round trips from GGUF and from Hugging Face folders of
// every architecture against the golden files (greedy ids, logits, tokenizer ids), the type
// policy and its fallbacks, and the validator on good and hand-damaged files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>

#include "core/error.h"
#include "core/file.h"
#include "formats/gguf.h"
#include "formats/gguf_validate.h"
#include "formats/gguf_writer.h"
#include "model/quantize.h"
#include "model_runner.h"
#include "test_support.h"
#include "tokenizer/tokenizer.h"

namespace strata::test {
namespace {

const char* kStoriesGguf = "models/stories260K-gguf/stories260K.gguf";

std::vector<int32_t> ids_of(const nlohmann::json& j) {
  return j.get<std::vector<int32_t>>();
}

// Quantizes quietly; the log lines come back for checks.
QuantizeResult quantize(const std::string& in, const std::string& out, DType type,
                        std::vector<std::string>* log = nullptr,
                        std::optional<DType> embd = std::nullopt, bool keep_output = false) {
  QuantizeOptions o;
  o.type = type;
  o.embd_type = embd;
  o.keep_output = keep_output;
  o.threads = 1;
  o.progress = false;
  o.log = [log](const std::string& s) {
    if (log) log->push_back(s);
  };
  return quantize_model(in, out, o);
}

std::string out_path(const std::string& name) {
  return temp_dir() + "/" + name;
}

std::map<std::string, DType> tensor_types(const std::string& path) {
  GgufFile f(path);
  std::map<std::string, DType> m;
  for (const auto& t : f.tensor_infos()) m[t.name] = t.dtype;
  return m;
}

void expect_valid(const std::string& path) {
  const GgufValidation v = validate_gguf(path);
  EXPECT_TRUE(v.ok()) << path << ": " << (v.problems.empty() ? "" : v.problems.front());
  EXPECT_TRUE(v.warnings.empty()) << path << ": " << (v.warnings.empty() ? "" : v.warnings.front());
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

bool any_contains(const std::vector<std::string>& v, const std::string& s) {
  for (const auto& x : v)
    if (x.find(s) != std::string::npos) return true;
  return false;
}

// --- quantize: GGUF input -------------------------------------------------------------------

TEST(Quantize, StoriesQ8_0ReproducesGoldenGreedy) {
  const std::string out = out_path("stories-q8_0.gguf");
  std::vector<std::string> log;
  const QuantizeResult r = quantize(shared_path(kStoriesGguf), out, DType::Q8_0, &log);
  expect_valid(out);
  const auto types = tensor_types(out);
  // 64-wide rows take Q8_0; ffn_down's rows of 172 are not a multiple of 32 and fall back to
  // F16; vectors stay F32.
  EXPECT_EQ(types.at("blk.0.attn_q.weight"), DType::Q8_0);
  EXPECT_EQ(types.at("blk.0.ffn_gate.weight"), DType::Q8_0);
  EXPECT_EQ(types.at("token_embd.weight"), DType::Q8_0);
  EXPECT_EQ(types.at("blk.0.ffn_down.weight"), DType::F16);
  EXPECT_EQ(types.at("blk.0.attn_norm.weight"), DType::F32);
  EXPECT_TRUE(any_contains(log, "rows of 172 are not a multiple of 32"))
      << "the fallback is reported";
  EXPECT_EQ(r.tensors.size(), types.size());
  EXPECT_LT(r.bytes_out, r.bytes_in / 3);

  GgufFile g(out);
  EXPECT_EQ(g.get_int("general.quantization_version"), 2);
  EXPECT_EQ(g.get_int("general.file_type"), 7);
  EXPECT_EQ(g.version(), 3u);

  const auto golden = read_json(shared_path("golden/stories260K-bos64.json"));
  ModelRunner m(out, 1);
  EXPECT_EQ(m.greedy(ids_of(golden["prompt_ids"]), 64), ids_of(golden["greedy_ids"]));
}

TEST(Quantize, StoriesF32IsABitExactCopy) {
  const std::string out = out_path("stories-f32.gguf");
  quantize(shared_path(kStoriesGguf), out, DType::F32);
  expect_valid(out);
  GgufFile a(shared_path(kStoriesGguf)), b(out);
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (const auto& ta : a.tensor_infos()) {
    const auto tb = b.tensor_infos();
    auto it =
        std::find_if(tb.begin(), tb.end(), [&](const TensorInfo& t) { return t.name == ta.name; });
    ASSERT_NE(it, tb.end()) << ta.name;
    EXPECT_EQ(it->shape, ta.shape);
    ASSERT_EQ(it->nbytes, ta.nbytes);
    EXPECT_EQ(std::memcmp(a.file().data() + ta.offset, b.file().data() + it->offset, ta.nbytes), 0)
        << ta.name;
  }
  // Every metadata key of the source survives (file type and quantization version are set).
  for (const auto& k : a.keys()) {
    if (k != "general.file_type") {
      EXPECT_TRUE(b.has(k)) << k;
    }
  }
}

TEST(Quantize, EveryTypeLoadsAndGenerates) {
  const auto golden = read_json(shared_path("golden/stories260K-bos64.json"));
  for (DType t : {DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                  DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    SCOPED_TRACE(dtype_name(t));
    const std::string out = out_path(std::string("stories-") + dtype_name(t) + ".gguf");
    quantize(shared_path(kStoriesGguf), out, t);
    expect_valid(out);
    ModelRunner m(out, 1);
    const auto ids = m.greedy({1}, 16);
    EXPECT_EQ(ids.size(), 16u);
    // 16-bit floats keep the golden greedy path; the first token ("Once") survives any type.
    if (t == DType::F16 || t == DType::BF16) {
      EXPECT_EQ(m.greedy({1}, 64), ids_of(golden["greedy_ids"]));
    }
    EXPECT_EQ(ids[0], golden["greedy_ids"][0].get<int32_t>());
  }
}

TEST(Quantize, KQuantFallbacksOnNarrowRows) {
  // stories260K's rows are 64 (and 172) wide: no matrix can hold a 256-element super-block.
  const std::string out = out_path("stories-q4_k.gguf");
  std::vector<std::string> log;
  quantize(shared_path(kStoriesGguf), out, DType::Q4_K, &log);
  const auto types = tensor_types(out);
  EXPECT_EQ(types.at("blk.0.attn_q.weight"), DType::Q5_0);   // Q4_K -> Q5_0 for 64-wide rows
  EXPECT_EQ(types.at("blk.0.ffn_down.weight"), DType::F16);  // 172: not even a multiple of 32
  EXPECT_EQ(types.at("token_embd.weight"), DType::Q8_0);     // default embedding policy
  EXPECT_EQ(types.at("output.weight"), DType::Q8_0);
  EXPECT_TRUE(any_contains(log, "rows of 64 are not a multiple of 256: Q5_0 instead of Q4_K"));
  EXPECT_EQ(GgufFile(out).get_int("general.file_type"), 14);

  // An explicit embedding type and --keep-output.
  const std::string out2 = out_path("stories-q4_0-keep.gguf");
  quantize(shared_path(kStoriesGguf), out2, DType::Q4_0, nullptr, DType::Q4_0, true);
  const auto t2 = tensor_types(out2);
  EXPECT_EQ(t2.at("token_embd.weight"), DType::Q4_0);
  EXPECT_EQ(t2.at("output.weight"), DType::F32);
  EXPECT_EQ(t2.at("blk.1.attn_v.weight"), DType::Q4_0);
  expect_valid(out2);
}

TEST(Quantize, ThreadCountDoesNotChangeTheFile) {
  std::vector<std::vector<uint8_t>> files;
  for (int threads : {1, 3}) {
    QuantizeOptions o;
    o.type = DType::Q4_0;
    o.threads = threads;
    o.progress = false;
    o.log = [](const std::string&) {};
    const std::string out = out_path("threads-" + std::to_string(threads) + ".gguf");
    quantize_model(shared_path(kStoriesGguf), out, o);
    files.push_back(read_bytes(out));
  }
  EXPECT_EQ(files[0], files[1]);
}

TEST(Quantize, FitTypeRules) {
  std::string why;
  EXPECT_EQ(fit_type(DType::Q4_K, 4096, DType::F16, &why), DType::Q4_K);
  EXPECT_EQ(fit_type(DType::Q6_K, 96, DType::F16, &why), DType::Q8_0);
  EXPECT_EQ(fit_type(DType::Q2_K, 96, DType::F16, &why), DType::Q4_0);
  EXPECT_EQ(fit_type(DType::Q5_K, 96, DType::F16, &why), DType::Q5_1);
  EXPECT_EQ(fit_type(DType::Q8_0, 20, DType::F32, &why), DType::F16);
  EXPECT_EQ(fit_type(DType::Q8_0, 20, DType::BF16, &why), DType::BF16);
  EXPECT_EQ(fit_type(DType::F16, 7, DType::F32, &why), DType::F16);
}

TEST(Quantize, RejectsBadRequests) {
  EXPECT_THROW(quantize(shared_path(kStoriesGguf), out_path("x.gguf"), DType::Q8_K), Error);
  EXPECT_THROW(quantize(shared_path(kStoriesGguf), shared_path(kStoriesGguf), DType::Q8_0), Error);
  EXPECT_THROW(quantize(out_path("missing.gguf"), out_path("y.gguf"), DType::Q8_0), Error);
  EXPECT_FALSE(file_exists(out_path("x.gguf")));
}

// --- quantize: Hugging Face input -----------------------------------------------------------

TEST(Quantize, StoriesFromHfMatchesTheGgufModel) {
  // F32 from the HF folder: the Q/K rows are permuted from rotate-half to interleaved order, so
  // the result must compute exactly what the llama.cpp-converted GGUF computes.
  const std::string f32 = out_path("stories-hf-f32.gguf");
  std::vector<std::string> log;
  quantize(shared_path("models/stories260K-hf"), f32, DType::F32, &log);
  EXPECT_FALSE(any_contains(log, "does not tokenize like")) << "tokenizer self-check";
  expect_valid(f32);
  GgufFile g(f32);
  EXPECT_EQ(g.get_str("general.architecture"), "llama");
  EXPECT_EQ(g.get_int("llama.attention.head_count_kv"), 4);
  EXPECT_EQ(g.get_str("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(tensor_types(f32).count("output.weight"), 0u) << "tied, like the folder";
  ModelRunner conv(f32, 1), ref(shared_path(kStoriesGguf), 1);
  const auto golden = read_json(shared_path("golden/stories260K.json"));
  for (const auto& p : golden["prompts"]) {
    const auto ids = ids_of(p["input_ids"]);
    const auto a = conv.all_logits(ids), b = ref.all_logits(ids);
    ASSERT_EQ(a.size(), b.size());
    float m = 0;
    for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
    EXPECT_LT(m, 1e-4f) << p["prompt"];
  }

  // The converted tokenizer against the GGUF's own (llama.cpp's conversion of the same vocab).
  auto tok_conv = Tokenizer::from_gguf(g);
  auto tok_ref = Tokenizer::from_gguf(GgufFile(shared_path(kStoriesGguf)));
  for (const auto& p : golden["prompts"]) {
    const std::string text = p["prompt"];
    EXPECT_EQ(tok_conv->encode(text, true), ids_of(p["input_ids"])) << text;
  }
  for (const char* text : {"Once upon a time, there was a little girl named Lily.",
                           "Tim and Sue played.\nThe end!", "zebra? xylophone... 42 caf\xC3\xA9"})
    EXPECT_EQ(tok_conv->encode(text, true), tok_ref->encode(text, true)) << text;

  // Q8_0 from the folder reproduces the golden greedy ids.
  const std::string q8 = out_path("stories-hf-q8_0.gguf");
  quantize(shared_path("models/stories260K-hf"), q8, DType::Q8_0);
  expect_valid(q8);
  const auto g64 = read_json(shared_path("golden/stories260K-bos64.json"));
  ModelRunner m(q8, 1);
  EXPECT_EQ(m.greedy(ids_of(g64["prompt_ids"]), 64), ids_of(g64["greedy_ids"]));
}

class TinyHf : public ::testing::TestWithParam<const char*> {};

// Every architecture from its HF folder to GGUF, as F32 and in the checkpoint's own type (both
// exact): the golden greedy ids must survive, and the converted tokenizer must give the golden
// input ids.
TEST_P(TinyHf, RoundTripKeepsGoldenIds) {
  const std::string name = GetParam();
  const auto golden = read_json(shared_path("golden/tiny/" + name + ".json"));
  const std::string src = golden["checkpoint_torch_dtype"];
  const DType own = src == "float16" ? DType::F16 : src == "bfloat16" ? DType::BF16 : DType::F32;
  for (DType t : {DType::F32, own}) {
    SCOPED_TRACE(std::string(name) + " " + dtype_name(t));
    const std::string out = out_path("tiny-" + name + "-" + dtype_name(t) + ".gguf");
    std::vector<std::string> log;
    quantize(shared_path("models/tiny/" + name), out, t, &log);
    EXPECT_FALSE(any_contains(log, "does not tokenize like")) << "tokenizer self-check";
    expect_valid(out);
    GgufFile g(out);
    auto tok = Tokenizer::from_gguf(g);
    ModelRunner m(out, 1);
    for (const auto& p : golden["prompts"]) {
      const auto ids = ids_of(p["input_ids"]);
      EXPECT_EQ(tok->encode(p["prompt"].get<std::string>(), tok->add_bos_default()), ids)
          << p["prompt"];
      EXPECT_EQ(m.greedy(ids, static_cast<int>(p["greedy_ids"].size())), ids_of(p["greedy_ids"]));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, TinyHf, ::testing::Values("opt", "gpt2", "bloom", "llama-gqa"));

TEST(Quantize, TinyOptQ8_0FallsBackWhereRowsAreNarrow) {
  const std::string out = out_path("tiny-opt-q8_0.gguf");
  std::vector<std::string> log;
  quantize(shared_path("models/tiny/opt"), out, DType::Q8_0, &log);
  expect_valid(out);
  const auto types = tensor_types(out);
  EXPECT_EQ(types.at("blk.0.ffn_down.weight"), DType::Q8_0);  // rows of 64
  EXPECT_EQ(types.at("blk.0.ffn_up.weight"), DType::F16);  // rows of 16: kept F16 (the source type)
  EXPECT_EQ(types.at("token_embd.weight"), DType::F16);
  EXPECT_EQ(types.at("position_embd.weight"), DType::F16);
  EXPECT_EQ(types.at("blk.0.attn_q.bias"), DType::F32);
  GgufFile g(out);
  EXPECT_EQ(g.get_str("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(g.get_strs("tokenizer.ggml.tokens").size(), 50272u) << "padded to the embedding rows";
  EXPECT_TRUE(g.get_bool("opt.pre_norm", false));
  ModelRunner m(out, 1);
  const auto golden = read_json(shared_path("golden/tiny/opt.json"));
  const auto ids = ids_of(golden["prompts"][0]["input_ids"]);
  const auto got = m.greedy(ids, 8);
  EXPECT_EQ(got[0], golden["prompts"][0]["greedy_ids"][0].get<int32_t>());
}

// --- validate -------------------------------------------------------------------------------

// A small file with three tensors whose index fields the damage tests patch.
std::string write_small(const std::string& name) {
  GgufWriter w;
  w.set_str("general.architecture", "llama");
  w.set_u32("general.alignment", 32);
  for (const char* t : {"a.weight", "b.weight", "c.weight"})
    w.add_tensor(t, DType::F32, {3, 10}, [](uint8_t* d, uint64_t n) { std::memset(d, 0x11, n); });
  const std::string p = out_path(name);
  w.write(p, "");
  return p;
}

// Offset in the file of tensor `name`'s data-offset field (after name, dims, type).
size_t offset_field(const std::vector<uint8_t>& b, const std::string& name, uint32_t n_dims) {
  const std::string key = name;
  auto it = std::search(b.begin(), b.end(), key.begin(), key.end());
  EXPECT_NE(it, b.end());
  return static_cast<size_t>(it - b.begin()) + key.size() + 4 + 8 * n_dims + 4;
}

void set_u64(std::vector<uint8_t>& b, size_t at, uint64_t v) {
  std::memcpy(b.data() + at, &v, 8);
}
uint64_t get_u64(const std::vector<uint8_t>& b, size_t at) {
  uint64_t v;
  std::memcpy(&v, b.data() + at, 8);
  return v;
}

TEST(Validate, CleanFilesPass) {
  expect_valid(write_small("small.gguf"));
  // llama.cpp's own conversions.
  expect_valid(shared_path(kStoriesGguf));
  const GgufValidation v = validate_gguf(shared_path("models/vocab-gguf/ggml-vocab-gpt-2.gguf"));
  EXPECT_TRUE(v.ok()) << (v.problems.empty() ? "" : v.problems.front());
}

TEST(Validate, ReportsOverlappingTensors) {
  auto b = read_bytes(write_small("ov.gguf"));
  const size_t f = offset_field(b, "c.weight", 2);
  set_u64(b, f, get_u64(b, offset_field(b, "b.weight", 2)));  // c on top of b
  write_bytes(out_path("ov-bad.gguf"), b);
  const auto v = validate_gguf(out_path("ov-bad.gguf"));
  EXPECT_FALSE(v.ok());
  EXPECT_TRUE(any_contains(v.problems, "overlap")) << v.problems.size();
}

TEST(Validate, ReportsMisalignedOffset) {
  auto b = read_bytes(write_small("mis.gguf"));
  const size_t f = offset_field(b, "b.weight", 2);
  set_u64(b, f, get_u64(b, f) + 4);
  write_bytes(out_path("mis-bad.gguf"), b);
  const auto v = validate_gguf(out_path("mis-bad.gguf"));
  EXPECT_TRUE(any_contains(v.problems, "not a multiple of the alignment"));
  // GgufFile refuses it too.
  EXPECT_THROW(GgufFile(out_path("mis-bad.gguf")), Error);
}

TEST(Validate, ReportsTrailingGarbageAndTruncation) {
  auto b = read_bytes(write_small("tr.gguf"));
  auto more = b;
  more.insert(more.end(), 100, 0x5a);
  write_bytes(out_path("tr-bad.gguf"), more);
  auto v = validate_gguf(out_path("tr-bad.gguf"));
  EXPECT_TRUE(any_contains(v.problems, "100 bytes of trailing data"))
      << (v.problems.empty() ? "" : v.problems[0]);

  auto cut = b;
  cut.resize(b.size() - 64);
  write_bytes(out_path("cut.gguf"), cut);
  v = validate_gguf(out_path("cut.gguf"));
  EXPECT_TRUE(any_contains(v.problems, "runs past the end of the file"));

  for (size_t keep : {40, 100, 150}) {  // inside the counts, the metadata, the tensor index
    auto head = b;
    head.resize(keep);
    write_bytes(out_path("head.gguf"), head);
    v = validate_gguf(out_path("head.gguf"));
    EXPECT_TRUE(any_contains(v.problems, "truncated"))
        << keep << ": " << (v.problems.empty() ? "" : v.problems[0]);
  }
}

TEST(Validate, ReportsGapsBadKeysAndNames) {
  // A gap: tensor c moved one alignment unit further (still aligned, inside the file).
  auto b = read_bytes(write_small("gap.gguf"));
  const size_t f = offset_field(b, "c.weight", 2);
  set_u64(b, f, get_u64(b, f) + 32);
  b.insert(b.end(), 32, 0);
  write_bytes(out_path("gap-bad.gguf"), b);
  EXPECT_TRUE(any_contains(validate_gguf(out_path("gap-bad.gguf")).problems, "unused bytes"));

  GgufWriter w;
  w.set_u32("general.alignment", 48);  // written as given; padding still uses 32
  w.set_str("Bad Key", "x");
  w.add_tensor(std::string(70, 'n'), DType::F32, {4},
               [](uint8_t* d, uint64_t n) { std::memset(d, 0, n); });
  w.write(out_path("keys.gguf"), "");
  const auto v = validate_gguf(out_path("keys.gguf"));
  EXPECT_TRUE(any_contains(v.problems, "general.architecture is missing"));
  EXPECT_TRUE(any_contains(v.problems, "not a power of two"));
  EXPECT_TRUE(any_contains(v.problems, "name of 70 bytes"));
  EXPECT_TRUE(any_contains(v.warnings, "lower_snake_case"));

  auto m = read_bytes(write_small("magic.gguf"));
  m[0] = 'X';
  write_bytes(out_path("magic-bad.gguf"), m);
  EXPECT_TRUE(any_contains(validate_gguf(out_path("magic-bad.gguf")).problems, "not a GGUF file"));
}

TEST(Validate, ReportsWrongTensorSize) {
  // b's first dimension grows from 10 to 18 elements: its bytes now run into c.
  auto b = read_bytes(write_small("dim.gguf"));
  const std::string key = "b.weight";
  auto it = std::search(b.begin(), b.end(), key.begin(), key.end());
  const size_t ne0 = static_cast<size_t>(it - b.begin()) + key.size() + 4;
  set_u64(b, ne0, 18);
  write_bytes(out_path("dim-bad.gguf"), b);
  const auto v = validate_gguf(out_path("dim-bad.gguf"));
  EXPECT_FALSE(v.ok());
  EXPECT_TRUE(any_contains(v.problems, "overlap") ||
              any_contains(v.problems, "before the previous"));
}

// --- the command line -----------------------------------------------------------------------

TEST(QuantizeCli, QuantizeThenValidate) {
  const std::string out = out_path("cli-q4_0.gguf");
  std::string o;
  const std::string cmd = strata_binary() + " quantize -q " + shared_path(kStoriesGguf) + " " +
                          out + " --type q4_0 -t 1";
  ASSERT_EQ(run_command(cmd, &o, true), 0) << o;
  EXPECT_NE(o.find("wrote"), std::string::npos) << o;
  o.clear();
  EXPECT_EQ(run_command(strata_binary() + " validate " + out, &o, true), 0) << o;
  EXPECT_EQ(o.rfind("ok", 0), 0u) << o;
  o.clear();
  ASSERT_EQ(run_command(
                strata_binary() + " run -q -m " + out + " -p 'Once upon a time' -n 8 --temp 0", &o),
            0);
  EXPECT_FALSE(o.empty());

  auto b = read_bytes(out);
  b.insert(b.end(), 7, 1);
  write_bytes(out_path("cli-bad.gguf"), b);
  o.clear();
  EXPECT_EQ(run_command(strata_binary() + " validate " + out_path("cli-bad.gguf"), &o, true), 1)
      << o;
  EXPECT_NE(o.find("problem: 7 bytes of trailing data"), std::string::npos) << o;
  o.clear();
  EXPECT_NE(run_command(strata_binary() + " quantize " + shared_path(kStoriesGguf) + " " + out +
                            " --type q9",
                        &o, true),
            0);
  EXPECT_NE(o.find("not supported"), std::string::npos) << o;
}

}  // namespace
}  // namespace strata::test
