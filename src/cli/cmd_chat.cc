// strata chat: an interactive conversation in the terminal. The reply streams as it is
// generated; the conversation's KV cache stays in the engine between turns (an engine session),
// so each turn prefills only what the cache does not already hold. Ctrl-C stops a reply and
// keeps what was said; /reset, /system, /save and /quit manage the conversation. Line editing
// and history come from libedit when stdin is a terminal; otherwise lines are read plainly.
#include <editline/readline.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/error.h"
#include "engine/chat_template.h"

namespace strata::cli {
namespace {

volatile sig_atomic_t g_interrupted = 0;
void on_sigint(int) {
  g_interrupted = 1;
}

struct ChatOptions {
  ModelOptions m;
  SamplingOptions s;
  std::string system;
  std::string chat_template;
  int64_t n_predict = -1;
  bool ignore_eos = false;
  bool stats = false;
};

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  const size_t b = s.find_first_not_of(ws);
  return b == std::string::npos ? "" : s.substr(b, s.find_last_not_of(ws) - b + 1);
}

class Chat {
 public:
  Chat(const ChatOptions& o, Engine& engine, const Tokenizer& tok, ChatTemplate tmpl)
      : o_(o), engine_(engine), tok_(tok), tmpl_(tmpl) {
    if (!o.system.empty()) messages_.push_back({"system", o.system});
    bos_ = tok.bos() >= 0 ? tok.token_piece(tok.bos()) : "<s>";
    eos_ = tok.eos() >= 0 ? tok.token_piece(tok.eos()) : "</s>";
    seed_ = o.s.params().seed;
  }

  void run() {
    tty_ = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    if (tty_) {
      rl_catch_signals = 0;  // Ctrl-C is ours: it stops a reply rather than the program
      using_history();
      std::printf("strata chat (%s template). /help lists the commands; Ctrl-C stops a reply.\n",
                  tmpl_.name());
      std::fflush(stdout);
    }
    std::string line;
    while (read_line(line)) {
      line = trim(line);
      if (line.empty()) continue;
      if (line[0] == '/') {
        if (!command(line)) return;
        continue;
      }
      reply(line);
    }
  }

 private:
  // False at the end of input. A Ctrl-C at the prompt abandons the line.
  bool read_line(std::string& out) {
    for (;;) {
      g_interrupted = 0;
      if (!tty_) return static_cast<bool>(std::getline(std::cin, out));
      char* l = readline("> ");
      if (!l) {
        if (g_interrupted) {
          std::printf("\n");
          continue;
        }
        std::printf("\n");
        return false;
      }
      out = l;
      std::free(l);
      if (!trim(out).empty()) add_history(out.c_str());
      return true;
    }
  }

  bool command(const std::string& line) {
    const size_t sp = line.find(' ');
    const std::string cmd = line.substr(0, sp);
    const std::string arg = sp == std::string::npos ? "" : trim(line.substr(sp + 1));
    if (cmd == "/quit" || cmd == "/exit") return false;
    if (cmd == "/reset") {
      reset();
      say("(conversation cleared)");
    } else if (cmd == "/system") {
      set_system(arg);
      say(arg.empty() ? "(system message removed)" : "(system message set)");
    } else if (cmd == "/save") {
      if (arg.empty())
        say("usage: /save FILE");
      else
        save(arg);
    } else {
      say("commands: /reset (forget the conversation), /system TEXT (set the system message), "
          "/save FILE (write the conversation as JSON), /quit");
    }
    return true;
  }

  void say(const std::string& s) {
    std::printf("%s\n", s.c_str());
    std::fflush(stdout);
  }

  void reset() {
    engine_.drop_session(session_);
    ++session_;  // a fresh session id: nothing cached
    std::vector<ChatMessage> kept;
    for (auto& m : messages_)
      if (m.role == "system") kept.push_back(m);
    messages_ = std::move(kept);
  }

  void set_system(const std::string& text) {
    std::erase_if(messages_, [](const ChatMessage& m) { return m.role == "system"; });
    if (!text.empty()) messages_.insert(messages_.begin(), ChatMessage{"system", text});
  }

  void save(const std::string& path) {
    nlohmann::json j;
    j["model"] = std::filesystem::path(o_.m.model).filename().string();
    j["chat_template"] = tmpl_.name();
    j["messages"] = nlohmann::json::array();
    for (const auto& m : messages_)
      j["messages"].push_back({{"role", m.role}, {"content", m.content}});
    // Written beside the target and renamed over it, so a crash never leaves half a file.
    const std::string tmp = path + ".tmp." + std::to_string(getpid());
    {
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      f << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      f.close();
      if (!f) {
        std::remove(tmp.c_str());
        say("cannot write " + path);
        return;
      }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      std::remove(tmp.c_str());
      say("cannot write " + path);
      return;
    }
    say("(saved " + std::to_string(messages_.size()) + " messages to " + path + ")");
  }

