#include "companion/failover/lease_etcd.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <random>

#include "proxy/common/json_reader.h"
#include "proxy/common/logger.h"

namespace levee::companion::failover {
namespace etcd {
namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64Value(char c) {
  const size_t at = kAlphabet.find(c);
  return at == std::string_view::npos ? -1 : static_cast<int>(at);
}

// An int64 as the gateway writes it (a JSON string of digits) or as a number.
std::optional<int64_t> int64Of(const json::Value& v) {
  if (const double* d = v.number()) {
    return static_cast<int64_t>(*d);
  }
  const std::string* s = v.string();
  if (s == nullptr || s->empty() || s->size() > 20) {
    return std::nullopt;
  }
  size_t i = (*s)[0] == '-' ? 1 : 0;
  if (i == s->size()) {
    return std::nullopt;
  }
  int64_t out = 0;
  for (; i < s->size(); ++i) {
    const char c = (*s)[i];
    if (c < '0' || c > '9' || out > (INT64_MAX - 9) / 10) {
      return std::nullopt;
    }
    out = out * 10 + (c - '0');
  }
  return (*s)[0] == '-' ? -out : out;
}

const json::Value* field(const json::Object& o, std::string_view snake, std::string_view camel = {}) {
  if (auto it = o.find(snake); it != o.end()) {
    return &it->second;
  }
  if (!camel.empty()) {
    if (auto it = o.find(camel); it != o.end()) {
      return &it->second;
    }
  }
  return nullptr;
}

std::string excerpt(std::string_view body) {
  std::string out(body.substr(0, 200));
  std::ranges::replace_if(out, [](char c) { return c < 0x20 || c == 0x7f; }, ' ');
  return out;
}

// Parses `body` into an object; an etcd error body becomes the error.
Result<json::Object> objectOf(std::string_view body) {
  auto doc = json::parse(body);
  if (!doc) {
    return makeError("etcd answered something that is not JSON (" + doc.error().message + "): " +
                     excerpt(body));
  }
  const json::Object* o = doc->object();
  if (o == nullptr) {
    return makeError("etcd answered a JSON " + std::string(json::typeName(*doc)) + ", not an object");
  }
  if (o->contains("error")) {
    return makeError(errorText(body));
  }
  return json::Object(*o);
}

Result<KeyValue> kvOfRange(const json::Object& range) {
  KeyValue kv;
  const json::Value* kvs = field(range, "kvs");
  if (kvs == nullptr) {
    return kv;  // no such key
  }
  const json::Array* arr = kvs->array();
  if (arr == nullptr) {
    return makeError("etcd range: \"kvs\" is not an array");
  }
  if (arr->empty()) {
    return kv;
  }
  const json::Object* first = (*arr)[0].object();
  if (first == nullptr) {
    return makeError("etcd range: a key-value is not an object");
  }
  kv.present = true;
  if (const json::Value* v = field(*first, "value")) {
    const std::string* s = v->string();
    auto decoded = s != nullptr ? base64Decode(*s) : std::nullopt;
    if (!decoded) {
      return makeError("etcd range: the value is not base64");
    }
    kv.value = std::move(*decoded);
  }
  if (const json::Value* l = field(*first, "lease")) {
    auto id = int64Of(*l);
    if (!id) {
      return makeError("etcd range: the lease is not an integer");
    }
    kv.lease = *id;
  }
  return kv;
}

std::string txnBody(std::string_view compares, std::string_view key, std::string_view success) {
  std::string out = "{\"compare\":[";
  out += compares;
  out += "],\"success\":[";
  out += success;
  out += "],\"failure\":[{\"request_range\":{\"key\":";
  json::appendQuoted(out, base64Encode(key));
  out += "}}]}";
  return out;
}

}  // namespace

std::string base64Encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t n = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) |
                       static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t n = static_cast<uint8_t>(in[i]) << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t n = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

