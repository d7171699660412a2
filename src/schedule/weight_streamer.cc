#include "schedule/weight_streamer.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/file.h"
#include "core/progress.h"
#include "ops/matmul.h"

namespace strata {

WeightStreamer::WeightStreamer(Model& model, WeightPlan plan, ThreadPool& pool,
                               const StreamerOptions& opts)
    : model_(model), plan_(std::move(plan)), opts_(opts) {
  if (opts_.depth < 2) opts_.depth = 2;
  if (plan_.needs_offload_file())
    offload_ = std::make_unique<OffloadFile>(
        prepare_offload_file(model_, plan_, opts_.offload_dir, opts_.progress));
  for (const auto& t : plan_.tensors) {
    if (t.tier != Tier::Disk) continue;
    Loc l;
    if (t.converted) {
      l.reader = reader_for(offload_->path);
      l.offset = offload_->offsets.at(t.name);
    } else {
      const TensorSource* src = model_.source(t.name);
      if (!src) fail("no source for '{}'", t.name);
      l.reader = reader_for(model_.files().files.at(static_cast<size_t>(src->info->file))->path());
      l.offset = src->info->offset;
    }
    loc_[t.name] = l;
    if (t.unit >= 0 && t.unit <= plan_.head_unit()) {
      unit_disk_[t.unit].push_back(&t);
      streams_ = true;
    }
    Tensor& st = const_cast<Tensor&>(model_.store().get(t.name));
    st.dtype = t.dtype;
    st.data = nullptr;
    st.tier = Tier::Disk;
  }
  load_resident(pool);
  if (streams_) {
    slots_.resize(static_cast<size_t>(opts_.depth));
    for (auto& s : slots_) s.buf.resize(plan_.max_unit_disk_bytes());
  }
}

WeightStreamer::~WeightStreamer() {
  // Reads still in flight target our slots: let them land before the buffers go.
  for (auto& r : readers_) {
    try {
      r->wait_all();
    } catch (...) {
    }
  }
}

int WeightStreamer::reader_for(const std::string& path) {
  auto it = reader_index_.find(path);
  if (it != reader_index_.end()) return it->second;
  readers_.push_back(std::make_unique<DirectReader>(path, 8, size_t(4) << 20));
  const int i = static_cast<int>(readers_.size()) - 1;
  reader_index_[path] = i;
  return i;
}

uint64_t WeightStreamer::staging_bytes() const {
  uint64_t n = 0;
  for (const auto& s : slots_) n += s.buf.capacity();
  return n;
}

bool WeightStreamer::on_disk(const std::string& name) const {
  return loc_.count(name) != 0;
}

void WeightStreamer::load_resident(ThreadPool& pool) {
  (void)pool;
  uint64_t total = 0;
  for (const auto& t : plan_.tensors)
    if (t.tier == Tier::Host && t.shape.size() == 2) total += t.bytes;
  Progress prog("loading weights", static_cast<int64_t>(total), "B", opts_.progress);
  uint64_t done = 0;
  for (const auto& t : plan_.tensors) {
    if (t.tier != Tier::Host || t.shape.size() != 2) continue;  // vectors were widened at load
    const TensorSource* src = model_.source(t.name);
    const bool direct = !t.converted && src;
    // Direct reads land in place when the buffer has the file offset's alignment within a page.
    const uint64_t shift = direct ? src->info->offset % 4096 : 0;
    AlignedBuffer buf(t.bytes + shift);
    buf.fault_in();
    uint8_t* data = buf.data() + shift;
    if (direct) {
      // Straight from the model file with direct I/O (no page cache, no mapped pages).
      const std::string& path =
          model_.files().files.at(static_cast<size_t>(src->info->file))->path();
      DirectReader& r = *readers_[static_cast<size_t>(reader_for(path))];
      r.wait(r.submit(src->info->offset, t.bytes, data));
    } else {
      produce_tensor(model_, t, data);
    }
    model_.store().rebind(t.name, data, Tier::Host);
    Tensor& st = const_cast<Tensor&>(model_.store().get(t.name));
    st.dtype = t.dtype;
    resident_bytes_ += buf.capacity();
    resident_.push_back(std::move(buf));
    done += t.bytes;
    prog.update(static_cast<int64_t>(done), t.name);
  }
  prog.finish();
}

WeightStreamer::Slot* WeightStreamer::slot_of(int unit) {
  for (auto& s : slots_)
    if (s.unit == unit) return &s;
  return nullptr;
}

void WeightStreamer::prefetch(int unit) {
  auto it = unit_disk_.find(unit);
  if (it == unit_disk_.end() || slot_of(unit)) return;
  // A free slot: not acquired, preferring one whose unit is furthest from use (lowest ticket age).
  Slot* free_slot = nullptr;
  for (auto& s : slots_)
    if (!s.acquired && s.tickets.empty() && (!free_slot || s.unit == -1)) free_slot = &s;
  if (!free_slot) return;
  Slot& s = *free_slot;
  s.unit = unit;
  s.placed.clear();
  uint64_t cursor = 0;
  for (const PlannedTensor* t : it->second) {
    const Loc& l = loc_.at(t->name);
    // Same offset modulo 4096 as in the file, so direct I/O lands in place.
    const uint64_t off = (cursor + 4095) / 4096 * 4096 + l.offset % 4096;
    s.placed.emplace_back(t->name, off);
    cursor = off + t->bytes;
    if (mode_ == StreamMode::ComputeOnly) continue;
    s.tickets.emplace_back(l.reader, readers_[static_cast<size_t>(l.reader)]->submit(
                                         l.offset, t->bytes, s.buf.data() + off));
    stats_.bytes_read += t->bytes;
  }
  if (mode_ == StreamMode::ComputeOnly && !s.zeroed) {
    std::memset(s.buf.data(), 0, s.buf.size());
    s.zeroed = true;
  }
}

void WeightStreamer::acquire(int unit) {
  if (unit_disk_.find(unit) == unit_disk_.end()) return;
  Slot* s = slot_of(unit);
  if (!s) {
    prefetch(unit);
    s = slot_of(unit);
    if (!s) fail("weight streamer: no free staging slot for unit {}", unit);
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& [reader, tk] : s->tickets) readers_[static_cast<size_t>(reader)]->wait(tk);
  s->tickets.clear();
  stats_.io_wait_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const auto& [name, off] : s->placed)
    model_.store().rebind(name, s->buf.data() + off, Tier::Host);
  s->acquired = true;
}

