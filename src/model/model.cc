#include "model/model.h"

#include <cstring>

#include "core/error.h"
#include "core/progress.h"
#include "memory/aligned_buffer.h"
#include "memory/direct_reader.h"
#include "model/tensor_names.h"
#include "ops/matmul.h"

namespace strata {
namespace {

// Copies rows [Q_h, K_h, V_h] per head into [Q; K; V] (BLOOM's fused QKV). Works for matrices
// (rows of any type) and bias vectors alike: `unit` is the bytes of one output row.
void qkv_per_head_to_concat(const uint8_t* src, uint8_t* dst, int64_t n_head, int64_t head_dim,
                            int64_t unit) {
  const int64_t hb = head_dim * unit;  // bytes of one head's slice of Q, K or V
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t part = 0; part < 3; ++part)
      std::memcpy(dst + (part * n_head + h) * hb, src + (h * 3 + part) * hb,
                  static_cast<size_t>(hb));
}

void apply_transform(LoadTransform tr, const TensorInfo& ti, const HParams& h, const uint8_t* src,
                     uint8_t* dst);

void transpose_2d(const TensorInfo& ti, const uint8_t* src, uint8_t* dst) {
  const int64_t r = ti.shape[0], c = ti.shape[1];
  const int64_t es = dtype_info(ti.dtype).block_bytes;
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j)
      std::memcpy(dst + (j * r + i) * es, src + (i * c + j) * es, static_cast<size_t>(es));
}

void apply_transform(LoadTransform tr, const TensorInfo& ti, const HParams& h, const uint8_t* src,
                     uint8_t* dst) {
  if (tr == LoadTransform::Transpose) {
    if (!is_float_type(ti.dtype))
      fail("tensor '{}': cannot transpose type {}", ti.name, dtype_name(ti.dtype));
    transpose_2d(ti, src, dst);
  } else if (tr == LoadTransform::QkvPerHeadToConcat) {
    if (ti.shape[0] != 3 * h.n_head * h.head_dim)
      fail("tensor '{}' has {} rows, expected 3 x {} heads x {}", ti.name, ti.shape[0], h.n_head,
           h.head_dim);
    qkv_per_head_to_concat(src, dst, h.n_head, h.head_dim, row_bytes(ti.dtype, ti.shape[1]));
  } else {
    std::memcpy(dst, src, ti.nbytes);
  }
}

}  // namespace

const TensorSource* Model::source(const std::string& canonical) const {
  auto it = sources_.find(canonical);
  return it == sources_.end() ? nullptr : &it->second;
}

void Model::read_tensor(const std::string& canonical, uint8_t* dst) const {
  const TensorSource* src = source(canonical);
  if (!src) fail("no source for tensor '{}'", canonical);
  const TensorInfo& ti = *src->info;
  const std::string& path = files_.files.at(static_cast<size_t>(ti.file))->path();
  std::vector<uint8_t> tmp;
  uint8_t* target = dst;
  if (src->transform != LoadTransform::None) {
    tmp.resize(ti.nbytes);
    target = tmp.data();
  }
  pread_exact(path, ti.offset, ti.nbytes, target, ti.name);
  if (src->transform != LoadTransform::None)
    apply_transform(src->transform, ti, spec_.hp, tmp.data(), dst);
}

std::unique_ptr<Model> Model::load(const std::string& path, const LoadOptions& opts) {
  std::unique_ptr<Model> m(new Model());
  m->files_ = open_model_files(path);
  m->spec_ = read_model_spec(m->files_);
  m->load_weights(opts);
  // Bind everything once so shape errors surface at load, not mid-generation.
  m->global();
  for (int64_t l = 0; l < m->hp().n_layer; ++l) m->layer(l);
  m->spec_.hp.tied_head = !m->store_.has("output.weight");
  return m;
}

