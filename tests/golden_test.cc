// The forward pass against Hugging Face transformers' float references (../shared/golden):
// greedy ids must match exactly and logits to 1e-4, for stories260K in both file formats and for
// the tiny random checkpoints of every architecture.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "model/model.h"
#include "model_runner.h"
#include "test_support.h"

namespace strata::test {
namespace {

std::vector<int32_t> ids_of(const nlohmann::json& j) {
  return j.get<std::vector<int32_t>>();
}

float max_abs_diff(const float* a, const std::vector<double>& b) {
  float m = 0;
  for (size_t i = 0; i < b.size(); ++i) m = std::max(m, static_cast<float>(std::fabs(a[i] - b[i])));
  return m;
}

class Stories : public ::testing::TestWithParam<const char*> {};

TEST_P(Stories, GreedyFromBosAndLogits) {
  ModelRunner r(shared_path(GetParam()));
  const auto g = read_json(shared_path("golden/stories260K-bos64.json"));
  const auto prompt = ids_of(g["prompt_ids"]);
  EXPECT_EQ(r.greedy(prompt, 64), ids_of(g["greedy_ids"]));
  const auto logits = r.all_logits(prompt);
  const auto want = g["logits_after_bos"].get<std::vector<double>>();
  ASSERT_EQ(static_cast<int64_t>(want.size()), r.n_vocab());
  EXPECT_LT(max_abs_diff(logits.data(), want), 1e-4f);
}

TEST_P(Stories, EveryPromptTop5AndGreedy) {
  ModelRunner r(shared_path(GetParam()));
  const auto g = read_json(shared_path("golden/stories260K.json"));
  for (const auto& p : g["prompts"]) {
    SCOPED_TRACE(p["prompt"].get<std::string>());
    const auto ids = ids_of(p["input_ids"]);
    const auto logits = r.all_logits(ids);
    const auto& top5 = p["positions_top5"];
    ASSERT_EQ(top5.size(), ids.size());
    for (size_t t = 0; t < ids.size(); ++t)
      for (const auto& e : top5[t]) {
        const int id = e[0].get<int>();
        EXPECT_NEAR(logits[t * r.n_vocab() + id], e[1].get<double>(), 1e-4)
            << "position " << t << " id " << id;
      }
    EXPECT_EQ(r.greedy(ids, static_cast<int>(p["greedy_ids"].size())), ids_of(p["greedy_ids"]));
  }
}

INSTANTIATE_TEST_SUITE_P(BothFormats, Stories,
                         ::testing::Values("models/stories260K-gguf/stories260K.gguf",
                                           "models/stories260K-hf"));

class Tiny : public ::testing::TestWithParam<const char*> {};

TEST_P(Tiny, MatchesTransformers) {
  const std::string name = GetParam();
  ModelRunner r(shared_path("models/tiny/" + name));
  const auto g = read_json(shared_path("golden/tiny/" + name + ".json"));
  // Every last-position logit of the first prompt, from the raw float32 dump.
  std::ifstream f(shared_path("golden/tiny/" + name + ".last_logits.f32"), std::ios::binary);
  std::vector<float> want(static_cast<size_t>(r.n_vocab()));
  f.read(reinterpret_cast<char*>(want.data()), static_cast<std::streamsize>(want.size() * 4));
  ASSERT_TRUE(f) << "short logits file";
  bool first = true;
  for (const auto& p : g["prompts"]) {
    SCOPED_TRACE(p["prompt"].get<std::string>());
    const auto ids = ids_of(p["input_ids"]);
    const auto logits = r.all_logits(ids);
    for (size_t t = 0; t < ids.size(); ++t)
      for (const auto& e : p["positions_top5"][t]) {
        const int id = e[0].get<int>();
        EXPECT_NEAR(logits[t * r.n_vocab() + id], e[1].get<double>(), 1e-4)
            << "position " << t << " id " << id;
      }
    if (first) {
      const float* last = logits.data() + (ids.size() - 1) * r.n_vocab();
      float m = 0;
      for (size_t i = 0; i < want.size(); ++i) m = std::max(m, std::fabs(last[i] - want[i]));
      EXPECT_LT(m, 1e-4f) << "largest difference over all " << want.size() << " logits";
      first = false;
    }
    EXPECT_EQ(r.greedy(ids, static_cast<int>(p["greedy_ids"].size())), ids_of(p["greedy_ids"]));
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, Tiny, ::testing::Values("opt", "llama-gqa", "gpt2", "bloom"));

// The tests above run on weights read into RAM (the default load). The mapped load must give the
// same bytes for every tensor, and the RAM copy must not point into the mapping.
class LoadModes : public ::testing::TestWithParam<const char*> {};

TEST_P(LoadModes, RamCopyHoldsTheMappedBytes) {
  LoadOptions ram, mapped;
  ram.progress = mapped.progress = false;
  mapped.mmap = true;
  const auto a = Model::load(shared_path(GetParam()), ram);
  const auto b = Model::load(shared_path(GetParam()), mapped);
  const auto in_mapping = [&](const void* p) {
    for (const auto& f : b->files().files)
      if (p >= f->data() && p < f->data() + f->size()) return true;
    return false;
  };
  int copied = 0;
  for (const std::string& name : b->store().names()) {
    SCOPED_TRACE(name);
    const Tensor& ta = a->store().get(name);
    const Tensor& tb = b->store().get(name);
    ASSERT_EQ(ta.dtype, tb.dtype);
    ASSERT_EQ(ta.shape, tb.shape);
    EXPECT_EQ(std::memcmp(ta.data, tb.data, static_cast<size_t>(ta.nbytes())), 0);
    EXPECT_FALSE(in_mapping(ta.data));
    copied += in_mapping(tb.data);
  }
  EXPECT_GT(copied, 0) << "the mapped load should leave matrices in the file";
}

INSTANTIATE_TEST_SUITE_P(Models, LoadModes,
                         ::testing::Values("models/stories260K-gguf/stories260K.gguf",
                                           "models/stories260K-hf", "models/tiny/bloom"));

}  // namespace
}  // namespace strata::test