std::optional<std::string> base64Decode(std::string_view in) {
  if (in.size() % 4 != 0) {
    return std::nullopt;
  }
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    const int pad = (in[i + 3] == '=' ? 1 : 0) + (in[i + 2] == '=' ? 1 : 0);
    if (pad > 0 && !last) {
      return std::nullopt;
    }
    if (pad == 1 && in[i + 2] == '=') {
      return std::nullopt;  // "x=x=" is not padding
    }
    std::array<int, 4> v{};
    for (int k = 0; k < 4 - pad; ++k) {
      v[k] = base64Value(in[i + k]);
      if (v[k] < 0) {
        return std::nullopt;
      }
    }
    const uint32_t n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out += static_cast<char>((n >> 16) & 0xff);
    if (pad < 2) {
      out += static_cast<char>((n >> 8) & 0xff);
    }
    if (pad < 1) {
      out += static_cast<char>(n & 0xff);
    }
    // Canonical: the bits below the last encoded byte are zero.
    if ((pad == 1 && (v[2] & 3) != 0) || (pad == 2 && (v[1] & 15) != 0)) {
      return std::nullopt;
    }
  }
  return out;
}

std::string grantBody(int64_t ttl_seconds) {
  return "{\"TTL\":\"" + std::to_string(ttl_seconds) + "\"}";
}

std::string leaseIdBody(int64_t lease_id) { return "{\"ID\":\"" + std::to_string(lease_id) + "\"}"; }

std::string acquireTxnBody(std::string_view key, std::string_view value, int64_t lease_id) {
  std::string k;
  json::appendQuoted(k, base64Encode(key));
  std::string v;
  json::appendQuoted(v, base64Encode(value));
  return txnBody("{\"target\":\"CREATE\",\"result\":\"EQUAL\",\"key\":" + k + ",\"create_revision\":\"0\"}",
                 key,
                 "{\"request_put\":{\"key\":" + k + ",\"value\":" + v + ",\"lease\":\"" +
                     std::to_string(lease_id) + "\"}}");
}

std::string keepTxnBody(std::string_view key, std::string_view value, int64_t lease_id) {
  std::string k;
  json::appendQuoted(k, base64Encode(key));
  std::string v;
  json::appendQuoted(v, base64Encode(value));
  return txnBody("{\"target\":\"VALUE\",\"result\":\"EQUAL\",\"key\":" + k + ",\"value\":" + v +
                     "},{\"target\":\"LEASE\",\"result\":\"EQUAL\",\"key\":" + k + ",\"lease\":\"" +
                     std::to_string(lease_id) + "\"}",
                 key, "{\"request_range\":{\"key\":" + k + "}}");
}

std::string rangeBody(std::string_view key) {
  std::string out = "{\"key\":";
  json::appendQuoted(out, base64Encode(key));
  out += "}";
  return out;
}

std::string errorText(std::string_view body) {
  auto doc = json::parse(body);
  const json::Object* o = doc ? doc->object() : nullptr;
  const json::Value* e = o != nullptr ? field(*o, "error") : nullptr;
  if (e == nullptr) {
    return "unexpected answer from etcd: " + excerpt(body);
  }
  std::string message;
  std::optional<int64_t> code;
  if (const std::string* s = e->string()) {
    message = *s;
    if (const json::Value* c = field(*o, "code")) {
      code = int64Of(*c);
    }
  } else if (const json::Object* eo = e->object()) {  // the streaming calls' error form
    if (const json::Value* m = field(*eo, "message"); m != nullptr && m->string() != nullptr) {
      message = *m->string();
    }
    if (const json::Value* c = field(*eo, "grpc_code", "grpcCode")) {
      code = int64Of(*c);
    }
  }
  if (message.empty()) {
    message = "unexpected error answer: " + excerpt(body);
  }
  std::string out = "etcd: " + excerpt(message);
  if (code) {
    out += " (code " + std::to_string(*code) + ")";
  }
  return out;
}

Result<Grant> parseGrant(std::string_view body) {
  LEVEE_ASSIGN_OR_RETURN(json::Object o, objectOf(body));
  Grant g;
  const json::Value* id = field(o, "ID");
  const json::Value* ttl = field(o, "TTL");
  auto parsed_id = id != nullptr ? int64Of(*id) : std::nullopt;
  auto parsed_ttl = ttl != nullptr ? int64Of(*ttl) : std::nullopt;
  if (!parsed_id || *parsed_id == 0 || !parsed_ttl || *parsed_ttl <= 0) {
    return makeError("etcd lease grant: no lease ID and TTL in the answer: " + excerpt(body));
  }
  g.id = *parsed_id;
  g.ttl = *parsed_ttl;
  return g;
}

