package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary files to Parse. Invariants: no panic; either a
// Config or errors, never both; every error is an Error of the file on one
// of its lines (or line 0), sorted; parsing is deterministic; a parsed
// configuration has resolved tunnels whose routes and SAs hold together.
// The seed corpus in testdata/fuzz/FuzzParse holds the good and bad
// example files.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"testdata/good/*.conf", "testdata/bad/*.conf"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.conf", bytes.NewReader(data))
		c2, err2 := Parse("fuzz.conf", bytes.NewReader(data))
		if (c == nil) == (err == nil) {
			t.Fatalf("config %v and error %v", c, err)
		}
		if err != nil {
			if err2 == nil || err.Error() != err2.Error() {
				t.Fatalf("not deterministic:\n%v\n---\n%v", err, err2)
			}
			checkFuzzErrors(t, data, err)
			return
		}
		if len(c.Tunnels) != len(c2.Tunnels) {
			t.Fatal("not deterministic")
		}
		names := map[string]bool{}
		for i, tn := range c.Tunnels {
			if !tn.Equal(c2.Tunnels[i]) {
				t.Fatalf("%s differs between two parses", tn)
			}
			if names[tn.Name] {
				t.Fatalf("two tunnels %s", tn)
			}
			names[tn.Name] = true
			checkFuzzTunnel(t, tn)
		}
		for _, r := range c.Routes {
			if c.Tunnel(r.Tunnel) == nil || r.Prefix.Masked() != r.Prefix {
				t.Fatalf("route %+v", r)
			}
		}
	})
}

func checkFuzzErrors(t *testing.T, data []byte, err error) {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		var ce Error
		if !errors.As(err, &ce) || ce.Line != 0 {
			t.Fatalf("unexpected error %T %v", err, err)
		}
		return
	}
	lines := bytes.Count(data, []byte{'\n'}) + 1
	prev := 0
	for _, e := range j.Unwrap() {
		var ce Error
		if !errors.As(e, &ce) || ce.File != "fuzz.conf" || ce.Line < prev || ce.Line > lines || ce.Msg == "" {
			t.Fatalf("bad error %#v (previous line %d, %d lines)", e, prev, lines)
		}
		prev = ce.Line
	}
}

func checkFuzzTunnel(t *testing.T, tn *Tunnel) {
	if !tn.TunnelSource.IsValid() || tn.TunnelDestination.IsZero() || len(tn.TransformSet.Transforms) == 0 {
		t.Fatalf("%s is incomplete: %+v", tn, tn)
	}
	if !tn.LocalSelector.Valid() || !tn.RemoteSelector.Valid() || tn.LocalSelector.Is6() != tn.RemoteSelector.Is6() {
		t.Fatalf("%s selectors %v %v", tn, tn.LocalSelector, tn.RemoteSelector)
	}
	if tn.Type == Signaled {
		if tn.Inbound != nil || tn.Outbound != nil || tn.IKEVersion == 0 {
			t.Fatalf("signaled %s: %+v", tn, tn)
		}
		return
	}
	tr := tn.TransformSet.Transforms[0]
	for _, sa := range []*SA{tn.Inbound, tn.Outbound} {
		if sa == nil || sa.SPI < 256 || sa.Protocol != tr.Protocol || len(sa.CipherKey) != tr.CipherKeyLen() || len(sa.AuthKey) != tr.AuthKeyLen() {
			t.Fatalf("manual %s SA %+v for %s", tn, sa, tr)
		}
	}
}
