// A strict GGUF validator: unlike GgufFile, which stops at the first thing it cannot load, this
// walks the whole file and lists every problem it finds, so a writer (strata quantize, a
// converter) can be checked against what ggml's own reader demands:
//   - magic, version (2 or 3, little-endian), counts that fit the file;
//   - every metadata value well-formed (known types, bools 0/1, arrays that fit), no duplicate
//     keys, general.architecture a string, general.alignment a u32 power of two, the
//     tokenizer.ggml.* arrays of the right element types and lengths;
//   - tensor names unique, non-empty and shorter than ggml's 64-byte name buffer (GGML_MAX_NAME
//     counts the terminating NUL, so 63 bytes at most), 1..4 dimensions, known types, rows a
//     whole number of blocks;
//   - the data section at the aligned end of the header; tensors packed in index order the way
//     ggml's reader checks it (each offset = previous offset + previous size rounded up to the
//     alignment), so no overlap, no gap beyond alignment padding, no unaligned offset;
//   - every tensor inside the file and nothing after the aligned end of the last one.
// Problems make a file invalid; warnings (non-zero padding, keys that are not lower_snake_case,
// strings that are not UTF-8) are reported but do not.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace strata {

struct GgufValidation {
  std::string path;
  uint32_t version = 0;
  uint64_t n_tensors = 0, n_kv = 0;
  uint64_t alignment = 32;
  uint64_t data_offset = 0;  // where the data section starts (0 if the header is broken)
  uint64_t data_end = 0;     // end of the last tensor's bytes (absolute)
  std::vector<std::string> problems;
  std::vector<std::string> warnings;
  bool ok() const { return problems.empty(); }
};

// Never throws for anything in the file (an unreadable path is a problem, too).
GgufValidation validate_gguf(const std::string& path);
GgufValidation validate_gguf_bytes(const uint8_t* data, uint64_t size, const std::string& name);

// Block geometry of every GGML type id ggml defines, including the ones strata cannot compute
// with (IQ*, TQ*, MXFP4), so sizes can be checked for any file. False for unknown/removed ids.
bool ggml_block_geometry(uint32_t type, int64_t* block_elems, int64_t* block_bytes);

}  // namespace strata
