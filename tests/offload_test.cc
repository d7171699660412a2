// Tiered placement must not change results: for every placement of weights, KV cache and
// activations over RAM and disk (0/50/100% on disk, every combination), the greedy tokens equal
// the all-in-RAM run; with compression, they equal the compressed all-in-RAM run.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>

#include "core/error.h"
#include "engine/runtime.h"
#include "test_support.h"

namespace strata {
namespace {

struct Case {
  const char* model;
  std::vector<int32_t> prompt_a, prompt_b;
};

std::vector<Case> cases() {
  return {
      {"models/stories260K-gguf/stories260K.gguf", {1, 403, 407, 261, 378}, {1, 346, 306, 414}},
      {"models/stories260K-hf", {1, 403, 407, 261, 378}, {1, 346, 306, 414}},
      {"models/tiny/opt", {50256, 15496, 11, 616, 1438, 318}, {50256, 464, 3139}},
      {"models/tiny/llama-gqa", {1, 15043, 29892, 590}, {1, 450, 7483, 310, 3444, 338}},
      {"models/tiny/gpt2", {15496, 11, 616}, {464, 3139, 286, 4881}},
      {"models/tiny/bloom", {15496, 11, 616}, {464, 3139, 286, 4881}},
  };
}

// Two sequences as one block of two micro-batches, 12 greedy tokens each.
std::vector<std::vector<int32_t>> generate(const RuntimeOptions& o, const Case& c) {
  auto rt = Runtime::open(o);
  Engine& e = rt->engine();
  std::map<int64_t, std::vector<int32_t>> out;
  std::vector<int64_t> ids;
  for (const auto* p : {&c.prompt_a, &c.prompt_b}) {
    Request r;
    r.prompt = *p;
    r.max_tokens = 12;
    r.sampling.temperature = 0;
    r.ignore_eos = true;
    ids.push_back(e.add(r));
  }
  while (e.has_work())
    for (const Event& ev : e.step())
      for (const auto& t : ev.tokens) out[ev.id].push_back(t.token);
  return {out[ids[0]], out[ids[1]]};
}

RuntimeOptions base(const Case& c, const std::string& dir) {
  RuntimeOptions o;
  o.model = test::shared_path(c.model);
  o.threads = 2;
  o.offload_dir = dir;
  o.progress = false;
  o.gpu_batch_size = 1;
  o.num_gpu_batches = 2;
  o.prompt_len = 8;
  o.gen_len = 12;
  return o;
}

class Placement : public ::testing::TestWithParam<int> {};

TEST_P(Placement, EveryMixGivesTheInRamTokens) {
  const Case c = cases()[static_cast<size_t>(GetParam())];
  SCOPED_TRACE(c.model);
  const std::string dir = test::temp_dir() + "/offload" + std::to_string(GetParam());
  ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  for (int compress = 0; compress < 3; ++compress) {
    RuntimeOptions o = base(c, dir);
    o.compress_weight = compress == 1;
    o.compress_cache = compress == 2;
    // Reference: everything in RAM (the same placement machinery, nothing on disk).
    o.policy = parse_percent({0, 100, 0, 100, 0, 100});
    const auto want = generate(o, c);
    ASSERT_EQ(want[0].size(), 12u);
    if (compress == 0) {
      // The placed all-RAM run equals the plain in-memory engine.
      RuntimeOptions plain = o;
      plain.policy.reset();
      plain.num_gpu_batches = 1;
      EXPECT_EQ(generate(plain, c), want);
    }
    for (double wd : {0, 50, 100})
      for (double cd : {0, 50, 100})
        for (double ad : {0, 50, 100}) {
          if (wd == 0 && cd == 0 && ad == 0) continue;
          SCOPED_TRACE(::testing::Message() << "compress " << compress << " disk% w " << wd << " c "
                                            << cd << " a " << ad);
          o.policy = parse_percent({0, 100 - wd, 0, 100 - cd, 0, 100 - ad});
          EXPECT_EQ(generate(o, c), want);
        }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, Placement, ::testing::Range(0, 6));

TEST(Placement, DiskPlacementNeedsAnOffloadDir) {
  RuntimeOptions o = base(cases()[0], "");
  o.policy = parse_percent({0, 100, 0, 0, 0, 100});
  EXPECT_THROW(Runtime::open(o), Error);
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

std::string fresh_dir(const std::string& name) {
  const std::string dir = test::temp_dir() + "/" + name;
  EXPECT_EQ(std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str()), 0);
  return dir;
}

int64_t count_files(const std::string& dir) {
  std::string out;
  test::run_command("ls -A " + dir + " | wc -l", &out);
  return std::stoll(out);
}

// Runs one greedy step after another until an error; returns its message ("" if none).
std::string step_until_error(Runtime& rt, int steps) {
  Request r;
  r.prompt = {1, 403, 407};
  r.max_tokens = steps;
  r.sampling.temperature = 0;
  r.ignore_eos = true;
  rt.engine().add(r);
  try {
    while (rt.engine().has_work()) rt.engine().step();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(OffloadIo, ModelFileTruncatedMidRun) {
  const std::string dir = fresh_dir("trunc_model");
  const std::string model = dir + "/model.gguf";
  ASSERT_EQ(std::system(("cp " + test::shared_path("models/stories260K-gguf/stories260K.gguf") +
                         " " + model)
                            .c_str()),
            0);
  RuntimeOptions o;
  o.model = model;
  o.offload_dir = dir;
  o.progress = false;
  o.policy = parse_percent({0, 0, 0, 100, 0, 100});  // every weight streams from the model file
  auto rt = Runtime::open(o);
  EXPECT_EQ(step_until_error(*rt, 3), "");
  ASSERT_EQ(::truncate(model.c_str(), 300000), 0);
  const std::string err = step_until_error(*rt, 3);
  EXPECT_NE(err.find("model.gguf"), std::string::npos) << err;
  EXPECT_NE(err.find("missing"), std::string::npos) << err;
}

TEST(OffloadIo, OffloadFileTruncatedMidRunAndRebuiltNextTime) {
  const std::string dir = fresh_dir("trunc_offload");
  RuntimeOptions o;
  o.model = test::shared_path("models/stories260K-gguf/stories260K.gguf");
  o.offload_dir = dir;
  o.progress = false;
  o.compress_weight = true;  // converted weights live in the offload file
  o.policy = parse_percent({0, 0, 0, 100, 0, 100});
  std::string file;
  {
    auto rt = Runtime::open(o);
    ASSERT_NE(rt->streamer()->offload_file(), nullptr);
    file = rt->streamer()->offload_file()->path;
    EXPECT_FALSE(rt->streamer()->offload_file()->reused);
    EXPECT_EQ(step_until_error(*rt, 3), "");
    ASSERT_EQ(::truncate(file.c_str(), 1 << 20), 0);
    const std::string err = step_until_error(*rt, 3);
    EXPECT_NE(err.find(file), std::string::npos) << err;
  }
  // A damaged offload file is not reused: it is written again, completely.
  auto rt = Runtime::open(o);
  EXPECT_FALSE(rt->streamer()->offload_file()->reused);
  EXPECT_EQ(step_until_error(*rt, 3), "");
  auto rt2 = Runtime::open(o);
  EXPECT_TRUE(rt2->streamer()->offload_file()->reused);
  EXPECT_EQ(count_files(dir), 1);
}

TEST(OffloadIo, DiskFullWhileWritingTheOffloadFileLeavesNothing) {
  const std::string dir = fresh_dir("disk_full");
  // A child process whose file size limit plays the full disk (writes fail with EFBIG).
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    rlimit lim{64 * 1024, 64 * 1024};
    setrlimit(RLIMIT_FSIZE, &lim);
    RuntimeOptions o;
    o.model = test::shared_path("models/stories260K-gguf/stories260K.gguf");
    o.offload_dir = dir;
    o.progress = false;
    o.compress_weight = true;
    o.policy = parse_percent({0, 0, 0, 100, 0, 100});
    try {
      Runtime::open(o);
    } catch (const Error& e) {
      const std::string m = e.what();
      _exit(m.find("writing") != std::string::npos ? 42 : 43);
    }
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 42) << "expected a clear write error";
  EXPECT_EQ(count_files(dir), 0) << "a partial offload file was left behind";
}

}  // namespace
}  // namespace strata
