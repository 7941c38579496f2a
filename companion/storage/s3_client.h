#pragma once
// A small S3 client on libcurl (policy `companion.backup.s3`, companion/README.md "S3 store"):
// path-style URLs (`<endpoint>/<bucket>/<key>`) against any S3-compatible endpoint, signed by
// libcurl's SigV4 (CURLOPT_AWS_SIGV4 "aws:amz:<region>:s3"), http or https with verify options.
// PUT (streamed from a file with Content-Length, or from memory; multipart for large files),
// GET (to a file or memory),
// HEAD, DELETE and ListObjectsV2.
//
// Every call blocks (network I/O): call them from the thread pool (event::queueWork), never
// from a loop. One client is used by one thread at a time. Every request is retried (up to 3
// attempts, 0.2 s then 1 s apart, on the pool thread) on transport errors and 5xx answers; all
// the requests made are idempotent except a multipart initiate, whose retry can leave an empty
// upload behind (an AbortIncompleteMultipartUpload lifecycle rule on the bucket removes those).

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/common/result.h"

namespace levee::companion::storage {

struct S3Settings {
  std::string endpoint;  // "http://127.0.0.1:9000" or "https://s3.eu-west-1.amazonaws.com"
  std::string bucket;
  std::string region{"us-east-1"};
  std::string access_key_id;
  std::string secret_access_key;
  bool tls_verify{true};  // https: verify the peer's certificate and host name
  std::string ca_file;    // https: CA bundle instead of the system's
  uint32_t connect_timeout_ms{5000};
  uint32_t stall_timeout_s{60};  // abort a transfer that moves no byte for this long
  uint64_t multipart_part_size{64ull << 20};  // files larger than this: multipart upload
};

struct S3Object {
  std::string key;
  uint64_t size{0};
  std::string etag;  // without quotes
};

struct S3ListPage {
  std::vector<S3Object> objects;
  bool truncated{false};
  std::string next_token;
};

// What a HEAD found.
struct S3Head {
  bool exists{false};
  uint64_t size{0};
  std::string etag;  // without quotes
};

// What a streamed GET or PUT saw of the body.
struct S3Transfer {
  uint64_t bytes{0};
  std::string sha256;  // hex, of the bytes sent or received
  std::string md5;     // hex (PUT: compared with a plain ETag)
  std::string etag;    // the answer's ETag, without quotes
};

// === pure pieces (unit-tested) ===

// AWS URI encoding: unreserved bytes [A-Za-z0-9-._~] as they are, `/` kept when `keep_slash`,
// everything else %XX (upper-case hex).
std::string s3UriEncode(std::string_view s, bool keep_slash);
// `<endpoint>/<bucket>/<encoded key>[?<query>]`; `query` pairs are sorted by name and encoded
// (SigV4's canonical query string is the URL's, so the URL is built canonical).
std::string s3ObjectUrl(std::string_view endpoint, std::string_view bucket, std::string_view key,
                        std::vector<std::pair<std::string, std::string>> query = {});
// A ListObjectsV2 answer (ListBucketResult). Refuses what is not one, unterminated elements,
// sizes that are not numbers and more than 100000 entries.
Result<S3ListPage> parseListObjectsV2(std::string_view xml);
// "<Code>: <Message>" of an S3 <Error> body, or a prefix of the body when it is not one.
std::string describeS3Error(long status, std::string_view body);
// XML character data: &amp; &lt; &gt; &quot; &apos; &#N; &#xN; (UTF-8). Refuses unknown entities.
Result<std::string> xmlUnescape(std::string_view s);

// === the client ===

class S3Client {
public:
  explicit S3Client(S3Settings settings);

  // Streams `path` (its size is sent as Content-Length). `sha256_hex` (the file's, known to the
  // caller) is sent as x-amz-content-sha256, so a server that checks the signed payload refuses
  // corrupted bytes; the MD5 of what was sent is compared with a plain (32 hex digit) ETag.
  Result<S3Transfer> putFile(const std::string& key, const std::string& path, const std::string& sha256_hex);
  // Multipart upload (initiate, parts of `part_size` bytes, more when the file needs over 10000
  // parts, complete; aborted on any failure). Each part's SHA-256 is its signed payload hash,
  // computed in a read pass before it is sent; the whole file must hash to `sha256_hex`.
  Result<S3Transfer> putFileMultipart(const std::string& key, const std::string& path, const std::string& sha256_hex,
                                      uint64_t part_size);
  Status putString(const std::string& key, const std::string& content);
  // GET into `path` (created or truncated, fsynced); the SHA-256 of what was received.
  Result<S3Transfer> getToFile(const std::string& key, const std::string& path);
  // GET, hashing the body without keeping it (verification read-back).
  Result<S3Transfer> getDigest(const std::string& key);
  // GET of a small object (refused above `max_bytes`).
  Result<std::string> getString(const std::string& key, uint64_t max_bytes = 16 * 1024 * 1024);
  Result<S3Head> head(const std::string& key);
  // 204/200, and 404 (already gone) are success.
  Status remove(const std::string& key);
  // Every object under `prefix` (all pages, at most 100000 objects).
  Result<std::vector<S3Object>> list(const std::string& prefix);

  const S3Settings& settings() const { return settings_; }

  struct Request;  // one request's state (s3_client.cc)

private:
  struct Answer {
    long status{0};
    std::string body;  // error bodies, and small bodies when asked for
    std::string etag;
    int64_t content_length{-1};
  };
  Result<Answer> perform(Request& req);
  Result<Answer> performOnce(Request& req);
  std::string url(const std::string& key, std::vector<std::pair<std::string, std::string>> query = {}) const;

  S3Settings settings_;
};

}  // namespace levee::companion::storage