Result<int64_t> parseKeepalive(std::string_view body) {
  LEVEE_ASSIGN_OR_RETURN(json::Object o, objectOf(body));
  const json::Value* result = field(o, "result");
  const json::Object* r = result != nullptr ? result->object() : nullptr;
  if (r == nullptr) {
    return makeError("etcd lease keepalive: no \"result\" object in the answer: " + excerpt(body));
  }
  const json::Value* ttl = field(*r, "TTL");
  if (ttl == nullptr) {
    return int64_t{0};  // etcd omits TTL 0: the lease is gone
  }
  auto parsed = int64Of(*ttl);
  if (!parsed) {
    return makeError("etcd lease keepalive: TTL is not an integer");
  }
  return std::max<int64_t>(*parsed, 0);
}

Result<Txn> parseTxn(std::string_view body) {
  LEVEE_ASSIGN_OR_RETURN(json::Object o, objectOf(body));
  Txn t;
  if (!o.contains("header")) {
    return makeError("etcd txn: no header in the answer: " + excerpt(body));
  }
  if (const json::Value* s = field(o, "succeeded")) {
    if (s->boolean() == nullptr) {
      return makeError("etcd txn: \"succeeded\" is not a boolean");
    }
    t.succeeded = *s->boolean();
  }
  const json::Value* responses = field(o, "responses");
  if (responses == nullptr) {
    return t;
  }
  const json::Array* arr = responses->array();
  if (arr == nullptr) {
    return makeError("etcd txn: \"responses\" is not an array");
  }
  for (const json::Value& r : *arr) {
    const json::Object* ro = r.object();
    const json::Value* range = ro != nullptr ? field(*ro, "response_range", "responseRange") : nullptr;
    if (range != nullptr && range->object() != nullptr) {
      LEVEE_ASSIGN_OR_RETURN(t.kv, kvOfRange(*range->object()));
    }
  }
  return t;
}

Result<KeyValue> parseRange(std::string_view body) {
  LEVEE_ASSIGN_OR_RETURN(json::Object o, objectOf(body));
  if (!o.contains("header")) {
    return makeError("etcd range: no header in the answer: " + excerpt(body));
  }
  return kvOfRange(o);
}

void LeaseClock::renewed(uint64_t sent_ms) {
  owned_ = true;
  renewed_ms_ = std::max(renewed_ms_, sent_ms);
}

std::optional<uint64_t> LeaseClock::renewalAgeMs(uint64_t now_ms) const {
  if (renewed_ms_ == 0) {
    return std::nullopt;
  }
  return now_ms > renewed_ms_ ? now_ms - renewed_ms_ : 0;
}

const std::string& instanceId() {
  static const std::string id = [] {
    std::string host;
    for (const char* env : {"POD_NAME", "HOSTNAME"}) {
      if (const char* v = std::getenv(env); v != nullptr && *v != '\0') {
        host = v;
        break;
      }
    }
    if (host.empty()) {
      std::array<char, 256> buf{};
      if (::gethostname(buf.data(), buf.size() - 1) == 0) {
        host = buf.data();
      }
    }
    if (host.empty()) {
      host = "levee";
    }
    std::random_device rd;
    char suffix[16];
    std::snprintf(suffix, sizeof(suffix), "%08x", static_cast<unsigned>(rd()));
    return host.substr(0, 200) + "-" + std::to_string(::getpid()) + "-" + suffix;
  }();
  return id;
}

}  // namespace etcd

namespace {

uint64_t monoMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

constexpr size_t kMaxAnswer = 1 << 20;

size_t onCurlData(char* data, size_t size, size_t n, void* user) noexcept {
  auto* out = static_cast<std::string*>(user);
  const size_t bytes = size * n;
  if (out->size() + bytes > kMaxAnswer) {
    return 0;  // aborts the transfer: an etcd answer is never this large
  }
  out->append(data, bytes);
  return bytes;
}

// The TLS settings of https:// endpoints (`lease.tls`).
struct EtcdTls {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool verify{true};
};

// Blocking JSON POSTs to the etcd endpoints (worker thread only). A failing endpoint (transport
// error, TLS handshake or non-200) makes the call try the next one, each once; the one that
// answered is kept.
class EtcdHttp {
public:
  EtcdHttp(std::vector<std::string> endpoints, EtcdTls tls, long timeout_ms)
      : endpoints_(std::move(endpoints)), tls_(std::move(tls)), timeout_ms_(timeout_ms), curl_(curl_easy_init()) {}
  ~EtcdHttp() {
    if (curl_ != nullptr) {
      curl_easy_cleanup(curl_);
    }
  }
  EtcdHttp(const EtcdHttp&) = delete;
  EtcdHttp& operator=(const EtcdHttp&) = delete;

