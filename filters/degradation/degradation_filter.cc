#include "filters/degradation/degradation_filter.h"

#include <algorithm>
#include <string>

#include "proxy/http/header_map.h"
#include "proxy/http/stream_info.h"

namespace levee::filters::degradation {
namespace {

constexpr std::string_view kReason = "degraded";

uint32_t seconds(std::chrono::milliseconds d) {
  return static_cast<uint32_t>(std::max<int64_t>(1, (d.count() + 999) / 1000));
}

}  // namespace

std::string_view levelName(uint32_t level) {
  switch (level) {
    case 0:
      return "normal";
    case 1:
      return "shed_noncore";
    case 2:
      return "read_only";
    case 3:
      return "cached_static";
    default:
      return "maintenance";
  }
}

DegradationFilter::Action DegradationFilter::decide(uint32_t level, const config::DegradationConfig& config,
                                                    const config::Route* route, std::string_view method) {
  if (level >= 4) {
    return Action::Maintenance;
  }
  if (level == 0 || route == nullptr) {
    return Action::Pass;  // no route: the router's 404
  }
  const bool read_only_method =
      std::find(config.read_only_methods.begin(), config.read_only_methods.end(), method) !=
      config.read_only_methods.end();
  if (level >= 2 && !read_only_method) {
    return Action::Refuse;  // a write: no fallback may pretend it happened
  }
  if (level >= 3 || route->tier == config::RouteTier::NonCore) {
    return Action::RefuseOrFallback;
  }
  return Action::Pass;
}

http::FilterHeadersStatus DegradationFilter::decodeHeaders(http::RequestHead& head, bool) {
  const Action action = decide(level_, config_, route_, head.method);
  if (action == Action::Pass) {
    return http::FilterHeadersStatus::Continue;
  }
  if (counters_ != nullptr && (*counters_)[level_] != nullptr) {
    (*counters_)[level_]->inc();
  }
  if (action == Action::Maintenance) {
    maintenance();
    return http::FilterHeadersStatus::StopIteration;
  }
  const uint32_t retry_after = seconds(config_.retry_after);
  http::StreamInfo& info = cb_->streamInfo();
  constexpr auto kDegraded = static_cast<uint32_t>(config::FallbackReason::Degraded);
  if (action == Action::RefuseOrFallback && (info.fallback_on & kDegraded) != 0) {
    info.deferred_reply = http::StreamInfo::DeferredReply{503, kReason, kDegraded, retry_after, {}};
    return http::FilterHeadersStatus::Continue;
  }
  cb_->sendLocalReply(503, kReason, levelName(level_), retry_after);
  return http::FilterHeadersStatus::StopIteration;
}

void DegradationFilter::maintenance() {
  const config::MaintenanceConfig& m = config_.maintenance;
  const uint32_t retry_after = seconds(m.retry_after);
  if (m.body.empty()) {
    cb_->sendLocalReply(m.status, kReason, levelName(4), retry_after);
    return;
  }
  http::StreamInfo& info = cb_->streamInfo();
  info.reason = kReason;
  http::ResponseHead resp;
  resp.status = m.status;
  resp.headers.add("content-type", m.content_type);
  resp.headers.add("retry-after", std::to_string(retry_after));
  resp.headers.add("x-levee-reason", kReason);
  resp.headers.add("cache-control", "no-store");
  resp.has_content_length = true;
  resp.content_length = m.body.size();
  const bool head_request = cb_->requestHead().method == "HEAD";
  cb_->encodeHeaders(resp, head_request);
  if (!head_request) {
    cb_->encodeData(m.body.data(), m.body.size(), true);
  }
}

}  // namespace levee::filters::degradation
