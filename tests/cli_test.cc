// The strata command line, driven as a user drives it: generation against the golden files,
// JSON output, sampling reproducibility, stop strings, and one-line errors for bad input.
#include <gtest/gtest.h>

#include <fstream>

#include "test_support.h"

namespace strata::test {
namespace {

struct Result {
  int code;
  std::string out, err;
};

Result strata(const std::string& args) {
  const std::string errf = temp_dir() + "/stderr.txt";
  Result r;
  r.code = run_command(strata_binary() + " " + args + " 2>" + errf, &r.out);
  std::ifstream f(errf);
  r.err.assign(std::istreambuf_iterator<char>(f), {});
  return r;
}

nlohmann::json run_json(const std::string& args) {
  Result r = strata("run --json -q " + args);
  EXPECT_EQ(r.code, 0) << r.err;
  return nlohmann::json::parse(r.out);
}

std::string q(const std::string& s) {
  return "'" + s + "'";
}

TEST(Cli, RunGreedyMatchesGoldenFromBos) {
  const auto g = read_json(shared_path("golden/stories260K-bos64.json"));
  for (const char* m : {"models/stories260K-gguf/stories260K.gguf", "models/stories260K-hf"}) {
    auto j = run_json("-m " + shared_path(m) + " -p '' -n 64 --temp 0 --ignore-eos");
    EXPECT_EQ(j["prompt_ids"], g["prompt_ids"]) << m;
    EXPECT_EQ(j["generated_ids"], g["greedy_ids"]) << m;
    // The golden text was decoded piece by piece (" Once upon..."); decoding from the start of a
    // text drops that first space, as Hugging Face and llama.cpp do.
    EXPECT_EQ(" " + j["text"].get<std::string>(), g["greedy_text"].get<std::string>()) << m;
    EXPECT_EQ(j["finish_reason"], "length");
    EXPECT_GT(j["timings"]["generation_tokens_per_second"].get<double>(), 0);
    EXPECT_GT(j["timings"]["peak_rss_bytes"].get<double>(), 0);
  }
}

// strata bench's JSON: a pp and a tg row; each decode repetition is set against the read
// bandwidth measured just before it, and the fraction reported is the mean of those ratios.
TEST(Cli, BenchJsonSetsEachDecodeRepetitionAgainstItsOwnBandwidth) {
  Result r = strata("bench -q -o json -p 16 -n 8 -r 2 -t 1 -m " +
                    shared_path("models/stories260K-gguf/stories260K.gguf"));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 2u) << r.out;
  EXPECT_EQ(j[0]["test"], "pp16");
  EXPECT_EQ(j[0]["threads"], 1) << "-t sets the thread count when --threads-list is not given";
  EXPECT_FALSE(j[0].contains("fraction_of_roofline"));
  const auto& tg = j[1];
  EXPECT_EQ(tg["test"], "tg8");
  EXPECT_EQ(tg["threads"], 1);
  ASSERT_EQ(tg["tokens_per_second"].size(), 2u);
  ASSERT_EQ(tg["bandwidth_per_rep_gbps"].size(), 2u);
  ASSERT_EQ(tg["fraction_of_roofline_per_rep"].size(), 2u);
  double mean_fraction = 0;
  for (int i = 0; i < 2; ++i) {
    const double rate = tg["tokens_per_second"][i], bw = tg["bandwidth_per_rep_gbps"][i];
    const double f = tg["fraction_of_roofline_per_rep"][i];
    EXPECT_GT(bw, 0.1);
    // effective bandwidth of this repetition / its bandwidth = rate / (bw / bytes per token)
    const double bytes = tg["effective_bandwidth_gbps"].get<double>() / tg["mean"].get<double>();
    EXPECT_NEAR(f, rate * bytes / bw, 1e-9 + 1e-9 * f);
    mean_fraction += f / 2;
  }
  EXPECT_NEAR(tg["fraction_of_roofline"].get<double>(), mean_fraction, 1e-12);
}

TEST(Cli, RunEveryGoldenPrompt) {
  struct M {
    const char* model;
    const char* golden;
  };
  for (const M& m : {M{"models/stories260K-gguf/stories260K.gguf", "golden/stories260K.json"},
                     M{"models/tiny/opt", "golden/tiny/opt.json"},
                     M{"models/tiny/llama-gqa", "golden/tiny/llama-gqa.json"},
                     M{"models/tiny/gpt2", "golden/tiny/gpt2.json"}}) {
    const auto g = read_json(shared_path(m.golden));
    for (const auto& p : g["prompts"]) {
      const std::string prompt = p["prompt"];
      SCOPED_TRACE(std::string(m.model) + ": " + prompt);
      auto j = run_json("-m " + shared_path(m.model) + " -p " + q(prompt) + " -n " +
                        std::to_string(p["greedy_ids"].size()) + " --temp 0 --ignore-eos");
      EXPECT_EQ(j["prompt_ids"], p["input_ids"]);
      EXPECT_EQ(j["generated_ids"], p["greedy_ids"]);
      if (prompt.empty()) {
        EXPECT_EQ(j["text"], p["greedy_text"]);
      }
    }
  }
}

TEST(Cli, StreamsTextAndPrintsSummary) {
  Result r = strata("run -q -m " + shared_path("models/stories260K-gguf/stories260K.gguf") +
                    " -p 'Once upon a time' -n 16 --temp 0");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind(", there was a little girl", 0), 0u) << r.out;
  EXPECT_NE(r.err.find("generation"), std::string::npos);
  EXPECT_NE(r.err.find("tok/s"), std::string::npos);
  EXPECT_NE(r.err.find("peak RSS"), std::string::npos);
}

