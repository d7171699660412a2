// The metadata half of writing a model as GGUF (strata quantize): the hyper-parameter keys and
// the tokenizer as tokenizer.ggml.*, from whatever the model was loaded from, plus the checks
// that what strata reads back from the written file is what it read from the source.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "formats/gguf_writer.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace strata {

using ExportLog = std::function<void(const std::string&)>;

// GGUF input: every key is copied except general.file_type, general.quantization_version and
// general.alignment (the writer's business). Hugging Face input: general.architecture,
// general.name and the <arch>.* keys from the loaded spec (so they mean exactly what strata
// understood from config.json), and the tokenizer converted by export_hf_tokenizer. Throws when
// the spec has something GGUF metadata cannot say (a non-default activation, say).
void export_metadata(const Model& m, GgufWriter& w, const ExportLog& log);

// A Hugging Face tokenizer (tokenizer.json, or vocab.json + merges.txt) as tokenizer.ggml.*:
// byte-level BPE -> model "gpt2" (tokens, merges, token types, pre-tokenizer name); SentencePiece-
// style BPE -> model "llama" (tokens, scores, token types). SentencePiece scores are rebuilt
// from the merge ranks (the token a merge of rank r produces first scores -r), which makes the
// score-driven merge order the same as the rank-driven one. The table is padded with unused
// "[PAD<id>]" entries up to `n_rows` (the embedding rows), as GGUF readers expect one entry per
// row.
void export_hf_tokenizer(const std::string& dir, int64_t n_rows, GgufWriter& w,
                         const ExportLog& log);

// Fields of the two specs that differ (rope layout excluded); empty when equal.
std::vector<std::string> compare_specs(const ModelSpec& want, const ModelSpec& got);
// Encodes a set of probe texts (and the special tokens' texts) with both tokenizers; "" when
// every probe gives the same ids and decodes to the same text, else the first difference.
std::string compare_tokenizers(const Tokenizer& want, const Tokenizer& got);

}  // namespace strata
