# One INTERFACE target carries the project's warning set; sanitizers and
# optimisation come from the presets, never from here.
add_library(tether_warnings INTERFACE)
target_compile_options(tether_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wold-style-cast
  -Wcast-align -Woverloaded-virtual -Wnull-dereference -Wimplicit-fallthrough
  $<$<BOOL:${TETHER_WERROR}>:-Werror>)
