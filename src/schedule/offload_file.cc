#include "schedule/offload_file.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <memory>
#include <vector>

#include "core/error.h"
#include "core/file.h"
#include "core/progress.h"
#include "ops/matmul.h"
#include "quant/g4.h"

namespace strata {
namespace {

constexpr uint64_t kAlign = 4096;
constexpr uint64_t kHeader = 1 << 20;  // room for the key and index
constexpr char kMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'O', 'F'};

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

std::string basename_of(const std::string& p) {
  std::string s = p;
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  const size_t i = s.find_last_of('/');
  return i == std::string::npos ? s : s.substr(i + 1);
}

}  // namespace

void produce_tensor(const Model& model, const PlannedTensor& t, uint8_t* dst) {
  const Tensor& stored = model.store().get(t.name);
  if (t.dtype == stored.dtype) {
    model.read_tensor(t.name, dst);
    return;
  }
  if (t.dtype != DType::G4) fail("cannot convert '{}' to {}", t.name, dtype_name(t.dtype));
  // Compress: read the source bytes, widen 64-row groups to f32, quantize group by group.
  std::vector<uint8_t> src(static_cast<size_t>(stored.nbytes()));
  model.read_tensor(t.name, src.data());
  Tensor view = stored;
  view.data = src.data();
  view.tier = Tier::Host;
  const int64_t out = t.shape[0], in = t.shape[1];
  std::vector<float> rows(static_cast<size_t>(kG4Group * in));
  for (int64_t g = 0; g < g4_groups(out); ++g) {
    const int64_t r0 = g * kG4Group, nr = std::min(kG4Group, out - r0);
    for (int64_t r = 0; r < nr; ++r) get_row(view, r0 + r, rows.data() + r * in);
    g4_quantize_weight_groups(rows.data(), out, in, g, g + 1, dst);
  }
}

OffloadFile prepare_offload_file(const Model& model, const WeightPlan& plan, const std::string& dir,
                                 bool progress) {
  if (dir.empty())
    fail("weights must be converted for the disk tier, but no --offload-dir was given");
  if (!is_directory(dir)) fail("--offload-dir '{}' is not a directory", dir);
  // Identity of the source and of what goes in.
  nlohmann::json key;
  const std::string& path = model.files().path;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail("cannot stat '{}'", path);
  key["model"] = path;
  key["size"] = static_cast<uint64_t>(st.st_size);
  key["mtime"] = static_cast<int64_t>(st.st_mtime);
  OffloadFile of;
  uint64_t off = kHeader, total = 0;
  for (const auto& t : plan.tensors) {
    if (t.tier != Tier::Disk || !t.converted) continue;
    key["tensors"].push_back({t.name, dtype_name(t.dtype), t.bytes});
    of.offsets[t.name] = off;
    off = (off + t.bytes + kAlign - 1) / kAlign * kAlign;
    total += t.bytes;
  }
  const std::string key_text = key.dump();
  if (key_text.size() + 64 > kHeader) fail("offload file index too large");
  of.path = fmt::format("{}/{}.{:016x}.strata-offload", dir, basename_of(path), fnv1a(key_text));

  // Reuse when complete and made for the same inputs.
  if (file_exists(of.path) && file_size(of.path) == off) {
    std::vector<char> head(kHeader);
    pread_exact(of.path, 0, kHeader, head.data(), "offload header");
    uint64_t len;
    std::memcpy(&len, head.data() + 8, 8);
    if (std::memcmp(head.data(), kMagic, 8) == 0 && len == key_text.size() &&
        std::string(head.data() + 16, len) == key_text) {
      of.reused = true;
      return of;
    }
  }
  AtomicFile f(of.path);
  std::string head(kHeader, '\0');
  std::memcpy(head.data(), kMagic, 8);
  const uint64_t len = key_text.size();
  std::memcpy(head.data() + 8, &len, 8);
  std::memcpy(head.data() + 16, key_text.data(), len);
  f.write(head);
  Progress prog("writing offload file " + of.path, static_cast<int64_t>(total), "B", progress);
  uint64_t done = 0;
  std::vector<uint8_t> buf;
  for (const auto& t : plan.tensors) {
    if (t.tier != Tier::Disk || !t.converted) continue;
    buf.assign(t.bytes, 0);
    produce_tensor(model, t, buf.data());
    f.write(buf.data(), buf.size());
    f.pad_to(kAlign);
    done += t.bytes;
    prog.update(static_cast<int64_t>(done), t.name);
  }
  f.commit();
  prog.finish();
  return of;
}

}  // namespace strata
