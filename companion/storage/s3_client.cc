#include "companion/storage/s3_client.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <mutex>

#include <openssl/evp.h>

#include "companion/storage/local_store.h"
#include "proxy/common/strings.h"

namespace levee::companion::storage {
namespace {

constexpr size_t kMaxErrorBody = 64 * 1024;
constexpr size_t kMaxListObjects = 100000;
constexpr uint64_t kMaxParts = 10000;
constexpr std::string_view kEmptySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

void globalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool isUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

// The text between <name> (or <name attr...>) and </name>, searching from `pos`; `pos` moves past it.
// nullopt when there is no such element; an error when it is not terminated.
Result<std::optional<std::string_view>> element(std::string_view xml, std::string_view name, size_t& pos) {
  while (true) {
    size_t open = xml.find("<" + std::string(name), pos);
    if (open == std::string_view::npos) {
      return std::optional<std::string_view>{};
    }
    size_t after = open + 1 + name.size();
    if (after >= xml.size()) {
      return makeError("unterminated <" + std::string(name) + ">");
    }
    const char c = xml[after];
    if (c != '>' && c != ' ' && c != '/' && c != '\t' && c != '\n' && c != '\r') {
      pos = after;  // a longer name (<KeyCount> when looking for <Key>)
      continue;
    }
    size_t gt = xml.find('>', after);
    if (gt == std::string_view::npos) {
      return makeError("unterminated <" + std::string(name) + ">");
    }
    if (xml[gt - 1] == '/') {  // <Key/>
      pos = gt + 1;
      return std::optional<std::string_view>{std::string_view{}};
    }
    const std::string close = "</" + std::string(name) + ">";
    size_t end = xml.find(close, gt + 1);
    if (end == std::string_view::npos) {
      return makeError("unterminated <" + std::string(name) + ">");
    }
    pos = end + close.size();
    return std::optional<std::string_view>{xml.substr(gt + 1, end - gt - 1)};
  }
}

Result<std::string> childText(std::string_view xml, std::string_view name) {
  size_t pos = 0;
  LEVEE_ASSIGN_OR_RETURN(auto v, element(xml, name, pos));
  if (!v) {
    return std::string();
  }
  return xmlUnescape(*v);
}

std::string stripQuotes(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') {
    return s.substr(1, s.size() - 2);
  }
  return s;
}

bool isPlainMd5(std::string_view etag) {
  return etag.size() == 32 && std::ranges::all_of(etag, [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
}

std::string lower(std::string s) {
  std::ranges::transform(s, s.begin(), [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
  return s;
}

class Digest {
public:
  explicit Digest(const EVP_MD* md) : md_(md), ctx_(EVP_MD_CTX_new()) { reset(); }
  ~Digest() { EVP_MD_CTX_free(ctx_); }
  Digest(const Digest&) = delete;
  Digest& operator=(const Digest&) = delete;
  void reset() { EVP_DigestInit_ex(ctx_, md_, nullptr); }
  void update(const void* data, size_t n) { EVP_DigestUpdate(ctx_, data, n); }
  std::string hex() {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_DigestFinal_ex(ctx_, out, &len);
    return hexDigest(out, len);
  }

private:
  const EVP_MD* md_;
  EVP_MD_CTX* ctx_;
};

}  // namespace

// === pure pieces ===

std::string s3UriEncode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (isUnreserved(c) || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string s3ObjectUrl(std::string_view endpoint, std::string_view bucket, std::string_view key,
                        std::vector<std::pair<std::string, std::string>> query) {
  std::string url(endpoint);
  while (!url.empty() && url.back() == '/') {
    url.pop_back();
  }
  url += "/" + s3UriEncode(bucket, false);
  if (!key.empty()) {
    url += "/" + s3UriEncode(key, true);
  }
  std::ranges::sort(query);
  for (size_t i = 0; i < query.size(); ++i) {
    url += i == 0 ? "?" : "&";
    url += s3UriEncode(query[i].first, false) + "=" + s3UriEncode(query[i].second, false);
  }
  return url;
}

Result<std::string> xmlUnescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out.push_back(s[i]);
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 12) {
      return makeError("bad XML entity");
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") {
      out.push_back('&');
    } else if (ent == "lt") {
      out.push_back('<');
    } else if (ent == "gt") {
      out.push_back('>');
    } else if (ent == "quot") {
      out.push_back('"');
    } else if (ent == "apos") {
      out.push_back('\'');
    } else if (ent.size() >= 2 && ent[0] == '#') {
      const bool hex = ent[1] == 'x' || ent[1] == 'X';
      std::string_view digits = ent.substr(hex ? 2 : 1);
      uint32_t cp = 0;
      auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), cp, hex ? 16 : 10);
      if (digits.empty() || ec != std::errc() || p != digits.data() + digits.size() || cp == 0 || cp > 0x10FFFF ||
          (cp >= 0xD800 && cp <= 0xDFFF)) {
        return makeError("bad XML character reference");
      }
      common::appendUtf8(out, cp);
    } else {
      return makeError("unknown XML entity &" + std::string(ent) + ";");
    }
    i = semi;
  }
  return out;
}

