package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*.err from the parser's output")

// TestBadFiles parses each testdata/bad/NAME.conf and compares every error
// with testdata/bad/NAME.err, one "FILE:LINE: message" a line. Each file
// holds the cases of one rule.
func TestBadFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.conf")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad files: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".conf"), func(t *testing.T) {
			c, err := ParseFile(f)
			if err == nil || c != nil {
				t.Fatalf("ParseFile(%s) = %v, %v; want errors and no config", f, c, err)
			}
			checkErrors(t, f, err)
			want := strings.TrimSuffix(f, ".conf") + ".err"
			if *update {
				if err := os.WriteFile(want, []byte(err.Error()+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b, rerr := os.ReadFile(want)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if got := err.Error() + "\n"; got != string(b) {
				t.Errorf("errors differ\n got:\n%s\nwant:\n%s", got, b)
			}
		})
	}
}

// checkErrors asserts that err joins Error values of file, with lines in
// the file, sorted.
func checkErrors(t *testing.T, file string, err error) {
	t.Helper()
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %T is not a joined error", err)
	}
	data, rerr := os.ReadFile(file)
	if rerr != nil {
		t.Fatal(rerr)
	}
	lines := strings.Count(string(data), "\n") + 1
	prev := 0
	for _, e := range j.Unwrap() {
		var ce Error
		if !errors.As(e, &ce) {
			t.Fatalf("%v is a %T, not a config.Error", e, e)
		}
		if ce.File != file || ce.Line < 1 || ce.Line > lines || ce.Line < prev {
			t.Errorf("error %q: file %q line %d (previous %d, file has %d lines)", ce, ce.File, ce.Line, prev, lines)
		}
		prev = ce.Line
	}
}

func TestAllErrorsAtOnce(t *testing.T) {
	src := `driver turbo
ipsec replay-window 99999
interface tunnel ipsec:a
  tunnel source 192.0.2.1
  tunnel destination 192.0.2.2
  tunnel transform-set missing
bogus
`
	_, err := Parse("all.conf", strings.NewReader(src))
	want := `all.conf:1: driver: expected auto or software or dpdk or kernel, got "turbo"
all.conf:2: ipsec replay-window: window 99999 out of range: expected 0 to 65536
all.conf:6: tunnel transform-set: no ipsec transform-set "missing" is declared
all.conf:7: unknown command "bogus"; expected one of: checkpoint, cluster, control, dataplane, dpdk, driver, interface, ip, ipsec, metrics, snmp-server, virtual-router`
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 4 {
		t.Errorf("%d errors, want 4", n)
	}
}

func TestErrorString(t *testing.T) {
	if got := (Error{File: "a.conf", Line: 3, Msg: "bad"}).Error(); got != "a.conf:3: bad" {
		t.Errorf("got %q", got)
	}
	if got := (Error{File: "a.conf", Msg: "too big"}).Error(); got != "a.conf: too big" {
		t.Errorf("got %q", got)
	}
}
