#include "proxy/stats/store.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <unordered_map>

#include "proxy/common/assert.h"

namespace levee::stats {

namespace detail {
constinit thread_local uint32_t tls_thread_slot = 0;
}  // namespace detail

void setThreadSlot(uint32_t slot) { detail::tls_thread_slot = slot; }
uint32_t threadSlot() { return detail::tls_thread_slot; }

namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;

// Misuse of the registration API is a programming error: crash with a message (STYLE B.5).
[[noreturn]] void fatal(std::string_view family, std::string_view msg) {
  std::fprintf(stderr, "levee: stats: metric family \"%.*s\": %.*s\n",
               static_cast<int>(family.size()), family.data(), static_cast<int>(msg.size()),
               msg.data());
  std::abort();
}

bool isAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool isDigit(char c) { return c >= '0' && c <= '9'; }

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool isValidMetricName(std::string_view n) {
  if (n.empty() || !(isAlpha(n[0]) || n[0] == ':')) {
    return false;
  }
  return std::all_of(n.begin(), n.end(), [](char c) { return isAlpha(c) || isDigit(c) || c == ':'; });
}

// [a-zA-Z_][a-zA-Z0-9_]*, and names starting with "__" are reserved.
bool isValidLabelName(std::string_view n) {
  if (n.empty() || !isAlpha(n[0]) || n.starts_with("__")) {
    return false;
  }
  return std::all_of(n.begin(), n.end(), [](char c) { return isAlpha(c) || isDigit(c); });
}

const char* typeName(MetricType t) {
  switch (t) {
    case MetricType::Counter: return "counter";
    case MetricType::Gauge: return "gauge";
    case MetricType::Histogram: return "histogram";
    case MetricType::GaugeCallback: return "gauge (callback)";
  }
  return "?";
}

void appendEscapedHelp(std::string& out, std::string_view s) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
}

void appendEscapedLabelValue(std::string& out, std::string_view s) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
}

// `a="x",b="y"` (no braces), in the caller's order.
std::string renderLabels(const Labels& labels) {
  std::string out;
  for (const auto& [name, value] : labels) {
    if (!out.empty()) {
      out.push_back(',');
    }
    out += name;
    out += "=\"";
    appendEscapedLabelValue(out, value);
    out.push_back('"');
  }
  return out;
}

// Shortest round-trip form, which Prometheus' parser (Go ParseFloat) accepts: 0.005, 1, 2.5,
// 1e-05; non-finite values as NaN, +Inf, -Inf.
void appendDouble(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof(buf), v);
    out.append(buf, res.ptr);
  }
}

void appendUint(std::string& out, uint64_t v) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, res.ptr);
}

void appendInt(std::string& out, int64_t v) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, res.ptr);
}

// Validates a histogram layout; drops a trailing +Inf (always implied).
std::vector<double> normalizeBounds(std::vector<double> bounds, std::string_view family) {
  if (!bounds.empty() && bounds.back() == std::numeric_limits<double>::infinity()) {
    bounds.pop_back();
  }
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i])) {
      fatal(family, "histogram bucket bounds must be finite (a trailing +Inf is implied)");
    }
    if (i > 0 && !(bounds[i - 1] < bounds[i])) {
      fatal(family, "histogram bucket bounds must be strictly increasing");
    }
  }
  return bounds;
}

// Identity of a series: label pairs sorted by name, length-prefixed (values may hold any byte).
std::string labelKey(const Labels& labels) {
  std::vector<const std::pair<std::string, std::string>*> sorted;
  sorted.reserve(labels.size());
  for (const auto& l : labels) {
    sorted.push_back(&l);
  }
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->first < b->first; });
  std::string key;
  for (const auto* l : sorted) {
    key += std::to_string(l->first.size());
    key.push_back(':');
    key += l->first;
    key += std::to_string(l->second.size());
    key.push_back(':');
    key += l->second;
  }
  return key;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Counter / Gauge / Histogram

Counter::Counter(uint32_t thread_slots)
    : slots_(std::make_unique<detail::U64Slot[]>(size_t{thread_slots} + 1)),
      thread_slots_(thread_slots) {}

