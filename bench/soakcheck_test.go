package bench

import (
	"math"
	"testing"
)

// TestSlopeAcrossRestart: the readings during a restart are left out and
// a step across it is no slope; without a gap the slope is the plain
// least-squares one, the warm-up (first fifth) left out.
func TestSlopeAcrossRestart(t *testing.T) {
	var xs []float64
	var ys, plain []uint64
	for i := range 40 {
		x := float64(i * 5)
		y := 1000 + 2*x // 2 a second
		if i < 8 {
			y += 5000 // warm-up
		}
		plain = append(plain, uint64(y))
		switch {
		case x >= 100 && x < 130:
			y = 1e6 // the restart
		case x >= 130:
			y += 700 // a step
		}
		xs, ys = append(xs, x), append(ys, uint64(y))
	}
	if got := slope(xs, ys, 100, 130); math.Abs(got-2) > 1e-9 {
		t.Errorf("slope across the restart %v, want 2", got)
	}
	if got := slope(xs, plain, math.Inf(1), math.Inf(1)); math.Abs(got-2) > 1e-9 {
		t.Errorf("slope without a gap %v, want 2", got)
	}
	if got := slope(xs[:2], ys[:2], math.Inf(1), math.Inf(1)); got != 0 {
		t.Errorf("slope of two readings %v, want 0", got)
	}
}
