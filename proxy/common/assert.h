#pragma once
// Invariants. LEVEE_ASSERT is debug-only; LEVEE_RELEASE_ASSERT always aborts with a message.

#include <cstdio>
#include <cstdlib>

#define LEVEE_RELEASE_ASSERT(cond, msg)                                                   \
  do {                                                                                    \
    if (!(cond)) [[unlikely]] {                                                           \
      std::fprintf(stderr, "levee: assertion failed at %s:%d: %s: %s\n", __FILE__, __LINE__, \
                   #cond, msg);                                                           \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

#ifdef NDEBUG
#define LEVEE_ASSERT(cond, msg) \
  do {                          \
  } while (0)
#else
#define LEVEE_ASSERT(cond, msg) LEVEE_RELEASE_ASSERT(cond, msg)
#endif
