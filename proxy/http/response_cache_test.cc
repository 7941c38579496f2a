// The stale store: what is storable, the key and Vary match, freshness (max_stale and
// stale-if-error), and the byte/entry bounds. Time is simulated; nothing sleeps.

#include "proxy/http/response_cache.h"

#include <gtest/gtest.h>

#include <string>

namespace levee::http {
namespace {

using std::chrono::seconds;

RequestHead get(std::string_view target, std::string_view host = "shop.local") {
  RequestHead h;
  h.method = "GET";
  h.target = target;
  h.headers.add("Host", host);
  return h;
}

ResponseHead ok(std::initializer_list<std::pair<std::string_view, std::string_view>> headers = {}) {
  ResponseHead r;
  r.status = 200;
  for (const auto& [n, v] : headers) {
    r.headers.add(n, v);
  }
  return r;
}

class ResponseCacheTest : public ::testing::Test {
protected:
  SimulatedTimeSource time_;
  StalePolicy policy_{std::chrono::minutes(10), 1024, false};

  CachedResponseSharedPtr capture(const RequestHead& req, const ResponseHead& resp,
                                  std::string body = "body") {
    auto c = beginCapture(req, resp, policy_, time_.monotonicTime());
    if (c) {
      c->body = std::move(body);
    }
    return c;
  }
};

TEST_F(ResponseCacheTest, KeyIsMethodHostAndTargetWithHeadReadingGet) {
  RequestHead h = get("/items?page=2", "Shop.Local:8080");
  EXPECT_EQ(ResponseCache::keyFor(h), "GET shop.local:8080 /items?page=2");
  h.method = "HEAD";
  EXPECT_EQ(ResponseCache::keyFor(h), "GET shop.local:8080 /items?page=2");
  h.method = "POST";
  EXPECT_EQ(ResponseCache::keyFor(h), "");
}

TEST_F(ResponseCacheTest, OnlyGoodSharedGetResponsesAreStorable) {
  EXPECT_NE(capture(get("/a"), ok()), nullptr);
  EXPECT_EQ(capture(get("/a"), ok({{"Cache-Control", "no-store"}})), nullptr);
  EXPECT_EQ(capture(get("/a"), ok({{"cache-control", "max-age=5, Private"}})), nullptr);
  EXPECT_EQ(capture(get("/a"), ok({{"Vary", "*"}})), nullptr);
  ResponseHead partial = ok();
  partial.status = 206;
  EXPECT_EQ(capture(get("/a"), partial), nullptr);
  ResponseHead error = ok();
  error.status = 503;
  EXPECT_EQ(capture(get("/a"), error), nullptr);
  RequestHead post = get("/a");
  post.method = "POST";
  EXPECT_EQ(capture(post, ok()), nullptr);
  RequestHead authorized = get("/a");
  authorized.headers.add("Authorization", "Bearer x");
  EXPECT_EQ(capture(authorized, ok()), nullptr);
  policy_.allow_authorized = true;
  EXPECT_NE(capture(authorized, ok()), nullptr);
  ResponseHead big = ok();
  big.has_content_length = true;
  big.content_length = 4096;  // above max_entry_bytes
  EXPECT_EQ(capture(get("/a"), big), nullptr);
}

TEST_F(ResponseCacheTest, StoredHeadersDropFramingCookiesAndAge) {
  auto c = capture(get("/a"), ok({{"Content-Type", "application/json"},
                                  {"Content-Length", "4"},
                                  {"Set-Cookie", "session=secret"},
                                  {"Connection", "x-hop"},
                                  {"X-Hop", "1"},
                                  {"Age", "7"},
                                  {"ETag", "\"v1\""}}));
  ASSERT_NE(c, nullptr);
  std::vector<std::string> names;
  for (const auto& [n, v] : c->headers) {
    names.push_back(n);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"Content-Type", "ETag"}));
  EXPECT_EQ(c->initial_age_s, 7u);
}

TEST_F(ResponseCacheTest, ServedUntilMaxStaleWithAge) {
  ResponseCache cache(1 << 20, 100, time_);
  RequestHead req = get("/a");
  cache.insert(ResponseCache::keyFor(req), capture(req, ok()));
  time_.advance(seconds(42));
  uint64_t age = 0;
  auto hit = cache.lookup(ResponseCache::keyFor(req), req, age);
  ASSERT_NE(hit, nullptr);
  EXPECT_EQ(hit->body, "body");
  EXPECT_EQ(age, 42u);
  time_.advance(std::chrono::minutes(10));
  EXPECT_EQ(cache.lookup(ResponseCache::keyFor(req), req, age), nullptr);
}