Result<S3ListPage> parseListObjectsV2(std::string_view xml) {
  size_t root = 0;
  LEVEE_ASSIGN_OR_RETURN(auto body, element(xml, "ListBucketResult", root));
  if (!body) {
    return makeError("not a ListObjectsV2 answer (no <ListBucketResult>)");
  }
  S3ListPage page;
  size_t pos = 0;
  while (true) {
    LEVEE_ASSIGN_OR_RETURN(auto contents, element(*body, "Contents", pos));
    if (!contents) {
      break;
    }
    if (page.objects.size() >= kMaxListObjects) {
      return makeError("more than 100000 entries in one ListObjectsV2 page");
    }
    S3Object obj;
    LEVEE_ASSIGN_OR_RETURN(obj.key, childText(*contents, "Key"));
    LEVEE_ASSIGN_OR_RETURN(std::string size, childText(*contents, "Size"));
    LEVEE_ASSIGN_OR_RETURN(std::string etag, childText(*contents, "ETag"));
    obj.etag = stripQuotes(etag);
    auto [p, ec] = std::from_chars(size.data(), size.data() + size.size(), obj.size);
    if (obj.key.empty() || size.empty() || ec != std::errc() || p != size.data() + size.size()) {
      return makeError("a <Contents> entry without a key or a numeric <Size>");
    }
    page.objects.push_back(std::move(obj));
  }
  // <IsTruncated> and <NextContinuationToken> are top-level; object keys cannot contain a raw '<',
  // so they are never mistaken for these.
  LEVEE_ASSIGN_OR_RETURN(std::string truncated, childText(*body, "IsTruncated"));
  page.truncated = truncated == "true";
  LEVEE_ASSIGN_OR_RETURN(page.next_token, childText(*body, "NextContinuationToken"));
  if (page.truncated && page.next_token.empty()) {
    return makeError("a truncated ListObjectsV2 answer without <NextContinuationToken>");
  }
  return page;
}

std::string describeS3Error(long status, std::string_view body) {
  std::string out = "HTTP " + std::to_string(status);
  auto code = childText(body, "Code");
  auto message = childText(body, "Message");
  if (code && !code->empty()) {
    out += " " + *code;
    if (message && !message->empty()) {
      out += ": " + *message;
    }
    return out;
  }
  std::string text(body.substr(0, 200));
  std::ranges::replace_if(text, [](char c) { return c == '\n' || c == '\r'; }, ' ');
  return text.empty() ? out : out + ": " + text;
}

// === impl S3Client ===

struct S3Client::Request {
  std::string method{"GET"};  // GET, PUT, HEAD, DELETE
  std::string url;
  std::string payload_sha256{kEmptySha256};
  // PUT/POST body: from `upload_fd` (`upload_size` bytes from `upload_start`) or `upload_data`.
  int upload_fd{-1};
  uint64_t upload_start{0};
  uint64_t upload_size{0};
  const std::string* upload_data{nullptr};
  size_t upload_offset{0};
  // GET body of a 2xx answer: to `download_fd`, into `capture` (up to `capture_max`), or only hashed.
  int download_fd{-1};
  bool capture_body{false};
  uint64_t capture_max{0};
  std::string capture;
  std::string write_error;
  Digest sha{EVP_sha256()};
  Digest md5{EVP_md5()};
  uint64_t bytes{0};
  CURL* curl{nullptr};

