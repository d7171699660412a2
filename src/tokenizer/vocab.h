// The token table shared by every tokenizer kind: id -> text, text -> id, token types, optional
// SentencePiece scores, the byte-fallback table, and the splitter that cuts special tokens out of
// raw text before the subword model sees it.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace strata {

// Values as stored in GGUF tokenizer.ggml.token_type.
enum class TokenType : uint8_t {
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
};

struct StringViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenIdMap = std::unordered_map<std::string, int32_t, StringViewHash, std::equal_to<>>;

// Refuse vocabularies that could only come from a corrupt file (and would make us allocate
// absurd amounts of memory for the id table).
inline constexpr int64_t kMaxVocab = 1 << 24;

class Vocab {
 public:
  // Grows the table to at least n entries; new entries are empty Unused tokens.
  void reserve_ids(int64_t n);
  // Sets token `id`. The first id given a text is the one lookups return (GGUF vocabularies can
  // hold duplicates, e.g. several "<pad>" entries).
  void set(int32_t id, std::string text, TokenType type);
  void set_type(int32_t id, TokenType type);
  void set_special(int32_t id, bool special);
  // Builds byte_id() from the tokens of type Byte ("<0xAB>"); call after all set() calls.
  void index_byte_tokens();

  int32_t size() const { return static_cast<int32_t>(text_.size()); }
  bool valid(int32_t id) const { return id >= 0 && id < size(); }
  const std::string& text(int32_t id) const { return text_[static_cast<size_t>(id)]; }
  TokenType type(int32_t id) const { return type_[static_cast<size_t>(id)]; }
  // Control and unknown tokens, and tokens the model files declare special.
  bool special(int32_t id) const { return special_[static_cast<size_t>(id)] != 0; }
  int32_t find(std::string_view text) const {  // -1 if absent
    auto it = ids_.find(text);
    return it == ids_.end() ? -1 : it->second;
  }
  // Id of the byte-fallback token for byte b, or -1.
  int32_t byte_id(uint8_t b) const { return byte_ids_[b]; }
  bool has_byte_tokens() const { return n_byte_tokens_ > 0; }

  std::vector<float> scores;  // SentencePiece scores (GGUF llama vocabularies), else empty

 private:
  std::vector<std::string> text_;
  std::vector<TokenType> type_;
  std::vector<uint8_t> special_;
  TokenIdMap ids_;
  std::array<int32_t, 256> byte_ids_{};
  int n_byte_tokens_ = 0;
};

// Ids of well-known end-of-turn tokens ("<|eot_id|>", "<|im_end|>", "<end_of_turn>", ...) that
// the vocabulary has as special tokens. Chat models stop on these as well as on eos.
std::vector<int32_t> find_end_of_turn_tokens(const Vocab& v);

// Parses "<0xAB>" (exactly that form, upper- or lower-case hex) into the byte value.
std::optional<uint8_t> parse_byte_token(std::string_view text);

// A piece of input text: either plain text for the subword model, or one special token.
struct Fragment {
  std::string_view text;
  int32_t token = -1;  // >= 0: this fragment is exactly this token
};

// Cuts special tokens out of text. Tokens marked `always` (user-defined / non-special added
// tokens) are matched in every call; the others only when parse_special is set. At each position
// the longest matching token wins.
class SpecialSplitter {
 public:
  struct Entry {
    std::string text;
    int32_t id = -1;
    bool always = false;
    bool lstrip = false;  // also swallow whitespace before the token (HF added_tokens)
    bool rstrip = false;  // ... and after it
  };
  void add(Entry e);  // empty texts are ignored; a text added twice keeps its first entry
  bool empty() const { return entries_.empty(); }
  std::vector<Fragment> split(std::string_view text, bool parse_special) const;

 private:
  std::vector<Entry> entries_;
  std::unordered_set<std::string> texts_;
  // Entry indexes grouped by first byte, longest first.
  std::array<std::vector<uint32_t>, 256> by_first_;
};

}  // namespace strata
