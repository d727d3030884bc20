package kerneltrace

import (
	"fmt"
	"testing"

	"golang.org/x/sys/cpu"
)

// recorder is a T that keeps what Expect reports.
type recorder struct{ errors, logs []string }

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recorder) Logf(format string, args ...any) {
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}

// TestExpect checks Expect's verdicts: a body that ran passes, one that
// did not fails (in a kerneltrace build), and a missing feature fails only
// under RequireEnv. It logs what golang.org/x/sys/cpu sees, which is what
// the kernels' dispatch reads (under scripts/avx512-emu, the guest's CPU).
func TestExpect(t *testing.T) {
	t.Logf("x/sys/cpu: AVX2 %v FMA %v AVX512F %v BW %v VL %v VNNI %v BF16 %v; kerneltrace.On %v",
		cpu.X86.HasAVX2, cpu.X86.HasFMA, cpu.X86.HasAVX512F, cpu.X86.HasAVX512BW, cpu.X86.HasAVX512VL,
		cpu.X86.HasAVX512VNNI, cpu.X86.HasAVX512BF16, On)

	var r recorder
	done := Expect(&r, true, "F", "kerneltrace-test-a", "kerneltrace-test-b")
	Ran("kerneltrace-test-a")
	done()
	if On && (len(r.errors) != 1 || Count("kerneltrace-test-a") != 1) {
		t.Errorf("b did not run, a ran once: errors %q, count of a %d", r.errors, Count("kerneltrace-test-a"))
	}
	if !On && len(r.errors) != 0 {
		t.Errorf("without the tag nothing is checked: errors %q", r.errors)
	}

	r = recorder{}
	t.Setenv(RequireEnv, "")
	Expect(&r, false, "F", "kerneltrace-test-c")()
	if len(r.errors) != 0 {
		t.Errorf("a missing feature without %s: errors %q", RequireEnv, r.errors)
	}
	t.Setenv(RequireEnv, "1")
	Expect(&r, false, "F", "kerneltrace-test-c")()
	if len(r.errors) != 1 {
		t.Errorf("a missing feature under %s: errors %q, want one", RequireEnv, r.errors)
	}
}
