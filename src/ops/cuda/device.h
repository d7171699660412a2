// CUDA runtime plumbing: device discovery, memory with a budget, pinned staging buffers, streams,
// events, copies and the per-device context (compute stream, copy stream, cuBLAS handles, scratch).
//
// Every CUDA call is checked; a failure becomes a strata::Error naming the call and the runtime's
// error string. Without a driver or a GPU, device_count() is 0 and unavailable_reason() says why;
// nothing throws until something actually needs a device.
//
// GPU memory is a promise: strata keeps one process-wide count of the bytes its DeviceBuffers
// hold, and an allocation that would take the count past set_vram_budget() is refused with a
// strata::Error before cudaMalloc is ever called, so a plan that was sized for N bytes can never
// quietly use more.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <mutex>
#include <string>

#include "core/tensor.h"

namespace strata::cuda {

// Throws strata::Error "<what>: CUDA error <name>: <description>" unless e is cudaSuccess.
void check(cudaError_t e, const char* what);
void check_blas(cublasStatus_t s, const char* what);

// Number of usable devices; 0 (never an exception) without a driver or a GPU.
int device_count();
// Why device_count() is 0, in words from the runtime; empty when a device exists.
std::string unavailable_reason();

struct DeviceInfo {
  int index = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;  // compute capability
  int sm_count = 0;
  uint64_t total_bytes = 0, free_bytes = 0;
};
DeviceInfo device_info(int device);

// Makes `device` current for the guard's lifetime and restores the previous one after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = -1;
};

// ---- memory ----------------------------------------------------------------------------------

constexpr uint64_t kNoVramBudget = ~uint64_t(0);
// Cap on the bytes all DeviceBuffers of the process may hold together (kNoVramBudget: none).
// Lowering it below what is already held is allowed; only new allocations are refused.
void set_vram_budget(uint64_t bytes);
uint64_t vram_budget();
uint64_t vram_allocated();    // bytes held by live DeviceBuffers, every device together
uint64_t pinned_allocated();  // bytes held by live PinnedBuffers

// Device memory (cudaMalloc / cudaFree), counted against the VRAM budget. Move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  // `what` names the buffer in error messages ("KV cache", "layer 3 weights", ...).
  DeviceBuffer(uint64_t bytes, int device, const char* what = "buffer");
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return ptr_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  uint64_t size() const { return bytes_; }
  int device() const { return device_; }
  void reset();  // frees (errors at free time are ignored: nothing can be done about them)

 private:
  void* ptr_ = nullptr;
  uint64_t bytes_ = 0;
  int device_ = 0;
};

// Page-locked host memory (cudaHostAlloc, portable to every device) for staging transfers that
// really run asynchronously. Move-only.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(uint64_t bytes, const char* what = "pinned buffer");
  ~PinnedBuffer() { reset(); }
  PinnedBuffer(PinnedBuffer&& o) noexcept { *this = std::move(o); }
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  void* data() const { return ptr_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  uint64_t size() const { return bytes_; }
  void reset();

 private:
  void* ptr_ = nullptr;
  uint64_t bytes_ = 0;
};

// ---- streams and events ----------------------------------------------------------------------

// A non-blocking stream (never synchronizes with the legacy default stream). Move-only.
class Stream {
 public:
  Stream() = default;
  explicit Stream(int device);
  ~Stream() { reset(); }
  Stream(Stream&& o) noexcept { *this = std::move(o); }
  Stream& operator=(Stream&& o) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }
  void synchronize() const;
  void reset();

 private:
  cudaStream_t s_ = nullptr;
};

// An event without timing, for ordering one stream after another (copy -> compute). Move-only.
class Event {
 public:
  Event() = default;
  explicit Event(int device);
  ~Event() { reset(); }
  Event(Event&& o) noexcept { *this = std::move(o); }
  Event& operator=(Event&& o) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return e_; }
  void record(cudaStream_t s);
  void wait(cudaStream_t s) const;  // s waits (on the device) for the last record()
  bool done() const;                // true when the recorded work has finished
  void synchronize() const;         // the host waits
  void reset();

 private:
  cudaEvent_t e_ = nullptr;
};

// ---- copies (asynchronous on `s`; host memory should be pinned for a real overlap) -----------

void copy_to_device(void* dst, const void* src, uint64_t bytes, cudaStream_t s);
void copy_to_host(void* dst, const void* src, uint64_t bytes, cudaStream_t s);
void copy_on_device(void* dst, const void* src, uint64_t bytes, cudaStream_t s);
void synchronize(cudaStream_t s);

// A tensor and the device memory it points into.
struct DeviceTensor {
  DeviceBuffer buf;
  Tensor t;  // tier Device, data = buf.data()
};
// Copies a host tensor's bytes to `device` (asynchronously on `s`: keep `host` alive and
// unchanged until `s` has passed the copy).
DeviceTensor to_device(const Tensor& host, int device, cudaStream_t s, const char* what = "tensor");

// ---- per-device context ----------------------------------------------------------------------

// Scratch slots: each is a growing device buffer reused call after call (counted in the budget).
enum class Scratch { Activations = 0, AttentionPartials = 1, kCount = 2 };

// One per device, created on first use and kept for the life of the process. Not thread-safe
// beyond creation: one thread drives a device's compute stream (the executor's), and scratch
// memory is shared by the ops queued on it.
class DeviceContext {
 public:
  static DeviceContext& get(int device);

  int device() const { return device_; }
  const DeviceInfo& info() const { return info_; }
  cudaStream_t compute() const { return compute_.get(); }  // kernels
  cudaStream_t copy() const { return copy_.get(); }        // host <-> device transfers
  // cuBLAS / cuBLASLt handles, created on first use; the cuBLAS handle uses a 32 MiB workspace
  // taken from the budget (cuBLAS would otherwise allocate behind the counter's back).
  cublasHandle_t blas();
  cublasLtHandle_t blas_lt();
  void* blas_workspace() const { return workspace_.data(); }
  uint64_t blas_workspace_bytes() const { return workspace_.size(); }
  // At least `bytes` of scratch in `slot`. Growing waits for both streams first (the old buffer
  // may still be in use by queued work); pointers from earlier calls for the slot are then stale.
  void* scratch(Scratch slot, uint64_t bytes);
  void synchronize() const;  // both streams

  DeviceContext(const DeviceContext&) = delete;
  DeviceContext& operator=(const DeviceContext&) = delete;

 private:
  explicit DeviceContext(int device);
  int device_;
  DeviceInfo info_;
  Stream compute_, copy_;
  cublasHandle_t blas_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  DeviceBuffer workspace_;
  DeviceBuffer scratch_[static_cast<int>(Scratch::kCount)];
  std::mutex mu_;
};

}  // namespace strata::cuda
