package cluster

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
)

func loads(weights map[string]int, a map[string]string) map[string]int {
	l := map[string]int{}
	for g, n := range a {
		l[n] += weights[g]
	}
	return l
}

// TestAssignProperties, on random clusters: every group is assigned to an
// eligible node; the result is a fixed point (fed back as owners it comes
// back unchanged); the spread is below the lightest group of the most
// loaded node; and groups whose owner stays eligible move only to balance.
func TestAssignProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 2000 {
		weights := map[string]int{}
		for i := range 1 + rng.IntN(30) {
			weights[fmt.Sprintf("g%02d", i)] = 1 + rng.IntN(50)
		}
		var nodes []string
		for i := range rng.IntN(6) {
			nodes = append(nodes, fmt.Sprintf("n%d", i))
		}
		owners := map[string]string{}
		for g := range weights {
			if rng.IntN(3) > 0 {
				owners[g] = fmt.Sprintf("n%d", rng.IntN(7)) // some not eligible
			}
		}
		a := assign(weights, nodes, owners)
		if len(nodes) == 0 {
			if len(a) != 0 {
				t.Fatalf("trial %d: assigned with no node", trial)
			}
			continue
		}
		elig := map[string]bool{}
		for _, n := range nodes {
			elig[n] = true
		}
		for g := range weights {
			if !elig[a[g]] {
				t.Fatalf("trial %d: group %s to %q", trial, g, a[g])
			}
		}
		if again := assign(weights, nodes, a); !maps.Equal(again, a) {
			t.Fatalf("trial %d: not a fixed point", trial)
		}
		l := loads(weights, a)
		hi, lo := "", ""
		for _, n := range nodes {
			if hi == "" || l[n] > l[hi] {
				hi = n
			}
			if lo == "" || l[n] < l[lo] {
				lo = n
			}
		}
		for g, n := range a {
			if n == hi && weights[g] < l[hi]-l[lo] {
				t.Fatalf("trial %d: %s (%d) could still move from %s (%d) to %s (%d)", trial, g, weights[g], hi, l[hi], lo, l[lo])
			}
		}
	}
}

// TestAssignJoinAndDrain: a third node joining two that carry six equal
// groups takes two of them and nothing else moves; draining a node moves
// its groups, and only its groups.
func TestAssignJoinAndDrain(t *testing.T) {
	w := map[string]int{}
	for i := range 6 {
		w[fmt.Sprintf("g%d", i)] = 10
	}
	two := assign(w, []string{"a", "b"}, nil)
	if l := loads(w, two); l["a"] != 30 || l["b"] != 30 {
		t.Fatalf("two nodes: %v", l)
	}
	three := assign(w, []string{"a", "b", "c"}, two)
	moved := 0
	for g := range w {
		if three[g] != two[g] {
			moved++
			if three[g] != "c" {
				t.Errorf("%s moved from %s to %s, not to the new node", g, two[g], three[g])
			}
		}
	}
	if l := loads(w, three); moved != 2 || l["a"] != 20 || l["b"] != 20 || l["c"] != 20 {
		t.Fatalf("join moved %d: %v", moved, l)
	}
	drained := assign(w, []string{"a", "c"}, three)
	for g := range w {
		if three[g] != "b" && drained[g] != three[g] {
			t.Errorf("%s moved off %s during b's drain", g, three[g])
		}
		if drained[g] == "b" {
			t.Errorf("%s still on the drained node", g)
		}
	}
}

// TestAssignByTunnels: one heavy group balances against many light ones.
func TestAssignByTunnels(t *testing.T) {
	w := map[string]int{"big": 100, "s1": 25, "s2": 25, "s3": 25, "s4": 25}
	a := assign(w, []string{"x", "y"}, nil)
	if l := loads(w, a); l["x"] != 100 || l["y"] != 100 {
		t.Fatalf("%v %v", a, l)
	}
}
