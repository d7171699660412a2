// Tokenizer tests against independent references: llama.cpp's tokenizer test vectors
// (vocab-gguf/*.inp/.out, produced by the original tokenizers), and Hugging Face's token ids
// stored in the golden files of the tiny checkpoints and stories260K.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/file.h"
#include "formats/gguf_writer.h"
#include "test_support.h"
#include "tokenizer/stream_decoder.h"
#include "tokenizer/utf8.h"

namespace strata {
namespace {

using test::read_json;
using test::shared_path;

struct VocabCase {
  std::string text;
  std::vector<int32_t> ids;
};

// The .inp file holds the strings, each followed by "\n__ggml_vocab_test__\n"; the .out file has
// one line of space-separated expected ids per string.
std::vector<VocabCase> read_vocab_cases(const std::string& gguf) {
  const std::string inp = read_text_file(gguf + ".inp");
  const std::string out = read_text_file(gguf + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<VocabCase> cases;
  for (size_t i = 0; i < inp.size();) {
    size_t e = inp.find(sep, i);
    if (e == std::string::npos) {
      ADD_FAILURE() << "unterminated test string at offset " << i;
      break;
    }
    cases.push_back({inp.substr(i, e - i), {}});
    i = e + sep.size();
  }
  std::istringstream lines(out);
  std::string line;
  size_t k = 0;
  while (std::getline(lines, line)) {
    if (k >= cases.size()) {
      ADD_FAILURE() << "more .out lines than .inp strings";
      break;
    }
    std::istringstream nums(line);
    int32_t id;
    while (nums >> id) cases[k].ids.push_back(id);
    ++k;
  }
  EXPECT_EQ(k, cases.size()) << "one .out line per .inp string";
  return cases;
}

std::string show(const std::string& s) {
  std::string r;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f)
      r.push_back(static_cast<char>(c));
    else
      r += fmt::format("\\x{:02x}", c);
  }
  return r;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8::valid_len(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::vector<int32_t> json_ids(const nlohmann::json& j) {
  return j.get<std::vector<int32_t>>();
}

void check_vocab_cases(const Tokenizer& tok, const std::string& gguf) {
  const auto cases = read_vocab_cases(gguf);
  ASSERT_EQ(cases.size(), 46u);
  for (const auto& c : cases) {
    const auto ids = tok.encode(c.text, false);
    EXPECT_EQ(ids, c.ids) << "text: '" << show(c.text) << "'";
    EXPECT_EQ(tok.decode(ids), c.text) << "round trip of '" << show(c.text) << "'";
  }
}

TEST(TokenizerVocabGguf, Gpt2MatchesReferenceIds) {
  const std::string path = shared_path("models/vocab-gguf/ggml-vocab-gpt-2.gguf");
  GgufFile f(path);
  auto tok = Tokenizer::from_gguf(f);
  EXPECT_EQ(tok->kind(), TokenizerKind::BytePairGpt2);
  EXPECT_EQ(tok->n_vocab(), 50257);
  EXPECT_EQ(tok->bos(), 50256);
  EXPECT_EQ(tok->eos(), 50256);
  EXPECT_FALSE(tok->add_bos_default());
  check_vocab_cases(*tok, path);
}

TEST(TokenizerVocabGguf, LlamaSpmMatchesReferenceIds) {
  const std::string path = shared_path("models/vocab-gguf/ggml-vocab-llama-spm.gguf");
  GgufFile f(path);
  auto tok = Tokenizer::from_gguf(f);
  EXPECT_EQ(tok->kind(), TokenizerKind::SentencePieceBpe);
  EXPECT_EQ(tok->n_vocab(), 32000);
  EXPECT_EQ(tok->bos(), 1);
  EXPECT_EQ(tok->eos(), 2);
  EXPECT_EQ(tok->unk(), 0);
  EXPECT_TRUE(tok->add_bos_default());
  EXPECT_TRUE(tok->is_special(1));
  EXPECT_FALSE(tok->is_special(3));  // <0x00>
  check_vocab_cases(*tok, path);
}

// The tiny Llama's tokenizer.json was converted from the same 32000-token vocabulary, so the
// merge-rank algorithm must give the same ids as the score-based one.
TEST(TokenizerHfJson, LlamaTokenizerJsonMatchesSpmReferenceIds) {
  auto tok = Tokenizer::from_hf_dir(shared_path("models/tiny/llama-gqa"));
  EXPECT_EQ(tok->kind(), TokenizerKind::SentencePieceBpe);
  check_vocab_cases(*tok, shared_path("models/vocab-gguf/ggml-vocab-llama-spm.gguf"));
}

// Golden prompts of the tiny checkpoints: ids and token texts from Hugging Face's tokenizers,
// with each folder's default special tokens; greedy_text is HF's decode of greedy_ids.
TEST(TokenizerHfDir, TinyCheckpointsReproduceGoldenPrompts) {
  for (const std::string name : {"opt", "gpt2", "bloom", "llama-gqa"}) {
    SCOPED_TRACE(name);
    auto tok = Tokenizer::from_hf_dir(shared_path("models/tiny/" + name));
    const auto golden = read_json(shared_path("golden/tiny/" + name + ".json"));
    EXPECT_EQ(tok->add_bos_default(), name == "opt" || name == "llama-gqa");
    for (const auto& p : golden.at("prompts")) {
      const std::string prompt = p.at("prompt").get<std::string>();
      const auto ids = tok->encode(prompt, tok->add_bos_default());
      EXPECT_EQ(ids, json_ids(p.at("input_ids"))) << prompt;
      const auto tokens = p.at("input_tokens").get<std::vector<std::string>>();
      ASSERT_EQ(tokens.size(), ids.size());
      for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(tok->token_text(ids[i]), tokens[i]);
      EXPECT_EQ(tok->decode(ids), prompt);
      // HF decodes with errors="replace"; decode() gives the raw bytes.
      std::string text;
      utf8::append_sanitized(text, tok->decode(json_ids(p.at("greedy_ids"))));
      EXPECT_EQ(text, p.at("greedy_text").get<std::string>());
    }
  }
}

TEST(TokenizerHfDir, TinySpecialIds) {
  auto opt = Tokenizer::from_hf_dir(shared_path("models/tiny/opt"));
  EXPECT_EQ(opt->kind(), TokenizerKind::BytePairGpt2);
  EXPECT_EQ(opt->n_vocab(), 50257);
  EXPECT_EQ(opt->bos(), 50256);
  EXPECT_EQ(opt->eos(), 50256);
  EXPECT_EQ(opt->pad(), 50256);
  EXPECT_TRUE(opt->is_special(50256));
  EXPECT_EQ(opt->eos_ids(), std::vector<int32_t>{50256});
  EXPECT_EQ(opt->chat_template(), "");
  auto llama = Tokenizer::from_hf_dir(shared_path("models/tiny/llama-gqa"));
  EXPECT_EQ(llama->bos(), 1);
  EXPECT_EQ(llama->eos(), 2);
  EXPECT_EQ(llama->unk(), 0);
  EXPECT_EQ(llama->pad(), -1);
  EXPECT_EQ(llama->n_vocab(), 32000);
}

void check_stories(const Tokenizer& tok) {
  EXPECT_EQ(tok.kind(), TokenizerKind::SentencePieceBpe);
  EXPECT_EQ(tok.n_vocab(), 512);
  EXPECT_EQ(tok.bos(), 1);
  EXPECT_EQ(tok.eos(), 2);
  EXPECT_TRUE(tok.add_bos_default());
  const auto golden = read_json(shared_path("golden/stories260K.json"));
  ASSERT_EQ(golden.at("prompts").size(), 5u);
  for (const auto& p : golden.at("prompts")) {
    const std::string prompt = p.at("prompt").get<std::string>();
    const auto ids = tok.encode(prompt, tok.add_bos_default());
    EXPECT_EQ(ids, json_ids(p.at("input_ids"))) << prompt;
    const auto tokens = p.at("input_tokens").get<std::vector<std::string>>();
    ASSERT_EQ(tokens.size(), ids.size());
    for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(tok.token_text(ids[i]), tokens[i]);
    EXPECT_EQ(tok.decode(ids), prompt);
    EXPECT_EQ(tok.decode(json_ids(p.at("greedy_ids"))), p.at("greedy_text").get<std::string>());
  }
  const auto bos64 = read_json(shared_path("golden/stories260K-bos64.json"));
  const auto gids = json_ids(bos64.at("greedy_ids"));
  // This reference text is the plain concatenation of the pieces, so it keeps the space of the
  // first "▁Once"; decode() drops it as SentencePiece does.
  const std::string text = bos64.at("greedy_text").get<std::string>();
  ASSERT_TRUE(text.starts_with(" Once"));
  EXPECT_EQ(tok.decode(gids), text.substr(1));
  // The README states that encoding the decoded text gives back the generated ids.
  EXPECT_EQ(tok.encode(tok.decode(gids), false), gids);
}

TEST(TokenizerStories, GgufReproducesGolden) {
  GgufFile f(shared_path("models/stories260K-gguf/stories260K.gguf"));
  check_stories(*Tokenizer::from_gguf(f));
}

TEST(TokenizerStories, HfDirReproducesGolden) {
  check_stories(*Tokenizer::from_hf_dir(shared_path("models/stories260K-hf")));
}

TEST(TokenizerStories, FromModelFilesDispatches) {
  auto g = Tokenizer::from_model_files(
      open_model_files(shared_path("models/stories260K-gguf/stories260K.gguf")));
  auto h = Tokenizer::from_model_files(open_model_files(shared_path("models/stories260K-hf")));
  const std::string text = "Once upon a time, Lily saw a big dog. 😀 日本";
  EXPECT_EQ(g->encode(text, true), h->encode(text, true));
  EXPECT_EQ(g->decode(g->encode(text, true)), text);
}

TEST(TokenizerSpecial, ParseSpecialOnlyWhenAsked) {
  GgufFile f(shared_path("models/vocab-gguf/ggml-vocab-gpt-2.gguf"));
  auto gpt2 = Tokenizer::from_gguf(f);
  const std::string text = "Hi<|endoftext|>there";
  const auto plain = gpt2->encode(text, false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 50256), 0);
  EXPECT_EQ(gpt2->decode(plain), text);
  const auto parsed = gpt2->encode(text, false, true);
  ASSERT_EQ(std::count(parsed.begin(), parsed.end(), 50256), 1);
  // The pieces around the special token are tokenized on their own.
  std::vector<int32_t> expect = gpt2->encode("Hi", false);
  expect.push_back(50256);
  for (int32_t id : gpt2->encode("there", false)) expect.push_back(id);
  EXPECT_EQ(parsed, expect);
  EXPECT_EQ(gpt2->decode(parsed, true), "Hithere");
  EXPECT_EQ(gpt2->decode(parsed, false), text);
  EXPECT_EQ(gpt2->token_piece(50256), "<|endoftext|>");

  auto llama = Tokenizer::from_hf_dir(shared_path("models/tiny/llama-gqa"));
  const auto ids = llama->encode("<s>Hello</s>", false, true);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(ids.back(), 2);
  EXPECT_EQ(std::vector<int32_t>(ids.begin() + 1, ids.end() - 1), llama->encode("Hello", false));
  const auto raw = llama->encode("<s>Hello</s>", false, false);
  EXPECT_EQ(std::count(raw.begin(), raw.end(), 1), 0);
  EXPECT_EQ(llama->decode(raw), "<s>Hello</s>");
}

TEST(TokenizerPieces, PiecesAndLookup) {
  auto llama = Tokenizer::from_hf_dir(shared_path("models/tiny/llama-gqa"));
  EXPECT_EQ(llama->token_text(15043), "\xE2\x96\x81Hello");
  EXPECT_EQ(llama->token_piece(15043), " Hello");
  EXPECT_EQ(llama->token_piece(3 + 0xAB), "\xAB");
  EXPECT_EQ(llama->token_id("\xE2\x96\x81Hello"), 15043);
  EXPECT_FALSE(llama->token_id("no such token").has_value());
  auto gpt2 = Tokenizer::from_hf_dir(shared_path("models/tiny/gpt2"));
  EXPECT_EQ(gpt2->token_text(616), "\xC4\xA0my");  // "Ġmy"
  EXPECT_EQ(gpt2->token_piece(616), " my");
  EXPECT_EQ(gpt2->decode({50256, 15496}, true), "Hello");
}

// Emoji and CJK: byte-fallback tokens (SPM) and byte-level tokens (GPT-2) split characters.
void check_stream(const Tokenizer& tok, const std::string& text) {
  const auto ids = tok.encode(text, true);
  const std::string whole = tok.decode(ids);
  EXPECT_EQ(whole, text);
  StreamDecoder sd(tok);
  std::string streamed;
  int held_back = 0;
  for (int32_t id : ids) {
    const std::string part = sd.push(id);
    EXPECT_TRUE(valid_utf8(part)) << "partial UTF-8 emitted: " << show(part);
    if (!valid_utf8(tok.token_piece(id))) ++held_back;
    streamed += part;
  }
  streamed += sd.flush();
  EXPECT_EQ(streamed, whole);
  EXPECT_GT(held_back, 0) << "the text should contain tokens that split a character";
}

TEST(TokenizerStream, SplitCharactersAreHeldBack) {
  const std::string text = "Hi 😀 there 日本語 🦙🦙 ok";
  GgufFile spm_file(shared_path("models/vocab-gguf/ggml-vocab-llama-spm.gguf"));
  check_stream(*Tokenizer::from_gguf(spm_file), text);
  check_stream(*Tokenizer::from_hf_dir(shared_path("models/tiny/llama-gqa")), text);
  check_stream(*Tokenizer::from_hf_dir(shared_path("models/tiny/gpt2")), text);
  GgufFile stories(shared_path("models/stories260K-gguf/stories260K.gguf"));
  check_stream(*Tokenizer::from_gguf(stories), text);
}

TEST(TokenizerStream, InvalidBytesBecomeReplacementCharacters) {
  auto gpt2 = Tokenizer::from_hf_dir(shared_path("models/tiny/gpt2"));
  const std::string bad =
      "a\xFF"
      "b\xE6\x97";  // a stray byte, then a truncated character
  const auto ids = gpt2->encode(bad, false);
  StreamDecoder sd(*gpt2);
  std::string out;
  for (int32_t id : ids) out += sd.push(id);
  out += sd.flush();
  EXPECT_EQ(out,
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD");
}

TEST(TokenizerRobust, InvalidUtf8InputRoundTrips) {
  const std::string bad =
      std::string("ok \xFF\xFE x\xC3 \xE2\x82 \xF0\x9F\x98 z\x80\x80 ") + '\0' + "end";
  GgufFile g(shared_path("models/vocab-gguf/ggml-vocab-gpt-2.gguf"));
  GgufFile s(shared_path("models/vocab-gguf/ggml-vocab-llama-spm.gguf"));
  std::vector<std::unique_ptr<Tokenizer>> toks;
  toks.push_back(Tokenizer::from_gguf(g));
  toks.push_back(Tokenizer::from_gguf(s));
  toks.push_back(Tokenizer::from_hf_dir(shared_path("models/tiny/llama-gqa")));
  for (const auto& t : toks) {
    const auto ids = t->encode(bad, false);
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(t->decode(ids), bad) << t->kind_name();
  }
}

TEST(TokenizerRobust, OutOfRangeIds) {
  auto tok = Tokenizer::from_hf_dir(shared_path("models/tiny/opt"));
  // The OPT model has 50272 embedding rows but 50257 tokens: ids past the vocabulary decode to
  // nothing rather than failing.
  EXPECT_EQ(tok->decode({15496, 50260, -5, 11}), "Hello,");
  EXPECT_EQ(tok->token_piece(1 << 30), "");
  EXPECT_THROW(tok->token_text(50257), Error);
  EXPECT_THROW(tok->token_text(-1), Error);
  EXPECT_FALSE(tok->is_special(-1));
}

// Hostile GGUF metadata: written with strata's own GGUF writer, then loaded.
class TokenizerHostileGguf : public ::testing::Test {
 protected:
  std::string write(const std::function<void(GgufWriter&)>& fill) {
    GgufWriter w;
    fill(w);
    const std::string path = test::temp_dir() + "/hostile" + std::to_string(n_++) + ".gguf";
    w.write(path, "");
    return path;
  }
  static void spm_basics(GgufWriter& w, std::vector<std::string> tokens) {
    w.set_str("tokenizer.ggml.model", "llama");
    const size_t n = tokens.size();
    w.set_strs("tokenizer.ggml.tokens", tokens);
    w.set_f32s("tokenizer.ggml.scores", std::vector<float>(n, 0.0f));
    w.set_i32s("tokenizer.ggml.token_type", std::vector<int32_t>(n, 1));
  }
  int n_ = 0;
};

TEST_F(TokenizerHostileGguf, MismatchedArraysAreErrors) {
  const auto p1 = write([](GgufWriter& w) {
    spm_basics(w, {"a", "b", "c"});
    w.set_i32s("tokenizer.ggml.token_type", {1, 1});
  });
  EXPECT_THROW(Tokenizer::from_gguf(GgufFile(p1)), Error);
  const auto p2 = write([](GgufWriter& w) {
    spm_basics(w, {"a", "b", "c"});
    w.set_f32s("tokenizer.ggml.scores", {0.0f, 1.0f, 2.0f, 3.0f});
  });
  EXPECT_THROW(Tokenizer::from_gguf(GgufFile(p2)), Error);
  const auto p3 = write([](GgufWriter& w) {
    spm_basics(w, {"a"});
    w.set_strs("tokenizer.ggml.token_type", {"x"});
  });
  EXPECT_THROW(Tokenizer::from_gguf(GgufFile(p3)), Error);
  const auto p4 = write([](GgufWriter& w) { spm_basics(w, {}); });
  EXPECT_THROW(Tokenizer::from_gguf(GgufFile(p4)), Error);
  const auto p5 = write([](GgufWriter& w) {
    spm_basics(w, {"a"});
    w.set_str("tokenizer.ggml.model", "bert");
  });
  EXPECT_THROW(Tokenizer::from_gguf(GgufFile(p5)), Error);
  const auto p6 = write([](GgufWriter& w) { w.set_str("general.name", "no tokenizer"); });
  EXPECT_THROW(Tokenizer::from_gguf(GgufFile(p6)), Error);
  const auto p7 = write([](GgufWriter& w) {
    w.set_str("tokenizer.ggml.model", "gpt2");
    w.set_strs("tokenizer.ggml.tokens", {"a", "b"});
  });
  EXPECT_THROW(Tokenizer::from_gguf(GgufFile(p7)), Error) << "gpt2 without merges";
}

TEST_F(TokenizerHostileGguf, BadIdsAndMergesAreTolerated) {
  const auto path = write([](GgufWriter& w) {
    w.set_str("tokenizer.ggml.model", "gpt2");
    w.set_strs("tokenizer.ggml.tokens", {"a", "b", "ab", "\xC4\xA0", "", "<|end|>"});
    w.set_i32s("tokenizer.ggml.token_type", {1, 1, 1, 1, 99, 3});
    // Unknown tokens, malformed lines, a merge whose result is missing, empty sides.
    w.set_strs("tokenizer.ggml.merges",
               {"a b", "x y", "b a", "nospace", "a  b", " a", "a ", "ab ab"});
    w.set_u32("tokenizer.ggml.bos_token_id", 4000000000u);
    w.set_i32("tokenizer.ggml.eos_token_id", -7);
    w.set_u32("tokenizer.ggml.padding_token_id", 5);
  });
  auto tok = Tokenizer::from_gguf(GgufFile(path));
  EXPECT_EQ(tok->bos(), -1);
  EXPECT_EQ(tok->eos(), -1);
  EXPECT_EQ(tok->pad(), 5);
  EXPECT_EQ(tok->encode("abba", true), (std::vector<int32_t>{2, 1, 0}));
  EXPECT_EQ(tok->encode("ab<|end|>", false, true), (std::vector<int32_t>{2, 5}));
  EXPECT_EQ(tok->decode({2, 1, 0, 5}, false), "abba<|end|>");
  EXPECT_EQ(tok->eos_ids(), std::vector<int32_t>{5});  // "<|end|>" is a control token
  // Bytes whose characters the vocabulary lacks cannot be represented; they are dropped.
  EXPECT_EQ(tok->encode("a\xFFz", false), (std::vector<int32_t>{0}));
}

TEST_F(TokenizerHostileGguf, SpmWithoutByteTokensFallsBackToUnk) {
  const auto path = write([](GgufWriter& w) {
    spm_basics(w, {"<unk>", "\xE2\x96\x81", "h", "i", "\xE2\x96\x81h", "hi", "\xE2\x96\x81hi"});
    w.set_i32s("tokenizer.ggml.token_type", {2, 1, 1, 1, 1, 1, 1});
    w.set_f32s("tokenizer.ggml.scores", {0, -1, -1, -1, NAN, -3, -4});
  });
  auto tok = Tokenizer::from_gguf(GgufFile(path));
  EXPECT_EQ(tok->unk(), 0);
  EXPECT_EQ(tok->bos(), -1);
  // "▁h" has a NaN score, which ranks below every real score: "hi" (-3) is merged first.
  EXPECT_EQ(tok->encode("hi", false), (std::vector<int32_t>{6}));
  EXPECT_EQ(tok->encode("h", false), (std::vector<int32_t>{4}));
  // No byte tokens: a byte that is no token becomes <unk>.
  EXPECT_EQ(tok->encode("hi\xFF", true), (std::vector<int32_t>{6, 0}));
  EXPECT_EQ(tok->decode({6, 0}, false), "hi<unk>");
}

class TokenizerHostileHf : public ::testing::Test {
 protected:
  std::string dir_with(const std::string& tokenizer_json,
                       const std::string& tokenizer_config = "") {
    const std::string dir = test::temp_dir() + "/hf" + std::to_string(n_++);
    EXPECT_EQ(test::run_command("mkdir -p " + dir, nullptr), 0);
    std::ofstream(dir + "/tokenizer.json") << tokenizer_json;
    if (!tokenizer_config.empty())
      std::ofstream(dir + "/tokenizer_config.json") << tokenizer_config;
    return dir;
  }
  int n_ = 0;
};

TEST_F(TokenizerHostileHf, BadFilesAreErrors) {
  EXPECT_THROW(Tokenizer::from_hf_dir(dir_with("{not json")), Error);
  EXPECT_THROW(Tokenizer::from_hf_dir(dir_with(R"({"model": {"type": "Unigram", "vocab": []}})")),
               Error);
  EXPECT_THROW(Tokenizer::from_hf_dir(
                   dir_with(R"({"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []},
      "pre_tokenizer": {"type": "ByteLevel"}})")),
               Error);
  EXPECT_THROW(
      Tokenizer::from_hf_dir(dir_with(R"({"model": {"type": "BPE", "vocab": {"a": "zero"}}})")),
      Error);
  EXPECT_THROW(Tokenizer::from_hf_dir(dir_with(R"({"model": {"type": "BPE", "vocab": {"a": 0}}})")),
               Error)
      << "neither byte-level nor SentencePiece-style";
  EXPECT_THROW(Tokenizer::from_hf_dir(dir_with(R"({"model": {"type": "BPE", "vocab": {"a": 0}},
      "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"}}, "decoder": {"type": "ByteLevel"}})")),
               Error);
  EXPECT_THROW(Tokenizer::from_hf_dir(test::temp_dir() + "/does-not-exist"), Error);
}