TEST_F(ResponseCacheTest, StoredWithinTellsWhetherARecaptureIsDue) {
  ResponseCache cache(1 << 20, 100, time_);
  RequestHead req = get("/a");
  const std::string key = ResponseCache::keyFor(req);
  const ResponseHead resp = ok();
  const uint64_t digest = ResponseCache::digestFor(req, resp);
  EXPECT_FALSE(cache.storedWithin(digest, std::chrono::seconds(1)));
  CachedResponseSharedPtr c = capture(req, resp);
  c->digest = digest;
  cache.insert(key, c);
  time_.advance(std::chrono::milliseconds(999));
  EXPECT_TRUE(cache.storedWithin(digest, std::chrono::seconds(1)));
  EXPECT_FALSE(cache.storedWithin(ResponseCache::digestFor(get("/b"), resp), std::chrono::seconds(1)));
  time_.advance(std::chrono::milliseconds(1));
  EXPECT_FALSE(cache.storedWithin(digest, std::chrono::seconds(1)));
}

TEST_F(ResponseCacheTest, DigestFollowsTheKeyAndTheVariedRequestHeaders) {
  RequestHead a = get("/items", "shop.local");
  RequestHead b = get("/items", "shop.local");
  b.method = "HEAD";
  EXPECT_EQ(ResponseCache::digestFor(a, ok()), ResponseCache::digestFor(b, ok()));  // HEAD reads GET
  EXPECT_NE(ResponseCache::digestFor(a, ok()), ResponseCache::digestFor(get("/items?x=1"), ok()));
  EXPECT_NE(ResponseCache::digestFor(a, ok()), ResponseCache::digestFor(get("/items", "other.local"), ok()));
  const ResponseHead vary = ok({{"Vary", "Accept-Encoding, X-Tenant"}});
  a.headers.add("Accept-Encoding", "gzip");
  b.headers.add("accept-encoding", "gzip");
  EXPECT_EQ(ResponseCache::digestFor(a, vary), ResponseCache::digestFor(b, vary));
  b.headers.add("X-Tenant", "t2");
  EXPECT_NE(ResponseCache::digestFor(a, vary), ResponseCache::digestFor(b, vary));
  EXPECT_NE(ResponseCache::digestFor(a, vary), ResponseCache::digestFor(a, ok()));
}

TEST_F(ResponseCacheTest, UpstreamAgeCountsTowardsStaleness) {
  ResponseCache cache(1 << 20, 100, time_);
  RequestHead req = get("/a");
  cache.insert(ResponseCache::keyFor(req), capture(req, ok({{"Age", "595"}})));
  uint64_t age = 0;
  time_.advance(seconds(4));
  ASSERT_NE(cache.lookup(ResponseCache::keyFor(req), req, age), nullptr);
  EXPECT_EQ(age, 599u);
  time_.advance(seconds(1));
  EXPECT_EQ(cache.lookup(ResponseCache::keyFor(req), req, age), nullptr);
}

TEST_F(ResponseCacheTest, StaleIfErrorBoundsTheWindowButNeverBeyondMaxStale) {
  ResponseCache cache(1 << 20, 100, time_);
  RequestHead a = get("/a");
  RequestHead b = get("/b");
  // Servable for max-age (30) + stale-if-error (60) seconds.
  cache.insert(ResponseCache::keyFor(a), capture(a, ok({{"Cache-Control", "max-age=30, stale-if-error=60"}})));
  // stale-if-error beyond max_stale (10m): max_stale wins.
  cache.insert(ResponseCache::keyFor(b), capture(b, ok({{"Cache-Control", "stale-if-error=86400"}})));
  uint64_t age = 0;
  time_.advance(seconds(89));
  EXPECT_NE(cache.lookup(ResponseCache::keyFor(a), a, age), nullptr);
  time_.advance(seconds(1));
  EXPECT_EQ(cache.lookup(ResponseCache::keyFor(a), a, age), nullptr);
  time_.advance(seconds(509));
  EXPECT_NE(cache.lookup(ResponseCache::keyFor(b), b, age), nullptr);
  time_.advance(seconds(1));
  EXPECT_EQ(cache.lookup(ResponseCache::keyFor(b), b, age), nullptr);
}

