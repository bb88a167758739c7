package mux

import (
	"testing"

	"github.com/ismgw/ism/ike"
)

// TestVersionsOf: tunnels of one version need no map; a second version
// files every tunnel by name; a tunnel not configured has version 0
// whenever the versions are mixed or there are no tunnels.
func TestVersionsOf(t *testing.T) {
	tunnels := func(vs ...int) []ike.Tunnel {
		var ts []ike.Tunnel
		for i, v := range vs {
			ts = append(ts, ike.Tunnel{Name: string(rune('a' + i)), Version: v})
		}
		return ts
	}
	for _, c := range []struct {
		name    string
		in      []ike.Tunnel
		want    map[string]int
		needMap bool
	}{
		{"none", nil, map[string]int{"a": 0}, false},
		{"IKEv1", tunnels(0, 1, 1), map[string]int{"a": 1, "b": 1, "c": 1}, false},
		{"IKEv2", tunnels(2, 2), map[string]int{"a": 2, "b": 2}, false},
		{"mixed", tunnels(1, 0, 2, 1), map[string]int{"a": 1, "b": 1, "c": 2, "d": 1, "e": 0}, true},
	} {
		vs := versionsOf(c.in)
		if (vs.byName != nil) != c.needMap {
			t.Errorf("%s: map %v", c.name, vs.byName)
		}
		for name, want := range c.want {
			if got := vs.of(name); got != want {
				t.Errorf("%s: tunnel %s has version %d, want %d", c.name, name, got, want)
			}
		}
	}
}
