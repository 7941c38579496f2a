# LEVEE_SANITIZE=asan -> AddressSanitizer + UndefinedBehaviorSanitizer; tsan -> ThreadSanitizer.
# GCC 12 reports false -Wmaybe-uninitialized inside libstdc++ (std::regex, std::function) when
# sanitizers instrument the code; that one warning is off in sanitizer builds only.
if(LEVEE_SANITIZE STREQUAL "asan")
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
                      -Wno-maybe-uninitialized)
  add_link_options(-fsanitize=address,undefined)
elseif(LEVEE_SANITIZE STREQUAL "tsan")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer -Wno-maybe-uninitialized)
  add_link_options(-fsanitize=thread)
elseif(NOT LEVEE_SANITIZE STREQUAL "")
  message(FATAL_ERROR "LEVEE_SANITIZE must be asan, tsan or empty (got ${LEVEE_SANITIZE})")
endif()