uint64_t Counter::value() const {
  uint64_t total = 0;
  for (uint32_t i = 0; i <= thread_slots_; ++i) {
    total += slots_[i].v.load(kRelaxed);
  }
  return total;
}

Gauge::Gauge(uint32_t thread_slots)
    : slots_(std::make_unique<detail::I64Slot[]>(size_t{thread_slots} + 1)),
      thread_slots_(thread_slots) {}

int64_t Gauge::value() const {
  // Unsigned sum: individual slots may wrap, the total is exact.
  uint64_t total = static_cast<uint64_t>(base_.load(kRelaxed));
  for (uint32_t i = 0; i <= thread_slots_; ++i) {
    total += static_cast<uint64_t>(slots_[i].v.load(kRelaxed));
  }
  return static_cast<int64_t>(total);
}

Histogram::Histogram(uint32_t thread_slots, std::vector<double> bounds)
    : bounds_(normalizeBounds(std::move(bounds), "<histogram>")),
      sum_word_(bounds_.size() + 1),
      lines_per_slot_((sum_word_ + 1 + detail::Line::kWords - 1) / detail::Line::kWords),
      lines_(std::make_unique<detail::Line[]>((size_t{thread_slots} + 1) * lines_per_slot_)),
      thread_slots_(thread_slots) {}

void Histogram::record(double seconds) noexcept {
  if (std::isnan(seconds)) {
    return;
  }
  // First bound >= seconds, i.e. the `le` bucket; bounds_.size() is +Inf.
  const auto bucket =
      static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), seconds) - bounds_.begin());
  const uint32_t slot = detail::tls_thread_slot;
  if (slot < thread_slots_) [[likely]] {
    std::atomic<uint64_t>& b = word(slot, bucket);
    b.store(b.load(kRelaxed) + 1, kRelaxed);
    std::atomic<uint64_t>& s = word(slot, sum_word_);
    s.store(std::bit_cast<uint64_t>(std::bit_cast<double>(s.load(kRelaxed)) + seconds), kRelaxed);
  } else {
    word(thread_slots_, bucket).fetch_add(1, kRelaxed);
    std::atomic<uint64_t>& s = word(thread_slots_, sum_word_);
    uint64_t old = s.load(kRelaxed);
    while (!s.compare_exchange_weak(
        old, std::bit_cast<uint64_t>(std::bit_cast<double>(old) + seconds), kRelaxed)) {
    }
  }
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot snap;
  snap.bounds = bounds_;
  snap.cumulative.assign(bounds_.size() + 1, 0);
  for (uint32_t slot = 0; slot <= thread_slots_; ++slot) {
    for (size_t i = 0; i <= bounds_.size(); ++i) {
      snap.cumulative[i] += word(slot, i).load(kRelaxed);
    }
    snap.sum += std::bit_cast<double>(word(slot, sum_word_).load(kRelaxed));
  }
  for (size_t i = 1; i < snap.cumulative.size(); ++i) {
    snap.cumulative[i] += snap.cumulative[i - 1];
  }
  snap.count = snap.cumulative.back();
  return snap;
}

// ---------------------------------------------------------------------------------------------
// Store

struct Store::Family {
  // Immutable after creation, so a scrape may read them without the lock.
  struct Series {
    std::string label_text;            // rendered `a="x",b="y"`
    std::vector<std::string> le_text;  // histograms: rendered bounds
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };

  std::string name;
  std::string help;
  MetricType type;
  std::vector<std::unique_ptr<Series>> series;  // creation order
  std::unordered_map<std::string, Series*> by_key;
  GaugeCallback callback;
};

