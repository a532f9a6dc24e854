// The only translation unit that compiles Asio's, Asio SSL's and Beast's
// out-of-line bodies (BOOST_ASIO_SEPARATE_COMPILATION and
// BOOST_BEAST_SEPARATE_COMPILATION everywhere else). On a 2-core machine this
// is the difference between compiling them once and once per file.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
