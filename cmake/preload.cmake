# preload.cmake: libzmalloc-preload.so, malloc for LD_PRELOAD on the pool
# backend (src/preload.c), and the zmrun tool. Included by CMakeLists.txt in
# pool builds. A verification build (ZMALLOC_DEBUG=ON) names the library
# libzmalloc-preload-debug.so so both can be installed side by side; zmrun
# --debug looks for it.
#
# The library holds only what malloc needs: preload.c, the platform layer
# and the pool (plus the verification layer in a debug build), not the Redis
# front end. Everything but the malloc API is hidden, so a program that links
# libzmalloc itself keeps its own copy.
# A sanitizer build would put an instrumented allocator under the
# sanitizer's own malloc: nothing to test there, so no preload library.
if(ZMALLOC_SANITIZE)
  message(STATUS "preload library skipped in a sanitizer build")
  return()
endif()

set(ZM_PRELOAD_SOURCES src/preload.c src/preload_stats.c src/account.c src/lifecycle.c
                       src/platform.c src/options.c ${ZM_SAMPLE_SOURCES} ${ZM_BACKEND_SOURCES})
set(ZM_PRELOAD_NAME zmalloc-preload)
if(ZMALLOC_DEBUG)
  list(APPEND ZM_PRELOAD_SOURCES src/debug.c src/debug_report.c)
  set(ZM_PRELOAD_NAME zmalloc-preload-debug)
endif()

add_library(zmalloc_preload SHARED ${ZM_PRELOAD_SOURCES})
target_include_directories(zmalloc_preload PRIVATE ${CMAKE_SOURCE_DIR}/include
                           ${CMAKE_BINARY_DIR}/include ${CMAKE_SOURCE_DIR}/src)
target_link_libraries(zmalloc_preload PRIVATE Threads::Threads ${CMAKE_DL_LIBS})
# The statistics keep their event counts in the thread registry's slots
# (account.h, preload.h: ZPL_X_COUNT words), and lifecycle.c calls the
# preload layer's hooks.
target_compile_definitions(zmalloc_preload PRIVATE ZM_PRELOAD_BUILD=1 ZM_ACCOUNT_EXTRA=22)
# initial-exec TLS: a preloaded library is loaded at start, so its
# thread-locals live in the static TLS block and cost one load. No builtin
# malloc: gcc must not turn our own malloc+memset into a call to calloc.
target_compile_options(zmalloc_preload PRIVATE -ftls-model=initial-exec -fno-semantic-interposition
                       -fno-builtin-malloc -fno-builtin-calloc -fno-builtin-realloc
                       -fno-builtin-free)
target_link_options(zmalloc_preload PRIVATE -Wl,-z,defs -Wl,-z,nodelete)
set_target_properties(zmalloc_preload PROPERTIES OUTPUT_NAME ${ZM_PRELOAD_NAME}
                      C_VISIBILITY_PRESET hidden POSITION_INDEPENDENT_CODE ON
                      INTERPROCEDURAL_OPTIMIZATION ${ZM_IPO})
install(TARGETS zmalloc_preload LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})

# zmrun: the copy in the build tree finds the library next to itself; the
# installed one finds it in ../<libdir> relative to bin/.
set(ZMRUN_LIBDIR ${CMAKE_INSTALL_LIBDIR})
configure_file(${CMAKE_SOURCE_DIR}/tools/zmrun ${CMAKE_BINARY_DIR}/zmrun @ONLY)
install(PROGRAMS ${CMAKE_BINARY_DIR}/zmrun DESTINATION ${CMAKE_INSTALL_BINDIR})
