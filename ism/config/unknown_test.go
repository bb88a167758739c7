package config

import "testing"

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"", "abc", 3}, {"abc", "", 3}, {"same", "same", 0},
		{"slient", "silent", 1}, {"sourc", "source", 1}, {"ipsek", "ipsec", 1},
		{"transfrom", "transform", 1}, {"kitten", "sitting", 3}, {"ca", "abc", 3},
	} {
		if got := editDistance(c.a, c.b); got != c.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	if got := closest("slient", []string{"sent", "silent", "idle"}); got != "silent" {
		t.Errorf("closest = %q", got)
	}
	if got := closest("zzzzzz", []string{"sent", "silent"}); got != "" {
		t.Errorf("closest = %q, want none", got)
	}
}
