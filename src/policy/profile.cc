// HardwareProfile: JSON form, the per-machine cache, and nominal GPU models.
#include "policy/profile.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/file.h"
#include "core/progress.h"
#include "core/thread_pool.h"

namespace strata {
namespace {

std::string first_line_value(const std::string& path, const std::string& prefix) {
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(prefix, 0) == 0) {
      const size_t c = line.find(':');
      if (c == std::string::npos) continue;
      size_t b = c + 1;
      while (b < line.size() && (line[b] == ' ' || line[b] == '\t')) ++b;
      return line.substr(b);
    }
  return "";
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

std::string checksum_of(const nlohmann::json& body) {
  return fmt::format("fnv1a64:{:016x}", fnv1a(body.dump()));
}

void make_dirs(const std::string& dir) {
  for (size_t i = 1; i <= dir.size(); ++i)
    if (i == dir.size() || dir[i] == '/') {
      const std::string d = dir.substr(0, i);
      if (::mkdir(d.c_str(), 0755) != 0 && errno != EEXIST)
        fail("cannot create the cache directory '{}': {}", d, std::strerror(errno));
    }
}

nlohmann::json optional_number(double v) {
  return v > 0 ? nlohmann::json(v) : nlohmann::json(nullptr);
}

}  // namespace

std::string MachineKey::describe() const {
  return fmt::format("{}, {} cores, {} RAM, disk {}", cpu_model, cores,
                     human_bytes(double(ram_bytes)), disk_device);
}

MachineKey current_machine_key(const std::string& offload_dir) {
  MachineKey k;
  k.cpu_model = first_line_value("/proc/cpuinfo", "model name");
  if (k.cpu_model.empty()) k.cpu_model = "unknown CPU";
  k.cores = ThreadPool::default_threads();
  const std::string mem = first_line_value("/proc/meminfo", "MemTotal");
  k.ram_bytes = mem.empty() ? 0 : std::strtoull(mem.c_str(), nullptr, 10) * 1024;
  struct stat st {};
  if (!offload_dir.empty() && ::stat(offload_dir.c_str(), &st) == 0)
    k.disk_device = fmt::format("{}:{}", major(st.st_dev), minor(st.st_dev));
  else
    k.disk_device = "none";
  return k;
}

GpuModel nominal_gpu(const std::string& name) {
  // Effective rates, not datasheet peaks: PCIe copies reach ~75-80% of the link, f16 matmuls
  // ~half the tensor-core peak at FlexGen's shapes.
  GpuModel g;
  g.name = name;
  if (name == "t4") {
    g.vram_bytes = uint64_t(16) << 30, g.h2d_gbps = g.d2h_gbps = 12, g.tflops = 65.0 / 2,
    g.mem_gbps = 300;
  } else if (name == "a100") {
    g.vram_bytes = uint64_t(80) << 30, g.h2d_gbps = g.d2h_gbps = 24, g.tflops = 312.0 / 2,
    g.mem_gbps = 1800;
  } else if (name == "h100") {
    g.vram_bytes = uint64_t(80) << 30, g.h2d_gbps = g.d2h_gbps = 50, g.tflops = 756.0 / 2,
    g.mem_gbps = 2600;
  } else {
    fail("unknown GPU model '{}': use t4, a100 or h100", name);
  }
  return g;
}

double MatmulRate::prefill_gflops_at(int64_t width) const {
  if (narrow_prefill_gflops <= 0 || prefill_width <= kNarrowWidth) return prefill_gflops;
  const double lo = std::log(double(kNarrowWidth)), hi = std::log(double(prefill_width));
  const double f =
      std::clamp((std::log(double(std::max<int64_t>(width, 1))) - lo) / (hi - lo), 0.0, 1.0);
  return narrow_prefill_gflops + f * (prefill_gflops - narrow_prefill_gflops);
}

const MatmulRate& HardwareProfile::matmul_rate(DType t) const {
  if (matmul.empty()) fail("the hardware profile has no matmul rates");
  for (const auto& m : matmul)
    if (m.type == t) return m;
  // A type that was not measured behaves like the measured type closest in bytes per weight.
  auto bpw = [](DType d) {
    if (d == DType::G4) return 36.0 / 64;
    const DTypeInfo& i = dtype_info(d);
    return double(i.block_bytes) / double(i.block_elems);
  };
  const MatmulRate* best = &matmul.front();
  for (const auto& m : matmul)
    if (std::abs(bpw(m.type) - bpw(t)) < std::abs(bpw(best->type) - bpw(t))) best = &m;
  return *best;
}

const AttentionRate& HardwareProfile::attention_rate(DType kv) const {
  if (attention.empty()) fail("the hardware profile has no attention rates");
  for (const auto& a : attention)
    if (a.kv == kv) return a;
  return attention.front();
}

double HardwareProfile::ram_read(int t) const {
  if (ram_read_gbps.empty()) return 10;
  return ram_read_gbps[size_t(std::clamp<int>(t, 1, int(ram_read_gbps.size())) - 1)];
}

double HardwareProfile::ram_write(int t) const {
  if (ram_write_gbps.empty()) return 10;
  return ram_write_gbps[size_t(std::clamp<int>(t, 1, int(ram_write_gbps.size())) - 1)];
}

nlohmann::json profile_to_json(const HardwareProfile& p) {
  using nlohmann::json;
  json b;
  b["format"] = "strata-hardware-profile";
  b["version"] = HardwareProfile::kVersion;
  b["machine"] = {{"cpu_model", p.key.cpu_model},
                  {"cores", p.key.cores},
                  {"ram_bytes", p.key.ram_bytes},
                  {"disk_device", p.key.disk_device}};
  b["offload_dir"] = p.offload_dir;
  b["quick"] = p.quick;
  b["threads"] = p.threads;
  b["measure_seconds"] = p.measure_seconds;
  b["measured_at"] = p.measured_at;
  b["ram"] = {{"read_gbps_by_threads", p.ram_read_gbps},
              {"write_gbps_by_threads", p.ram_write_gbps}};
  b["disk"] = {
      {"read_gbps", p.disk_read_gbps},
      {"write_gbps", p.disk_write_gbps},
      {"sync_read", {{"latency_s", p.disk_sync_read.latency_s}, {"gbps", p.disk_sync_read.gbps}}},
      {"sync_write",
       {{"latency_s", p.disk_sync_write.latency_s}, {"gbps", p.disk_sync_write.gbps}}},
      {"page_cache_write_gbps", p.page_cache_write_gbps},
      {"page_cache_read_gbps", p.page_cache_read_gbps}};
  json mm = json::object();
  for (const auto& m : p.matmul) {
    json batched = json::object();
    for (const auto& [n, r] : m.batched_gbps) batched[std::to_string(n)] = r;
    mm[dtype_name(m.type)] = {
        {"decode_gbps", m.decode_gbps},       {"batched_gbps", batched},
        {"prefill_tokens", m.prefill_tokens}, {"prefill_gflops", m.prefill_gflops},
        {"prefill_width", m.prefill_width},   {"narrow_prefill_gflops", m.narrow_prefill_gflops}};
  }
  json at = json::object();
  for (const auto& a : p.attention)
    at[dtype_name(a.kv)] = {{"decode_gbps", a.decode_gbps}, {"prefill_gflops", a.prefill_gflops}};
  b["cpu"] = {{"dispatch_seconds", p.dispatch_s},
              {"compute_under_io", p.compute_under_io},
              {"matmul", mm},
              {"attention", at}};
  // Measured on a machine with a device; the fields exist either way.
  const GpuModel g = p.gpu.value_or(GpuModel{});
  b["gpu"] = {{"present", p.gpu.has_value()},
              {"name", g.name},
              {"vram_bytes", g.vram_bytes > 0 ? json(g.vram_bytes) : json(nullptr)},
              {"h2d_pinned_gbps", optional_number(g.h2d_gbps)},
              {"d2h_pinned_gbps", optional_number(g.d2h_gbps)},
              {"tflops", optional_number(g.tflops)},
              {"mem_gbps", optional_number(g.mem_gbps)}};
  json out = b;
  out["checksum"] = checksum_of(b);
  return out;
}

HardwareProfile profile_from_json(const nlohmann::json& j) {
  if (!j.is_object()) fail("not a JSON object");
  if (!j.contains("format") || j["format"] != "strata-hardware-profile")
    fail("not a strata hardware profile");
  if (!j.contains("version") || !j["version"].is_number_integer()) fail("no format version");
  const int v = j["version"].get<int>();
  if (v != HardwareProfile::kVersion)
    fail("format version {} (this strata uses {})", v, HardwareProfile::kVersion);
  if (!j.contains("checksum") || !j["checksum"].is_string()) fail("no checksum");
  nlohmann::json body = j;
  body.erase("checksum");
  if (j["checksum"].get<std::string>() != checksum_of(body))
    fail("checksum mismatch (the file was modified or damaged)");
  HardwareProfile p;
  try {
    const auto& m = j.at("machine");
    p.key.cpu_model = m.at("cpu_model").get<std::string>();
    p.key.cores = m.at("cores").get<int>();
    p.key.ram_bytes = m.at("ram_bytes").get<uint64_t>();
    p.key.disk_device = m.at("disk_device").get<std::string>();
    p.offload_dir = j.at("offload_dir").get<std::string>();
    p.quick = j.at("quick").get<bool>();
    p.threads = j.at("threads").get<int>();
    p.measure_seconds = j.at("measure_seconds").get<double>();
    p.measured_at = j.at("measured_at").get<std::string>();
    p.ram_read_gbps = j.at("ram").at("read_gbps_by_threads").get<std::vector<double>>();
    p.ram_write_gbps = j.at("ram").at("write_gbps_by_threads").get<std::vector<double>>();
    const auto& d = j.at("disk");
    p.disk_read_gbps = d.at("read_gbps").get<double>();
    p.disk_write_gbps = d.at("write_gbps").get<double>();
    p.disk_sync_read = {d.at("sync_read").at("latency_s").get<double>(),
                        d.at("sync_read").at("gbps").get<double>()};
    p.disk_sync_write = {d.at("sync_write").at("latency_s").get<double>(),
                         d.at("sync_write").at("gbps").get<double>()};
    p.page_cache_write_gbps = d.at("page_cache_write_gbps").get<double>();
    p.page_cache_read_gbps = d.at("page_cache_read_gbps").get<double>();
    const auto& c = j.at("cpu");
    p.dispatch_s = c.at("dispatch_seconds").get<double>();
    p.compute_under_io = c.at("compute_under_io").get<double>();
    if (!(p.compute_under_io >= 1.0 && p.compute_under_io < 10.0))
      fail("compute_under_io {} is out of range", p.compute_under_io);
    for (const auto& [name, e] : c.at("matmul").items()) {
      MatmulRate r;
      const auto t = dtype_from_name(name);
      if (!t) fail("unknown weight type '{}'", name);
      r.type = *t;
      r.decode_gbps = e.at("decode_gbps").get<double>();
      for (const auto& [n, g] : e.at("batched_gbps").items())
        r.batched_gbps[std::stoll(n)] = g.get<double>();
      r.prefill_tokens = e.at("prefill_tokens").get<int64_t>();
      r.prefill_gflops = e.at("prefill_gflops").get<double>();
      r.prefill_width = e.at("prefill_width").get<int64_t>();
      r.narrow_prefill_gflops = e.at("narrow_prefill_gflops").get<double>();
      p.matmul.push_back(r);
    }
    for (const auto& [name, e] : c.at("attention").items()) {
      AttentionRate a;
      const auto t = dtype_from_name(name);
      if (!t) fail("unknown KV type '{}'", name);
      a.kv = *t;
      a.decode_gbps = e.at("decode_gbps").get<double>();
      a.prefill_gflops = e.at("prefill_gflops").get<double>();
      p.attention.push_back(a);
    }
    const auto& g = j.at("gpu");
    if (g.at("present").get<bool>()) {
      GpuModel m;
      m.name = g.at("name").get<std::string>();
      m.vram_bytes = g.at("vram_bytes").get<uint64_t>();
      m.h2d_gbps = g.at("h2d_pinned_gbps").get<double>();
      m.d2h_gbps = g.at("d2h_pinned_gbps").get<double>();
      m.tflops = g.at("tflops").get<double>();
      m.mem_gbps = g.at("mem_gbps").get<double>();
      p.gpu = m;
    }
  } catch (const nlohmann::json::exception& e) {
    fail("a field is missing or has the wrong type ({})", e.what());
  }
  if (p.ram_read_gbps.empty() || p.matmul.empty() || p.attention.empty() || !(p.disk_read_gbps > 0))
    fail("measurements are missing");
  return p;
}

std::string profile_cache_dir() {
  const char* x = std::getenv("XDG_CACHE_HOME");
  if (x && *x) return std::string(x) + "/strata";
  const char* h = std::getenv("HOME");
  if (h && *h) return std::string(h) + "/.cache/strata";
  return "/tmp/strata-cache";
}

std::string profile_cache_path(const std::string& offload_dir, const std::string& cache_dir) {
  const std::string dir = cache_dir.empty() ? profile_cache_dir() : cache_dir;
  std::string dev = current_machine_key(default_profile_dir(offload_dir)).disk_device;
  for (auto& c : dev)
    if (c == ':') c = '-';
  return dir + "/hw-profile-" + dev + ".json";
}

std::string default_profile_dir(const std::string& offload_dir) {
  if (!offload_dir.empty()) {
    if (!is_directory(offload_dir)) fail("--offload-dir '{}' is not a directory", offload_dir);
    return offload_dir;
  }
  const std::string d = profile_cache_dir();
  make_dirs(d);
  return d;
}

std::optional<HardwareProfile> read_cached_profile(const std::string& path, const MachineKey& key,
                                                   std::string* why) {
  if (!file_exists(path)) {
    if (why) *why = "no cached profile";
    return std::nullopt;
  }
  try {
    const std::string text = read_text_file(path);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception&) {
      fail("it is not valid JSON (truncated or damaged)");
    }
    HardwareProfile p = profile_from_json(j);
    if (!(p.key == key))
      fail("it was measured on another machine ({}; this one: {})", p.key.describe(),
           key.describe());
    return p;
  } catch (const Error& e) {
    if (why) *why = e.what();
    return std::nullopt;
  }
}