  void restart() {
    sha.reset();
    md5.reset();
    bytes = 0;
    upload_offset = 0;
    capture.clear();
    write_error.clear();
    if (upload_fd >= 0) {
      ::lseek(upload_fd, static_cast<off_t>(upload_start), SEEK_SET);
    }
    if (download_fd >= 0) {
      ::lseek(download_fd, 0, SEEK_SET);
      (void)::ftruncate(download_fd, 0);
    }
  }
};

namespace {

size_t readCallback(char* buf, size_t size, size_t nitems, void* userdata) {
  auto* req = static_cast<S3Client::Request*>(userdata);
  const size_t cap = size * nitems;
  size_t n = 0;
  if (req->upload_data != nullptr) {
    n = std::min(cap, req->upload_data->size() - req->upload_offset);
    std::memcpy(buf, req->upload_data->data() + req->upload_offset, n);
    req->upload_offset += n;
  } else {
    while (true) {
      ssize_t r = ::read(req->upload_fd, buf, std::min<uint64_t>(cap, req->upload_size - req->bytes));
      if (r < 0 && errno == EINTR) {
        continue;
      }
      if (r < 0) {
        req->write_error = std::string("read: ") + std::strerror(errno);
        return CURL_READFUNC_ABORT;
      }
      n = static_cast<size_t>(r);
      break;
    }
  }
  req->sha.update(buf, n);
  req->md5.update(buf, n);
  req->bytes += n;
  return n;
}

size_t writeCallback(char* data, size_t size, size_t nmemb, void* userdata) {
  auto* req = static_cast<S3Client::Request*>(userdata);
  const size_t n = size * nmemb;
  long status = 0;
  curl_easy_getinfo(req->curl, CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status >= 300) {  // an error body: kept (bounded) for the message
    req->capture.append(data, std::min(n, kMaxErrorBody - std::min(kMaxErrorBody, req->capture.size())));
    return n;
  }
  req->sha.update(data, n);
  req->md5.update(data, n);
  req->bytes += n;
  if (req->capture_body) {
    if (req->capture.size() + n > req->capture_max) {
      req->write_error = "object larger than " + std::to_string(req->capture_max) + " bytes";
      return 0;
    }
    req->capture.append(data, n);
  }
  if (req->download_fd >= 0) {
    size_t off = 0;
    while (off < n) {
      ssize_t w = ::write(req->download_fd, data + off, n - off);
      if (w < 0 && errno == EINTR) {
        continue;
      }
      if (w < 0) {
        req->write_error = std::string("write: ") + std::strerror(errno);
        return 0;
      }
      off += static_cast<size_t>(w);
    }
  }
  return n;
}

struct HeaderState {
  std::string etag;
};

size_t headerCallback(char* data, size_t size, size_t nitems, void* userdata) {
  auto* state = static_cast<HeaderState*>(userdata);
  const size_t n = size * nitems;
  std::string_view line(data, n);
  if (line.starts_with("HTTP/")) {
    state->etag.clear();  // a new answer (after 100 Continue)
  }
  size_t colon = line.find(':');
  if (colon != std::string_view::npos && lower(std::string(line.substr(0, colon))) == "etag") {
    std::string v(line.substr(colon + 1));
    while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) {
      v.pop_back();
    }
    while (!v.empty() && v.front() == ' ') {
      v.erase(0, 1);
    }
    state->etag = stripQuotes(v);
  }
  return n;
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

// Opens `path` for reading and returns its size: the body of an upload.
Result<int> openForUpload(const std::string& path, uint64_t& size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return makeError("open " + path + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return makeError("stat " + path + ": " + std::strerror(errno));
  }
  size = static_cast<uint64_t>(st.st_size);
  return fd;
}

}  // namespace

S3Client::S3Client(S3Settings settings) : settings_(std::move(settings)) { globalInit(); }

std::string S3Client::url(const std::string& key, std::vector<std::pair<std::string, std::string>> query) const {
  return s3ObjectUrl(settings_.endpoint, settings_.bucket, key, std::move(query));
}

