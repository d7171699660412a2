// Fuzz inputs arrive as bytes; the readers take paths. An in-memory file (memfd) bridges them
// without touching the disk.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace strata::fuzz {

// Writes the bytes to an anonymous in-memory file and returns a path that opens it.
std::string memfile(const uint8_t* data, size_t size);

}  // namespace strata::fuzz