  void reply(const std::string& user) {
    messages_.push_back({"user", user});
    const std::string text = tmpl_.apply(messages_, true, bos_, eos_);
    Request req;
    req.prompt = tok_.encode(text, tok_.add_bos_default(), /*parse_special=*/true);
    req.max_tokens = o_.n_predict;
    req.sampling = o_.s.p;
    req.sampling.seed = seed_ + turn_++;
    req.stop = tmpl_.stop_strings(eos_);
    req.session = session_;
    req.ignore_eos = o_.ignore_eos;
    const int64_t n_prompt = static_cast<int64_t>(req.prompt.size());
    const int64_t cached = engine_.session_cached_tokens(session_);
    const int64_t prefilled_before = engine_.stats().prompt_tokens;
    int64_t id = 0;
    try {
      id = engine_.add(std::move(req));
    } catch (const Error& e) {
      messages_.pop_back();
      say(std::string("error: ") + e.what() + " (use /reset to start over)");
      return;
    }
    g_interrupted = 0;
    bool cancelled = false;
    std::string said;
    int64_t n_gen = 0;
    const auto t0 = std::chrono::steady_clock::now();
    while (engine_.has_work()) {
      if (g_interrupted && !cancelled) {
        engine_.cancel(id);
        cancelled = true;
      }
      for (const Event& ev : engine_.step()) {
        n_gen += static_cast<int64_t>(ev.tokens.size());
        if (ev.text.empty()) continue;
        std::fwrite(ev.text.data(), 1, ev.text.size(), stdout);
        std::fflush(stdout);
        said += ev.text;
      }
    }
    std::printf(cancelled ? " [stopped]\n" : "\n");
    std::fflush(stdout);
    messages_.push_back({"assistant", trim(said)});
    if (o_.stats) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(
          stderr,
          "[prompt %lld tokens: %lld prefilled, %lld from cache; reply %lld tokens, %.1f tok/s]\n",
          static_cast<long long>(n_prompt),
          static_cast<long long>(engine_.stats().prompt_tokens - prefilled_before),
          static_cast<long long>(cached), static_cast<long long>(n_gen),
          secs > 0 ? n_gen / secs : 0.0);
    }
  }

  const ChatOptions& o_;
  Engine& engine_;
  const Tokenizer& tok_;
  ChatTemplate tmpl_;
  std::vector<ChatMessage> messages_;
  std::string bos_, eos_;
  uint64_t seed_ = 0;
  uint64_t turn_ = 0;
  int64_t session_ = 1;
  bool tty_ = false;
};

void chat(const ChatOptions& o) {
  ChatTemplate tmpl =
      o.chat_template.empty() ? ChatTemplate() : ChatTemplate::named(o.chat_template);
  // Under a budget (--max-ram, --percent) the model opens like `strata run`'s, weights that do
  // not fit streaming from disk; the budget is checked for a whole context (2048 unless -c).
  std::unique_ptr<Runtime> rt;
  Loaded l;
  std::unique_ptr<Engine> own;
  if (o.m.placed()) {
    rt = Runtime::open(o.m.runtime_for_context());
  } else {
    l = load_model(o.m);
    own = std::make_unique<Engine>(*l.model, *l.tokenizer, *l.pool, engine_options(o.m));
  }
  Engine& engine = rt ? rt->engine() : *own;
  const Tokenizer& tok = rt ? rt->tokenizer() : *l.tokenizer;
  if (o.chat_template.empty()) tmpl = ChatTemplate::detect(tok.chat_template());
  // No SA_RESTART: a blocking read at the prompt returns, so Ctrl-C there abandons the line.
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  Chat(o, engine, tok, tmpl).run();
}

}  // namespace

void register_chat(CLI::App& app) {
  auto o = std::make_shared<ChatOptions>();
  CLI::App* cmd = app.add_subcommand("chat", "Chat with a model in the terminal");
  o->m.add(cmd);
  o->s.add(cmd);
  cmd->add_option("--system", o->system, "System message that starts the conversation");
  cmd->add_option("--chat-template", o->chat_template, "Chat template instead of the model's own")
      ->check(CLI::IsMember(ChatTemplate::names()));
  cmd->add_option("-n,--n-predict", o->n_predict, "Most tokens per reply (-1: until the turn ends)")
      ->check(CLI::Range(int64_t(-1), int64_t(1) << 30));
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Keep generating past end-of-sequence tokens");
  cmd->add_flag("--stats", o->stats, "After each reply, print token counts and speed to stderr");
  cmd->callback([o] { chat(*o); });
}

}  // namespace strata::cli
