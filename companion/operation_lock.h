#pragma once
// The companion's one lock for operations that must never overlap: a restore and a failover
// (issue 6: "refused while a failover or another restore runs"). Main loop only (no mutex): the
// server owns one OperationLock and hands it by reference to companion/backup (restore) and
// companion/failover (promotion). tryAcquire() either returns a Guard, which releases the lock
// when destroyed, or nullopt while somebody else holds it; holder() names the holder for the
// 409 message ("restore b-20261202T004512Z-1a2b").

#include <memory>
#include <optional>
#include <string>

namespace levee::companion {

class OperationLock {
public:
  class Guard {
  public:
    Guard(Guard&& other) noexcept : lock_(other.lock_) { other.lock_ = nullptr; }
    Guard& operator=(Guard&&) = delete;
    Guard(const Guard&) = delete;
    ~Guard() {
      if (lock_ != nullptr) {
        lock_->holder_.clear();
      }
    }

  private:
    friend class OperationLock;
    explicit Guard(OperationLock* lock) : lock_(lock) {}
    OperationLock* lock_;
  };

  OperationLock() = default;
  OperationLock(const OperationLock&) = delete;
  OperationLock& operator=(const OperationLock&) = delete;

  // `what` describes the operation, e.g. "restore <id>" or "failover promote pg-1".
  std::optional<Guard> tryAcquire(std::string what) {
    if (!holder_.empty()) {
      return std::nullopt;
    }
    holder_ = what.empty() ? "unnamed operation" : std::move(what);
    return Guard(this);
  }
  bool held() const { return !holder_.empty(); }
  const std::string& holder() const { return holder_; }

private:
  std::string holder_;
};

}  // namespace levee::companion