TEST_F(TokenizerHostileHf, UnknownMergesSkippedAndConfigRead) {
  const std::string tj = R"({
    "added_tokens": [{"id": 5, "content": "<|im_end|>", "special": true}],
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3, "Ġab": 4},
              "merges": ["a b", "q r", ["Ġ", "ab"], ["x"], 7]},
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "decoder": {"type": "ByteLevel"}})";
  const std::string tc = R"({"add_bos_token": false, "eos_token": {"content": "<|im_end|>"},
    "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]})";
  auto tok = Tokenizer::from_hf_dir(dir_with(tj, tc));
  EXPECT_EQ(tok->kind(), TokenizerKind::BytePairGpt2);
  EXPECT_EQ(tok->encode("ab ab", false), (std::vector<int32_t>{2, 4}));
  EXPECT_EQ(tok->eos(), 5);
  EXPECT_EQ(tok->chat_template(), "D");
  EXPECT_FALSE(tok->add_bos_default());
  EXPECT_EQ(tok->encode("ab<|im_end|>", false, true), (std::vector<int32_t>{2, 5}));
}

TEST(TokenizerHfDir, ConfigOverridesAndChatTemplate) {
  // stories260K's tokenizer.json with a tokenizer_config.json that turns BOS off and adds a
  // chat template.
  const std::string dir = test::temp_dir() + "/stories-chat";
  ASSERT_EQ(test::run_command("mkdir -p " + dir + " && cp " +
                                  shared_path("models/stories260K-hf/tokenizer.json") + " " + dir,
                              nullptr),
            0);
  std::ofstream(dir + "/tokenizer_config.json")
      << R"({"add_bos_token": false, "chat_template": "{{ bos_token }}{{ messages }}"})";
  auto tok = Tokenizer::from_hf_dir(dir);
  EXPECT_FALSE(tok->add_bos_default());
  EXPECT_EQ(tok->bos(), 1);  // from the post-processor template
  EXPECT_EQ(tok->chat_template(), "{{ bos_token }}{{ messages }}");
  EXPECT_EQ(tok->encode("Once upon a time", tok->add_bos_default()),
            (std::vector<int32_t>{403, 407, 261, 378}));
}

