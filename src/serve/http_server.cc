// The HTTP side of strata serve: routes, API-key check, OpenAI-shaped errors for everything that
// goes wrong (including what cpp-httplib rejects itself: 404, 413, malformed HTTP), request
// metrics, and the listen / signal / shutdown sequence.
#include <httplib.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>

#include "core/error.h"
#include "serve/basic_endpoints.h"
#include "serve/completions.h"
#include "serve/openai_response.h"
#include "serve/server.h"
#include "serve/server_state.h"
#include "serve/task_queue.h"

namespace strata::serve {
namespace {

using Req = httplib::Request;
using Res = httplib::Response;

struct Route {
  const char* method;
  const char* path;
};
constexpr Route kRoutes[] = {{"GET", "/health"},          {"GET", "/v1/models"},
                             {"GET", "/metrics"},         {"POST", "/v1/chat/completions"},
                             {"POST", "/v1/completions"}, {"POST", "/tokenize"},
                             {"POST", "/detokenize"}};

// Metrics label: the route, or "other" so that random paths cannot grow the label set.
std::string endpoint_label(const std::string& path) {
  for (const Route& r : kRoutes)
    if (path == r.path) return path;
  return "other";
}

void send_error(Res& res, const ApiError& e) {
  res.status = e.status();
  res.set_content(dump(e.body()), "application/json");
}

// Runs a handler, turning what it throws into an OpenAI error response.
template <class F>
void guarded(Res& res, F&& f) {
  try {
    f();
  } catch (const ApiError& e) {
    send_error(res, e);
  } catch (const Error& e) {  // strata errors are caused by the input
    send_error(res, ApiError(400, e.what()));
  } catch (const std::exception& e) {
    send_error(res, ApiError(500, e.what(), "server_error"));
  }
}

httplib::Server::Handler wrap(ServerState& st, void (*h)(ServerState&, const Req&, Res&)) {
  return [&st, h](const Req& req, Res& res) { guarded(res, [&] { h(st, req, res); }); };
}

using BodyHandler = std::function<void(ServerState&, const Req&, const std::string&, Res&)>;

// POST handlers read the body themselves: cpp-httplib would otherwise cap bodies sent as
// application/x-www-form-urlencoded (curl -d's default) at 8 KiB, whatever --max-body says.
httplib::Server::HandlerWithContentReader wrap_post(ServerState& st, BodyHandler h) {
  return [&st, h = std::move(h)](const Req& req, Res& res, const httplib::ContentReader& reader) {
    guarded(res, [&] {
      if (req.is_multipart_form_data())
        throw ApiError(400, "the request body must be JSON, not multipart form data",
                       "invalid_request_error", "", "invalid_json");
      std::string body;
      bool too_big = false;
      const bool ok = reader([&](const char* data, size_t n) {
        if (body.size() + n > st.opts.max_body) {
          too_big = true;
          return false;
        }
        body.append(data, n);
        return true;
      });
      if (too_big || res.status == 413)
        throw ApiError(413, "The request body is larger than the server's limit (--max-body)",
                       "invalid_request_error", "", "request_too_large");
      if (!ok)
        throw ApiError(400, "could not read the request body", "invalid_request_error", "",
                       "bad_request");
      h(st, req, body, res);
    });
  };
}

// Unknown routes: 405 when the path exists under another method, else 404 (as OpenAI words it).
void fallback(const Req& req, Res& res) {
  std::string allow;
  for (const Route& r : kRoutes)
    if (req.path == r.path) allow = r.method;
  if (!allow.empty()) {
    res.set_header("Allow", allow);
    send_error(res, ApiError(405,
                             "Method " + req.method + " is not allowed for " + req.path + " (use " +
                                 allow + ")",
                             "invalid_request_error", "", "method_not_allowed"));
    return;
  }
  send_error(res, ApiError(404, "Invalid URL (" + req.method + " " + req.path + ")",
                           "invalid_request_error", "", "not_found"));
}

bool key_ok(const Req& req, const std::string& key) {
  const std::string want = "Bearer " + key;
  const std::string got = req.get_header_value("Authorization");
  // Compare without an early exit so the time taken does not reveal how much matched.
  unsigned diff = got.size() != want.size();
  for (size_t i = 0; i < want.size(); ++i)
    diff |= static_cast<unsigned>(want[i] ^ (i < got.size() ? got[i] : 0));
  return diff == 0;
}

// Bodies for the errors cpp-httplib produces before any handler runs.
ApiError httplib_error(const Req& req, int status) {
  switch (status) {
    case 413:
      return ApiError(413, "The request body is larger than the server's limit (--max-body)",
                      "invalid_request_error", "", "request_too_large");
    case 404:
      return ApiError(404, "Invalid URL (" + req.method + " " + req.path + ")",
                      "invalid_request_error", "", "not_found");
    case 400:
      return ApiError(400, "Malformed HTTP request", "invalid_request_error", "", "bad_request");
    default:
      return ApiError(status, "HTTP error " + std::to_string(status),
                      status >= 500 ? "server_error" : "invalid_request_error");
  }
}

// cpp-httplib listens with a backlog of 5 (a compile-time constant of the shared library), so a
// burst of new connections overflows the accept queue and clients wait for SYN retries (1 s,
// then 3 s...). listen() again on the bound socket raises the backlog (Linux allows it).
class HttpServer : public httplib::Server {
 public:
  void raise_backlog() { ::listen(svr_sock_, SOMAXCONN); }
};

void setup_routes(httplib::Server& svr, ServerState& st) {
  svr.Get("/health", wrap(st, handle_health));
  svr.Get("/v1/models", wrap(st, handle_models));
  svr.Get("/metrics", wrap(st, handle_metrics));
  svr.Post("/tokenize", wrap_post(st, handle_tokenize));
  svr.Post("/detokenize", wrap_post(st, handle_detokenize));
  svr.Post("/v1/chat/completions",
           wrap_post(st, [](ServerState& s, const Req& q, const std::string& b, Res& r) {
             handle_completions(s, q, b, r, true);
           }));
  svr.Post("/v1/completions", wrap_post(st, [](ServerState& s, const Req& q, const std::string& b,
                                               Res& r) { handle_completions(s, q, b, r, false); }));
  svr.Get(".*", fallback);
  svr.Post(".*", fallback);
  svr.Put(".*", fallback);
  svr.Patch(".*", fallback);
  svr.Delete(".*", fallback);
  svr.Options(".*", fallback);

  svr.set_pre_routing_handler([&st](const Req& req, Res& res) {
    if (st.opts.api_key.empty() || req.path == "/health" || key_ok(req, st.opts.api_key))
      return httplib::Server::HandlerResponse::Unhandled;
    send_error(
        res,
        ApiError(401, "Incorrect or missing API key. Send it as 'Authorization: Bearer <key>'.",
                 "invalid_request_error", "", "invalid_api_key"));
    return httplib::Server::HandlerResponse::Handled;
  });
  svr.set_error_handler(httplib::Server::HandlerWithResponse([](const Req& req, Res& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, httplib_error(req, res.status));
    return httplib::Server::HandlerResponse::Handled;
  }));
  svr.set_exception_handler([](const Req&, Res& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, ApiError(500, what, "server_error"));
  });
  svr.set_logger([&st](const Req& req, const Res& res) {
    st.metrics.count_request(endpoint_label(req.path), res.status);
  });
}

}  // namespace