void write_cached_profile(const std::string& path, const HardwareProfile& p) {
  const size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) make_dirs(path.substr(0, slash));
  AtomicFile f(path);
  f.write(profile_to_json(p).dump(2) + "\n");
  f.commit();
}

namespace {

// Measures in a child process and caches the result there, so the caller's peak RSS (which a
// memory budget is checked against) never sees the probes' buffers.
void measure_in_child(const ProfileOptions& o, const std::string& path) {
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) fail("cannot start the hardware measurement: {}", std::strerror(errno));
  if (pid == 0) {
    int rc = 0;
    try {
      write_cached_profile(path, measure_profile(o));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: measuring this machine failed: %s\n", e.what());
      rc = 1;
    }
    std::fflush(stderr);
    ::_exit(rc);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail("measuring this machine failed (see above)");
}

}  // namespace

ProfileResult load_or_measure_profile(const ProfileOptions& o, bool force,
                                      const ProfileMeasurer& measure,
                                      const std::string& cache_dir) {
  ProfileResult r;
  const std::string dir = default_profile_dir(o.offload_dir);
  r.path = profile_cache_path(dir, cache_dir);
  const MachineKey key = current_machine_key(dir);
  if (!force) {
    std::string why;
    if (auto p = read_cached_profile(r.path, key, &why)) {
      if (!(p->quick && !o.quick)) {
        r.profile = *p;
        r.from_cache = true;
        return r;
      }
      why = "it is a quick profile and a full one was asked for";
    }
    r.rebuilt_because = why;
    if (why != "no cached profile")
      std::fprintf(stderr, "strata: the hardware profile %s is not usable: %s; measuring again\n",
                   r.path.c_str(), why.c_str());
    else if (o.progress)
      std::fprintf(stderr,
                   "strata: no hardware profile for this machine yet: measuring it once (%s)\n",
                   o.quick ? "quick" : "under a minute");
  }
  ProfileOptions mo = o;
  mo.offload_dir = dir;
  if (measure) {
    HardwareProfile m = measure(mo);
    m.key = key;  // the cache belongs to this machine and disk whatever the measurer filled in
    m.offload_dir = dir;
    write_cached_profile(r.path, m);
  } else if (o.isolate) {
    measure_in_child(mo, r.path);
  } else {
    write_cached_profile(r.path, measure_profile(mo));
  }
  std::string why;
  auto p = read_cached_profile(r.path, key, &why);
  if (!p) fail("the hardware profile just written to {} cannot be read back: {}", r.path, why);
  r.profile = *p;
  return r;
}

}  // namespace strata
