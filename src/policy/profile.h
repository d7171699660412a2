// The machine's speeds, measured once and cached: what the cost model (policy/cost_model.h)
// needs to predict a run. RAM read/write bandwidth per thread count, the offload disk's
// streaming and small synchronous I/O rates, and the real CPU kernels (ops::matmul, attention)
// timed on synthetic tensors of real sizes for every weight type, for decode (1 token), batched
// decode and prefill shapes. GPU fields exist for a machine with a device; without one they are
// empty and planning for --max-vram uses a nominal device model (nominal_gpu()).
//
// The cache lives in $XDG_CACHE_HOME/strata (or ~/.cache/strata), one file per offload disk,
// and records the machine it was measured on (CPU model, cores, RAM, the offload directory's
// filesystem device). A file from another format version or another machine, or a damaged one
// (unparsable, missing fields, checksum mismatch) is reported and measured again.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace strata {

struct MachineKey {
  std::string cpu_model;
  int cores = 0;
  uint64_t ram_bytes = 0;
  std::string disk_device;  // "major:minor" of the offload directory's filesystem
  bool operator==(const MachineKey&) const = default;
  std::string describe() const;
};

// This machine, with the disk that holds `offload_dir`.
MachineKey current_machine_key(const std::string& offload_dir);

// One weight type through ops::matmul. Rates are effective weight bytes per second (decimal GB/s)
// for decode shapes and FLOP/s for prefill.
struct MatmulRate {
  DType type = DType::F16;
  double decode_gbps = 0;                  // n_tok = 1
  std::map<int64_t, double> batched_gbps;  // n_tok -> weight bytes / time (n_tok 2..64)
  int64_t prefill_tokens = 256;
  double prefill_gflops = 0;  // 2 * rows * cols * n_tok / time at prefill_tokens
  // The same on square matrices of prefill_width and of kNarrowWidth (small models' shapes run
  // at their own rate: F16 6% slower here, G4 17% faster); 0 when not measured.
  static constexpr int64_t kNarrowWidth = 768;
  int64_t prefill_width = 0;
  double narrow_prefill_gflops = 0;
  // Prefill FLOP/s for a matrix whose smaller side is `width`: interpolated in log(width)
  // between the two measurements, flat outside them.
  double prefill_gflops_at(int64_t width) const;
};

// Attention over the KV cache with one KV element type. decode: bytes of (n_head * head_dim)
// elements per cached token and K/V, per second; prefill: causal FLOPs per second.
struct AttentionRate {
  DType kv = DType::F32;
  double decode_gbps = 0;
  double prefill_gflops = 0;
};

// A synchronous O_DIRECT transfer of n bytes takes latency_s + n / (gbps * 1e9).
struct SyncIo {
  double latency_s = 0;
  double gbps = 0;
  double seconds(double bytes) const { return bytes > 0 ? latency_s + bytes / (gbps * 1e9) : 0; }
};

// A GPU's transfer and compute speeds. Measured on a machine with a device; otherwise one of the
// nominal models below.
struct GpuModel {
  std::string name;
  uint64_t vram_bytes = 0;
  double h2d_gbps = 0, d2h_gbps = 0;  // pinned host <-> device, effective
  double tflops = 0;                  // f16 matmul
  double mem_gbps = 0;                // device memory bandwidth
};

// Nominal devices for planning without one: "t4", "a100", "h100". Throws on another name.
GpuModel nominal_gpu(const std::string& name);

struct HardwareProfile {
  // 2: compute_under_io; 3: narrow prefill; 4: integer panel and strip prefill kernels (the old
  // profiles' prefill rates are 2-5x too low for them)
  static constexpr int kVersion = 4;
  MachineKey key;
  std::string offload_dir;
  bool quick = false;  // measured with small sizes (tests); rates are rough
  int threads = 0;     // thread count the CPU rates were measured with
  double measure_seconds = 0;
  std::string measured_at;                            // UTC, ISO 8601
  std::vector<double> ram_read_gbps, ram_write_gbps;  // [threads - 1]
  double disk_read_gbps = 0, disk_write_gbps = 0;     // sequential streaming, O_DIRECT
  SyncIo disk_sync_read, disk_sync_write;             // one request at a time (KV staging)
  double page_cache_write_gbps = 0,
         page_cache_read_gbps = 0;  // buffered file I/O (activation spills)
  double dispatch_s = 0;  // one thread-pool job: the fixed cost of every parallel kernel call
  // How much longer compute-bound matmuls take while the disk streams at full speed (>= 1): the
  // CPU time of completing reads and the memory traffic of the transfers are taken from the
  // cores. Measured with F16 at 64 tokens against a DirectReader stream of the offload disk.
  double compute_under_io = 1.0;
  std::vector<MatmulRate> matmul;
  std::vector<AttentionRate> attention;
  std::optional<GpuModel> gpu;  // measured device; empty without one

  const MatmulRate& matmul_rate(DType t) const;  // nearest measured type when t was not measured
  const AttentionRate& attention_rate(DType kv) const;
  double ram_read(int threads) const;  // clamps to the measured range
  double ram_write(int threads) const;
};

nlohmann::json profile_to_json(const HardwareProfile& p);  // with its checksum
// Throws strata::Error naming what is wrong: another format version, a missing or mistyped field,
// a checksum that does not match the contents.
HardwareProfile profile_from_json(const nlohmann::json& j);

struct ProfileOptions {
  std::string offload_dir;  // where disk speed is measured; default: the cache directory
  bool quick = false;       // small sizes, a few seconds (tests, first runs in CI)
  int threads = 0;          // 0: all cores
  bool progress = true;
  bool isolate = false;  // measure in a child process: this process's peak RSS stays as it is
};

// Runs every measurement (under 60 s on a desktop, a few seconds with quick).
HardwareProfile measure_profile(const ProfileOptions& o);

std::string profile_cache_dir();  // $XDG_CACHE_HOME/strata or $HOME/.cache/strata
// The cache file for the disk holding `offload_dir` in `cache_dir` (default: profile_cache_dir()).
std::string profile_cache_path(const std::string& offload_dir, const std::string& cache_dir = "");
// The directory disk speed is measured in when none is given.
std::string default_profile_dir(const std::string& offload_dir);

// Reads a cache file and checks it belongs to `key`. nullopt, with the reason in *why, when it is
// missing, damaged, of another version or of another machine.
std::optional<HardwareProfile> read_cached_profile(const std::string& path, const MachineKey& key,
                                                   std::string* why);
void write_cached_profile(const std::string& path, const HardwareProfile& p);

using ProfileMeasurer = std::function<HardwareProfile(const ProfileOptions&)>;
struct ProfileResult {
  HardwareProfile profile;
  std::string path;
  bool from_cache = false;
  std::string rebuilt_because;  // why the cache was not used (empty when it was, or forced)
};

// The cached profile when usable; otherwise measures (with `measure`, default measure_profile),
// reports why on stderr and caches the result. `force` always measures.
ProfileResult load_or_measure_profile(const ProfileOptions& o, bool force = false,
                                      const ProfileMeasurer& measure = nullptr,
                                      const std::string& cache_dir = "");

}  // namespace strata