Result<S3Client::Answer> S3Client::performOnce(Request& req) {
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) {
    return makeError("curl_easy_init failed");
  }
  CURL* c = curl.get();
  req.curl = c;
  HeaderState headers;
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_slist* list = nullptr;
  list = curl_slist_append(list, ("x-amz-content-sha256: " + req.payload_sha256).c_str());
  std::unique_ptr<curl_slist, SlistDeleter> header_list(list);
  const std::string sigv4 = "aws:amz:" + settings_.region + ":s3";
  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // thread pool: no SIGALRM for DNS timeouts
  curl_easy_setopt(c, CURLOPT_PROXY, "");     // no proxy from the environment
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sigv4.c_str());
  curl_easy_setopt(c, CURLOPT_USERNAME, settings_.access_key_id.c_str());
  curl_easy_setopt(c, CURLOPT_PASSWORD, settings_.secret_access_key.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, header_list.get());
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(settings_.connect_timeout_ms));
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, static_cast<long>(settings_.stall_timeout_s));
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, settings_.tls_verify ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, settings_.tls_verify ? 2L : 0L);
  if (!settings_.ca_file.empty()) {
    curl_easy_setopt(c, CURLOPT_CAINFO, settings_.ca_file.c_str());
  }
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &headerCallback);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &headers);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &writeCallback);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &req);
  const uint64_t upload_size = req.upload_data != nullptr ? req.upload_data->size() : req.upload_size;
  if (req.method == "PUT") {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, &readCallback);
    curl_easy_setopt(c, CURLOPT_READDATA, &req);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(upload_size));
  } else if (req.method == "POST") {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, &readCallback);
    curl_easy_setopt(c, CURLOPT_READDATA, &req);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(upload_size));
  } else if (req.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (req.method == "DELETE") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
  }
  req.restart();
  const CURLcode rc = curl_easy_perform(c);
  req.curl = nullptr;
  if (!req.write_error.empty()) {
    return makeError(req.method + " " + req.url + ": " + req.write_error);
  }
  if (rc != CURLE_OK) {
    return makeError(req.method + " " + req.url + ": " + (errbuf[0] != 0 ? errbuf : curl_easy_strerror(rc)));
  }
  Answer answer;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &answer.status);
  curl_off_t length = -1;
  curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
  answer.content_length = length;
  answer.etag = headers.etag;
  answer.body = std::move(req.capture);
  return answer;
}

Result<S3Client::Answer> S3Client::perform(Request& req) {
  static constexpr useconds_t kBackoff[] = {200 * 1000, 1000 * 1000};
  for (size_t attempt = 0;; ++attempt) {
    auto answer = performOnce(req);
    const bool retry = !answer || answer->status >= 500;
    if (!retry || attempt == std::size(kBackoff)) {
      if (!answer) {
        return answer;
      }
      if (answer->status >= 300 && !(req.method == "DELETE" && answer->status == 404) &&
          !(req.method == "HEAD" && answer->status == 404)) {
        return makeError(req.method + " " + req.url + ": " + describeS3Error(answer->status, answer->body));
      }
      return answer;
    }
    ::usleep(kBackoff[attempt]);  // the thread pool, never a loop
  }
}

Result<S3Transfer> S3Client::putFile(const std::string& key, const std::string& path, const std::string& sha256_hex) {
  uint64_t file_size = 0;
  LEVEE_ASSIGN_OR_RETURN(int fd, openForUpload(path, file_size));
  Request req;
  req.method = "PUT";
  req.url = url(key);
  req.payload_sha256 = sha256_hex;
  req.upload_fd = fd;
  req.upload_size = file_size;
  auto answer = perform(req);
  ::close(fd);
  if (!answer) {
    return std::unexpected(answer.error());
  }
  S3Transfer t;
  t.bytes = req.bytes;
  t.sha256 = req.sha.hex();
  t.md5 = req.md5.hex();
  t.etag = answer->etag;
  if (t.bytes != req.upload_size) {
    return makeError("PUT " + key + ": sent " + std::to_string(t.bytes) + " of " + std::to_string(req.upload_size) +
                     " bytes (the file changed while it was uploaded)");
  }
  if (t.sha256 != sha256_hex) {
    return makeError("PUT " + key + ": the bytes sent do not match the artifact's sha256");
  }
  if (isPlainMd5(t.etag) && lower(t.etag) != t.md5) {
    return makeError("PUT " + key + ": the server's ETag " + t.etag + " is not the MD5 of the bytes sent (" + t.md5 +
                     ")");
  }
  return t;
}

