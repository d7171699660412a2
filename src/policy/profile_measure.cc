// The measurements behind HardwareProfile: memory and disk probes, and the real CPU kernels on
// synthetic tensors. Every kernel timing rotates over copies of the weights that together exceed
// the caches, so decode rates are what a step streaming the model from RAM sees.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>

#include "core/error.h"
#include "core/half.h"
#include "core/progress.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "memory/aligned_buffer.h"
#include "memory/bandwidth.h"
#include "ops/attention.h"
#include "ops/matmul.h"
#include "policy/profile.h"
#include "quant/g4.h"
#include "quant/quant.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::vector<float> random_floats(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// Streaming writes per thread count: every thread memsets its own slice.
double measure_ram_write(ThreadPool& pool, size_t bytes, int reps, int threads) {
  const size_t slice = std::max<size_t>(bytes / size_t(threads) / 4096 * 4096, 4096);
  AlignedBuffer buf(slice * size_t(threads));
  std::vector<double> rates;
  for (int r = 0; r <= reps; ++r) {
    const auto t0 = Clock::now();
    pool.run_on_all([&](int t, int) {
      if (t < threads) std::memset(buf.data() + size_t(t) * slice, r + 1, slice);
    });
    if (r > 0) rates.push_back(double(buf.size()) / since(t0) / 1e9);  // r == 0 faults the pages in
  }
  return median(rates);
}

int open_tmp(const std::string& dir, bool direct) {
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC | (direct ? O_DIRECT : 0), 0600);
  if (fd < 0 && direct) fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0)
    fail("cannot create a temporary file in '{}' for the disk test: {}", dir, std::strerror(errno));
  return fd;
}

void full_io(bool write, int fd, uint8_t* p, size_t n, uint64_t off, const std::string& dir) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = write ? ::pwrite(fd, p + done, n - done, off_t(off + done))
                            : ::pread(fd, p + done, n - done, off_t(off + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0)
      fail("disk test in '{}' failed: {}", dir, r < 0 ? std::strerror(errno) : "short transfer");
    done += size_t(r);
  }
}