TEST(Cli, SameSeedSameOutput) {
  const std::string base = "-m " + shared_path("models/stories260K-gguf/stories260K.gguf") +
                           " -p 'Once' -n 40 --temp 1.2 --top-k 0 --top-p 1 --min-p 0";
  auto a = run_json(base + " --seed 7"), b = run_json(base + " --seed 7"),
       c = run_json(base + " --seed 8");
  EXPECT_EQ(a["generated_ids"], b["generated_ids"]);
  EXPECT_NE(a["generated_ids"], c["generated_ids"]);
}

TEST(Cli, StopStringEndsGeneration) {
  auto j = run_json("-m " + shared_path("models/stories260K-gguf/stories260K.gguf") +
                    " -p '' -n 64 --temp 0 --stop Lily");
  EXPECT_EQ(j["finish_reason"], "stop");
  EXPECT_EQ(j["text"].get<std::string>(), "Once upon a time, there was a little girl named ");
}

TEST(Cli, HelpOnEveryCommand) {
  for (const char* c : {"", "run", "info", "gen-dummy"}) {
    Result r = strata(std::string(c) + " --help");
    EXPECT_EQ(r.code, 0) << c;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << c;
  }
}

void expect_one_line_error(const Result& r, const std::string& needle) {
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

TEST(Cli, ClearOneLineErrors) {
  expect_one_line_error(strata("run -q -m /nonexistent.gguf -p hi"), "not found");
  expect_one_line_error(strata("run -q -m " + shared_path("models/tiny/opt/vocab.json") + " -p hi"),
                        "not a GGUF");
  expect_one_line_error(
      strata("run -q -c 8 -m " + shared_path("models/stories260K-gguf/stories260K.gguf") +
             " -p 'Once upon a time there was a dragon who lived far away'"),
      "context");
  const std::string dir = temp_dir() + "/mamba";
  ASSERT_EQ(
      std::system(
          ("mkdir -p " + dir + " && cp " + shared_path("models/tiny/opt") + "/* " + dir).c_str()),
      0);
  std::ofstream(dir + "/config.json") << R"({"model_type": "mamba"})";
  expect_one_line_error(strata("run -q -m " + dir + " -p hi"), "unsupported architecture 'mamba'");
  expect_one_line_error(strata("info -m " + dir), "unsupported architecture");
}

TEST(Cli, InfoDescribesTheModel) {
  Result r = strata("info -m " + shared_path("models/stories260K-gguf/stories260K.gguf"));
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* s : {"architecture: llama", "layers                 5",
                        "heads (kv heads)       8 (4)", "parameters", "tensors                48",
                        "F32", "llama SentencePiece BPE, 512 tokens", "bos", "KV cache", "total"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  r = strata("info -m " + shared_path("models/tiny/opt"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("architecture: opt"), std::string::npos);
  EXPECT_NE(r.out.find("F16"), std::string::npos);
}

TEST(Cli, GenDummyWritesALoadableModel) {
  const std::string path = temp_dir() + "/dummy.gguf";
  Result r = strata("gen-dummy -q --arch opt --shape 125m --layers 2 --type f16 " + path);
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = run_json("-m " + path + " -p 'hello' -n 4 --temp 0 --ignore-eos");
  EXPECT_EQ(j["generated_ids"].size(), 4u);
  r = strata("gen-dummy -q --arch llama --shape 100m --layers 1 --type bf16 " + path);
  ASSERT_EQ(r.code, 0) << r.err;
  j = run_json("-m " + path + " -p 'hello' -n 4 --temp 0 --ignore-eos");
  EXPECT_EQ(j["generated_ids"].size(), 4u);
}

}  // namespace
}  // namespace strata::test
