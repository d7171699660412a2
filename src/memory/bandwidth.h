// Measured machine speeds for the offloading policy: how fast weights can be streamed from RAM
// (the roofline denominator for memory-bound decoding) and from disk. All rates are decimal
// GB/s (1e9 bytes per second).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace strata {

class ThreadPool;

// Reads a `bytes` buffer end to end with n_threads threads of the pool (0: all of them), each
// summing its own slice with wide vector loads; returns the median rate of `reps` passes (after
// one untimed warm-up pass).
double measure_memory_read_bandwidth(ThreadPool& pool, size_t bytes = size_t(1) << 30, int reps = 5,
                                     int n_threads = 0);

// Sequential O_DIRECT write of a temporary file in `dir` (64 MiB blocks, fsync included), which
// is deleted afterwards.
double measure_disk_write_bandwidth(const std::string& dir, uint64_t bytes = uint64_t(1) << 30);

// Sequential O_DIRECT read speed through DirectReader in 64 MiB requests, two in flight. Given a
// directory, a temporary file of `bytes` is written there (O_DIRECT, so it is not in the page
// cache), read back and deleted. Given a file, its first `bytes` (0: all) are read.
double measure_disk_read_bandwidth(const std::string& dir_or_file, uint64_t bytes = uint64_t(1)
                                                                                    << 30);

// Both, from one temporary file in `dir`.
struct DiskBandwidth {
  double read_gbps = 0, write_gbps = 0;
};
DiskBandwidth measure_disk_bandwidth(const std::string& dir, uint64_t bytes = uint64_t(1) << 30);

// Runs `work` on the calling thread while a temporary file of `bytes` in `dir` streams through
// DirectReader on another thread, pass after pass, as weights stream during an overlapped step;
// returns what `work` returns.
double run_during_disk_reads(const std::string& dir, uint64_t bytes,
                             const std::function<double()>& work);

}  // namespace strata
