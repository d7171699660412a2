#include "ops/cuda/device.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <utility>

#include "core/error.h"

namespace strata::cuda {
namespace {

std::atomic<uint64_t> g_budget{kNoVramBudget};
std::atomic<uint64_t> g_allocated{0};
std::atomic<uint64_t> g_pinned{0};

std::string gib(uint64_t b) {
  return fmt::format("{:.2f} GiB ({} bytes)", double(b) / double(1ull << 30), b);
}

// Result of the first cudaGetDeviceCount, kept: the answer does not change within a process.
struct Discovery {
  int count = 0;
  std::string reason;
};

const Discovery& discovery() {
  static const Discovery d = [] {
    Discovery r;
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
      cudaGetLastError();  // clear the (non-sticky) error so later calls start clean
      r.reason = fmt::format("cudaGetDeviceCount failed: {} ({})", cudaGetErrorString(e),
                             cudaGetErrorName(e));
      if (e == cudaErrorInsufficientDriver)
        r.reason += "; no NVIDIA driver is loaded, or it is older than this CUDA runtime";
      return r;
    }
    if (n == 0) r.reason = "the CUDA runtime found no device";
    r.count = n;
    return r;
  }();
  return d;
}

}  // namespace

void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  cudaGetLastError();  // clear non-sticky errors so the next call does not report this one
  fail("{}: CUDA error {}: {}", what, cudaGetErrorName(e), cudaGetErrorString(e));
}

void check_blas(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  fail("{}: cuBLAS error {}", what, cublasGetStatusString(s));
}

int device_count() {
  return discovery().count;
}
std::string unavailable_reason() {
  return discovery().reason;
}

DeviceInfo device_info(int device) {
  if (device < 0 || device >= device_count())
    fail("CUDA device {} does not exist ({} found{}{})", device, device_count(),
         device_count() ? "" : ": ", unavailable_reason());
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
  DeviceInfo d;
  d.index = device;
  d.name = p.name;
  d.cc_major = p.major;
  d.cc_minor = p.minor;
  d.sm_count = p.multiProcessorCount;
  DeviceGuard g(device);
  size_t free_b = 0, total_b = 0;
  check(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
  d.free_bytes = free_b;
  d.total_bytes = total_b;
  return d;
}

DeviceGuard::DeviceGuard(int device) {
  check(cudaGetDevice(&prev_), "cudaGetDevice");
  if (prev_ != device)
    check(cudaSetDevice(device), fmt::format("cudaSetDevice({})", device).c_str());
}

DeviceGuard::~DeviceGuard() {
  int cur = -1;
  if (cudaGetDevice(&cur) == cudaSuccess && cur != prev_ && prev_ >= 0) cudaSetDevice(prev_);
}

// ---- memory ----------------------------------------------------------------------------------

void set_vram_budget(uint64_t bytes) {
  g_budget.store(bytes);
}
uint64_t vram_budget() {
  return g_budget.load();
}
uint64_t vram_allocated() {
  return g_allocated.load();
}
uint64_t pinned_allocated() {
  return g_pinned.load();
}

DeviceBuffer::DeviceBuffer(uint64_t bytes, int device, const char* what) : device_(device) {
  if (bytes == 0) return;
  // Reserve the bytes in the counter first: the refusal must come before the driver is asked.
  uint64_t cur = g_allocated.load();
  for (;;) {
    const uint64_t budget = g_budget.load();
    if (bytes > budget || cur > budget - bytes)
      fail(
          "GPU memory budget exceeded: allocating {} for {} on device {} would bring strata's GPU "
          "memory to {}, "
          "over the budget of {} ({} already held)",
          gib(bytes), what, device, gib(cur + bytes), gib(budget), gib(cur));
    if (g_allocated.compare_exchange_weak(cur, cur + bytes)) break;
  }
  try {
    DeviceGuard g(device);
    const cudaError_t e = cudaMalloc(&ptr_, bytes);
    if (e != cudaSuccess) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      fail(
          "cudaMalloc of {} for {} on device {} failed: {} ({} of {} free on the device, {} held "
          "by strata)",
          gib(bytes), what, device, cudaGetErrorString(e), gib(free_b), gib(total_b), gib(cur));
    }
  } catch (...) {
    g_allocated.fetch_sub(bytes);
    ptr_ = nullptr;
    throw;
  }
  bytes_ = bytes;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
    device_ = o.device_;
  }
  return *this;
}

