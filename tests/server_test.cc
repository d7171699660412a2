// strata serve, driven over HTTP as a client would: the real binary on a free loopback port with
// stories260K. Generation is checked against `strata run` (the independent reference for the
// same engine), errors against OpenAI's shape and status codes, and cancellation against the
// server's own KV-cache gauge.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <regex>
#include <thread>

#include "test_support.h"

namespace strata::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::string model_path() {
  return shared_path("models/stories260K-gguf/stories260K.gguf");
}

// A `strata serve` child process on a port of its own choosing (--port 0; read from its log).
class ServerProcess {
 public:
  explicit ServerProcess(std::vector<std::string> args, std::vector<std::string> env = {}) {
    static int n = 0;
    log_ = temp_dir() + "/serve-" + std::to_string(++n) + ".log";
    std::vector<std::string> argv = {strata_binary(), "serve", "-q", "-m", model_path(),
                                     "--port",        "0",     "-t", "2"};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = fork();
    if (pid_ == 0) {
      const int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      for (auto& e : env) putenv(e.data());
      std::vector<char*> cargv;
      for (auto& a : argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      execv(cargv[0], cargv.data());
      _exit(127);
    }
    const std::regex re("listening on http://127\\.0\\.0\\.1:([0-9]+)");
    for (int i = 0; i < 200 && port_ == 0; ++i) {
      std::smatch m;
      const std::string l = log();
      if (std::regex_search(l, m, re))
        port_ = std::stoi(m[1]);
      else
        std::this_thread::sleep_for(50ms);
    }
    if (port_ == 0) ADD_FAILURE() << "server did not start:\n" << log();
  }
  ~ServerProcess() {
    kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (waitpid(pid_, &status_, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << "server did not stop on SIGTERM";
    kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
  }
  std::string log() const {
    std::ifstream f(log_);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  bool alive() { return waitpid(pid_, &status_, WNOHANG) == 0; }
  int port() const { return port_; }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60, 0);
    return c;
  }
  bool wait_ready() {
    for (int i = 0; i < 400; ++i) {
      auto r = client().Get("/health");
      if (r && r->status == 200) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  int status_ = 0;
  std::string log_;
};

struct Reply {
  int status = 0;
  json body;
  std::string raw;
};

Reply to_reply(const httplib::Result& r) {
  Reply out;
  if (!r) return out;
  out.status = r->status;
  out.raw = r->body;
  out.body = json::parse(r->body, nullptr, false);
  return out;
}

Reply post(const ServerProcess& s, const std::string& path, const std::string& body,
           httplib::Headers h = {}) {
  return to_reply(s.client().Post(path.c_str(), h, body, "application/json"));
}
Reply post(const ServerProcess& s, const std::string& path, const json& body) {
  return post(s, path, body.dump());
}
Reply get(const ServerProcess& s, const std::string& path) {
  return to_reply(s.client().Get(path.c_str()));
}

// A streamed answer: the data events in order. on_event may return false to hang up.
struct Streamed {
  int status = 0;
  std::vector<json> chunks;
  bool done = false;
};

Streamed post_stream(const ServerProcess& s, const std::string& path, const json& body,
                     std::function<bool(const json&)> on_event = nullptr) {
  Streamed out;
  std::string buf;
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
    buf.append(d, n);
    for (size_t e; (e = buf.find("\n\n")) != std::string::npos;) {
      const std::string ev = buf.substr(0, e);
      buf.erase(0, e + 2);
      EXPECT_EQ(ev.rfind("data: ", 0), 0u) << ev;
      const std::string data = ev.substr(6);
      if (data == "[DONE]") {
        out.done = true;
        continue;
      }
      EXPECT_FALSE(out.done) << "event after [DONE]";
      out.chunks.push_back(json::parse(data));
      if (on_event && !on_event(out.chunks.back())) return false;
    }
    return true;
  };
  httplib::Response res;
  httplib::Error err;
  auto cli = s.client();
  cli.send(req, res, err);
  out.status = res.status;
  return out;
}

json run_reference(const std::string& args) {
  std::string out;
  EXPECT_EQ(
      run_command(strata_binary() + " run --json -q -t 2 -m " + model_path() + " " + args, &out),
      0);
  return json::parse(out);
}

int64_t metric(const ServerProcess& s, const std::string& name) {
  const Reply r = get(s, "/metrics");
  std::smatch m;
  if (!std::regex_search(r.raw, m, std::regex("\n" + name + " ([0-9.]+)"))) return -1;
  return static_cast<int64_t>(std::stod(m[1]));
}

bool kv_drains(const ServerProcess& s) {
  for (int i = 0; i < 200; ++i) {
    if (metric(s, "strata_kv_cache_blocks_used") == 0 && metric(s, "strata_running_sequences") == 0)
      return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

void expect_error(const Reply& r, int status, const std::string& param = "",
                  const std::string& code = "") {
  EXPECT_EQ(r.status, status) << r.raw;
  ASSERT_TRUE(r.body.is_object()) << r.raw;
  ASSERT_TRUE(r.body.contains("error")) << r.raw;
  const json& e = r.body["error"];
  EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty()) << r.raw;
  EXPECT_TRUE(e["type"].is_string()) << r.raw;
  EXPECT_TRUE(e.contains("param") && e.contains("code")) << r.raw;
  if (!param.empty()) {
    EXPECT_EQ(e["param"], param) << r.raw;
  }
  if (!code.empty()) {
    EXPECT_EQ(e["code"], code) << r.raw;
  }
}

class Server : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess({"--parallel", "4", "--max-body", "65536"});
    ASSERT_TRUE(server_->wait_ready()) << server_->log();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void TearDown() override {
    // Every test leaves the server up, answering, and with its cache empty.
    ASSERT_TRUE(server_->alive()) << server_->log();
    EXPECT_EQ(get(*server_, "/health").status, 200);
  }
  static ServerProcess* server_;
  const ServerProcess& s() { return *server_; }
};
ServerProcess* Server::server_ = nullptr;

TEST_F(Server, HealthModelsAndMetrics) {
  Reply h = get(s(), "/health");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body["status"], "ok");
  Reply m = get(s(), "/v1/models");
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.body["object"], "list");
  ASSERT_EQ(m.body["data"].size(), 1u);
  EXPECT_EQ(m.body["data"][0]["id"], "stories260K");
  EXPECT_EQ(m.body["data"][0]["object"], "model");
  EXPECT_TRUE(m.body["data"][0]["created"].is_number_integer());
  // Requests are counted by the access log, which cpp-httplib calls after the reply is written:
  // a count may appear a moment after its reply.
  auto eventually_counted = [&](const std::string& line) {
    for (int i = 0; i < 200; ++i) {
      if (get(s(), "/metrics").raw.find(line) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };
  EXPECT_TRUE(eventually_counted("strata_requests_total{endpoint=\"/health\",status=\"200\"}"));
  Reply met = get(s(), "/metrics");
  ASSERT_EQ(met.status, 200);
  for (const char* name :
       {"strata_prompt_tokens_total", "strata_generated_tokens_total", "strata_queue_depth",
        "strata_running_sequences", "strata_tokens_per_second", "strata_kv_cache_blocks_used",
        "strata_kv_cache_blocks_total", "# TYPE strata_requests_total counter"})
    EXPECT_NE(met.raw.find(name), std::string::npos) << name << "\n" << met.raw;
  EXPECT_GT(metric(s(), "strata_kv_cache_blocks_total"), 0);
  const int64_t gen0 = metric(s(), "strata_generated_tokens_total");
  post(s(), "/v1/completions",
       json{{"prompt", "Once"}, {"max_tokens", 5}, {"temperature", 0}, {"ignore_eos", true}});
  EXPECT_EQ(metric(s(), "strata_generated_tokens_total"), gen0 + 5);
  EXPECT_TRUE(
      eventually_counted("strata_requests_total{endpoint=\"/v1/completions\",status=\"200\"}"));
}

TEST_F(Server, ErrorsHaveOpenAiShapeAndStatus) {
  expect_error(post(s(), "/v1/completions", std::string("{\"prompt\": ")), 400, "", "invalid_json");
  // A number beyond double's range (json_fuzz found it): 400, not an unhandled exception.
  expect_error(
      post(s(), "/v1/completions", std::string("{\"prompt\": \"x\", \"max_tokens\": 1e999999}")),
      400, "", "invalid_json");
  expect_error(post(s(), "/v1/chat/completions", std::string("[1, 2]")), 400);
  expect_error(post(s(), "/v1/completions", json{{"max_tokens", 4}}), 400, "prompt",
               "missing_required_parameter");
  expect_error(post(s(), "/v1/chat/completions", json::object()), 400, "messages",
               "missing_required_parameter");
  expect_error(post(s(), "/v1/chat/completions", json{{"messages", json::array()}}), 400,
               "messages");
  expect_error(post(s(), "/v1/completions", json{{"prompt", 7}}), 400, "prompt", "invalid_type");
  expect_error(post(s(), "/v1/completions", json{{"prompt", "x"}, {"temperature", "hot"}}), 400,
               "temperature", "invalid_type");
  expect_error(post(s(), "/v1/completions", json{{"prompt", "x"}, {"max_tokens", "ten"}}), 400,
               "max_tokens");
  expect_error(post(s(), "/v1/completions", json{{"prompt", "x"}, {"n", 0}}), 400, "n");
  expect_error(post(s(), "/v1/completions", json{{"prompt", "x"}, {"top_p", 3}}), 400, "top_p");
  expect_error(post(s(), "/v1/completions", json{{"prompt", "x"}, {"stop", json{{"a", 1}}}}), 400,
               "stop");
  expect_error(post(s(), "/v1/completions", json{{"prompt", "x"}, {"stream", "yes"}}), 400,
               "stream");
  expect_error(post(s(), "/v1/completions", json{{"prompt", json::array({1, 2, 100000})}}), 400,
               "prompt");
  expect_error(
      post(s(), "/v1/chat/completions", json{{"messages", json::array({json{{"content", "hi"}}})}}),
      400, "messages[0].role");
  expect_error(post(s(), "/v1/chat/completions",
                    json{{"messages", json::array({json{{"role", "user"}, {"content", 5}}})}}),
               400, "messages[0].content");
  expect_error(post(s(), "/v1/chat/completions",
                    json{{"messages", json::array({json{{"role", "wizard"}, {"content", "hi"}}})}}),
               400, "messages[0].role");
  std::string long_prompt;
  for (int i = 0; i < 800; ++i) long_prompt += "Once upon a time ";
  expect_error(post(s(), "/v1/completions", json{{"prompt", long_prompt}}), 400, "prompt",
               "context_length_exceeded");
  expect_error(
      post(s(), "/v1/chat/completions",
           json{{"messages", json::array({json{{"role", "user"}, {"content", long_prompt}}})}}),
      400, "messages", "context_length_exceeded");
  expect_error(post(s(), "/tokenize", json{{"content", 3}}), 400, "content");
  expect_error(post(s(), "/detokenize", json{{"tokens", "abc"}}), 400, "tokens");
  // The server is still fine and generates after all that.
  Reply ok = post(s(), "/v1/completions", json{{"prompt", "Once"}, {"max_tokens", 3}});
  EXPECT_EQ(ok.status, 200) << ok.raw;
}

TEST_F(Server, BodyOverLimitRoutesAndMethods) {
  std::string big = json{{"prompt", std::string(70000, 'a')}}.dump();
  expect_error(post(s(), "/v1/completions", big), 413, "", "request_too_large");
  // Form-encoded bodies (curl -d without a content type) get the same limit, not httplib's 8 KiB.
  auto r = s().client().Post("/tokenize", json{{"content", std::string(20000, 'a')}}.dump(),
                             "application/x-www-form-urlencoded");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  expect_error(get(s(), "/v1/nothing-here"), 404, "", "not_found");
  expect_error(post(s(), "/v1/embeddings", json{{"input", "x"}}), 404);
  expect_error(get(s(), "/v1/completions"), 405, "", "method_not_allowed");
  expect_error(post(s(), "/health", std::string("{}")), 405);
  expect_error(to_reply(s().client().Delete("/v1/models")), 405);
}

TEST_F(Server, TokenizeAndDetokenizeRoundTrip) {
  const json ref = run_reference("-p 'Once upon a time' -n 1 --temp 0");
  Reply t = post(s(), "/tokenize", json{{"content", "Once upon a time"}, {"add_special", true}});
  ASSERT_EQ(t.status, 200) << t.raw;
  EXPECT_EQ(t.body["tokens"], ref["prompt_ids"]);
  Reply t2 = post(s(), "/tokenize", json{{"content", "Once upon a time"}});
  ASSERT_EQ(t2.body["tokens"].size() + 1, ref["prompt_ids"].size());  // no BOS unless asked
  Reply d = post(s(), "/detokenize", json{{"tokens", t.body["tokens"]}});
  ASSERT_EQ(d.status, 200) << d.raw;
  EXPECT_EQ(d.body["content"], "Once upon a time");
}

TEST_F(Server, GreedyCompletionMatchesRun) {
  const json ref = run_reference("-p 'Once upon a time' -n 40 --temp 0");
  Reply r = post(s(), "/v1/completions",
                 json{{"model", "anything"},
                      {"prompt", "Once upon a time"},
                      {"max_tokens", 40},
                      {"temperature", 0}});
  ASSERT_EQ(r.status, 200) << r.raw;
  const json& b = r.body;
  EXPECT_EQ(b["object"], "text_completion");
  EXPECT_EQ(b["id"].get<std::string>().rfind("cmpl-", 0), 0u);
  EXPECT_EQ(b["model"], "anything");
  EXPECT_TRUE(b["created"].is_number_integer());
  EXPECT_TRUE(b["system_fingerprint"].is_string());
  ASSERT_EQ(b["choices"].size(), 1u);
  EXPECT_EQ(b["choices"][0]["text"], ref["text"]);
  EXPECT_EQ(b["choices"][0]["finish_reason"], ref["finish_reason"]);
  EXPECT_EQ(b["choices"][0]["index"], 0);
  EXPECT_TRUE(b["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(b["usage"]["completion_tokens"], ref["generated_ids"].size());
  EXPECT_EQ(b["usage"]["prompt_tokens"], ref["prompt_ids"].size());
  EXPECT_EQ(b["usage"]["total_tokens"], ref["generated_ids"].size() + ref["prompt_ids"].size());
  // Token-id prompts are used as they are.
  Reply ids = post(s(), "/v1/completions",
                   json{{"prompt", ref["prompt_ids"]}, {"max_tokens", 40}, {"temperature", 0}});
  EXPECT_EQ(ids.body["choices"][0]["text"], ref["text"]) << ids.raw;
}

std::string concat(const Streamed& st, bool chat, int index = 0) {
  std::string s;
  for (const auto& c : st.chunks)
    for (const auto& ch : c["choices"])
      if (ch["index"] == index) {
        if (chat && ch["delta"].contains("content")) s += ch["delta"]["content"].get<std::string>();
        if (!chat) s += ch["text"].get<std::string>();
      }
  return s;
}

TEST_F(Server, StreamingConcatenatesToTheSameTextAndEndsWithDone) {
  const json body = {{"prompt", "Once upon a time"}, {"max_tokens", 40}, {"temperature", 0}};
  Reply whole = post(s(), "/v1/completions", body);
  json sb = body;
  sb["stream"] = true;
  Streamed st = post_stream(s(), "/v1/completions", sb);
  EXPECT_EQ(st.status, 200);
  EXPECT_TRUE(st.done);
  ASSERT_GT(st.chunks.size(), 2u);
  EXPECT_EQ(concat(st, false), whole.body["choices"][0]["text"]);
  for (const auto& c : st.chunks) {
    EXPECT_EQ(c["object"], "text_completion");
    EXPECT_FALSE(c.contains("usage"));
  }
  EXPECT_EQ(st.chunks.back()["choices"][0]["finish_reason"],
            whole.body["choices"][0]["finish_reason"]);

  // Chat, with usage in a last chunk that has no choices.
  const json chat = {
      {"messages", json::array({json{{"role", "user"}, {"content", "Tell me a story."}}})},
      {"max_tokens", 30},
      {"temperature", 0}};
  Reply cw = post(s(), "/v1/chat/completions", chat);
  ASSERT_EQ(cw.status, 200) << cw.raw;
  json cs = chat;
  cs["stream"] = true;
  cs["stream_options"] = {{"include_usage", true}};
  Streamed cst = post_stream(s(), "/v1/chat/completions", cs);
  EXPECT_TRUE(cst.done);
  ASSERT_GT(cst.chunks.size(), 2u);
  EXPECT_EQ(cst.chunks.front()["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(concat(cst, true), cw.body["choices"][0]["message"]["content"]);
  const json& last = cst.chunks.back();
  EXPECT_TRUE(last["choices"].empty());
  EXPECT_EQ(last["usage"], cw.body["usage"]);
  for (size_t i = 0; i + 1 < cst.chunks.size(); ++i) {
    EXPECT_EQ(cst.chunks[i]["object"], "chat.completion.chunk");
    EXPECT_TRUE(cst.chunks[i]["usage"].is_null());
    EXPECT_EQ(cst.chunks[i]["id"], last["id"]);
  }
  EXPECT_EQ(cst.chunks[cst.chunks.size() - 2]["choices"][0]["finish_reason"],
            cw.body["choices"][0]["finish_reason"]);
}

TEST_F(Server, ChatGreedyMatchesRunOnTheTemplatedPrompt) {
  // stories260K has no chat template: the plain one applies, and generation stops at "\nUser:".
  const std::string prompt_file = temp_dir() + "/chat_prompt.txt";
  std::ofstream(prompt_file) << "Be nice.\n\nUser: Tell me a story.\nAssistant:";
  const json ref =
      run_reference("-f " + prompt_file + " -n 48 --temp 0 --stop \"$(printf '\\nUser:')\"");
  json msgs = json::array({json{{"role", "system"}, {"content", "Be nice."}},
                           json{{"role", "user"}, {"content", "Tell me a story."}}});
  Reply r = post(s(), "/v1/chat/completions",
                 json{{"messages", msgs}, {"max_tokens", 48}, {"temperature", 0}});
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["object"], "chat.completion");
  EXPECT_EQ(r.body["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(r.body["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(r.body["choices"][0]["message"]["content"], ref["text"]);
  EXPECT_EQ(r.body["choices"][0]["finish_reason"], ref["finish_reason"]);
  EXPECT_EQ(r.body["usage"]["prompt_tokens"], ref["prompt_ids"].size());
  EXPECT_EQ(r.body["usage"]["completion_tokens"], ref["generated_ids"].size());
  // An array of text parts is accepted too.
  msgs[1]["content"] = json::array({json{{"type", "text"}, {"text", "Tell me a story."}}});
  Reply parts = post(s(), "/v1/chat/completions",
                     json{{"messages", msgs}, {"max_tokens", 48}, {"temperature", 0}});
  EXPECT_EQ(parts.body["choices"][0]["message"]["content"], ref["text"]) << parts.raw;
}

TEST_F(Server, SeveralChoicesAndPrompts) {
  Reply r = post(
      s(), "/v1/completions",
      json{{"prompt", "Once"}, {"max_tokens", 12}, {"n", 2}, {"seed", 5}, {"ignore_eos", true}});
  ASSERT_EQ(r.status, 200) << r.raw;
  ASSERT_EQ(r.body["choices"].size(), 2u);
  EXPECT_EQ(r.body["choices"][0]["index"], 0);
  EXPECT_EQ(r.body["choices"][1]["index"], 1);
  EXPECT_NE(r.body["choices"][0]["text"], r.body["choices"][1]["text"]);  // different draws
  EXPECT_EQ(r.body["usage"]["completion_tokens"], 24);
  // The same seed reproduces the same choices.
  Reply again = post(
      s(), "/v1/completions",
      json{{"prompt", "Once"}, {"max_tokens", 12}, {"n", 2}, {"seed", 5}, {"ignore_eos", true}});
  EXPECT_EQ(again.body["choices"], r.body["choices"]);
  // Streamed n=2 interleaves both choices, each ending with its finish_reason.
  Streamed st =
      post_stream(s(), "/v1/chat/completions",
                  json{{"messages", json::array({json{{"role", "user"}, {"content", "Hi"}}})},
                       {"max_tokens", 6},
                       {"n", 2},
                       {"temperature", 0},
                       {"stream", true}});
  EXPECT_TRUE(st.done);
  EXPECT_EQ(concat(st, true, 0), concat(st, true, 1));  // greedy: the same text twice
  // Several prompts give one choice each, in order.
  const json a = run_reference("-p 'Once' -n 8 --temp 0"),
             b = run_reference("-p 'Lily' -n 8 --temp 0");
  Reply multi = post(s(), "/v1/completions",
                     json{{"prompt", {"Once", "Lily"}}, {"max_tokens", 8}, {"temperature", 0}});
  ASSERT_EQ(multi.body["choices"].size(), 2u) << multi.raw;
  EXPECT_EQ(multi.body["choices"][0]["text"], a["text"]);
  EXPECT_EQ(multi.body["choices"][1]["text"], b["text"]);
}

TEST_F(Server, StopStrings) {
  const json ref = run_reference("-p '' -n 64 --temp 0 --stop Lily");
  Reply r = post(s(), "/v1/completions",
                 json{{"prompt", ""}, {"max_tokens", 64}, {"temperature", 0}, {"stop", "Lily"}});
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["choices"][0]["text"], ref["text"]);
  EXPECT_EQ(r.body["choices"][0]["finish_reason"], "stop");
  Reply list = post(
      s(), "/v1/completions",
      json{{"prompt", ""}, {"max_tokens", 64}, {"temperature", 0}, {"stop", {"zebra", "Lily"}}});
  EXPECT_EQ(list.body["choices"][0]["text"], ref["text"]);
}

TEST_F(Server, ChatLogprobsShape) {
  Reply r = post(s(), "/v1/chat/completions",
                 json{{"messages", json::array({json{{"role", "user"}, {"content", "Hi"}}})},
                      {"max_tokens", 8},
                      {"temperature", 0},
                      {"logprobs", true},
                      {"top_logprobs", 3},
                      {"ignore_eos", true}});
  ASSERT_EQ(r.status, 200) << r.raw;
  const json& content = r.body["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 8u);
  std::string text;
  for (const json& t : content) {
    EXPECT_LE(t["logprob"].get<double>(), 0.0);
    const std::string tok = t["token"];
    ASSERT_EQ(t["bytes"].size(), tok.size());
    for (size_t i = 0; i < tok.size(); ++i)
      EXPECT_EQ(t["bytes"][i], static_cast<unsigned char>(tok[i]));
    ASSERT_EQ(t["top_logprobs"].size(), 3u);
    // Greedy: the chosen token is the most likely one, and the list is sorted.
    EXPECT_EQ(t["top_logprobs"][0]["token"], t["token"]);
    EXPECT_NEAR(t["top_logprobs"][0]["logprob"].get<double>(), t["logprob"].get<double>(), 1e-4);
    EXPECT_GE(t["top_logprobs"][0]["logprob"].get<double>(),
              t["top_logprobs"][1]["logprob"].get<double>());
    text += tok;
  }
  EXPECT_EQ(text, r.body["choices"][0]["message"]["content"]);
}

TEST_F(Server, CompletionLogprobsShape) {
  Reply r = post(s(), "/v1/completions",
                 json{{"prompt", "Once upon a time"},
                      {"max_tokens", 10},
                      {"temperature", 0},
                      {"logprobs", 2},
                      {"ignore_eos", true}});
  ASSERT_EQ(r.status, 200) << r.raw;
  const json& lp = r.body["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 10u);
  ASSERT_EQ(lp["token_logprobs"].size(), 10u);
  ASSERT_EQ(lp["top_logprobs"].size(), 10u);
  ASSERT_EQ(lp["text_offset"].size(), 10u);
  std::string text;
  int64_t offset = std::string("Once upon a time").size();
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(lp["text_offset"][i], offset);
    const std::string tok = lp["tokens"][i];
    offset += static_cast<int64_t>(tok.size());
    text += tok;
    EXPECT_EQ(lp["top_logprobs"][i].size(), 2u);
    EXPECT_NEAR(lp["top_logprobs"][i][tok].get<double>(), lp["token_logprobs"][i].get<double>(),
                1e-4);
  }
  EXPECT_EQ(text, r.body["choices"][0]["text"]);
}

TEST_F(Server, ConcurrentRequestsMatchSequentialOnes) {
  const std::vector<std::string> prompts = {"Once upon a time", "Lily", "The dog", "One day"};
  std::vector<std::string> alone;
  for (const auto& p : prompts)
    alone.push_back(
        post(s(), "/v1/completions", json{{"prompt", p}, {"max_tokens", 30}, {"temperature", 0}})
            .body["choices"][0]["text"]);
  std::vector<std::future<Reply>> fs;
  for (const auto& p : prompts)
    fs.push_back(std::async(std::launch::async, [&, p] {
      return post(s(), "/v1/completions",
                  json{{"prompt", p}, {"max_tokens", 30}, {"temperature", 0}});
    }));
  for (size_t i = 0; i < fs.size(); ++i)
    EXPECT_EQ(fs[i].get().body["choices"][0]["text"], alone[i]) << prompts[i];
}

TEST_F(Server, DisconnectMidStreamCancelsAndFreesTheCache) {
  int seen = 0;
  bool kv_in_use = false;
  Streamed st = post_stream(
      s(), "/v1/completions",
      json{{"prompt", "Once"}, {"max_tokens", 1500}, {"ignore_eos", true}, {"stream", true}},
      [&](const json&) {
        if (++seen == 20) kv_in_use = metric(s(), "strata_kv_cache_blocks_used") > 0;
        return seen < 20;
      });
  EXPECT_FALSE(st.done);
  EXPECT_TRUE(kv_in_use);
  EXPECT_TRUE(kv_drains(s())) << get(s(), "/metrics").raw;
}

TEST_F(Server, DisconnectBeforeTheAnswerCancelsAndFreesTheCache) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(s().port()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  const std::string body =
      json{{"prompt", "Once"}, {"max_tokens", 1500}, {"ignore_eos", true}}.dump();
  const std::string req =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
      "application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  ASSERT_EQ(write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  bool running = false;
  for (int i = 0; i < 100 && !running; ++i) {
    running = metric(s(), "strata_running_sequences") == 1;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(running);
  close(fd);
  EXPECT_TRUE(kv_drains(s())) << get(s(), "/metrics").raw;
  EXPECT_NE(get(s(), "/metrics").raw.find("endpoint=\"/v1/completions\",status=\"499\""),
            std::string::npos);
}

// A model served under a placement: half the weights stream from disk every step (as a model
// larger than RAM would), the KV cache is in RAM, and the answers are still `strata run`'s.
TEST(ServerOptions, ServesWithWeightsStreamedFromDisk) {
  const std::string dir = temp_dir() + "/serve-offload";
  std::filesystem::create_directories(dir);
  ServerProcess srv(
      {"--parallel", "3", "--percent", "0", "50", "0", "100", "0", "100", "--offload-dir", dir});
  ASSERT_TRUE(srv.wait_ready()) << srv.log();
  EXPECT_NE(srv.log().find("3 parallel sequences"), std::string::npos) << srv.log();
  const json ref = run_reference("-p 'Once upon a time' -n 24 --temp 0");
  std::vector<std::future<Reply>> replies;
  for (int i = 0; i < 3; ++i)
    replies.push_back(std::async(std::launch::async, [&] {
      return post(srv, "/v1/completions",
                  json{{"prompt", "Once upon a time"}, {"max_tokens", 24}, {"temperature", 0}});
    }));
  for (auto& f : replies) {
    Reply r = f.get();
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body["choices"][0]["text"], ref["text"]);
  }
}

TEST(ServerOptions, ApiKeyAndQueueLimit) {
  // Steps slowed to 20 ms: the two held streams cannot finish before the test has seen both in
  // flight, however fast the machine or however loaded by other tests.
  ServerProcess srv({"--api-key", "sekret", "--parallel", "1", "--queue-limit", "1"},
                    {"STRATA_SERVE_TEST_STEP_DELAY_MS=20"});
  ASSERT_TRUE(srv.wait_ready()) << srv.log();
  const std::string body = json{{"prompt", "Once"}, {"max_tokens", 3}}.dump();
  expect_error(post(srv, "/v1/completions", body), 401, "", "invalid_api_key");
  expect_error(post(srv, "/v1/completions", body, {{"Authorization", "Bearer wrong"}}), 401, "",
               "invalid_api_key");
  expect_error(post(srv, "/v1/models", std::string(), {{"Authorization", "Bearer wrong"}}), 401);
  const httplib::Headers auth = {{"Authorization", "Bearer sekret"}};
  EXPECT_EQ(post(srv, "/v1/completions", body, auth).status, 200);
  EXPECT_EQ(get(srv, "/health").status, 200);  // health needs no key

  // One running and one queued fill --parallel 1 + --queue-limit 1; a third request gets 429.
  std::atomic<bool> stop{false};
  auto hold = [&] {
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.headers = auth;
    req.body =
        json{{"prompt", "Once"}, {"max_tokens", 1800}, {"ignore_eos", true}, {"stream", true}}
            .dump();
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return !stop.load(); };
    httplib::Response res;
    httplib::Error err;
    auto cli = srv.client();
    cli.send(req, res, err);
  };
  std::thread t1(hold), t2(hold);
  // Up to 10 s for both to be admitted (ctest -j2 may run a two-thread test beside this one).
  bool full = false;
  std::string metrics;
  for (int i = 0; i < 1000 && !full; ++i) {
    auto r = srv.client().Get("/metrics", auth);
    metrics = r ? r->body : "(no reply)";
    full = metrics.find("\nstrata_requests_in_flight 2") != std::string::npos;
    if (!full) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(full) << metrics << srv.log();
  expect_error(post(srv, "/v1/completions", body, auth), 429, "", "queue_full");
  stop = true;
  t1.join();
  t2.join();
  bool back = false;
  int last = 0;
  for (int i = 0; i < 200 && !back; ++i) {
    last = post(srv, "/v1/completions", body, auth).status;
    back = last == 200;
    if (!back) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(back) << "last status " << last << "\n" << srv.log();
  EXPECT_TRUE(srv.alive());
}

TEST(ServerOptions, HealthIs503WhileTheModelLoads) {
  ServerProcess srv({}, {"STRATA_SERVE_TEST_LOAD_DELAY_MS=1500"});
  Reply h = get(srv, "/health");
  expect_error(h, 503, "", "model_loading");
  expect_error(post(srv, "/v1/completions", json{{"prompt", "x"}}), 503);
  expect_error(get(srv, "/v1/models"), 503);
  ASSERT_TRUE(srv.wait_ready()) << srv.log();
  EXPECT_EQ(post(srv, "/v1/completions", json{{"prompt", "Once"}, {"max_tokens", 2}}).status, 200);
}

TEST(ServerOptions, BadModelExitsWithAnError) {
  std::string out;
  const int rc =
      run_command(strata_binary() + " serve -q --port 0 -m /nonexistent.gguf", &out, true);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("error: cannot load the model"), std::string::npos) << out;
}

}  // namespace
}  // namespace strata::test
