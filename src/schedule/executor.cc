#include "schedule/executor.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/error.h"
#include "core/progress.h"

#include <fmt/format.h>

namespace strata {
namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}
}  // namespace

Executor::Executor(Model& model, ThreadPool& pool, KvPool& kv, const ExecutorOptions& opts)
    : model_(model), pool_(pool), kv_(kv), opts_(opts), global_(model.global()) {
  for (int64_t l = 0; l < model.hp().n_layer; ++l) layers_.push_back(model.layer(l));
  if (opts_.act_ram_percent < 100) {
    if (opts_.offload_dir.empty())
      fail("activations are placed on disk but no --offload-dir was given");
    act_fd_ = ::open(opts_.offload_dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (act_fd_ < 0)
      fail("cannot create the activation file in '{}': {}", opts_.offload_dir,
           std::strerror(errno));
  }
}

Executor::~Executor() {
  if (act_fd_ >= 0) ::close(act_fd_);
}

// Hidden states of micro-batch k go to disk between layers (activation placement).
void Executor::spill(ForwardPass& fp, size_t k) {
  auto& x = fp.hidden();
  const uint64_t slot = static_cast<uint64_t>(fp.n_tokens() * model_.hp().n_embd) * 4;
  const uint64_t off = k * ((slot + 4095) / 4096 * 4096 + 4096);
  size_t done = 0;
  const auto* p = reinterpret_cast<const uint8_t*>(x.data());
  while (done < slot) {
    const ssize_t w = ::pwrite(act_fd_, p + done, slot - done, static_cast<off_t>(off + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      fail("writing activations to '{}' failed: {}", opts_.offload_dir, std::strerror(errno));
    done += static_cast<size_t>(w);
  }
  act_bytes_io_ += slot;
  std::vector<float>().swap(x);
}

void Executor::unspill(ForwardPass& fp, size_t k) {
  auto& x = fp.hidden();
  const uint64_t slot = static_cast<uint64_t>(fp.n_tokens() * model_.hp().n_embd) * 4;
  const uint64_t off = k * ((slot + 4095) / 4096 * 4096 + 4096);
  x.resize(static_cast<size_t>(fp.n_tokens() * model_.hp().n_embd));
  size_t done = 0;
  auto* p = reinterpret_cast<uint8_t*>(x.data());
  while (done < slot) {
    const ssize_t r = ::pread(act_fd_, p + done, slot - done, static_cast<off_t>(off + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) fail("reading activations back from '{}' failed", opts_.offload_dir);
    done += static_cast<size_t>(r);
  }
  act_bytes_io_ += slot;
}

// Layer j for one micro-batch, staging its KV blocks when the layer's cache is on disk.
void Executor::run_layer(int j, ForwardPass& fp) {
  if (!kv_.on_disk(j)) {
    fp.layer(j, layers_[static_cast<size_t>(j)], kv_);
    return;
  }
  std::vector<int32_t> blocks, dirty;
  const int64_t bt = kv_.config().block_tokens;
  for (const SeqChunk& s : fp.batch().seqs) {
    blocks.insert(blocks.end(), s.kv->blocks.begin(), s.kv->blocks.end());
    for (int64_t b = s.kv->n_tokens / bt; b < (s.kv->n_tokens + s.n_tokens + bt - 1) / bt; ++b)
      dirty.push_back(s.kv->blocks[static_cast<size_t>(b)]);
  }
  const uint64_t need = static_cast<uint64_t>(kv_.arena_bytes(static_cast<int64_t>(blocks.size())));
  if (kv_arena_.size() < need) kv_arena_.resize(need);
  kv_.stage(j, blocks, kv_arena_.data());
  fp.layer(j, layers_[static_cast<size_t>(j)], kv_);
  kv_.unstage(j, blocks, dirty);
}

void Executor::forward(const Batch& batch, std::vector<float>& logits) {
  const auto t_step = Clock::now();
  WeightStreamer* ws = opts_.streamer;
  const uint64_t read0 = ws ? ws->stats().bytes_read : 0;
  const double wait0 = ws ? ws->stats().io_wait_s : 0;
  const bool compute = !ws || ws->mode() != StreamMode::IoOnly;
  const int n_layer = static_cast<int>(model_.hp().n_layer);

  // Micro-batches of whole sequences.
  std::vector<Batch> mbs;
  const size_t per =
      opts_.micro_batch_seqs > 0 ? static_cast<size_t>(opts_.micro_batch_seqs) : batch.seqs.size();
  for (size_t i = 0; i < batch.seqs.size(); i += std::max<size_t>(per, 1)) {
    Batch b;
    b.seqs.assign(
        batch.seqs.begin() + static_cast<std::ptrdiff_t>(i),
        batch.seqs.begin() + static_cast<std::ptrdiff_t>(std::min(batch.seqs.size(), i + per)));
    mbs.push_back(std::move(b));
  }
  std::vector<std::unique_ptr<ForwardPass>> fps;
  ForwardPass::RowFn rows;
  if (ws && ws->on_disk("token_embd.weight"))
    rows = [ws](int64_t r, float* out) { ws->read_row("token_embd.weight", r, out); };
  if (ws) ws->prefetch(0);
  for (auto& b : mbs) {
    fps.push_back(std::make_unique<ForwardPass>(model_.spec(), pool_, ws_));
    fps.back()->begin(b, kv_);
    if (compute) fps.back()->embed(global_, rows);
  }
  // A live line for streamed steps (seconds each): layer position, tokens, disk rate.
  std::unique_ptr<Progress> prog;
  if (opts_.progress && ws && ws->streams())
    prog = std::make_unique<Progress>(
        fmt::format("step {} ({} tokens)", steps_ + 1, batch.n_tokens()), n_layer, "layers");
  // Zig-zag: each layer visits every micro-batch; the next layer's weights stream meanwhile.
  for (int j = 0; j < n_layer; ++j) {
    if (prog)
      prog->update(j, fmt::format("disk {:.2f} GB/s, waiting for I/O {:.1f}s",
                                  double(ws->stats().bytes_read - read0) / 1e9 /
                                      std::max(1e-9, since(t_step)),
                                  ws->stats().io_wait_s - wait0));
    if (ws) {
      ws->acquire(j);
      ws->prefetch(j + 1);
    }
    if (compute)
      for (size_t k = 0; k < fps.size(); ++k) {
        ForwardPass& fp = *fps[k];
        const bool on_disk =
            act_fd_ >= 0 && double(k) >= double(fps.size()) * opts_.act_ram_percent / 100.0;
        if (on_disk && j > 0) unspill(fp, k);
        run_layer(j, fp);
        if (on_disk && j + 1 < n_layer) spill(fp, k);
      }
    if (ws) ws->release(j);
  }
  if (ws) {
    ws->acquire(n_layer);
    ws->prefetch(0);  // the next step starts with layer 0
  }
  logits.clear();
  std::vector<float> part;
  for (auto& fp : fps) {
    if (!compute) {
      fp->finish_without_head();
      continue;
    }
    fp->head(global_, part);
    logits.insert(logits.end(), part.begin(), part.end());
  }
  if (!compute)
    logits.assign(static_cast<size_t>(batch.n_logit_rows() * model_.hp().n_vocab), 0.0f);
  if (ws) ws->release(n_layer);
  if (prog) prog->clear();
  ++steps_;

  last_ = StepStats{};
  last_.total_s = since(t_step);
  last_.io_wait_s = ws ? ws->stats().io_wait_s - wait0 : 0;
  last_.compute_s = last_.total_s - last_.io_wait_s;
  last_.bytes_read = ws ? ws->stats().bytes_read - read0 : 0;
  last_.tokens = batch.n_tokens();
  last_.micro_batches = static_cast<int64_t>(mbs.size());
}

}  // namespace strata
