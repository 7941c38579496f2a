#include "filters/fault/fault_filter.h"

#include "proxy/http/header_map.h"
#include "proxy/http/stream_info.h"

namespace levee::filters::fault {
namespace {

constexpr uint32_t kMillion = 1'000'000;
constexpr std::array<std::string_view, 3> kKindNames{"delay", "abort", "reset"};

}  // namespace

void WorkerFaults::count(std::string_view route, FaultKind kind) {
  auto it = counters_.find(route);
  if (it == counters_.end()) {
    std::array<stats::Counter*, 3> c{};
    for (size_t i = 0; i < c.size(); ++i) {
      c[i] = &store_.counter("levee_faults_injected_total",
                             "Faults injected by the fault filter, by route and kind.",
                             {{"route", std::string(route)}, {"kind", std::string(kKindNames[i])}});
    }
    it = counters_.emplace(std::string(route), c).first;
  }
  it->second[static_cast<size_t>(kind)]->inc();
}

std::unique_ptr<FaultFilter> FaultFilter::create(const config::Route& route,
                                                 const http::RequestHead& head,
                                                 WorkerFaults& worker) {
  const ActiveFaults& active = worker.view().current();
  if (!route.fault.enabled && active.rules.empty()) {
    return nullptr;  // the common case: no allocation, no filter
  }
  std::vector<config::FaultConfig> faults;
  if (route.fault.enabled) {
    faults.push_back(route.fault);
  }
  for (const FaultRule& rule : active.rules) {
    if (rule.matches(route.name, route.upstream, head)) {
      faults.push_back(rule.fault);
    }
  }
  if (faults.empty()) {
    return nullptr;
  }
  return std::make_unique<FaultFilter>(route.name, std::move(faults), worker);
}

bool FaultFilter::roll(uint32_t ppm) {
  if (ppm == 0) {
    return false;
  }
  return ppm >= kMillion || worker_.random() % kMillion < ppm;
}

http::FilterHeadersStatus FaultFilter::decodeHeaders(http::RequestHead&, bool) {
  config::Duration delay{0};
  for (const config::FaultConfig& f : faults_) {
    if (f.delay.count() > 0 && roll(f.delay_ppm)) {
      delay = std::max(delay, f.delay);
    }
    if (terminal_ != Terminal::None) {
      continue;
    }
    if (roll(f.reset_ppm)) {
      terminal_ = Terminal::Reset;
    } else if (f.abort_status != 0 && roll(f.abort_ppm)) {
      terminal_ = Terminal::Abort;
      abort_status_ = f.abort_status;
    }
  }
  if (delay.count() > 0) {
    worker_.count(route_name_, FaultKind::Delay);
    delay_timer_ = cb_->dispatcher().createTimer([this] { onDelayElapsed(); });
    delay_timer_->enable(delay);
    return http::FilterHeadersStatus::StopIteration;
  }
  if (terminal_ != Terminal::None) {
    injectTerminal();
    return http::FilterHeadersStatus::StopIteration;
  }
  return http::FilterHeadersStatus::Continue;
}

void FaultFilter::onDelayElapsed() {
  if (destroyed_) {
    return;
  }
  if (terminal_ != Terminal::None) {
    injectTerminal();
    return;
  }
  cb_->continueDecoding();
}

void FaultFilter::injectTerminal() {
  if (terminal_ == Terminal::Abort) {
    worker_.count(route_name_, FaultKind::Abort);
    cb_->sendLocalReply(abort_status_, "fault_abort", "fault injected: abort");
    return;
  }
  worker_.count(route_name_, FaultKind::Reset);
  cb_->streamInfo().reason = "fault_reset";
  cb_->resetStream();
}

void FaultFilter::onDestroy() {
  destroyed_ = true;
  // Disarm only: onDestroy may run inside the timer's own callback (continueDecoding can end
  // the stream synchronously); the timer is freed with the filter, after the stack unwinds.
  if (delay_timer_) {
    delay_timer_->disable();
  }
}

}  // namespace levee::filters::fault
