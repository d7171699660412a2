#include "model_runner.h"

#include "engine/sampler.h"

namespace strata::test {

ModelRunner::ModelRunner(const std::string& path, int threads, DType kv) {
  LoadOptions lo;
  lo.progress = false;
  model_ = Model::load(path, lo);
  pool_ = std::make_unique<ThreadPool>(threads);
  KvConfig kc;
  kc.n_layer = model_->hp().n_layer;
  kc.row_elems = model_->hp().kv_dim();
  kc.block_tokens = 16;
  kc.dtype = kv;
  kc.max_blocks = 64;
  kv_ = std::make_unique<KvPool>(kc);
  exec_ = std::make_unique<Executor>(*model_, *pool_, *kv_);
}

std::vector<float> ModelRunner::all_logits(const std::vector<int32_t>& ids) {
  KvSeq seq;
  Batch b;
  b.seqs.push_back({ids.data(), static_cast<int64_t>(ids.size()), &seq, true});
  std::vector<float> logits;
  exec_->forward(b, logits);
  seq.release(*kv_);
  return logits;
}

std::vector<int32_t> ModelRunner::greedy(const std::vector<int32_t>& prompt, int n) {
  KvSeq seq;
  std::vector<int32_t> out;
  std::vector<float> logits;
  Batch b;
  b.seqs.push_back({prompt.data(), static_cast<int64_t>(prompt.size()), &seq, false});
  exec_->forward(b, logits);
  for (int i = 0; i < n; ++i) {
    const int32_t t = argmax(logits.data(), n_vocab());
    out.push_back(t);
    if (i + 1 == n) break;
    b.seqs[0] = {&out.back(), 1, &seq, false};
    exec_->forward(b, logits);
  }
  seq.release(*kv_);
  return out;
}

}  // namespace strata::test
