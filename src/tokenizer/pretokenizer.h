// Regex pre-tokenization (PCRE2, UTF + Unicode properties): cuts text into the pieces BPE works on
// separately. A chain of splitters models Hugging Face's Sequence of Split pre-tokenizers.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace strata {

// GPT-2's pattern (also used by most byte-level BPE models that say nothing else).
inline constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Llama 3 (tiktoken cl100k-style) and Qwen2: case-insensitive contractions, digits in groups of up
// to three (Llama 3) or one at a time (Qwen2).
inline constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// What happens to the text a Split pattern matches (Hugging Face's SplitDelimiterBehavior).
enum class SplitBehavior { Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous };

class RegexSplitter {
 public:
  // Throws strata::Error if the pattern does not compile.
  RegexSplitter(const std::string& pattern, SplitBehavior behavior = SplitBehavior::Isolated,
                bool invert = false);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // Appends the pieces of `text` (views into it) to `out`. With the default behavior every match
  // is one piece and every run of text between matches is one piece, so the pieces concatenate
  // back to `text`. Bytes that are not valid UTF-8 never match and end up between matches.
  void split(std::string_view text, std::vector<std::string_view>& out) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8*
  SplitBehavior behavior_;
  bool invert_;
};

// Escapes a literal string for use as a PCRE2 pattern.
std::string regex_quote(std::string_view literal);

class PreTokenizer {
 public:
  void add(std::unique_ptr<RegexSplitter> s) { chain_.push_back(std::move(s)); }
  bool empty() const { return chain_.empty(); }
  // No splitter: the whole text is one piece.
  std::vector<std::string_view> split(std::string_view text) const;

 private:
  std::vector<std::unique_ptr<RegexSplitter>> chain_;
};

}  // namespace strata
