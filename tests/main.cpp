// The doctest runner for l2rw_tests; the test cases live in tests/**/test_*.cpp.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