  const std::string& endpoint() const { return endpoints_[current_]; }

  Result<std::string> post(std::string_view path, const std::string& body) {
    if (curl_ == nullptr) {
      return makeError("libcurl could not create a handle");
    }
    std::string errors;
    for (size_t attempt = 0; attempt < endpoints_.size(); ++attempt) {
      auto r = postOnce(endpoints_[current_], path, body);
      if (r) {
        return r;
      }
      errors += (errors.empty() ? "" : "; ") + endpoints_[current_] + ": " + r.error().message;
      current_ = (current_ + 1) % endpoints_.size();
    }
    return makeError(errors);
  }

private:
  Result<std::string> postOnce(const std::string& base, std::string_view path, const std::string& body) {
    const std::string url = base + std::string(path);
    std::string answer;
    std::array<char, CURL_ERROR_SIZE> err{};
    curl_easy_reset(curl_);
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_PROTOCOLS_STR, "http,https");
    if (base.starts_with("https://")) {
      // The files are read at each call: a rotated certificate is used from the next round.
      if (!tls_.ca_file.empty()) {
        curl_easy_setopt(curl_, CURLOPT_CAINFO, tls_.ca_file.c_str());
      }
      if (!tls_.cert_file.empty()) {
        curl_easy_setopt(curl_, CURLOPT_SSLCERT, tls_.cert_file.c_str());
        curl_easy_setopt(curl_, CURLOPT_SSLKEY, tls_.key_file.c_str());
      }
      curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYPEER, tls_.verify ? 1L : 0L);
      curl_easy_setopt(curl_, CURLOPT_SSL_VERIFYHOST, tls_.verify ? 2L : 0L);
    }
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, timeout_ms_);
    curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms_);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &onCurlData);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &answer);
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, err.data());
    const CURLcode rc = curl_easy_perform(curl_);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
      return makeError(std::string(err[0] != '\0' ? err.data() : curl_easy_strerror(rc)));
    }
    long status = 0;
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
      return makeError("HTTP " + std::to_string(status) + ": " + etcd::errorText(answer));
    }
    return answer;
  }

  std::vector<std::string> endpoints_;
  EtcdTls tls_;
  size_t current_{0};
  long timeout_ms_;
  CURL* curl_;
};

struct RoundInput {
  int64_t lease_id{0};
  bool believe_owned{false};
  std::string key;
  std::string id;
  int64_t ttl_s{0};
};

EtcdLease::Outcome runRound(EtcdHttp& http, const RoundInput& in) {
  EtcdLease::Outcome out;
  out.lease_id = in.lease_id;
  bool owned = in.believe_owned;
  auto fail = [&](std::string what, const Error& e) {
    out.error = what + ": " + e.message;
    out.endpoint = http.endpoint();
    return out;
  };
  out.sent_ms = monoMs();
  if (out.lease_id != 0) {
    auto answer = http.post("/v3/lease/keepalive", etcd::leaseIdBody(out.lease_id));
    if (!answer) {
      return fail("lease keepalive", answer.error());
    }
    auto ttl = etcd::parseKeepalive(*answer);
    if (!ttl) {
      return fail("lease keepalive", ttl.error());
    }
    if (*ttl == 0) {
      out.lease_id = 0;  // expired (or revoked): the key went with it
      owned = false;
    }
  }
  if (out.lease_id == 0) {
    out.sent_ms = monoMs();
    auto answer = http.post("/v3/lease/grant", etcd::grantBody(in.ttl_s));
    if (!answer) {
      return fail("lease grant", answer.error());
    }
    auto grant = etcd::parseGrant(*answer);
    if (!grant) {
      return fail("lease grant", grant.error());
    }
    out.lease_id = grant->id;
  }
  const std::string body = owned ? etcd::keepTxnBody(in.key, in.id, out.lease_id)
                                 : etcd::acquireTxnBody(in.key, in.id, out.lease_id);
  auto answer = http.post("/v3/kv/txn", body);
  if (!answer) {
    return fail(owned ? "txn (keep)" : "txn (acquire)", answer.error());
  }
  auto txn = etcd::parseTxn(*answer);
  if (!txn) {
    return fail("txn", txn.error());
  }
  out.known = true;
  out.endpoint = http.endpoint();
  if (owned) {
    out.owned = txn->succeeded;
    out.holder = txn->kv.present ? txn->kv.value : "";
  } else if (txn->succeeded) {
    out.owned = true;
    out.holder = in.id;
  } else {
    // Ours already (an earlier acquire whose answer was lost) only with our lease.
    out.owned = txn->kv.present && txn->kv.value == in.id && txn->kv.lease == out.lease_id;
    out.holder = txn->kv.present ? txn->kv.value : "";
  }
  return out;
}

}  // namespace

