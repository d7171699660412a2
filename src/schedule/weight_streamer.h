// Puts the weights where the WeightPlan says and streams the disk tier. Resident tensors are read
// (or converted) once into aligned RAM. Disk tensors of a unit (a layer, or the head) are read
// with direct I/O into one of `depth` staging slots; prefetch(u+1) runs while unit u computes,
// acquire(u) waits for its reads and binds its tensors to the slot, release(u) unbinds them.
// Reads come straight from the model file when the bytes are usable as stored, otherwise from
// the per-model offload file.
#pragma once
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "memory/aligned_buffer.h"
#include "memory/direct_reader.h"
#include "model/model.h"
#include "policy/weight_plan.h"
#include "schedule/offload_file.h"

namespace strata {

struct StreamerOptions {
  std::string offload_dir;
  int depth = 2;  // staging slots (2 = double buffering)
  bool progress = true;
};

// Overlap measurement: Normal reads and computes; IoOnly reads but the executor skips compute;
// ComputeOnly never reads (slots hold zeros) so compute runs alone.
enum class StreamMode { Normal, IoOnly, ComputeOnly };

struct StreamStats {
  uint64_t bytes_read = 0;
  double io_wait_s = 0;  // time acquire() spent blocked on reads
};

class WeightStreamer {
 public:
  WeightStreamer(Model& model, WeightPlan plan, ThreadPool& pool, const StreamerOptions& opts);
  ~WeightStreamer();

  const WeightPlan& plan() const { return plan_; }
  bool streams() const { return streams_; }
  void set_mode(StreamMode m) { mode_ = m; }
  StreamMode mode() const { return mode_; }

  void prefetch(int unit);
  void acquire(int unit);
  void release(int unit);
  // Row r of a weight table as f32, for tables left on disk (embedding lookups).
  void read_row(const std::string& name, int64_t r, float* out);
  bool on_disk(const std::string& name) const;

  uint64_t resident_bytes() const { return resident_bytes_; }
  uint64_t staging_bytes() const;
  const StreamStats& stats() const { return stats_; }
  const OffloadFile* offload_file() const { return offload_ ? offload_.get() : nullptr; }

 private:
  struct Loc {
    int reader = -1;
    uint64_t offset = 0;
  };
  struct Slot {
    AlignedBuffer buf;
    int unit = -1;
    bool acquired = false;
    bool zeroed = false;
    std::vector<std::pair<int, uint64_t>> tickets;         // (reader, ticket) in flight
    std::vector<std::pair<std::string, uint64_t>> placed;  // tensor -> offset in buf
  };
  void load_resident(ThreadPool& pool);
  Slot* slot_of(int unit);
  int reader_for(const std::string& path);

  Model& model_;
  WeightPlan plan_;
  StreamerOptions opts_;
  StreamMode mode_ = StreamMode::Normal;
  bool streams_ = false;
  std::unique_ptr<OffloadFile> offload_;
  std::vector<std::unique_ptr<DirectReader>> readers_;
  std::map<std::string, int> reader_index_;
  std::map<std::string, Loc> loc_;  // disk tensors
  std::map<int, std::vector<const PlannedTensor*>> unit_disk_;
  std::vector<AlignedBuffer> resident_;
  uint64_t resident_bytes_ = 0;
  std::vector<Slot> slots_;
  StreamStats stats_;
};

}  // namespace strata