// One request at a time with O_DIRECT, as the KV cache stages its blocks: the per-request time at
// two sizes gives a latency and a bandwidth.
void measure_sync_io(const std::string& dir, uint64_t total, SyncIo& rd, SyncIo& wr) {
  const int fd = open_tmp(dir, true);
  const size_t sizes[2] = {size_t(64) << 10, size_t(1) << 20};
  double tw[2], tr[2];
  AlignedBuffer buf(sizes[1]);
  std::memset(buf.data(), 0x5a, buf.size());
  try {
    for (int s = 0; s < 2; ++s) {
      const uint64_t n = std::max<uint64_t>(total / sizes[s], 8);
      auto t0 = Clock::now();
      for (uint64_t i = 0; i < n; ++i) full_io(true, fd, buf.data(), sizes[s], i * sizes[s], dir);
      tw[s] = since(t0) / double(n);
      t0 = Clock::now();
      for (uint64_t i = 0; i < n; ++i) full_io(false, fd, buf.data(), sizes[s], i * sizes[s], dir);
      tr[s] = since(t0) / double(n);
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  auto fit = [&](const double* t) {
    SyncIo io;
    const double dt = t[1] - t[0], dn = double(sizes[1] - sizes[0]);
    if (dt > 0) {
      io.gbps = dn / dt / 1e9;
      io.latency_s = std::max(0.0, t[0] - double(sizes[0]) / (io.gbps * 1e9));
    } else {
      io.gbps = double(sizes[1]) / t[1] / 1e9;
    }
    return io;
  };
  rd = fit(tr);
  wr = fit(tw);
}

// Buffered writes and reads of a temporary file: where activations spilled to disk go first.
void measure_page_cache(const std::string& dir, size_t total, double& write_gbps,
                        double& read_gbps) {
  const int fd = open_tmp(dir, false);
  const size_t chunk = size_t(4) << 20;
  AlignedBuffer buf(chunk);
  std::memset(buf.data(), 0x33, chunk);
  std::vector<double> w, r;
  try {
    for (int rep = 0; rep < 3; ++rep) {
      auto t0 = Clock::now();
      for (size_t off = 0; off < total; off += chunk)
        full_io(true, fd, buf.data(), chunk, off, dir);
      w.push_back(double(total) / since(t0) / 1e9);
      t0 = Clock::now();
      for (size_t off = 0; off < total; off += chunk)
        full_io(false, fd, buf.data(), chunk, off, dir);
      r.push_back(double(total) / since(t0) / 1e9);
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  write_gbps = median(w);
  read_gbps = median(r);
}

double measure_dispatch(ThreadPool& pool, int reps) {
  std::atomic<int64_t> sink{0};
  std::vector<double> t;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = Clock::now();
    for (int i = 0; i < reps; ++i)
      pool.parallel_for(pool.size(), 1, [&](int64_t b, int64_t e) {
        sink.fetch_add(e - b, std::memory_order_relaxed);
      });
    t.push_back(since(t0) / reps);
  }
  return median(t);
}

// `copies` matrices of one type back to back, each rows x cols, with realistic contents (one
// quantized random row or group replicated: the kernels' speed does not depend on the values).
struct SynthMatrices {
  AlignedBuffer buf;
  uint64_t bytes = 0;  // one matrix
  int copies = 0;
  Tensor view(int i) const {
    Tensor t;
    t.dtype = type;
    t.shape = {rows, cols};
    t.data = const_cast<uint8_t*>(buf.data()) + uint64_t(i) * stride;
    return t;
  }
  DType type = DType::F32;
  int64_t rows = 0, cols = 0;
  uint64_t stride = 0;
};

SynthMatrices make_matrices(DType t, int64_t rows, int64_t cols, uint64_t working_set) {
  SynthMatrices m;
  m.type = t, m.rows = rows, m.cols = cols;
  std::vector<uint8_t> unit;  // bytes replicated over the matrix
  const std::vector<float> src = random_floats(size_t(cols) * (t == DType::G4 ? kG4Group : 1), 7);
  if (t == DType::G4) {
    m.bytes = g4_weight_bytes(rows, cols);
    std::vector<uint8_t> whole(size_t(g4_weight_bytes(kG4Group, cols)));
    g4_quantize_weight_groups(src.data(), kG4Group, cols, 0, 1, whole.data());
    unit = std::move(whole);
  } else {
    const int64_t rb = row_bytes(t, cols);
    m.bytes = uint64_t(rb * rows);
    unit.resize(size_t(rb));
    if (t == DType::F32) {
      std::memcpy(unit.data(), src.data(), size_t(rb));
    } else if (t == DType::F16 || t == DType::BF16) {
      auto* h = reinterpret_cast<uint16_t*>(unit.data());
      for (int64_t i = 0; i < cols; ++i)
        h[i] = t == DType::F16 ? f32_to_fp16(src[size_t(i)]) : f32_to_bf16(src[size_t(i)]);
    } else {
      const QuantKernels* q = quant_kernels(t);
      if (!q) fail("profile: no kernels for {}", dtype_name(t));
      q->quantize_row(src.data(), unit.data(), cols);
    }
  }
  m.stride = (m.bytes + 4095) / 4096 * 4096;
  m.copies = int(std::clamp<uint64_t>((working_set + m.bytes - 1) / m.bytes, 1, 64));
  m.buf.resize(size_t(m.stride * uint64_t(m.copies)));
  for (int c = 0; c < m.copies; ++c) {
    uint8_t* p = m.buf.data() + uint64_t(c) * m.stride;
    for (uint64_t off = 0; off < m.bytes; off += unit.size())
      std::memcpy(p + off, unit.data(), size_t(std::min<uint64_t>(unit.size(), m.bytes - off)));
  }
  return m;
}

// Median seconds of one matmul with n_tok tokens, rotating over the copies.
double time_matmul(ThreadPool& pool, const SynthMatrices& m, int64_t n_tok, int calls,
                   const std::vector<float>& x, std::vector<float>& y) {
  matmul(pool, m.view(0), x.data(), n_tok, y.data());  // warm-up: thread-local buffers, code
  std::vector<double> t;
  for (int i = 0; i < calls; ++i) {
    const Tensor w = m.view((i + 1) % m.copies);
    const auto t0 = Clock::now();
    matmul(pool, w, x.data(), n_tok, y.data());
    t.push_back(since(t0));
  }
  return median(t);
}

MatmulRate measure_matmul(ThreadPool& pool, DType type, int64_t n, uint64_t working_set,
                          bool quick) {
  SynthMatrices m = make_matrices(type, n, n, working_set);
  MatmulRate r;
  r.type = type;
  r.prefill_tokens = quick ? 64 : 256;
  const std::vector<float> x = random_floats(size_t(n * r.prefill_tokens), 11);
  std::vector<float> y(size_t(n * r.prefill_tokens));
  // Decode: enough calls to cross the whole working set at least once.
  r.decode_gbps = double(m.bytes) / time_matmul(pool, m, 1, std::max(m.copies, 8), x, y) / 1e9;
  for (int64_t t : {2, 4, 8, 16, 32, 64}) {
    if (t >= r.prefill_tokens) break;
    // Medians of at least 5 calls: on a shared machine single calls vary by 10-20%.
    const int calls = t <= 8 ? std::clamp(m.copies, 5, 8) : 5;
    r.batched_gbps[t] = double(m.bytes) / time_matmul(pool, m, t, calls, x, y) / 1e9;
  }
  const double s = time_matmul(pool, m, r.prefill_tokens, quick ? 1 : 5, x, y);
  r.prefill_gflops = 2.0 * double(n) * double(n) * double(r.prefill_tokens) / s / 1e9;
  r.prefill_width = n;
  if (n > MatmulRate::kNarrowWidth) {
    const int64_t nn = MatmulRate::kNarrowWidth;
    SynthMatrices small = make_matrices(type, nn, nn, working_set / 8);
    const double sn = time_matmul(pool, small, r.prefill_tokens, quick ? 3 : 9, x, y);
    r.narrow_prefill_gflops = 2.0 * double(nn) * double(nn) * double(r.prefill_tokens) / sn / 1e9;
  }
  return r;
}

AttentionRate measure_attention(ThreadPool& pool, DType kv, int64_t n_head, int64_t ctx,
                                int64_t n_prefill) {
  const int64_t hd = 128, row = n_head * hd, bt = 32;
  const int64_t rb = kv == DType::G4 ? g4_kv_row_bytes(row) : row * (kv == DType::F32 ? 4 : 2);
  const int64_t nblk = (std::max(ctx, n_prefill) + bt - 1) / bt;
  const int copies = 4;
  AlignedBuffer buf(size_t(copies * 2 * nblk * bt * rb));
  const std::vector<float> src = random_floats(size_t(row), 3);
  std::vector<uint8_t> r(static_cast<size_t>(rb));
  if (kv == DType::F32)
    std::memcpy(r.data(), src.data(), size_t(rb));
  else if (kv == DType::F16)
    for (int64_t i = 0; i < row; ++i)
      reinterpret_cast<uint16_t*>(r.data())[i] = f32_to_fp16(src[size_t(i)]);
  else
    g4_quantize_kv_row(src.data(), row, r.data());
  for (int64_t i = 0; i < copies * 2 * nblk * bt; ++i)
    std::memcpy(buf.data() + i * rb, r.data(), size_t(rb));
  std::vector<std::vector<const void*>> kb(copies), vb(copies);
  for (int c = 0; c < copies; ++c)
    for (int64_t b = 0; b < nblk; ++b) {
      kb[size_t(c)].push_back(buf.data() + ((c * 2) * nblk + b) * bt * rb);
      vb[size_t(c)].push_back(buf.data() + ((c * 2 + 1) * nblk + b) * bt * rb);
    }
  AttentionParams p;
  p.n_head = p.n_head_kv = n_head;
  p.head_dim = hd;
  p.scale = 0.088f;
  auto view = [&](int c) {
    KvView v;
    v.k_blocks = kb[size_t(c)].data();
    v.v_blocks = vb[size_t(c)].data();
    v.n_blocks = nblk;
    v.block_tokens = bt;
    v.dtype = kv;
    v.row_elems = row;
    v.row_bytes = rb;
    return v;
  };
  const std::vector<float> q = random_floats(size_t(row * n_prefill), 5);
  std::vector<float> out(size_t(row * n_prefill));
  AttentionRate a;
  a.kv = kv;
  std::vector<double> t;
  attention(pool, p, view(0), q.data(), 1, ctx - 1, out.data());
  for (int i = 0; i < 8; ++i) {
    const auto t0 = Clock::now();
    attention(pool, p, view((i + 1) % copies), q.data(), 1, ctx - 1, out.data());
    t.push_back(since(t0));
  }
  const double elem = double(rb) / double(row);
  a.decode_gbps = double(ctx) * double(row) * elem * 2 / median(t) / 1e9;
  t.clear();
  for (int i = 0; i < 2; ++i) {
    const auto t0 = Clock::now();
    attention(pool, p, view(i % copies), q.data(), n_prefill, 0, out.data());
    t.push_back(since(t0));
  }
  const double flops = 4.0 * double(row) * double(n_prefill) * double(n_prefill + 1) / 2;
  a.prefill_gflops = flops / median(t) / 1e9;
  return a;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char s[32];
  std::strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return s;
}

}  // namespace

HardwareProfile measure_profile(const ProfileOptions& o) {
  const auto t0 = Clock::now();
  const bool was = Progress::enabled();
  HardwareProfile p;
  p.offload_dir = default_profile_dir(o.offload_dir);
  p.key = current_machine_key(p.offload_dir);
  p.quick = o.quick;
  p.threads = o.threads > 0 ? o.threads : ThreadPool::default_threads();
  ThreadPool pool(p.threads);
  const std::vector<DType> types = {DType::F16,  DType::BF16, DType::F32,  DType::Q8_0,
                                    DType::Q4_0, DType::Q4_K, DType::Q6_K, DType::G4};
  const std::vector<DType> kv_types = {DType::F32, DType::F16, DType::G4};
  const int steps = 2 * p.threads + 5 + int(types.size()) + int(kv_types.size());
  // One line per stage; the probes' own progress lines are silenced so they do not interleave.
  const bool show = o.progress && was;
  Progress::set_enabled(false);
  int done = 0;
  auto step = [&](const std::string& what) {
    ++done;
    if (show)
      std::fprintf(stderr, "profile [%2d/%d] %5.1fs  %s\n", done, steps, since(t0), what.c_str());
  };
  try {
    const size_t ram = o.quick ? size_t(32) << 20 : size_t(512) << 20;
    for (int t = 1; t <= p.threads; ++t) {
      p.ram_read_gbps.push_back(measure_memory_read_bandwidth(pool, ram, o.quick ? 2 : 5, t));
      step(fmt::format("RAM read, {} thread(s): {:.1f} GB/s", t, p.ram_read_gbps.back()));
      p.ram_write_gbps.push_back(measure_ram_write(pool, ram, o.quick ? 2 : 4, t));
      step(fmt::format("RAM write, {} thread(s): {:.1f} GB/s", t, p.ram_write_gbps.back()));
    }
    const DiskBandwidth d =
        measure_disk_bandwidth(p.offload_dir, o.quick ? uint64_t(64) << 20 : uint64_t(1) << 30);
    p.disk_read_gbps = d.read_gbps, p.disk_write_gbps = d.write_gbps;
    step(fmt::format("disk read {:.2f} GB/s, write {:.2f} GB/s", d.read_gbps, d.write_gbps));
    measure_sync_io(p.offload_dir, o.quick ? uint64_t(8) << 20 : uint64_t(64) << 20,
                    p.disk_sync_read, p.disk_sync_write);
    step("disk, one request at a time");
    measure_page_cache(p.offload_dir, o.quick ? size_t(8) << 20 : size_t(64) << 20,
                       p.page_cache_write_gbps, p.page_cache_read_gbps);
    step("page cache");
    p.dispatch_s = measure_dispatch(pool, o.quick ? 200 : 2000);
    step("thread pool");
    const int64_t n = o.quick ? 1024 : 4096;
    const uint64_t ws = o.quick ? uint64_t(24) << 20 : uint64_t(256) << 20;
    for (DType t : types) {
      p.matmul.push_back(measure_matmul(pool, t, n, ws, o.quick));
      step(fmt::format("matmul {}: {:.1f} GB/s decode, {:.0f} GFLOP/s prefill", dtype_name(t),
                       p.matmul.back().decode_gbps, p.matmul.back().prefill_gflops));
    }
    {
      // Compute while the disk streams, against compute alone (F16, 64 tokens: a compute-bound
      // batched decode step).
      const SynthMatrices m = make_matrices(DType::F16, n, n, ws);
      const std::vector<float> x = random_floats(size_t(n * 64), 13);
      std::vector<float> y(size_t(n * 64));
      const int calls = o.quick ? 3 : 9;
      const double alone = time_matmul(pool, m, 64, calls, x, y);
      const double under =
          run_during_disk_reads(p.offload_dir, o.quick ? uint64_t(64) << 20 : uint64_t(512) << 20,
                                [&] { return time_matmul(pool, m, 64, calls, x, y); });
      p.compute_under_io = std::clamp(under / alone, 1.0, 5.0);
      step(fmt::format("compute while the disk streams: {:.2f}x the time alone",
                       p.compute_under_io));
    }
    for (DType kv : kv_types) {
      p.attention.push_back(
          measure_attention(pool, kv, o.quick ? 8 : 32, o.quick ? 256 : 1024, o.quick ? 64 : 256));
      step(fmt::format("attention, {} cache", dtype_name(kv)));
    }
  } catch (...) {
    Progress::set_enabled(was);
    throw;
  }
  Progress::set_enabled(was);
  p.measure_seconds = since(t0);
  p.measured_at = utc_now();
  if (show) std::fprintf(stderr, "profile done in %.1f s\n", p.measure_seconds);
  return p;
}

}  // namespace strata