void WeightStreamer::release(int unit) {
  Slot* s = slot_of(unit);
  if (!s) return;
  for (const auto& [name, off] : s->placed) model_.store().rebind(name, nullptr, Tier::Disk);
  s->acquired = false;
}

void WeightStreamer::read_row(const std::string& name, int64_t r, float* out) {
  const Tensor& t = model_.store().get(name);
  const Loc& l = loc_.at(name);
  const int64_t in = t.cols();
  const std::string& path = readers_[static_cast<size_t>(l.reader)]->path();
  Tensor view = t;
  view.tier = Tier::Host;
  std::vector<uint8_t> bytes;
  if (t.dtype == DType::G4) {
    // The row's whole group: scales, mins and 64 rows of codes.
    const int64_t g = r / 64, gb = in * 36;
    bytes.resize(static_cast<size_t>(gb));
    pread_exact(path, l.offset + static_cast<uint64_t>(g * gb), static_cast<uint64_t>(gb),
                bytes.data(), name);
    view.shape = {std::min<int64_t>(64, t.rows() - g * 64), in};
    view.data = bytes.data();
    get_row(view, r - g * 64, out);
    return;
  }
  const int64_t rb = t.row_bytes();
  bytes.resize(static_cast<size_t>(rb));
  pread_exact(path, l.offset + static_cast<uint64_t>(r * rb), static_cast<uint64_t>(rb),
              bytes.data(), name);
  view.shape = {1, in};
  view.data = bytes.data();
  get_row(view, 0, out);
}

}  // namespace strata
