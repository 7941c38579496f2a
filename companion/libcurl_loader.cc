// libcurl, opened on first use (companion/dl_library.h explains why it is not linked). The S3
// store and the etcd lease include <curl/curl.h> and call curl_* as usual.
//
// If libcurl.so.4 (or one of its symbols) cannot be loaded: curl_easy_init returns null (the
// callers report "curl_easy_init failed"), curl_global_init and the setters return
// CURLE_FAILED_INIT, and curl_easy_strerror names the dlopen error.
//
// curl_easy_setopt and curl_easy_getinfo are variadic. Their one argument's type is encoded in
// the option number (CURLOPTTYPE_*: long, pointer, function pointer, curl_off_t, blob pointer)
// and in the info number (always a pointer), so each is forwarded with its real type.

#define CURL_DISABLE_TYPECHECK 1  // curl.h's type-checking macros would rename our definitions
#include <curl/curl.h>

#include <cstdarg>
#include <string>

#include "companion/dl_library.h"

namespace {

// X(return type, name, (parameters), (arguments), value when libcurl is unavailable)
#define LEVEE_LIBCURL_FUNCTIONS(X)                                                                  \
  X(CURLcode, curl_global_init, (long flags), (flags), CURLE_FAILED_INIT)                           \
  X(CURL*, curl_easy_init, (void), (), nullptr)                                                     \
  X(CURLcode, curl_easy_perform, (CURL * curl), (curl), CURLE_FAILED_INIT)                          \
  X(void, curl_easy_cleanup, (CURL * curl), (curl), void())                                         \
  X(void, curl_easy_reset, (CURL * curl), (curl), void())                                           \
  X(const char*, curl_easy_strerror, (CURLcode code), (code), unavailableMessage())                 \
  X(curl_slist*, curl_slist_append, (curl_slist * list, const char* data), (list, data), nullptr)   \
  X(void, curl_slist_free_all, (curl_slist * list), (list), void())

using SetoptFn = CURLcode(CURL*, CURLoption, ...);
using GetinfoFn = CURLcode(CURL*, CURLINFO, ...);

struct Libcurl {
#define LEVEE_LIBCURL_POINTER(ret, name, params, args, fallback) ret(*name) params = nullptr;
  LEVEE_LIBCURL_FUNCTIONS(LEVEE_LIBCURL_POINTER)
#undef LEVEE_LIBCURL_POINTER
  SetoptFn* curl_easy_setopt = nullptr;
  GetinfoFn* curl_easy_getinfo = nullptr;
  std::string error;  // why libcurl is unavailable ("" when loaded)
};

const Libcurl& libcurl() {
  // Thread-safe one-time load (the lease thread or the thread pool may be first).
  static const Libcurl lib = [] {
    static levee::companion::DlLibrary dl("libcurl.so.4", "libcurl4");
    Libcurl l;
#define LEVEE_LIBCURL_RESOLVE(ret, name, params, args, fallback) dl.resolve(l.name, #name);
    LEVEE_LIBCURL_FUNCTIONS(LEVEE_LIBCURL_RESOLVE)
#undef LEVEE_LIBCURL_RESOLVE
    dl.resolve(l.curl_easy_setopt, "curl_easy_setopt");
    dl.resolve(l.curl_easy_getinfo, "curl_easy_getinfo");
    if (!dl.ok()) {
      Libcurl none;  // all or nothing: never a mix of real calls and fallbacks
      none.error = dl.error();
      return none;
    }
    return l;
  }();
  return lib;
}

const char* unavailableMessage() { return libcurl().error.c_str(); }

}  // namespace

extern "C" {
#define LEVEE_LIBCURL_FORWARD(ret, name, params, args, fallback) \
  ret name params {                                              \
    const Libcurl& l = libcurl();                                \
    return l.name != nullptr ? l.name args : fallback;           \
  }
LEVEE_LIBCURL_FUNCTIONS(LEVEE_LIBCURL_FORWARD)
#undef LEVEE_LIBCURL_FORWARD

CURLcode curl_easy_setopt(CURL* curl, CURLoption option, ...) {
  const Libcurl& l = libcurl();
  if (l.curl_easy_setopt == nullptr) {
    return CURLE_FAILED_INIT;
  }
  va_list ap;
  va_start(ap, option);
  CURLcode rc;
  const int type = static_cast<int>(option) / 10000 * 10000;
  if (type == CURLOPTTYPE_LONG) {
    rc = l.curl_easy_setopt(curl, option, va_arg(ap, long));
  } else if (type == CURLOPTTYPE_OFF_T) {
    rc = l.curl_easy_setopt(curl, option, va_arg(ap, curl_off_t));
  } else if (type == CURLOPTTYPE_FUNCTIONPOINT) {
    rc = l.curl_easy_setopt(curl, option, va_arg(ap, void (*)()));
  } else {  // CURLOPTTYPE_OBJECTPOINT (strings, slists, callback data) and CURLOPTTYPE_BLOB
    rc = l.curl_easy_setopt(curl, option, va_arg(ap, void*));
  }
  va_end(ap);
  return rc;
}

CURLcode curl_easy_getinfo(CURL* curl, CURLINFO info, ...) {
  const Libcurl& l = libcurl();
  if (l.curl_easy_getinfo == nullptr) {
    return CURLE_FAILED_INIT;
  }
  va_list ap;
  va_start(ap, info);
  CURLcode rc = l.curl_easy_getinfo(curl, info, va_arg(ap, void*));  // every CURLINFO_* takes a pointer
  va_end(ap);
  return rc;
}
}