namespace {

// Returns the existing series for `labels`, or nullptr after validating them for a new one.
Store::Family::Series* findSeries(Store::Family& fam, const Labels& labels, std::string& key) {
  key = labelKey(labels);
  auto it = fam.by_key.find(key);
  if (it != fam.by_key.end()) {
    return it->second;
  }
  for (size_t i = 0; i < labels.size(); ++i) {
    const std::string& name = labels[i].first;
    if (!isValidLabelName(name)) {
      fatal(fam.name, "invalid label name \"" + name + "\"");
    }
    if (fam.type == MetricType::Histogram && name == "le") {
      fatal(fam.name, "label \"le\" is reserved for histogram buckets");
    }
    for (size_t j = 0; j < i; ++j) {
      if (labels[j].first == name) {
        fatal(fam.name, "duplicate label name \"" + name + "\"");
      }
    }
  }
  return nullptr;
}

Store::Family::Series& addSeries(Store::Family& fam, const Labels& labels, std::string key) {
  auto series = std::make_unique<Store::Family::Series>();
  series->label_text = renderLabels(labels);
  Store::Family::Series& ref = *series;
  fam.series.push_back(std::move(series));
  fam.by_key.emplace(std::move(key), &ref);
  return ref;
}

}  // namespace

Store::Store(uint32_t thread_slots) : thread_slots_(thread_slots) {
  LEVEE_RELEASE_ASSERT(thread_slots >= 1, "a Store needs at least one thread slot (main thread)");
}

Store::~Store() = default;

Store::Family& Store::familyLocked(std::string_view name, std::string_view help, MetricType type) {
  auto it = families_.find(name);
  if (it != families_.end()) {
    Family& fam = *it->second;
    if (fam.type != type) {
      fatal(name, std::string("already registered as a ") + typeName(fam.type) +
                      ", requested as a " + typeName(type));
    }
    return fam;
  }
  if (!isValidMetricName(name)) {
    fatal(name, "invalid metric name");
  }
  const bool is_total = name.ends_with("_total");
  if (type == MetricType::Counter && !is_total) {
    fatal(name, "counter family names must end with _total");
  }
  auto fam = std::make_unique<Family>();
  fam->name = std::string(name);
  fam->help = std::string(help);
  fam->type = type;
  Family& ref = *fam;
  families_.emplace(std::string(name), std::move(fam));
  return ref;
}

Counter& Store::counter(std::string_view family, std::string_view help, const Labels& labels) {
  std::lock_guard lock(mu_);
  Family& fam = familyLocked(family, help, MetricType::Counter);
  std::string key;
  if (Family::Series* s = findSeries(fam, labels, key)) {
    return *s->counter;
  }
  Family::Series& s = addSeries(fam, labels, std::move(key));
  s.counter = std::make_unique<Counter>(thread_slots_);
  return *s.counter;
}

Gauge& Store::gauge(std::string_view family, std::string_view help, const Labels& labels) {
  std::lock_guard lock(mu_);
  Family& fam = familyLocked(family, help, MetricType::Gauge);
  std::string key;
  if (Family::Series* s = findSeries(fam, labels, key)) {
    return *s->gauge;
  }
  Family::Series& s = addSeries(fam, labels, std::move(key));
  s.gauge = std::make_unique<Gauge>(thread_slots_);
  return *s.gauge;
}

Histogram& Store::histogram(std::string_view family, std::string_view help,
                            const std::vector<double>& buckets, const Labels& labels) {
  std::lock_guard lock(mu_);
  Family& fam = familyLocked(family, help, MetricType::Histogram);
  std::vector<double> bounds = normalizeBounds(buckets, family);
  std::string key;
  if (Family::Series* s = findSeries(fam, labels, key)) {
    if (s->histogram->bounds() != bounds) {
      fatal(family, "histogram series requested again with different buckets");
    }
    return *s->histogram;
  }
  auto hist = std::make_unique<Histogram>(thread_slots_, std::move(bounds));
  Family::Series& s = addSeries(fam, labels, std::move(key));
  for (double b : hist->bounds()) {
    std::string le;
    appendDouble(le, b);
    s.le_text.push_back(std::move(le));
  }
  s.histogram = std::move(hist);
  return *s.histogram;
}

void Store::gaugeCallback(std::string_view family, std::string_view help, GaugeCallback cb) {
  LEVEE_RELEASE_ASSERT(cb != nullptr, "gaugeCallback needs a callback");
  std::lock_guard lock(mu_);
  if (families_.contains(family)) {
    fatal(family, "a gauge callback is registered once per family, on a family of its own");
  }
  Family& fam = familyLocked(family, help, MetricType::GaugeCallback);
  fam.callback = std::move(cb);
}

