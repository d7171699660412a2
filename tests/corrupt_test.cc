// Bad model files must produce strata::Error, never a crash or an out-of-bounds read. Run under
// ASan/UBSan in CI (the sanitizer build runs this whole file). Each damaged file goes through
// everything a user's run would do: parse, load the weights, build the tokenizer, one forward.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <random>

#include "core/error.h"
#include "core/file.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "model/model.h"
#include "model_runner.h"
#include "test_support.h"
#include "tokenizer/tokenizer.h"

namespace strata {
namespace {

enum class Outcome { Ok, Error };

// Everything a run does with a model path. Only strata::Error may escape as a failure.
Outcome try_model(const std::string& path) {
  try {
    test::ModelRunner r(path, 1);
    auto files = open_model_files(path);
    auto tok = Tokenizer::from_model_files(files);
    tok->encode("Hello world", true);
    r.all_logits({1, 2});
    return Outcome::Ok;
  } catch (const Error&) {
    return Outcome::Error;
  }
}

// Plain write (no fsync): thousands of damaged files are written here.
void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << "cannot write " << path;
}

const std::string& stories_bytes() {
  static const std::string b =
      read_text_file(test::shared_path("models/stories260K-gguf/stories260K.gguf"));
  return b;
}

TEST(Corrupt, TruncatedThroughTheHeaderAndSampledInTheData) {
  const std::string& b = stories_bytes();
  const std::string path = test::temp_dir() + "/trunc.gguf";
  int checked = 0;
  // Every offset through the first metadata entries, then every 7th through the rest of the
  // header (tokens, tensor index), then samples through the tensor data.
  for (size_t n = 0; n < b.size(); n += n < 2048 ? 1 : n < 14300 ? 7 : 4093) {
    write_file(path, b.substr(0, n));
    EXPECT_EQ(try_model(path), Outcome::Error) << "truncated at " << n << " was accepted";
    ++checked;
  }
  EXPECT_GT(checked, 3800);
}

TEST(Corrupt, FlippedBytesInTheHeader) {
  const std::string path = test::temp_dir() + "/flip.gguf";
  std::string b = stories_bytes();
  write_file(path, b);
  const int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  std::mt19937 rng(42);
  int ok = 0, err = 0;
  for (size_t i = 0; i < 14176; i += 3) {
    const uint8_t orig = static_cast<uint8_t>(b[i]);
    for (uint8_t v :
         {static_cast<uint8_t>(orig ^ 0xFF), static_cast<uint8_t>(rng()), uint8_t{0x7F}}) {
      ASSERT_EQ(::pwrite(fd, &v, 1, static_cast<off_t>(i)), 1);
      (try_model(path) == Outcome::Ok ? ok : err)++;
    }
    ASSERT_EQ(::pwrite(fd, &orig, 1, static_cast<off_t>(i)), 1);
  }
  ::close(fd);
  EXPECT_GT(err, 0);
  EXPECT_GT(ok + err, 14000);
}

// A minimal valid llama GGUF we can damage field by field.
std::string tiny_llama(std::function<void(GgufWriter&)> tweak = nullptr,
                       std::vector<int64_t> q_shape = {8, 8}) {
  GgufWriter w;
  w.set_str("general.architecture", "llama");
  w.set_u32("llama.embedding_length", 8);
  w.set_u32("llama.block_count", 1);
  w.set_u32("llama.feed_forward_length", 16);
  w.set_u32("llama.attention.head_count", 2);
  w.set_u32("llama.context_length", 64);
  w.set_str("tokenizer.ggml.model", "llama");
  std::vector<std::string> toks = {"<unk>", "<s>", "</s>"};
  for (int i = 0; i < 256; ++i) toks.push_back(fmt::format("<0x{:02X}>", i));
  std::vector<float> scores(toks.size(), 0);
  std::vector<int32_t> types(toks.size(), 6);
  types[0] = 2, types[1] = 3, types[2] = 3;
  w.set_strs("tokenizer.ggml.tokens", toks);
  w.set_f32s("tokenizer.ggml.scores", scores);
  w.set_i32s("tokenizer.ggml.token_type", types);
  if (tweak) tweak(w);
  auto zeros = [](uint8_t* d, uint64_t n) { std::memset(d, 0, n); };
  const int64_t V = static_cast<int64_t>(toks.size());
  w.add_tensor("token_embd.weight", DType::F32, {V, 8}, zeros);
  w.add_tensor("output_norm.weight", DType::F32, {8}, zeros);
  w.add_tensor("blk.0.attn_norm.weight", DType::F32, {8}, zeros);
  w.add_tensor("blk.0.attn_q.weight", DType::F16, q_shape, zeros);
  for (const char* n : {"blk.0.attn_k.weight", "blk.0.attn_v.weight", "blk.0.attn_output.weight"})
    w.add_tensor(n, DType::F16, {8, 8}, zeros);
  w.add_tensor("blk.0.ffn_norm.weight", DType::F32, {8}, zeros);
  w.add_tensor("blk.0.ffn_gate.weight", DType::F16, {16, 8}, zeros);
  w.add_tensor("blk.0.ffn_up.weight", DType::F16, {16, 8}, zeros);
  w.add_tensor("blk.0.ffn_down.weight", DType::F16, {8, 16}, zeros);
  const std::string path = test::temp_dir() + "/tiny_llama.gguf";
  w.write(path, "");
  return read_text_file(path);
}

TEST(Corrupt, CraftedFiles) {
  const std::string path = test::temp_dir() + "/crafted.gguf";
  write_file(path, tiny_llama());
  EXPECT_EQ(try_model(path), Outcome::Ok) << "the undamaged crafted model must load";

  struct Case {
    const char* what;
    std::string bytes;
    bool must_fail = true;  // false: any outcome but a crash
  };
  std::vector<Case> cases;
  cases.push_back({"absurd embedding width", tiny_llama([](GgufWriter& w) {
                     w.set_u32("llama.embedding_length", 0x7fffffff);
                   })});
  cases.push_back({"zero heads",
                   tiny_llama([](GgufWriter& w) { w.set_u32("llama.attention.head_count", 0); })});
  cases.push_back({"heads not dividing KV heads", tiny_llama([](GgufWriter& w) {
                     w.set_u32("llama.attention.head_count_kv", 3);
                   })});
  cases.push_back(
      {"context of 2^31",
       tiny_llama([](GgufWriter& w) { w.set_u32("llama.context_length", 0x80000000u); }), false});
  cases.push_back(
      {"wrong key type", tiny_llama([](GgufWriter& w) { w.set_str("llama.block_count", "one"); })});
  cases.push_back({"unknown architecture",
                   tiny_llama([](GgufWriter& w) { w.set_str("general.architecture", "mamba9"); })});
  cases.push_back({"wrong tensor shape", tiny_llama(nullptr, {8, 9 * 32})});
  cases.push_back({"token types too short", tiny_llama([](GgufWriter& w) {
                     w.set_i32s("tokenizer.ggml.token_type", {1});
                   })});
  // An out-of-range special id is dropped by the tokenizer (no BOS), like llama.cpp: no crash.
  cases.push_back(
      {"bos out of range",
       tiny_llama([](GgufWriter& w) { w.set_u32("tokenizer.ggml.bos_token_id", 99999); }), false});
  cases.push_back({"alignment not a power of two",
                   tiny_llama([](GgufWriter& w) { w.set_u32("general.alignment", 24); })});
  {
    // A dimension of 2^62 patched into the first tensor's index entry.
    std::string b = tiny_llama();
    const size_t at = b.find("token_embd.weight") + 17 + 4;
    uint64_t huge = 1ull << 62;
    std::memcpy(&b[at], &huge, 8);
    cases.push_back({"dimension 2^62", b});
    // An offset past the end of the file.
    b = tiny_llama();
    const size_t off_at = b.find("token_embd.weight") + 17 + 4 + 16 + 4;
    uint64_t far = 1ull << 40;
    std::memcpy(&b[off_at], &far, 8);
    cases.push_back({"offset past the end", b});
    // A string length of 2^63 in the first key.
    b = tiny_llama();
    uint64_t len = 1ull << 63;
    std::memcpy(&b[24], &len, 8);
    cases.push_back({"string length 2^63", b});
    // Tensor and metadata counts far beyond the file.
    b = tiny_llama();
    std::memcpy(&b[8], &len, 8);
    cases.push_back({"tensor count 2^63", b});
    b = tiny_llama();
    std::memcpy(&b[16], &len, 8);
    cases.push_back({"metadata count 2^63", b});
  }
  for (const auto& c : cases) {
    write_file(path, c.bytes);
    const Outcome o = try_model(path);
    if (c.must_fail) {
      EXPECT_EQ(o, Outcome::Error) << c.what << " was accepted";
    }
  }
}

TEST(Corrupt, SafetensorsAndConfig) {
  const std::string src = test::shared_path("models/tiny/opt");
  const std::string dir = test::temp_dir() + "/badhf";
  ASSERT_EQ(std::system(
                ("rm -rf " + dir + " && mkdir -p " + dir + " && cp " + src + "/* " + dir).c_str()),
            0);
  ASSERT_EQ(try_model(dir), Outcome::Ok);
  const std::string st = read_text_file(src + "/model.safetensors");
  const std::string cfg = read_text_file(src + "/config.json");
  // Truncations of the safetensors file, header and data.
  for (size_t n : {size_t(0), size_t(4), size_t(8), size_t(20), size_t(100), size_t(1000),
                   st.size() / 2, st.size() - 1}) {
    write_file(dir + "/model.safetensors", st.substr(0, n));
    EXPECT_EQ(try_model(dir), Outcome::Error) << "safetensors truncated at " << n;
  }
  // Flipped bytes in the JSON header.
  uint64_t hlen;
  std::memcpy(&hlen, st.data(), 8);
  for (size_t i = 0; i < 8 + hlen; i += 5) {
    std::string b = st;
    b[i] = static_cast<char>(b[i] ^ 0x5a);
    write_file(dir + "/model.safetensors", b);
    try_model(dir);  // either outcome, but no crash
  }
  write_file(dir + "/model.safetensors", st);
  // Damaged config.json values.
  for (const char* bad :
       {"{", "[]", R"({"model_type":"opt"})", R"({"model_type":"opt","hidden_size":-16})"}) {
    write_file(dir + "/config.json", bad);
    EXPECT_EQ(try_model(dir), Outcome::Error) << bad;
  }
  nlohmann::json j = nlohmann::json::parse(cfg);
  j["num_attention_heads"] = 3;
  write_file(dir + "/config.json", j.dump());
  EXPECT_EQ(try_model(dir), Outcome::Error) << "heads not dividing the width";
  j = nlohmann::json::parse(cfg);
  j["hidden_size"] = "16";
  write_file(dir + "/config.json", j.dump());
  EXPECT_EQ(try_model(dir), Outcome::Error) << "string hidden_size";
}

}  // namespace
}  // namespace strata