void Model::load_weights(const LoadOptions& opts) {
  const bool hf = files_.kind == ModelFiles::Kind::HfDir;
  // Lazy matrices are only indexed here (the streamer or the plan reads them later).
  Progress prog(opts.lazy_matrices ? "indexing" : "loading",
                static_cast<int64_t>(files_.total_tensor_bytes()), "B", opts.progress);
  uint64_t done = 0;
  std::vector<std::string> to_read;  // matrices for the RAM arena
  for (const TensorInfo& ti : files_.tensors) {
    std::string name = ti.name;
    LoadTransform tr = LoadTransform::None;
    if (hf) {
      auto mapped = map_hf_name(spec_.arch.name, ti.name);
      if (!mapped) continue;
      name = mapped->name;
      tr = mapped->transform;
    }
    if (ti.shape.empty() || ti.shape.size() > 2)
      fail("tensor '{}' has shape {}; strata expects vectors and matrices", ti.name,
           shape_to_string(ti.shape));
    if (!is_float_type(ti.dtype) && !matmul_supports(ti.dtype))
      fail("tensor '{}' has type {}, which strata cannot compute with yet", ti.name,
           dtype_name(ti.dtype));
    const uint8_t* src =
        ti.shape.size() == 1 || !opts.lazy_matrices ? files_.tensor_data(ti) : nullptr;
    if (ti.shape.size() == 1) {
      // Vectors: widen to f32 (norm weights and biases are tiny and read often).
      const int64_t n = ti.shape[0];
      float* dst = static_cast<float*>(store_.add_owned(name, DType::F32, {n}));
      Tensor view{ti.dtype, {1, n}, const_cast<uint8_t*>(src)};
      if (!is_float_type(ti.dtype)) fail("vector '{}' has type {}", ti.name, dtype_name(ti.dtype));
      get_row(view, 0, dst);
      if (tr == LoadTransform::QkvPerHeadToConcat) {
        std::vector<float> tmp(dst, dst + n);
        qkv_per_head_to_concat(reinterpret_cast<const uint8_t*>(tmp.data()),
                               reinterpret_cast<uint8_t*>(dst), spec_.hp.n_head, spec_.hp.head_dim,
                               4);
      }
    } else if (opts.lazy_matrices) {
      sources_[name] = {&ti, tr};
      Tensor t;
      t.dtype = ti.dtype;
      t.shape = tr == LoadTransform::Transpose ? std::vector<int64_t>{ti.shape[1], ti.shape[0]}
                                               : ti.shape;
      t.tier = Tier::Disk;
      store_.add_view(name, std::move(t), nullptr);
    } else if (tr != LoadTransform::None) {
      sources_[name] = {&ti, tr};
      std::vector<int64_t> shape = tr == LoadTransform::Transpose
                                       ? std::vector<int64_t>{ti.shape[1], ti.shape[0]}
                                       : ti.shape;
      auto* dst = static_cast<uint8_t*>(store_.add_owned(name, ti.dtype, shape));
      apply_transform(tr, ti, spec_.hp, src, dst);
    } else if (!opts.mmap) {
      sources_[name] = {&ti, tr};
      to_read.push_back(name);
      continue;  // added and counted as it arrives
    } else {
      sources_[name] = {&ti, tr};
      Tensor t;
      t.dtype = ti.dtype;
      t.shape = ti.shape;
      t.data = const_cast<uint8_t*>(src);
      t.tier = Tier::Host;
      store_.add_view(name, std::move(t), files_.files[static_cast<size_t>(ti.file)]);
    }
    done += ti.nbytes;
    prog.update(static_cast<int64_t>(done));
  }
  if (!to_read.empty()) read_into_arena(to_read, prog, done);
  prog.finish();
}

void Model::read_into_arena(const std::vector<std::string>& names, Progress& prog, uint64_t done) {
  // Each matrix starts at its file offset's position within a 4 KiB page, so direct I/O lands
  // in place (and the kernels see the alignment the file gives them, as with the mapping).
  std::vector<uint64_t> at(names.size());
  uint64_t size = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    const TensorInfo& ti = *sources_.at(names[i]).info;
    size = (size + 4095) / 4096 * 4096 + ti.offset % 4096;
    at[i] = size;
    size += ti.nbytes;
  }
  auto arena = std::make_shared<AlignedBuffer>(size_t(size));
  arena->fault_in();  // in parallel: on a VM the first touch costs more than the read
  // One reader per file, all reads queued at once; O_DIRECT keeps a second copy of the model out
  // of the page cache.
  std::vector<std::unique_ptr<DirectReader>> readers(files_.files.size());
  std::vector<uint64_t> tickets(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    const TensorInfo& ti = *sources_.at(names[i]).info;
    auto& r = readers.at(static_cast<size_t>(ti.file));
    if (!r) r = std::make_unique<DirectReader>(files_.files[static_cast<size_t>(ti.file)]->path());
    tickets[i] = r->submit(ti.offset, ti.nbytes, arena->data() + at[i]);
  }
  for (size_t i = 0; i < names.size(); ++i) {
    const TensorInfo& ti = *sources_.at(names[i]).info;
    readers[static_cast<size_t>(ti.file)]->wait(tickets[i]);
    Tensor t;
    t.dtype = ti.dtype;
    t.shape = ti.shape;
    t.data = arena->data() + at[i];
    t.tier = Tier::Host;
    store_.add_view(names[i], std::move(t), arena);
    done += ti.nbytes;
    prog.update(static_cast<int64_t>(done));
  }
}

}  // namespace strata
