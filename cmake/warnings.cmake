# One INTERFACE target carries the project's warning set; sanitizers and
# optimisation come from the presets, never from here.
add_library(tether_warnings INTERFACE)
target_compile_options(tether_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wold-style-cast
  -Wcast-align -Woverloaded-virtual -Wimplicit-fallthrough
  # GCC 12 at -O2 pairs Asio's awaitable-frame operator delete with the
  # aligned_alloc inside its recycling allocator: a false positive.
  $<$<CXX_COMPILER_ID:GNU>:-Wno-mismatched-new-delete>
  $<$<BOOL:${TETHER_WERROR}>:-Werror>)