// One thread running the lease's jobs in order. Unlike MemberWorker, the destructor runs the
// jobs still queued (the revoke at shutdown) before joining; each is bounded by the timeouts.
class EtcdLease::Worker {
public:
  Worker(std::vector<std::string> endpoints, EtcdTls tls, long timeout_ms)
      : http_(std::move(endpoints), std::move(tls), timeout_ms), thread_([this] { run(); }) {}
  ~Worker() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void submit(std::function<void(EtcdHttp&)> job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }
  bool idle() {
    std::lock_guard<std::mutex> lock(mu_);
    return !running_ && jobs_.empty();
  }

private:
  void run() {
    while (true) {
      std::function<void(EtcdHttp&)> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) {
          return;  // stopping, and nothing left
        }
        job = std::move(jobs_.front());
        jobs_.pop_front();
        running_ = true;
      }
      job(http_);
      std::lock_guard<std::mutex> lock(mu_);
      running_ = false;
    }
  }

  EtcdHttp http_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void(EtcdHttp&)>> jobs_;
  bool running_{false};
  bool stop_{false};
  std::thread thread_;
};

EtcdLease::EtcdLease(event::Dispatcher& main, const config::PostgresFailoverConfig& config)
    : main_(main), endpoints_(config.lease_endpoints), key_(config.lease_key), id_(etcd::instanceId()),
      ttl_ms_(static_cast<uint64_t>(config.lease_ttl.count())), clock_(ttl_ms_, ttl_ms_ / 4) {
  static std::once_flag curl_once;
  std::call_once(curl_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  // A round is at most three calls; each gets a sixth of the TTL (at most 2 s per endpoint).
  const long timeout_ms = static_cast<long>(std::clamp<uint64_t>(ttl_ms_ / 6, 300, 2000));
  worker_ = std::make_unique<Worker>(
      endpoints_,
      EtcdTls{config.lease_tls_ca_file, config.lease_tls_cert_file, config.lease_tls_key_file, config.lease_tls_verify},
      timeout_ms);
}

EtcdLease::~EtcdLease() {
  release();
  worker_.reset();  // runs the revoke still queued (bounded), then joins
}

void EtcdLease::start() {
  LEVEE_LOG(Companion, info,
            "failover lease: etcd {} key {} as {} (ttl {} ms, renewed every {} ms, believed for {} ms "
            "after a renewal)",
            endpoints_.front(), key_, id_, ttl_ms_, ttl_ms_ / 3, clock_.validMs());
  timer_ = main_.createTimer([this] { tick(); });
  timer_->enableRepeating(std::chrono::milliseconds(std::max<uint64_t>(ttl_ms_ / 3, 100)));
  tick();
}

bool EtcdLease::held() const { return !released_ && clock_.held(monoMs()); }

void EtcdLease::tick() {
  if (!in_flight_) {
    startRound();
  }
}

void EtcdLease::startRound() {
  in_flight_ = true;
  round_ = std::move(waiting_);
  waiting_.clear();
  RoundInput in{lease_id_, clock_.owned(), key_, id_, static_cast<int64_t>(ttl_ms_ / 1000)};
  std::weak_ptr<int> alive = alive_;
  event::Dispatcher* main = &main_;
  worker_->submit([this, in = std::move(in), alive, main](EtcdHttp& http) {
    Outcome out = runRound(http, in);
    // `this` is used only on the main loop, after checking that it is still alive.
    main->post([this, alive, out = std::move(out)]() mutable {
      if (!alive.expired()) {
        onRound(std::move(out));
      }
    });
  });
}

void EtcdLease::onRound(Outcome out) {
  in_flight_ = false;
  ++rounds_;
  const bool was_held = held();
  lease_id_ = out.lease_id;
  if (!out.endpoint.empty()) {
    endpoint_ = out.endpoint;
  }
  if (out.known) {
    holder_ = out.holder;
    if (out.owned) {
      clock_.renewed(out.sent_ms);
    } else {
      clock_.lost();
    }
  }
  if (!out.error.empty()) {
    ++errors_;
    if (out.error != last_error_ || errors_ == 1) {
      LEVEE_LOG(Companion, warn, "failover lease: etcd round failed: {}", out.error);
    }
    last_error_ = out.error;
    last_error_ms_ = monoMs();
  } else if (!last_error_.empty()) {
    LEVEE_LOG(Companion, info, "failover lease: etcd answers again ({})", endpoint_);
    last_error_.clear();
  }
  const bool now_held = held();
  if (now_held && !was_held) {
    LEVEE_LOG(Companion, warn, "failover lease: acquired {} as {} (etcd lease {:x})", key_, id_, lease_id_);
  } else if (!now_held && was_held) {
    LEVEE_LOG(Companion, err, "failover lease: LOST {} ({}): this levee will not promote",
              key_, out.known ? "held by " + (holder_.empty() ? std::string("nobody") : holder_)
                              : "no renewal within ttl - margin: " + out.error);
  }
  std::vector<ConfirmCb> answered = std::move(round_);
  round_.clear();
  for (ConfirmCb& cb : answered) {
    cb(now_held, now_held ? std::string() : (out.error.empty() ? "held by " + holder_ : out.error));
  }
  if (!waiting_.empty() && !released_) {
    startRound();
  }
}

void EtcdLease::confirm(ConfirmCb cb) {
  if (released_) {
    return;
  }
  waiting_.push_back(std::move(cb));
  if (!in_flight_) {
    startRound();
  }
}

void EtcdLease::release() {
  if (released_) {
    return;
  }
  released_ = true;
  timer_.reset();
  alive_.reset();
  waiting_.clear();
  round_.clear();
  const int64_t lease = lease_id_;
  if (lease == 0) {
    return;
  }
  LEVEE_LOG(Companion, info, "failover lease: revoking etcd lease {:x} ({})", lease, key_);
  worker_->submit([lease](EtcdHttp& http) {
    auto r = http.post("/v3/lease/revoke", etcd::leaseIdBody(lease));
    if (!r) {
      LEVEE_LOG(Companion, warn, "failover lease: revoke failed ({}); etcd expires it after its TTL",
                r.error().message);
    }
  });
}

bool EtcdLease::idle() const { return worker_->idle(); }

void EtcdLease::writeStatus(json::Writer& w) const {
  const uint64_t now = monoMs();
  w.key("key").value(key_).key("id").value(id_);
  w.key("holder");
  if (holder_.empty()) {
    w.null();
  } else {
    w.value(holder_);
  }
  w.key("ttl_ms").value(ttl_ms_).key("renew_interval_ms").value(ttl_ms_ / 3);
  w.key("valid_ms").value(clock_.validMs());
  w.key("last_renewal_ms_ago");
  if (auto age = clock_.renewalAgeMs(now); age && clock_.owned()) {
    w.value(*age);
  } else {
    w.null();
  }
  w.key("lease_id").value(lease_id_ != 0 ? fmt::format("{:x}", lease_id_) : std::string());
  w.key("endpoint").value(endpoint_);
  w.key("rounds").value(rounds_).key("errors").value(errors_);
  w.key("last_error").value(last_error_);
  w.key("last_error_ms_ago");
  if (last_error_ms_ != 0) {
    w.value(now - last_error_ms_);
  } else {
    w.null();
  }
}

}  // namespace levee::companion::failover