void DeviceBuffer::reset() {
  if (!ptr_) return;
  // cudaFree needs the owning device current; failures (e.g. at process exit, after the runtime
  // was torn down) cannot be acted on, so they are dropped.
  int cur = -1;
  const bool got = cudaGetDevice(&cur) == cudaSuccess;
  if (got && cur != device_) cudaSetDevice(device_);
  cudaFree(ptr_);
  if (got && cur != device_) cudaSetDevice(cur);
  cudaGetLastError();
  g_allocated.fetch_sub(bytes_);
  ptr_ = nullptr;
  bytes_ = 0;
}

PinnedBuffer::PinnedBuffer(uint64_t bytes, const char* what) {
  if (bytes == 0) return;
  const cudaError_t e = cudaHostAlloc(&ptr_, bytes, cudaHostAllocPortable);
  if (e != cudaSuccess) {
    cudaGetLastError();
    ptr_ = nullptr;
    fail("cudaHostAlloc of {} for {} failed: {} ({})", gib(bytes), what, cudaGetErrorString(e),
         cudaGetErrorName(e));
  }
  bytes_ = bytes;
  g_pinned.fetch_add(bytes);
}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

void PinnedBuffer::reset() {
  if (!ptr_) return;
  cudaFreeHost(ptr_);
  cudaGetLastError();
  g_pinned.fetch_sub(bytes_);
  ptr_ = nullptr;
  bytes_ = 0;
}

// ---- streams and events ----------------------------------------------------------------------

Stream::Stream(int device) {
  DeviceGuard g(device);
  check(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
}

Stream& Stream::operator=(Stream&& o) noexcept {
  if (this != &o) {
    reset();
    s_ = std::exchange(o.s_, nullptr);
  }
  return *this;
}

void Stream::synchronize() const {
  check(cudaStreamSynchronize(s_), "cudaStreamSynchronize");
}

void Stream::reset() {
  if (!s_) return;
  cudaStreamDestroy(s_);
  cudaGetLastError();
  s_ = nullptr;
}

Event::Event(int device) {
  DeviceGuard g(device);
  check(cudaEventCreateWithFlags(&e_, cudaEventDisableTiming), "cudaEventCreateWithFlags");
}

Event& Event::operator=(Event&& o) noexcept {
  if (this != &o) {
    reset();
    e_ = std::exchange(o.e_, nullptr);
  }
  return *this;
}

void Event::record(cudaStream_t s) {
  check(cudaEventRecord(e_, s), "cudaEventRecord");
}
void Event::wait(cudaStream_t s) const {
  check(cudaStreamWaitEvent(s, e_, 0), "cudaStreamWaitEvent");
}
void Event::synchronize() const {
  check(cudaEventSynchronize(e_), "cudaEventSynchronize");
}

bool Event::done() const {
  const cudaError_t e = cudaEventQuery(e_);
  if (e == cudaErrorNotReady) {
    cudaGetLastError();
    return false;
  }
  check(e, "cudaEventQuery");
  return true;
}

void Event::reset() {
  if (!e_) return;
  cudaEventDestroy(e_);
  cudaGetLastError();
  e_ = nullptr;
}

// ---- copies ----------------------------------------------------------------------------------

void copy_to_device(void* dst, const void* src, uint64_t bytes, cudaStream_t s) {
  if (bytes)
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s), "copy host -> device");
}
void copy_to_host(void* dst, const void* src, uint64_t bytes, cudaStream_t s) {
  if (bytes)
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s), "copy device -> host");
}
void copy_on_device(void* dst, const void* src, uint64_t bytes, cudaStream_t s) {
  if (bytes)
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s), "copy device -> device");
}
void synchronize(cudaStream_t s) {
  check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
}

