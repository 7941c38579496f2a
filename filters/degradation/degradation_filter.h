#pragma once
// The degradation filter (DESIGN section 6), second in the chain (after fault injection):
// level 1 sheds `tier: noncore` routes, 2 also refuses methods outside `read_only_methods`,
// 3 answers every routed request from the route's fallback chain (or refuses it), 4 answers
// everything with the maintenance response. Refusals are 503 with Retry-After and
// x-levee-reason: degraded; where the route's `fallback.on` has `degraded`, the refusal is
// handed to the router's fallback chain first (which never touches an upstream for it).
// Added to a stream only while the level is above 0 (the worker checks), so level 0 costs one
// atomic load per request.

#include <array>

#include "config/policy.h"
#include "filters/degradation/degradation_state.h"
#include "proxy/api/http/filter.h"
#include "proxy/stats/store.h"

namespace levee::filters::degradation {

// levee_degradation_shed_total{route,level} of one route, by level (index 1..4).
using ShedCounters = std::array<stats::Counter*, kMaxLevel + 1>;

class DegradationFilter final : public http::DecoderFilter {
public:
  // `route` is null when no route matched (only level 4 answers those); `counters` may be null.
  DegradationFilter(uint32_t level, const config::DegradationConfig& config, const config::Route* route,
                    const ShedCounters* counters)
      : level_(level), config_(config), route_(route), counters_(counters) {}

  void setDecoderCallbacks(http::DecoderFilterCallbacks& cb) override { cb_ = &cb; }
  http::FilterHeadersStatus decodeHeaders(http::RequestHead& head, bool end_stream) override;
  http::FilterDataStatus decodeData(const char*, size_t, bool) override {
    return http::FilterDataStatus::Continue;
  }
  void onDestroy() override {}

  // What level `level` does to a request (exposed for tests).
  enum class Action { Pass, Refuse, RefuseOrFallback, Maintenance };
  static Action decide(uint32_t level, const config::DegradationConfig& config, const config::Route* route,
                       std::string_view method);

private:
  void maintenance();

  uint32_t level_;
  const config::DegradationConfig& config_;
  const config::Route* route_;
  const ShedCounters* counters_;
  http::DecoderFilterCallbacks* cb_{nullptr};
};

}  // namespace levee::filters::degradation
