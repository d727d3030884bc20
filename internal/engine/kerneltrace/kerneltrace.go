// Package kerneltrace records which assembly kernel bodies ran, in builds
// with the tag kerneltrace, so that a test can prove that it reached a
// dispatch path: under an emulator (scripts/avx512-emu), that the AVX-512
// and VNNI bodies ran, not their AVX2 fallbacks. Without the tag On is
// false and a call site's
//
//	if kerneltrace.On {
//		kerneltrace.Ran("dotQ8_0RowsVNNI")
//	}
//
// is compiled away.
package kerneltrace

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
)

var (
	mu     sync.Mutex
	counts = map[string]int64{}
)

// Ran counts one call of the body named name.
func Ran(name string) {
	mu.Lock()
	counts[name]++
	mu.Unlock()
}

// Count reports how many times the body named name ran.
func Count(name string) int64 {
	mu.Lock()
	defer mu.Unlock()
	return counts[name]
}

// Summary lists every body that ran, with its count, sorted by name
// ("" when none did or the build does not count).
func Summary() string {
	mu.Lock()
	defer mu.Unlock()
	var s []string
	for n, c := range counts {
		s = append(s, fmt.Sprintf("%s x%d", n, c))
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

// RequireEnv names the environment variable that makes Expect fail where
// the CPU lacks the feature the bodies need (scripts/avx512-emu sets it in
// its guest: a guest whose kernel turned AVX-512 off must not pass).
const RequireEnv = "COURIER_REQUIRE_AVX512"

// T is the part of testing.TB that Expect uses.
type T interface {
	Helper()
	Errorf(format string, args ...any)
	Logf(format string, args ...any)
}

// Expect returns a function, to be deferred, that checks that every body
// named ran between the two calls, where have (the CPU has the feature
// they need, named by feature) and the build counts calls (On). Without
// the tag it checks nothing; without the feature it logs, or fails when
// RequireEnv is set.
func Expect(t T, have bool, feature string, names ...string) func() {
	t.Helper()
	if !have {
		if os.Getenv(RequireEnv) != "" {
			t.Errorf("kerneltrace: %s is set but this CPU lacks %s: %s cannot run", RequireEnv, feature, strings.Join(names, ", "))
		}
		return func() {}
	}
	if !On {
		return func() {}
	}
	before := make([]int64, len(names))
	for i, n := range names {
		before[i] = Count(n)
	}
	return func() {
		t.Helper()
		var missing, ran []string
		for i, n := range names {
			if d := Count(n) - before[i]; d > 0 {
				ran = append(ran, fmt.Sprintf("%s x%d", n, d))
			} else {
				missing = append(missing, n)
			}
		}
		sort.Strings(ran)
		if len(missing) > 0 {
			t.Errorf("kerneltrace: %s bodies did not run: %s", feature, strings.Join(missing, ", "))
		}
		if len(ran) > 0 {
			t.Logf("kerneltrace: %s bodies ran: %s", feature, strings.Join(ran, ", "))
		}
	}
}
