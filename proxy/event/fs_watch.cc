#include "proxy/event/fs_watch.h"

#include <uv.h>

namespace levee::event {
namespace {

struct WorkRequest {
  uv_work_t req{};
  std::function<void()> work;
  std::function<void()> done;
};

}  // namespace

// === impl DirWatcher ===

Result<std::unique_ptr<DirWatcher>> DirWatcher::create(Dispatcher& dispatcher, const std::string& dir,
                                                       Callback cb) {
  std::unique_ptr<DirWatcher> w(new DirWatcher(std::move(cb)));
  auto* h = new uv_fs_event_t;
  if (int rc = uv_fs_event_init(dispatcher.loop(), h); rc != 0) {
    delete h;  // init failed: libuv does not know the handle
    return makeError("watch " + dir + ": " + uv_strerror(rc));
  }
  h->data = w.get();
  w->handle_ = h;
  if (int rc = uv_fs_event_start(h, &DirWatcher::onUvEvent, dir.c_str(), 0); rc != 0) {
    return makeError("watch " + dir + ": " + uv_strerror(rc));  // ~DirWatcher closes the handle
  }
  return w;
}

DirWatcher::~DirWatcher() {
  if (handle_ == nullptr) {
    return;
  }
  uv_fs_event_stop(handle_);
  handle_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(handle_),
           [](uv_handle_t* h) noexcept { delete reinterpret_cast<uv_fs_event_t*>(h); });
}

void DirWatcher::onUvEvent(uv_fs_event_t* h, const char* name, int, int) noexcept {
  auto* self = static_cast<DirWatcher*>(h->data);
  if (self == nullptr) {
    return;
  }
  // An error status (e.g. the directory went away) is reported as a change too: the reload it
  // triggers reads the file and says what is wrong.
  self->cb_(name != nullptr ? std::string(name) : std::string());
}

// === runOffLoop ===

bool runOffLoop(Dispatcher& dispatcher, std::function<void()> work, std::function<void()> done) {
  auto r = std::make_unique<WorkRequest>();
  r->work = std::move(work);
  r->done = std::move(done);
  r->req.data = r.get();
  int rc = uv_queue_work(
      dispatcher.loop(), &r->req,
      [](uv_work_t* req) noexcept { static_cast<WorkRequest*>(req->data)->work(); },
      [](uv_work_t* req, int) noexcept {
        // Ownership comes back from the loop; `done` runs even when cancelled (status
        // UV_ECANCELED), so the caller always hears back.
        std::unique_ptr<WorkRequest> self(static_cast<WorkRequest*>(req->data));
        if (self->done) {
          self->done();
        }
      });
  if (rc != 0) {
    return false;
  }
  (void)r.release();
  return true;
}

}  // namespace levee::event
