#pragma once
// Per-thread free lists for the objects every request allocates and frees (the stream, its
// router and per-route filters). glibc's tcache keeps only 7 blocks per size: with more
// requests in flight than that, the streams finished in one loop turn overflow it, and each
// later allocation of the size takes malloc's slow path (about 300 instructions; bench/callgrind.sh
// showed about 2 such calls per request at 10 connections). A class opts in by deriving from
// ThreadCached<Self>: its operator new/delete keep up to kMaxCached freed blocks of exactly
// sizeof(Self) on the freeing thread and hand them out again on that thread. Memory freed on
// another thread simply joins that thread's list; anything else goes to ::operator new/delete.
// Under ASan the lists are off, so use-after-free of these objects is still caught.

#include <cstddef>
#include <new>

namespace levee::common {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr size_t kThreadCachedDefault = 0;
#else
inline constexpr size_t kThreadCachedDefault = 256;
#endif

template <typename T, size_t kMaxCached = kThreadCachedDefault>
class ThreadCached {
public:
  static void* operator new(size_t size) {
    FreeList& fl = freeList();
    if (size == sizeof(T) && fl.head != nullptr) {
      Node* n = fl.head;
      fl.head = n->next;
      --fl.count;
      return n;
    }
    return ::operator new(size);
  }
  static void operator delete(void* p, size_t size) noexcept {
    static_assert(sizeof(T) >= sizeof(Node), "a freed block holds the list link");
    if (p == nullptr) {
      return;
    }
    FreeList& fl = freeList();
    if (size == sizeof(T) && fl.count < kMaxCached) {
      fl.head = new (p) Node{fl.head};
      ++fl.count;
      return;
    }
    ::operator delete(p, size);
  }

  // Blocks cached on the calling thread (tests).
  static size_t cachedOnThisThread() { return freeList().count; }

protected:
  ThreadCached() = default;
  ~ThreadCached() = default;

private:
  struct Node {
    Node* next;
  };
  struct FreeList {
    Node* head{nullptr};
    size_t count{0};
    ~FreeList() {
      while (head != nullptr) {
        Node* n = head;
        head = n->next;
        ::operator delete(static_cast<void*>(n), sizeof(T));
      }
    }
  };
  static FreeList& freeList() {
    thread_local FreeList list;
    return list;
  }
};

}  // namespace levee::common