// A built tokenizer is shared by server threads: concurrent encodes must agree with serial ones.
TEST(TokenizerThreads, ConcurrentEncodeMatchesSerial) {
  GgufFile g(shared_path("models/vocab-gguf/ggml-vocab-gpt-2.gguf"));
  auto tok = Tokenizer::from_gguf(g);
  std::vector<std::string> texts;
  for (int i = 0; i < 8; ++i)
    texts.push_back(fmt::format("Thread {} says hello to 世界 {} times! <|endoftext|>", i, i * 37));
  std::vector<std::vector<int32_t>> serial;
  for (const auto& t : texts) serial.push_back(tok->encode(t, false, true));
  std::vector<std::vector<int32_t>> got(texts.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < texts.size(); ++i)
    threads.emplace_back([&, i] {
      for (int rep = 0; rep < 50; ++rep) got[i] = tok->encode(texts[i], false, true);
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(got, serial);
}

// Large inputs must stay near-linear: one 1 MB word-free run and 1 MB of prose. Timing is
// printed, not asserted.
TEST(TokenizerLarge, MegabyteInputsRoundTrip) {
  std::string prose;
  const std::string sentence =
      "The quick brown fox jumps over the lazy dog, 1234 times! 日本語 😀\n";
  while (prose.size() < (1u << 20)) prose += sentence;
  const std::string run(1u << 20, 'a');
  // Runs that stress the pre-tokenizer regex (backtracking over long whitespace, long
  // punctuation) and the invalid-UTF-8 paths.
  std::vector<std::string> runs = {std::string(1u << 20, ' '),    std::string(1u << 20, '\n'),
                                   std::string(1u << 20, '7'),    std::string(1u << 20, '!'),
                                   std::string(1u << 20, '\xFF'), std::string()};
  for (size_t i = 0; runs.back().size() < (1u << 20); ++i)
    runs.back() += (i % 3 == 0) ? "\xE6\x97" : (i % 3 == 1) ? " \t x" : "\xF0\x9F\x98\x80";
  GgufFile g(shared_path("models/vocab-gguf/ggml-vocab-gpt-2.gguf"));
  GgufFile s(shared_path("models/vocab-gguf/ggml-vocab-llama-spm.gguf"));
  auto gpt2 = Tokenizer::from_gguf(g);
  auto spm = Tokenizer::from_gguf(s);
  auto hf = Tokenizer::from_hf_dir(shared_path("models/tiny/llama-gqa"));
  for (const Tokenizer* t : {gpt2.get(), spm.get(), hf.get()}) {
    for (const std::string* text : std::vector<const std::string*>{&prose, &run}) {
      const std::clock_t c0 = std::clock();
      const auto ids = t->encode(*text, false);
      const std::clock_t c1 = std::clock();
      EXPECT_EQ(t->decode(ids), *text);
      std::cout << "[ info ] " << t->kind_name() << (text == &prose ? " prose" : " run")
                << ": 1 MiB -> " << ids.size() << " tokens in "
                << 1000.0 * static_cast<double>(c1 - c0) / CLOCKS_PER_SEC << " ms CPU\n";
    }
    for (const std::string& r : runs) {
      const std::clock_t c0 = std::clock();
      const auto ids = t->encode(r, false);
      const std::clock_t c1 = std::clock();
      EXPECT_EQ(t->decode(ids), r) << t->kind_name() << " run of " << show(r.substr(0, 4));
      std::cout << "[ info ] " << t->kind_name() << " run of '" << show(r.substr(0, 4))
                << "': " << ids.size() << " tokens, "
                << 1000.0 * static_cast<double>(c1 - c0) / CLOCKS_PER_SEC << " ms CPU\n";
    }
  }
}

}  // namespace
}  // namespace strata
