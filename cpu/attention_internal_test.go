package cpu

import (
	"math"
	"testing"
)

// TestAttnExp2 checks the exp2 of the attention kernels against math.Exp2
// over the range the kernels use (scores minus their maximum, ≤ 0) and
// beyond, and its special values.
func TestAttnExp2(t *testing.T) {
	worst := 0.0
	for k := -130 * 4096; k <= 130*4096; k++ {
		x := float32(k) / 4096
		got, want := float64(attnExp2(x)), math.Exp2(float64(x))
		switch {
		case x < -126:
			if got != 0 {
				t.Fatalf("attnExp2(%v) = %v, want 0 below -126", x, got)
			}
		case x > 127:
			if !math.IsInf(got, 1) {
				t.Fatalf("attnExp2(%v) = %v, want +Inf above 127", x, got)
			}
		case want >= 0x1p-126: // normal results: relative error
			worst = max(worst, math.Abs(got-want)/want)
		}
	}
	if worst > 0x1p-23 {
		t.Errorf("relative error up to %g, want ≤ 2^-23 (one unit in the last place)", worst)
	}
	if attnExp2(0) != 1 || attnExp2(1) != 2 || attnExp2(-1) != 0.5 || attnExp2(-20) != 0x1p-20 {
		t.Errorf("attnExp2 is not exact at integers: 2^0 = %v, 2^1 = %v, 2^-1 = %v, 2^-20 = %v", attnExp2(0), attnExp2(1), attnExp2(-1), attnExp2(-20))
	}
	if v := attnExp2(float32(math.Inf(-1))); v != 0 {
		t.Errorf("attnExp2(-Inf) = %v, want 0", v)
	}
	if v := attnExp2(float32(math.NaN())); v == v {
		t.Errorf("attnExp2(NaN) = %v, want NaN", v)
	}
}
