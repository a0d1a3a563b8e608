// The tiny harness of the standalone C++ tests: count every check, print the first failures, report at the end.
#pragma once

#include <cstdio>
#include <string>

namespace accelkit_test {

inline int g_failures = 0;
inline int g_checks = 0;

inline void check(bool ok, const std::string& what) {
  ++g_checks;
  if (ok) return;
  // The first 20 failures are enough to diagnose; the count at the end says how many more there were.
  if (++g_failures <= 20) std::fprintf(stderr, "FAIL: %s\n", what.c_str());
}

// Prints "<name>: N checks, M failures<extra>" and returns the process exit status.
inline int report(const char* name, const std::string& extra = "") {
  std::printf("%s: %d checks, %d failures%s\n", name, g_checks, g_failures, extra.c_str());
  return g_failures == 0 ? 0 : 1;
}

}  // namespace accelkit_test
