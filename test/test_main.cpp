#define BOOST_TEST_MODULE tether
#include <boost/test/unit_test.hpp>
