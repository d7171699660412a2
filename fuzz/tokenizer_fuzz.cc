// libFuzzer target: arbitrary bytes through encode -> decode and the stream decoder, for a GPT-2
// byte-level tokenizer and two SentencePiece ones (GGUF score-based, tokenizer.json rank-based).
// Checks: no crash, exact round trip (SPM: the prefix space is dropped again by decode), and the
// stream decoder only ever emits valid UTF-8 that matches decode() when the input was valid.
// Test data comes from $STRATA_SHARED (default ../shared, as for the tests).
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace {

using strata::Tokenizer;

std::string shared(const std::string& rel) {
  const char* env = std::getenv("STRATA_SHARED");
  return std::string(env && *env ? env : "../shared") + "/" + rel;
}

struct Toks {
  std::unique_ptr<strata::GgufFile> gpt2_file, spm_file;
  std::vector<std::unique_ptr<Tokenizer>> all;
  Toks() {
    gpt2_file =
        std::make_unique<strata::GgufFile>(shared("models/vocab-gguf/ggml-vocab-gpt-2.gguf"));
    spm_file =
        std::make_unique<strata::GgufFile>(shared("models/vocab-gguf/ggml-vocab-llama-spm.gguf"));
    all.push_back(Tokenizer::from_gguf(*gpt2_file));
    all.push_back(Tokenizer::from_gguf(*spm_file));
    all.push_back(Tokenizer::from_hf_dir(shared("models/tiny/llama-gqa")));
  }
};

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = strata::utf8::valid_len(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Toks toks;
  if (size == 0) return 0;
  // The first byte picks options; the rest is the text.
  const bool parse_special = data[0] & 1;
  const bool add_bos = data[0] & 2;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  for (const auto& t : toks.all) {
    const std::vector<int32_t> ids = t->encode(text, add_bos, parse_special);
    const std::string back = t->decode(ids, /*skip_special=*/!parse_special);
    if (!parse_special) {
      // SentencePiece writes spaces as '▁', so a '▁' in the input comes back as a space.
      std::string want = text;
      if (t->kind() == strata::TokenizerKind::SentencePieceBpe)
        for (size_t k; (k = want.find("\xE2\x96\x81")) != std::string::npos;)
          want.replace(k, 3, " ");
      check(back == want);
    }
    strata::StreamDecoder sd(*t, !parse_special);
    std::string streamed;
    for (int32_t id : ids) {
      const std::string part = sd.push(id);
      check(valid_utf8(part));
      streamed += part;
    }
    streamed += sd.flush();
    check(valid_utf8(streamed));
    if (valid_utf8(back)) check(streamed == back);
    // Decoding arbitrary ids (including out-of-range ones) must not crash either.
    std::vector<int32_t> raw;
    for (size_t i = 0; i + 4 <= text.size() && raw.size() < 64; i += 4) {
      int32_t v;
      __builtin_memcpy(&v, text.data() + i, 4);
      raw.push_back(v % (t->n_vocab() + 16));
    }
    (void)t->decode(raw, false);
  }
  return 0;
}
