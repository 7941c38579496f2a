#pragma once
// File-system helpers for the main loop: a directory watcher (uv_fs_event) and a way to run
// blocking work (file reads, YAML parsing) on libuv's thread pool (uv_queue_work) with the
// completion back on the loop. This header does not include <uv.h>.

#include <functional>
#include <memory>
#include <string>

#include "proxy/common/result.h"
#include "proxy/event/dispatcher.h"

struct uv_fs_event_s;

namespace levee::event {

// Watches one directory (not recursive). `cb(name)` runs on the dispatcher's thread for every
// change of an entry in it (created, written, renamed, removed, attributes), with the entry's
// name when the kernel gives one. Watching the directory rather than the file is what sees a
// ConfigMap update (the kubelet renames a new `..data` symlink over the old one) and an
// editor's write-to-temp-then-rename, which replace the file's inode. Owned by its user;
// destroying it stops the watch.
class DirWatcher {
public:
  using Callback = std::function<void(const std::string& name)>;
  static Result<std::unique_ptr<DirWatcher>> create(Dispatcher& dispatcher, const std::string& dir,
                                                    Callback cb);
  ~DirWatcher();
  DirWatcher(const DirWatcher&) = delete;
  DirWatcher& operator=(const DirWatcher&) = delete;

private:
  DirWatcher(Callback cb) : cb_(std::move(cb)) {}
  static void onUvEvent(uv_fs_event_s* h, const char* name, int events, int status) noexcept;
  uv_fs_event_s* handle_{nullptr};
  Callback cb_;
};
using DirWatcherPtr = std::unique_ptr<DirWatcher>;

// Runs `work` on libuv's thread pool, then `done` on the dispatcher's thread. `work` must not
// touch loop state; `done` runs even while the loop shuts down (it must check that its owner
// is still alive, e.g. through a weak_ptr). Returns false when the request could not be queued
// (nothing runs then).
bool runOffLoop(Dispatcher& dispatcher, std::function<void()> work, std::function<void()> done);

}  // namespace levee::event