TEST_F(ResponseCacheTest, VaryHeadersSelectTheVariant) {
  ResponseCache cache(1 << 20, 100, time_);
  RequestHead en = get("/a");
  en.headers.add("Accept-Language", "en");
  RequestHead de = get("/a");
  de.headers.add("Accept-Language", "de");
  RequestHead none = get("/a");
  const std::string key = ResponseCache::keyFor(en);
  cache.insert(key, capture(en, ok({{"Vary", "Accept-Language"}}), "hello"));
  uint64_t age = 0;
  EXPECT_EQ(cache.lookup(key, de, age), nullptr);
  EXPECT_EQ(cache.lookup(key, none, age), nullptr);
  cache.insert(key, capture(de, ok({{"Vary", "accept-language"}}), "hallo"));
  ASSERT_NE(cache.lookup(key, en, age), nullptr);
  EXPECT_EQ(cache.lookup(key, en, age)->body, "hello");
  EXPECT_EQ(cache.lookup(key, de, age)->body, "hallo");
  // Same variant again: replaced, not added.
  cache.insert(key, capture(de, ok({{"Vary", "Accept-Language"}}), "guten tag"));
  EXPECT_EQ(cache.entries(), 2u);
  EXPECT_EQ(cache.lookup(key, de, age)->body, "guten tag");
}

TEST_F(ResponseCacheTest, VariantsPerKeyAreBounded) {
  ResponseCache cache(1 << 20, 100, time_);
  const std::string key = ResponseCache::keyFor(get("/a"));
  for (int i = 0; i < 10; ++i) {
    RequestHead r = get("/a");
    r.headers.add("X-V", std::to_string(i));
    cache.insert(key, capture(r, ok({{"Vary", "x-v"}})));
  }
  EXPECT_EQ(cache.entries(), ResponseCache::kMaxVariants);
}

TEST_F(ResponseCacheTest, EntryBoundEvictsLeastRecentlyUsed) {
  ResponseCache cache(1 << 20, 3, time_);
  auto put = [&](std::string_view target) {
    RequestHead r = get(target);
    cache.insert(ResponseCache::keyFor(r), capture(r, ok()));
  };
  put("/1");
  put("/2");
  put("/3");
  uint64_t age = 0;
  RequestHead one = get("/1");
  ASSERT_NE(cache.lookup(ResponseCache::keyFor(one), one, age), nullptr);  // /1 is now recent
  put("/4");
  EXPECT_EQ(cache.entries(), 3u);
  RequestHead two = get("/2");
  EXPECT_EQ(cache.lookup(ResponseCache::keyFor(two), two, age), nullptr);
  EXPECT_NE(cache.lookup(ResponseCache::keyFor(one), one, age), nullptr);
}

TEST_F(ResponseCacheTest, ByteBoundHoldsUnderAKeyFlood) {
  const uint64_t max_bytes = 64 * 1024;
  ResponseCache cache(max_bytes, 1000000, time_);
  for (int i = 0; i < 20000; ++i) {
    RequestHead r = get("/k/" + std::to_string(i));
    cache.insert(ResponseCache::keyFor(r), capture(r, ok(), std::string(100, 'x')));
    ASSERT_LE(cache.bytes(), max_bytes);
  }
  EXPECT_GT(cache.entries(), 100u);
  // The newest key is there; the first ones were evicted.
  uint64_t age = 0;
  RequestHead last = get("/k/19999");
  EXPECT_NE(cache.lookup(ResponseCache::keyFor(last), last, age), nullptr);
  RequestHead first = get("/k/0");
  EXPECT_EQ(cache.lookup(ResponseCache::keyFor(first), first, age), nullptr);
}

TEST_F(ResponseCacheTest, ResponseLargerThanTheStoreIsNotStored) {
  ResponseCache cache(512, 10, time_);
  RequestHead r = get("/a");
  cache.insert(ResponseCache::keyFor(r), capture(r, ok(), std::string(1000, 'x')));
  EXPECT_EQ(cache.entries(), 0u);
  EXPECT_EQ(cache.bytes(), 0u);
}

TEST(CacheControlTest, ParsesDirectivesAcrossLines) {
  HeaderMap h;
  h.add("Cache-Control", "public, MAX-AGE=60");
  h.add("cache-control", " stale-if-error=\"300\" , s-maxage=10");
  CacheControl cc = parseCacheControl(h);
  EXPECT_EQ(cc.max_age, 60);
  EXPECT_EQ(cc.s_maxage, 10);
  EXPECT_EQ(cc.stale_if_error, 300);
  EXPECT_FALSE(cc.no_store);
  HeaderMap bad;
  bad.add("Cache-Control", "max-age=abc, stale-if-error=-1, no-store");
  cc = parseCacheControl(bad);
  EXPECT_EQ(cc.max_age, -1);
  EXPECT_EQ(cc.stale_if_error, -1);
  EXPECT_TRUE(cc.no_store);
}

}  // namespace
}  // namespace levee::http