Result<S3Transfer> S3Client::putFileMultipart(const std::string& key, const std::string& path,
                                              const std::string& sha256_hex, uint64_t part_size) {
  uint64_t file_size = 0;
  LEVEE_ASSIGN_OR_RETURN(int fd, openForUpload(path, file_size));
  const uint64_t size = file_size;
  part_size = std::max<uint64_t>(part_size, (size + kMaxParts - 1) / kMaxParts);
  // Initiate.
  const std::string empty;
  Request init;
  init.method = "POST";
  init.url = url(key, {{"uploads", ""}});
  init.upload_data = &empty;
  init.capture_body = true;
  init.capture_max = 1024 * 1024;
  auto started = perform(init);
  if (!started) {
    ::close(fd);
    return std::unexpected(started.error());
  }
  auto upload_id = childText(started->body, "UploadId");
  if (!upload_id || upload_id->empty()) {
    ::close(fd);
    return makeError("POST " + key + "?uploads: no <UploadId> in the answer");
  }
  auto abort = [&](Error e) -> Result<S3Transfer> {
    ::close(fd);
    Request del;
    del.method = "DELETE";
    del.url = url(key, {{"uploadId", *upload_id}});
    (void)perform(del);  // best effort: the upload's parts are discarded
    return std::unexpected(std::move(e));
  };
  Digest whole(EVP_sha256());
  std::string complete = "<CompleteMultipartUpload>";
  S3Transfer t;
  std::vector<char> buf(1 << 20);
  for (uint64_t offset = 0, number = 1; offset < size || number == 1; offset += part_size, ++number) {
    const uint64_t len = std::min(part_size, size - offset);
    // The part's SHA-256 first (sent as its signed payload hash), and the whole file's.
    Digest part(EVP_sha256());
    for (uint64_t done = 0; done < len;) {
      ssize_t r = ::pread(fd, buf.data(), std::min<uint64_t>(buf.size(), len - done), static_cast<off_t>(offset + done));
      if (r < 0 && errno == EINTR) {
        continue;
      }
      if (r <= 0) {
        return abort(Error{"read " + path + ": " + (r < 0 ? std::strerror(errno) : "short file")});
      }
      part.update(buf.data(), static_cast<size_t>(r));
      whole.update(buf.data(), static_cast<size_t>(r));
      done += static_cast<uint64_t>(r);
    }
    Request req;
    req.method = "PUT";
    req.url = url(key, {{"partNumber", std::to_string(number)}, {"uploadId", *upload_id}});
    req.payload_sha256 = part.hex();
    req.upload_fd = fd;
    req.upload_start = offset;
    req.upload_size = len;
    auto answer = perform(req);
    if (!answer) {
      return abort(answer.error());
    }
    if (req.bytes != len || req.sha.hex() != req.payload_sha256) {
      return abort(Error{"PUT " + key + " part " + std::to_string(number) + ": the bytes sent changed while read"});
    }
    if (answer->etag.empty()) {
      return abort(Error{"PUT " + key + " part " + std::to_string(number) + ": no ETag in the answer"});
    }
    t.bytes += len;
    complete += "<Part><PartNumber>" + std::to_string(number) + "</PartNumber><ETag>\"" + answer->etag +
                "\"</ETag></Part>";
    if (len == 0) {
      break;
    }
  }
  complete += "</CompleteMultipartUpload>";
  t.sha256 = whole.hex();
  if (t.sha256 != sha256_hex) {
    return abort(Error{"PUT " + key + ": the file's sha256 is not the artifact's (it changed)"});
  }
  Request done;
  done.method = "POST";
  done.url = url(key, {{"uploadId", *upload_id}});
  Digest body_sha(EVP_sha256());
  body_sha.update(complete.data(), complete.size());
  done.payload_sha256 = body_sha.hex();
  done.upload_data = &complete;
  done.capture_body = true;
  done.capture_max = 1024 * 1024;
  auto finished = perform(done);
  if (!finished) {
    return abort(finished.error());
  }
  // CompleteMultipartUpload can answer 200 with an <Error> body.
  if (finished->body.find("<Error>") != std::string::npos ||
      finished->body.find("CompleteMultipartUploadResult") == std::string::npos) {
    return abort(Error{"POST " + key + "?uploadId: " + describeS3Error(finished->status, finished->body)});
  }
  ::close(fd);
  auto etag = childText(finished->body, "ETag");
  t.etag = etag ? stripQuotes(*etag) : "";
  return t;
}

