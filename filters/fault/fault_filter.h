#pragma once
// Fault injection for drills (DESIGN sections 2, 5, 7): the first filter of the chain. On a
// request whose route has a `fault` block, or that a run-time experiment targets, it may
// delay the request (a timer it owns), answer it locally (`fault_abort`), or close the
// downstream connection without a response (reset). See filters/fault/README.md.

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/policy.h"
#include "filters/fault/fault_config.h"
#include "proxy/api/http/filter.h"
#include "proxy/event/dispatcher.h"
#include "proxy/stats/store.h"

namespace levee::filters::fault {

enum class FaultKind { Delay = 0, Abort = 1, Reset = 2 };

// One worker's fault state: its view of the experiments, its random source and its counters
// (levee_faults_injected_total{route,kind}). Worker thread only; outlives the worker's streams.
class WorkerFaults {
public:
  using RandomFn = std::function<uint64_t()>;
  WorkerFaults(const FaultRegistry* registry, stats::Store& store, RandomFn random)
      : view_(registry), store_(store), random_(std::move(random)) {}

  FaultView& view() { return view_; }
  uint64_t random() { return random_(); }
  void count(std::string_view route, FaultKind kind);

private:
  FaultView view_;
  stats::Store& store_;
  RandomFn random_;
  // Resolved on the first injection per route (route names are bounded by the policy).
  std::map<std::string, std::array<stats::Counter*, 3>, std::less<>> counters_;
};

class FaultFilter final : public http::DecoderFilter {
public:
  // The filter for a request matched to `route`, or nullptr when no fault can apply (no policy
  // fault on the route and no experiment targets the request): then the chain has no fault
  // filter at all. Policy fault first, then matching experiments, oldest first.
  static std::unique_ptr<FaultFilter> create(const config::Route& route,
                                             const http::RequestHead& head, WorkerFaults& worker);

  // `route_name` must outlive the filter (it points into the stream's pinned snapshot).
  FaultFilter(std::string_view route_name, std::vector<config::FaultConfig> faults,
              WorkerFaults& worker)
      : route_name_(route_name), faults_(std::move(faults)), worker_(worker) {}

  void setDecoderCallbacks(http::DecoderFilterCallbacks& cb) override { cb_ = &cb; }
  // Rolls every fault once: the longest delay hit is applied, then the first abort/reset hit.
  http::FilterHeadersStatus decodeHeaders(http::RequestHead& head, bool end_stream) override;
  // The filter manager holds body bytes for the filters after this one while it delays.
  http::FilterDataStatus decodeData(const char*, size_t, bool) override {
    return http::FilterDataStatus::Continue;
  }
  void onDestroy() override;

  bool delayArmedForTest() const { return delay_timer_ && delay_timer_->enabled(); }

private:
  enum class Terminal { None, Abort, Reset };
  bool roll(uint32_t ppm);
  void onDelayElapsed();
  void injectTerminal();

  std::string_view route_name_;
  std::vector<config::FaultConfig> faults_;
  WorkerFaults& worker_;
  http::DecoderFilterCallbacks* cb_{nullptr};
  // Owned by this filter, so its callback may capture `this`; disarmed in onDestroy().
  event::TimerPtr delay_timer_;
  Terminal terminal_{Terminal::None};
  int abort_status_{0};
  bool destroyed_{false};
};

}  // namespace levee::filters::fault
