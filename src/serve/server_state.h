// State shared by the HTTP handlers: options, metrics (which also count the generation requests
// being served, for --queue-limit) and the scheduler.
#pragma once
#include <cstdint>

#include "serve/api_error.h"
#include "serve/metrics.h"
#include "serve/scheduler.h"
#include "serve/server.h"

namespace strata::serve {

struct ServerState {
  explicit ServerState(const ServeOptions& o)
      : opts(o),
        sched(SchedulerOptions{o.model_path, o.threads, o.ctx_size, o.parallel, o.kv_dtype,
                               o.chat_template, o.progress, o.placement, o.mmap},
              metrics) {}

  // The loaded model's facts; 503 while it is still loading (or failed to load).
  const ModelInfo& ready_info() const {
    if (sched.state() != Scheduler::State::Ready)
      throw ApiError(503,
                     sched.state() == Scheduler::State::Failed
                         ? "the model failed to load: " + sched.load_error()
                         : "Loading model",
                     "unavailable_error", "", "model_loading");
    return sched.info();
  }

  ServeOptions opts;
  Metrics metrics;
  Scheduler sched;
};

}  // namespace strata::serve
