#pragma once
// A shared library opened on first use (dlopen), for the companion's client libraries (libpq,
// libcurl). Linking them maps their dependency trees (OpenLDAP, Kerberos, GnuTLS, ...) into every
// levee process, megabytes of RSS, although only a policy with a `companion` section uses them.
// The loaders (libpq_loader.cc, libcurl_loader.cc) define the C functions the companion calls,
// with the headers' exact signatures, and forward each to the real one; a function missing from
// a loader's list is a link error, never a silent fallback. Resolution is all or nothing.

#include <dlfcn.h>

#include <string>

namespace levee::companion {

class DlLibrary {
public:
  // `package`: the Debian package that provides `soname` (named in the error).
  DlLibrary(const char* soname, const char* package) : soname_(soname) {
    handle_ = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (handle_ == nullptr) {
      const char* why = dlerror();
      error_ = std::string("levee: ") + soname + " could not be loaded (install " + package +
               "): " + (why != nullptr ? why : "unknown error");
    }
  }
  // Kept open for the life of the process (the functions may be called until exit).
  ~DlLibrary() = default;
  DlLibrary(const DlLibrary&) = delete;
  DlLibrary& operator=(const DlLibrary&) = delete;

  // Resolves `name` into `fn`; on the first missing symbol the library counts as unavailable.
  template <typename Fn>
  void resolve(Fn*& fn, const char* name) {
    fn = nullptr;
    if (handle_ == nullptr || !error_.empty()) {
      return;
    }
    fn = reinterpret_cast<Fn*>(dlsym(handle_, name));
    if (fn == nullptr) {
      error_ = std::string("levee: ") + soname_ + " has no symbol " + name + " (too old?)";
    }
  }

  bool ok() const { return handle_ != nullptr && error_.empty(); }
  const std::string& error() const { return error_; }

private:
  const char* soname_;
  void* handle_{nullptr};
  std::string error_;
};

}  // namespace levee::companion