namespace {

void appendHeader(std::string& out, const Store::Family& fam) {
  out += "# HELP ";
  out += fam.name;
  out.push_back(' ');
  appendEscapedHelp(out, fam.help);
  out += "\n# TYPE ";
  out += fam.name;
  switch (fam.type) {
    case MetricType::Counter: out += " counter\n"; break;
    case MetricType::Gauge:
    case MetricType::GaugeCallback: out += " gauge\n"; break;
    case MetricType::Histogram: out += " histogram\n"; break;
  }
}

// `name{labels}` or `name` (+ suffix, + extra label), then a space.
void appendSeriesName(std::string& out, std::string_view name, std::string_view suffix,
                      std::string_view label_text, std::string_view le = {}) {
  out += name;
  out += suffix;
  if (!label_text.empty() || !le.empty()) {
    out.push_back('{');
    out += label_text;
    if (!le.empty()) {
      if (!label_text.empty()) {
        out.push_back(',');
      }
      out += "le=\"";
      out += le;
      out.push_back('"');
    }
    out.push_back('}');
  }
  out.push_back(' ');
}

void renderHistogram(std::string& out, const Store::Family& fam,
                     const Store::Family::Series& s) {
  const Histogram::Snapshot snap = s.histogram->snapshot();
  for (size_t i = 0; i < snap.bounds.size(); ++i) {
    appendSeriesName(out, fam.name, "_bucket", s.label_text, s.le_text[i]);
    appendUint(out, snap.cumulative[i]);
    out.push_back('\n');
  }
  appendSeriesName(out, fam.name, "_bucket", s.label_text, "+Inf");
  appendUint(out, snap.count);
  out.push_back('\n');
  appendSeriesName(out, fam.name, "_sum", s.label_text);
  appendDouble(out, snap.sum);
  out.push_back('\n');
  appendSeriesName(out, fam.name, "_count", s.label_text);
  appendUint(out, snap.count);
  out.push_back('\n');
}

}  // namespace

std::string Store::renderPrometheus() const {
  // Take a consistent list of families and series under the lock, then read values and run
  // callbacks without it: registration on a worker never waits for a scrape to finish, and a
  // callback may itself use the Store.
  struct View {
    const Family* fam;
    std::vector<const Family::Series*> series;
    GaugeCallback callback;
  };
  std::vector<View> views;
  {
    std::lock_guard lock(mu_);
    views.reserve(families_.size());
    for (const auto& [name, fam] : families_) {
      View& v = views.emplace_back(View{fam.get(), {}, fam->callback});
      v.series.reserve(fam->series.size());
      for (const auto& s : fam->series) {
        v.series.push_back(s.get());
      }
    }
  }

  std::string out;
  std::vector<std::pair<Labels, double>> samples;
  for (const View& v : views) {
    const Family& fam = *v.fam;
    if (fam.type == MetricType::GaugeCallback) {
      samples.clear();
      v.callback(samples);
      if (samples.empty()) {
        continue;
      }
      appendHeader(out, fam);
      for (const auto& [labels, value] : samples) {
        bool valid = true;
        for (const auto& l : labels) {
          valid = valid && isValidLabelName(l.first);
        }
        LEVEE_ASSERT(valid, "gauge callback produced an invalid label name");
        if (!valid) {
          continue;
        }
        appendSeriesName(out, fam.name, "", renderLabels(labels));
        appendDouble(out, value);
        out.push_back('\n');
      }
      continue;
    }
    if (v.series.empty()) {
      continue;
    }
    appendHeader(out, fam);
    for (const Family::Series* s : v.series) {
      switch (fam.type) {
        case MetricType::Counter:
          appendSeriesName(out, fam.name, "", s->label_text);
          appendUint(out, s->counter->value());
          out.push_back('\n');
          break;
        case MetricType::Gauge:
          appendSeriesName(out, fam.name, "", s->label_text);
          appendInt(out, s->gauge->value());
          out.push_back('\n');
          break;
        case MetricType::Histogram:
          renderHistogram(out, fam, *s);
          break;
        case MetricType::GaugeCallback:
          break;
      }
    }
  }
  return out;
}

}  // namespace levee::stats