void run_server(const ServeOptions& o) {
  // Writes to a client that has gone must fail with EPIPE, not kill the process.
  signal(SIGPIPE, SIG_IGN);
  // glibc gives each thread that allocates its own arena (up to 8 per core); with a thread per
  // connection that spreads small allocations over many arenas whose free space is not shared,
  // so RSS creeps up for a long time after start. A few arenas are plenty for this workload.
  mallopt(M_ARENA_MAX, 4);
  // SIGINT/SIGTERM are taken by the watcher thread below; every thread started from here on
  // inherits the blocked mask.
  sigset_t stop_sigs, old_mask;
  sigemptyset(&stop_sigs);
  sigaddset(&stop_sigs, SIGINT);
  sigaddset(&stop_sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_sigs, &old_mask);

  ServerState st(o);
  HttpServer svr;
  // Every open connection (a stream, a waiting request, an idle keep-alive) holds a thread.
  const size_t n_threads =
      std::clamp<size_t>(size_t(o.parallel) + size_t(o.queue_limit) + 16, 32, 1024);
  svr.new_task_queue = [n_threads] { return new LifoTaskQueue(n_threads); };
  svr.set_payload_max_length(o.max_body);
  svr.set_keep_alive_max_count(1000);
  svr.set_read_timeout(30);
  svr.set_write_timeout(30);
  svr.set_tcp_nodelay(true);  // stream chunks leave at once
  setup_routes(svr, st);

  int port = o.port;
  if (port == 0)
    port = svr.bind_to_any_port(o.host);
  else if (!svr.bind_to_port(o.host, port))
    port = -1;
  if (port < 0) {
    pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    fail("cannot listen on {}:{} (address in use, or not an address of this machine)", o.host,
         o.port);
  }
  svr.raise_backlog();
  std::fprintf(stderr, "strata serve: listening on http://%s:%d (loading %s)\n", o.host.c_str(),
               port, o.model_path.c_str());
  std::fflush(stderr);

  std::atomic<bool> listen_done{false}, load_failed{false};
  std::thread watcher([&] {
    bool stopping = false;
    while (!listen_done) {
      const timespec tick{0, 100'000'000};
      const int sig = sigtimedwait(&stop_sigs, nullptr, &tick);
      if ((sig == SIGINT || sig == SIGTERM || load_failed) && !stopping) {
        stopping = true;
        st.sched.stop();  // open requests end with an error, so their handlers return
      }
      if (stopping && svr.is_running()) svr.stop();
    }
  });
  st.sched.start([&](const std::string& err) {
    std::fprintf(stderr, "strata serve: cannot load the model: %s\n", err.c_str());
    load_failed = true;
  });
  svr.listen_after_bind();
  listen_done = true;
  watcher.join();
  st.sched.stop();
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  if (load_failed) fail("cannot load the model: {}", st.sched.load_error());
}

}  // namespace strata::serve