Status S3Client::putString(const std::string& key, const std::string& content) {
  Request req;
  req.method = "PUT";
  req.url = url(key);
  Digest sha(EVP_sha256());
  sha.update(content.data(), content.size());
  req.payload_sha256 = sha.hex();
  req.upload_data = &content;
  LEVEE_ASSIGN_OR_RETURN(auto answer, perform(req));
  const std::string md5 = req.md5.hex();
  if (isPlainMd5(answer.etag) && lower(answer.etag) != md5) {
    return makeError("PUT " + key + ": the server's ETag " + answer.etag + " is not the MD5 of the bytes sent");
  }
  return {};
}

Result<S3Transfer> S3Client::getToFile(const std::string& key, const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) {
    return makeError("open " + path + ": " + std::strerror(errno));
  }
  Request req;
  req.url = url(key);
  req.download_fd = fd;
  auto answer = perform(req);
  if (answer && ::fsync(fd) != 0) {
    answer = makeError("fsync " + path + ": " + std::strerror(errno));
  }
  if (::close(fd) != 0 && answer) {
    answer = makeError("close " + path + ": " + std::strerror(errno));
  }
  if (!answer) {
    return std::unexpected(answer.error());
  }
  return S3Transfer{req.bytes, req.sha.hex(), req.md5.hex(), answer->etag};
}

Result<S3Transfer> S3Client::getDigest(const std::string& key) {
  Request req;
  req.url = url(key);
  LEVEE_ASSIGN_OR_RETURN(auto answer, perform(req));
  return S3Transfer{req.bytes, req.sha.hex(), req.md5.hex(), answer.etag};
}

Result<std::string> S3Client::getString(const std::string& key, uint64_t max_bytes) {
  Request req;
  req.url = url(key);
  req.capture_body = true;
  req.capture_max = max_bytes;
  LEVEE_ASSIGN_OR_RETURN(auto answer, perform(req));
  return std::move(answer.body);
}

Result<S3Head> S3Client::head(const std::string& key) {
  Request req;
  req.method = "HEAD";
  req.url = url(key);
  LEVEE_ASSIGN_OR_RETURN(auto answer, perform(req));
  S3Head h;
  if (answer.status == 404) {
    return h;
  }
  h.exists = true;
  h.size = answer.content_length >= 0 ? static_cast<uint64_t>(answer.content_length) : 0;
  h.etag = answer.etag;
  if (answer.content_length < 0) {
    return makeError("HEAD " + key + ": no Content-Length in the answer");
  }
  return h;
}

Status S3Client::remove(const std::string& key) {
  Request req;
  req.method = "DELETE";
  req.url = url(key);
  LEVEE_ASSIGN_OR_RETURN(auto answer, perform(req));
  (void)answer;
  return {};
}

Result<std::vector<S3Object>> S3Client::list(const std::string& prefix) {
  std::vector<S3Object> out;
  std::string token;
  while (true) {
    Request req;
    std::vector<std::pair<std::string, std::string>> query{{"list-type", "2"}, {"prefix", prefix}};
    if (!token.empty()) {
      query.emplace_back("continuation-token", token);
    }
    req.url = url("", std::move(query));
    req.capture_body = true;
    req.capture_max = 16 * 1024 * 1024;
    LEVEE_ASSIGN_OR_RETURN(auto answer, perform(req));
    auto page = parseListObjectsV2(answer.body);
    if (!page) {
      return makeError("ListObjectsV2 " + prefix + ": " + page.error().message);
    }
    for (auto& o : page->objects) {
      if (out.size() >= kMaxListObjects) {
        return makeError("ListObjectsV2 " + prefix + ": more than 100000 objects");
      }
      out.push_back(std::move(o));
    }
    if (!page->truncated) {
      return out;
    }
    if (page->next_token == token) {
      return makeError("ListObjectsV2 " + prefix + ": the continuation token did not advance");
    }
    token = page->next_token;
  }
}

}  // namespace levee::companion::storage
