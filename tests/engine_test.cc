// The engine: batched and continuous decoding give the same greedy tokens as running each
// request alone; preemption and cancellation free the cache and keep outputs exact.
#include <gtest/gtest.h>

#include <map>

#include "core/error.h"
#include "engine/engine.h"
#include "test_support.h"

namespace strata {
namespace {

struct Fixture {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tok;
  ThreadPool pool{2};
  nlohmann::json golden;
  Fixture() {
    LoadOptions lo;
    lo.progress = false;
    model = Model::load(test::shared_path("models/stories260K-gguf/stories260K.gguf"), lo);
    tok = Tokenizer::from_model_files(model->files());
    golden = test::read_json(test::shared_path("golden/stories260K.json"));
  }
  Request greedy(const nlohmann::json& p) {
    Request r;
    r.prompt = p["input_ids"].get<std::vector<int32_t>>();
    r.max_tokens = static_cast<int64_t>(p["greedy_ids"].size());
    r.sampling.temperature = 0;
    r.ignore_eos = true;
    return r;
  }
};

// Runs until idle; returns generated ids per request id and the finish reasons.
std::map<int64_t, std::vector<int32_t>> drain(Engine& e,
                                              std::map<int64_t, FinishReason>* reasons = nullptr,
                                              std::map<int64_t, std::string>* texts = nullptr) {
  std::map<int64_t, std::vector<int32_t>> out;
  while (e.has_work())
    for (const Event& ev : e.step()) {
      for (const auto& t : ev.tokens) out[ev.id].push_back(t.token);
      if (texts) (*texts)[ev.id] += ev.text;
      if (ev.finished && reasons) (*reasons)[ev.id] = ev.reason;
    }
  return out;
}

TEST(Engine, BatchedEqualsGolden) {
  Fixture f;
  EngineOptions o;
  o.max_seqs = 5;
  Engine e(*f.model, *f.tok, f.pool, o);
  std::vector<int64_t> ids;
  for (const auto& p : f.golden["prompts"]) ids.push_back(e.add(f.greedy(p)));
  auto out = drain(e);
  for (size_t i = 0; i < ids.size(); ++i)
    EXPECT_EQ(out[ids[i]], f.golden["prompts"][i]["greedy_ids"].get<std::vector<int32_t>>()) << i;
  EXPECT_EQ(e.kv().blocks_used(), 0);
}

TEST(Engine, RequestsJoinARunningBatch) {
  Fixture f;
  EngineOptions o;
  o.max_seqs = 4;
  o.prefill_chunk = 3;  // prompts arrive in several chunks while others decode
  Engine e(*f.model, *f.tok, f.pool, o);
  std::map<int64_t, std::vector<int32_t>> out;
  std::map<int64_t, size_t> which;
  size_t next = 0;
  int steps = 0;
  while (next < f.golden["prompts"].size() || e.has_work()) {
    if (next < f.golden["prompts"].size() && steps % 3 == 0) {
      which[e.add(f.greedy(f.golden["prompts"][next]))] = next;
      ++next;
    }
    for (const Event& ev : e.step())
      for (const auto& t : ev.tokens) out[ev.id].push_back(t.token);
    ++steps;
    ASSERT_LT(steps, 10000);
  }
  EXPECT_GE(e.stats().last_batch_seqs, 1);
  for (const auto& [id, i] : which)
    EXPECT_EQ(out[id], f.golden["prompts"][i]["greedy_ids"].get<std::vector<int32_t>>());
}

TEST(Engine, PreemptionKeepsOutputsExact) {
  Fixture f;
  EngineOptions o;
  o.max_seqs = 5;
  o.kv_block_tokens = 4;
  o.ctx_size = 64;
  o.kv_blocks = 22;  // room for about one and a half sequences of 44 tokens
  Engine e(*f.model, *f.tok, f.pool, o);
  std::vector<int64_t> ids;
  for (const auto& p : f.golden["prompts"]) ids.push_back(e.add(f.greedy(p)));
  auto out = drain(e);
  EXPECT_GT(e.stats().preemptions, 0);
  for (size_t i = 0; i < ids.size(); ++i)
    EXPECT_EQ(out[ids[i]], f.golden["prompts"][i]["greedy_ids"].get<std::vector<int32_t>>()) << i;
  EXPECT_EQ(e.kv().blocks_used(), 0);
}

TEST(Engine, CancelFreesTheCache) {
  Fixture f;
  EngineOptions o;
  o.max_seqs = 2;
  Engine e(*f.model, *f.tok, f.pool, o);
  Request r = f.greedy(f.golden["prompts"][0]);
  r.max_tokens = 500;
  const int64_t a = e.add(r), b = e.add(r);
  for (int i = 0; i < 5; ++i) e.step();
  EXPECT_GT(e.kv().blocks_used(), 0);
  e.cancel(a);
  std::map<int64_t, FinishReason> reasons;
  bool seen = false;
  for (const Event& ev : e.step())
    if (ev.id == a) {
      EXPECT_TRUE(ev.finished);
      EXPECT_EQ(ev.reason, FinishReason::Cancelled);
      seen = true;
    }
  EXPECT_TRUE(seen);
  e.cancel(b);
  drain(e, &reasons);
  EXPECT_EQ(reasons[b], FinishReason::Cancelled);
  EXPECT_EQ(e.kv().blocks_used(), 0);
}

TEST(Engine, StopStringsAcrossTokensAndLimits) {
  Fixture f;
  Engine e(*f.model, *f.tok, f.pool, {});
  Request r = f.greedy(
      f.golden["prompts"][4]);  // "" -> "Once upon a time, there was a little girl named Lily..."
  r.stop = {"little girl", "zzz"};
  std::map<int64_t, FinishReason> reasons;
  std::map<int64_t, std::string> texts;
  const int64_t id = e.add(r);
  drain(e, &reasons, &texts);
  EXPECT_EQ(reasons[id], FinishReason::Stop);
  EXPECT_EQ(texts[id], "Once upon a time, there was a ");
  // Length limit.
  r.stop.clear();
  r.max_tokens = 3;
  const int64_t id2 = e.add(r);
  auto out = drain(e, &reasons, &texts);
  EXPECT_EQ(out[id2].size(), 3u);
  EXPECT_EQ(reasons[id2], FinishReason::Length);
}

TEST(Engine, SessionsReuseTheCachedPrefix) {
  Fixture f;
  Engine e(*f.model, *f.tok, f.pool, {});
  const auto& p = f.golden["prompts"][3];  // "Once upon a time"
  Request r = f.greedy(p);
  r.session = 7;
  r.max_tokens = 8;
  const int64_t a = e.add(r);
  auto out = drain(e);
  // Turn two: the whole history plus more text. Only the new part may be prefilled.
  std::vector<int32_t> history = r.prompt;
  history.insert(history.end(), out[a].begin(), out[a].end());
  EXPECT_EQ(e.session_cached_tokens(7), static_cast<int64_t>(history.size()) - 1);
  Request r2 = r;
  r2.prompt = history;
  for (int32_t t : {261, 378}) r2.prompt.push_back(t);
  const int64_t before = e.stats().prompt_tokens;
  const int64_t b = e.add(r2);
  auto out2 = drain(e);
  EXPECT_EQ(e.stats().prompt_tokens - before, 3);  // the last generated token and the two new ones
  // Same tokens as a fresh run of the full prompt.
  Request fresh = r2;
  fresh.session = 0;
  const int64_t c = e.add(fresh);
  auto out3 = drain(e);
  EXPECT_EQ(out2[b], out3[c]);
  e.drop_session(7);
  EXPECT_EQ(e.kv().blocks_used(), 0);
}

TEST(Engine, RejectsPromptsThatDoNotFit) {
  Fixture f;
  EngineOptions o;
  o.ctx_size = 8;
  Engine e(*f.model, *f.tok, f.pool, o);
  Request r;
  r.prompt = std::vector<int32_t>(8, 5);
  EXPECT_THROW(e.add(r), Error);
  r.prompt.clear();
  EXPECT_THROW(e.add(r), Error);
  r.prompt = {1, 99999};
  EXPECT_THROW(e.add(r), Error);
  // A prompt that fits stops at the context with reason "length".
  r.prompt = {1, 403, 407};
  r.max_tokens = -1;
  r.sampling.temperature = 0;
  r.ignore_eos = true;
  std::map<int64_t, FinishReason> reasons;
  const int64_t id = e.add(r);
  auto out = drain(e, &reasons);
  EXPECT_EQ(out[id].size(), 5u);
  EXPECT_EQ(reasons[id], FinishReason::Length);
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

// The server's traffic pattern: 16 sequences at once, requests arriving every step, a fifth
// of them cancelled mid-way. Every request that runs to its end must give exactly the tokens
// it gives alone (the golden greedy ids), and the cache must be empty afterwards.
TEST(Engine, ChurnWithCancellationsKeepsOutputsExact) {
  Fixture f;
  EngineOptions o;
  o.max_seqs = 16;
  Engine e(*f.model, *f.tok, f.pool, o);
  const auto& prompts = f.golden["prompts"];
  uint32_t rng = 12345;
  auto rnd = [&](uint32_t n) {
    rng = rng * 1103515245u + 12345u;
    return (rng >> 8) % n;
  };
  std::map<int64_t, size_t> which;
  std::map<int64_t, std::vector<int32_t>> out;
  std::map<int64_t, FinishReason> reasons;
  std::vector<int64_t> live;
  int added = 0, steps = 0;
  while (added < 300 || e.has_work()) {
    for (int k = rnd(4); k > 0 && added < 300; --k, ++added) {
      const size_t i = rnd(static_cast<uint32_t>(prompts.size()));
      Request r = f.greedy(prompts[i]);
      r.max_tokens = 1 + rnd(static_cast<uint32_t>(r.max_tokens));
      const int64_t id = e.add(r);
      which[id] = i;
      live.push_back(id);
    }
    if (!live.empty() && rnd(5) == 0) e.cancel(live[rnd(static_cast<uint32_t>(live.size()))]);
    for (const Event& ev : e.step()) {
      for (const auto& t : ev.tokens) out[ev.id].push_back(t.token);
      if (ev.finished) {
        reasons[ev.id] = ev.reason;
        std::erase(live, ev.id);
      }
    }
    ASSERT_LT(++steps, 100000);
  }
  int checked = 0;
  for (const auto& [id, i] : which) {
    if (reasons[id] == FinishReason::Cancelled) continue;
    auto want = prompts[i]["greedy_ids"].get<std::vector<int32_t>>();
    want.resize(out[id].size());
    EXPECT_EQ(out[id], want) << "request " << id << " prompt " << i;
    ++checked;
  }
  EXPECT_GT(checked, 150);
  EXPECT_EQ(e.kv().blocks_used(), 0);
}

}  // namespace
}  // namespace strata
