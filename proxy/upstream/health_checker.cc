#include "proxy/upstream/health_checker.h"

#include <uv.h>  // uv_err_name only

#include <algorithm>

#include "proxy/common/logger.h"
#include "proxy/event/tcp_socket.h"
#include "proxy/http/http1/codec.h"

namespace levee::upstream {

// One probe: connect, send the request, read the status line, done.
class HealthChecker::Session final : public event::TcpSocketCallbacks,
                                     public http::http1::ClientCodecCallbacks {
public:
  Session(HealthChecker& hc, size_t index)
      : hc_(hc), index_(index), socket_(std::make_unique<event::TcpSocket>(hc.dispatcher_)),
        codec_(*this, 16 * 1024) {
    socket_->setCallbacks(this);
    timeout_ = hc.dispatcher_.createTimer([this] { finish(false, "timeout"); });
  }
  void start() {
    const Host& host = *hc_.health_->hosts()->hosts[index_];
    timeout_->enable(hc_.config_.timeout);
    codec_.expectResponse(false);
    int rc = socket_->connect(reinterpret_cast<const sockaddr*>(&host.addr));
    if (rc != 0) {
      failed_detail_ = std::string("connect: ") + uv_err_name(rc);
      timeout_->enable(std::chrono::milliseconds(0));
    }
  }

  void onConnected() override {
    const Host& host = *hc_.health_->hosts()->hosts[index_];
    std::string req = "GET " + hc_.config_.path + " HTTP/1.1\r\nhost: ";
    req += hc_.config_.host.empty() ? host.configured : hc_.config_.host;
    req += "\r\nuser-agent: levee-health-check\r\nconnection: close\r\n\r\n";
    socket_->write(req);
    socket_->readStart();
  }
  void onData(const char* data, size_t len) override { codec_.dispatch(data, len); }
  void onEof() override {
    if (!done_) {
      codec_.onEof();
    }
    finish(false, "connection closed before a response");
  }
  void onError(int err) override { finish(false, std::string("error: ") + uv_err_name(err)); }

  void onInformational(http::ResponseHead&) override {}
  void onResponseHead(http::ResponseHead& head, bool) override {
    const auto& expected = hc_.config_.expected_statuses;
    bool ok = expected.empty() ? (head.status >= 200 && head.status < 400)
                               : std::find(expected.begin(), expected.end(), head.status) != expected.end();
    finish(ok, "status " + std::to_string(head.status));
  }
  void onResponseBody(const char*, size_t) override {}
  void onResponseBodyEnd() override {}
  void onCodecError(const http::http1::CodecError& e) override { finish(false, "bad response: " + e.detail); }

private:
  void finish(bool passed, std::string detail) {
    if (done_) {
      return;
    }
    done_ = true;
    codec_.stop();
    timeout_->disable();
    socket_->close();
    if (!failed_detail_.empty()) {
      detail = failed_detail_;
    }
    hc_.onCheckDone(index_, passed, std::move(detail));  // may destroy *this (deferred)
  }

  HealthChecker& hc_;
  size_t index_;
  event::TcpSocketPtr socket_;
  http::http1::ClientCodec codec_;
  event::TimerPtr timeout_;
  std::string failed_detail_;
  bool done_{false};
};

HealthChecker::HealthChecker(event::Dispatcher& dispatcher, std::string upstream,
                             config::HealthCheckConfig config, HostHealthSharedPtr health,
                             ChangeCb on_change, ResultCb on_result)
    : dispatcher_(dispatcher), upstream_(std::move(upstream)), config_(std::move(config)),
      health_(std::move(health)), on_change_(std::move(on_change)), on_result_(std::move(on_result)) {}

HealthChecker::~HealthChecker() {
  for (auto& s : states_) {
    s.timer.reset();
    s.session.reset();
  }
}

void HealthChecker::start() {
  states_.resize(health_->size());
  for (size_t i = 0; i < states_.size(); ++i) {
    states_[i].timer = dispatcher_.createTimer([this, i] { runCheck(i); });
    schedule(i, true);
  }
}

void HealthChecker::schedule(size_t i, bool first) {
  // First checks are spread over a short random delay; later ones every interval +- jitter.
  int64_t interval = config_.interval.count();
  int64_t jitter = interval * config_.jitter_percent / 100;
  int64_t delay = first ? static_cast<int64_t>(rng_() % 50) : interval;
  if (!first && jitter > 0) {
    delay += static_cast<int64_t>(rng_() % static_cast<uint64_t>(2 * jitter + 1)) - jitter;
  }
  states_[i].timer->enable(std::chrono::milliseconds(std::max<int64_t>(delay, 1)));
}

void HealthChecker::runCheck(size_t i) {
  if (states_[i].session) {
    return;
  }
  states_[i].session = std::make_unique<Session>(*this, i);
  states_[i].session->start();
}

void HealthChecker::onCheckDone(size_t i, bool passed, std::string detail) {
  HostState& st = states_[i];
  // The session is on the call stack: retire it at the end of the iteration.
  dispatcher_.deferredDeleteAny(std::move(st.session));

  const std::string& addr = health_->hosts()->hosts[i]->address;
  if (passed) {
    st.failures = 0;
    ++st.passes;
    if (!health_->healthy(i) && st.passes >= config_.healthy_threshold) {
      health_->setHealthy(i, true);
      LEVEE_LOG(Upstream, info, "upstream {}: host {} healthy again ({})", upstream_, addr, detail);
      on_change_(i, true, detail);
    }
  } else {
    st.passes = 0;
    ++st.failures;
    if (health_->healthy(i) && st.failures >= config_.unhealthy_threshold) {
      health_->setHealthy(i, false);
      LEVEE_LOG(Upstream, warn, "upstream {}: host {} unhealthy after {} failed checks ({})", upstream_,
                addr, st.failures, detail);
      on_change_(i, false, detail);
    }
  }
  on_result_(i, passed);
  schedule(i, false);
}

}  // namespace levee::upstream
