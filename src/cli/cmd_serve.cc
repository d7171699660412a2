// strata serve: the OpenAI-compatible HTTP server (see serve/server.h).
#include "cli/commands.h"
#include "cli/common.h"
#include "core/progress.h"
#include "engine/chat_template.h"
#include "serve/server.h"

namespace strata::cli {
namespace {

struct ServeCliOptions {
  ModelOptions m;
  serve::ServeOptions s;
};

}  // namespace

void register_serve(CLI::App& app) {
  auto o = std::make_shared<ServeCliOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve a model over an OpenAI-compatible HTTP API");
  o->m.add(cmd);
  serve::ServeOptions& s = o->s;
  cmd->add_option("--host", s.host, "Address to listen on (default: loopback only)");
  cmd->add_option("--port", s.port, "Port (0: any free port)")->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", s.api_key,
                  "Require 'Authorization: Bearer KEY' on every request but /health");
  cmd->add_option("--parallel", s.parallel, "Sequences generated together (batch size)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--queue-limit", s.queue_limit,
                  "Requests that may wait for a slot; more get HTTP 429")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--max-body", s.max_body, "Largest request body in bytes (HTTP 413 above)")
      ->check(CLI::Range(size_t(1024), size_t(1) << 32));
  cmd->add_option(
         "--chat-template", s.chat_template,
         "Chat template to use instead of the model's own: " +
             [] {
               std::string n;
               for (const auto& x : ChatTemplate::names()) n += (n.empty() ? "" : ", ") + x;
               return n;
             }())
      ->check(CLI::IsMember(ChatTemplate::names()));
  cmd->callback([o] {
    serve::ServeOptions s = o->s;
    s.model_path = o->m.model;
    s.ctx_size = o->m.ctx_size;
    s.threads = o->m.threads;
    s.kv_dtype = engine_options(o->m).kv_dtype;
    s.progress = !o->m.quiet;
    s.mmap = o->m.mmap;
    if (o->m.quiet) Progress::set_enabled(false);
    if (o->m.placed()) {
      // Served under a budget: checked for a block of --parallel sequences of the whole context.
      RuntimeOptions r = o->m.runtime_for_context();
      if (!o->m.batch_given()) r.gpu_batch_size = s.parallel;
      s.placement = r;
    }
    serve::run_server(s);
  });
}

}  // namespace strata::cli