DeviceTensor to_device(const Tensor& host, int device, cudaStream_t s, const char* what) {
  if (host.tier != Tier::Host || (!host.data && host.nbytes() > 0))
    fail("to_device: {} {} is not in host memory", what, host.shape_str());
  DeviceTensor d;
  const uint64_t n = static_cast<uint64_t>(host.nbytes());
  d.buf = DeviceBuffer(n, device, what);
  DeviceGuard g(device);
  copy_to_device(d.buf.data(), host.data, n, s);
  d.t = host;
  d.t.data = d.buf.data();
  d.t.tier = Tier::Device;
  d.t.device = device;
  return d;
}

// ---- per-device context ----------------------------------------------------------------------

DeviceContext& DeviceContext::get(int device) {
  static std::mutex mu;
  // Never destroyed: contexts live until exit, and tearing down streams and cuBLAS handles from
  // static destructors races the CUDA runtime's own shutdown.
  static auto* contexts = new std::map<int, std::unique_ptr<DeviceContext>>();
  std::lock_guard<std::mutex> lock(mu);
  auto it = contexts->find(device);
  if (it != contexts->end()) return *it->second;
  if (device < 0 || device >= device_count())
    fail("CUDA device {} does not exist ({} found{}{})", device, device_count(),
         device_count() ? "" : ": ", unavailable_reason());
  auto* ctx = new DeviceContext(device);
  contexts->emplace(device, std::unique_ptr<DeviceContext>(ctx));
  return *ctx;
}

DeviceContext::DeviceContext(int device)
    : device_(device), info_(device_info(device)), compute_(device), copy_(device) {}

cublasHandle_t DeviceContext::blas() {
  std::lock_guard<std::mutex> lock(mu_);
  if (blas_) return blas_;
  DeviceGuard g(device_);
  constexpr uint64_t kWorkspace = uint64_t(32) << 20;
  workspace_ = DeviceBuffer(kWorkspace, device_, "cuBLAS workspace");
  cublasHandle_t h = nullptr;
  check_blas(cublasCreate(&h), "cublasCreate");
  const cublasStatus_t s = cublasSetWorkspace(h, workspace_.data(), workspace_.size());
  if (s != CUBLAS_STATUS_SUCCESS) {
    cublasDestroy(h);
    check_blas(s, "cublasSetWorkspace");
  }
  // f32 GEMMs stay f32: no silent TF32 (results must match the CPU to f32 tolerance).
  check_blas(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  blas_ = h;
  return blas_;
}

cublasLtHandle_t DeviceContext::blas_lt() {
  std::lock_guard<std::mutex> lock(mu_);
  if (lt_) return lt_;
  DeviceGuard g(device_);
  cublasLtHandle_t h = nullptr;
  const cublasStatus_t s = cublasLtCreate(&h);
  if (s != CUBLAS_STATUS_SUCCESS)
    fail("cublasLtCreate: cuBLASLt error {}", cublasLtGetStatusString(s));
  lt_ = h;
  return lt_;
}

void* DeviceContext::scratch(Scratch slot, uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  DeviceBuffer& b = scratch_[static_cast<int>(slot)];
  if (b.size() >= bytes) return b.data();
  // Queued kernels may still read the old buffer.
  compute_.synchronize();
  copy_.synchronize();
  // Grow by at least half again, so a slowly growing batch does not reallocate every step.
  const uint64_t want = std::max<uint64_t>(bytes, b.size() + b.size() / 2);
  b.reset();
  b = DeviceBuffer((want + 255) / 256 * 256, device_, "GPU scratch");
  return b.data();
}

void DeviceContext::synchronize() const {
  compute_.synchronize();
  copy_.synchronize();
}

}  // namespace strata::cuda
