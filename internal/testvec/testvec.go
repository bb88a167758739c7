// Package testvec reads the known-answer vector files kept at
// <pkg>/testdata/vectors/<source>-<case>.txt, the one format every package's
// vector tests share.
//
// A file names its source on line 1, as a comment ("# RFC 3602 §4 Case #5").
// After it come "name: value" lines, "#" comments and blank lines. A value
// continues on the following lines that start with a space or a tab; the
// pieces are joined with a single space. Names are lower case letters,
// digits, '-', '_' and '.'. A name may repeat: Records splits such a file
// into groups, as in NIST CAVP files; Get refuses an ambiguous name.
package testvec

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Field is one "name: value" entry of a vector file.
type Field struct {
	Name  string
	Value string
	Line  int // line number of the name, from 1
}

// Vector is the content of one vector file, fields in file order.
type Vector struct {
	Path   string  // the file, as given to Load or Parse
	Source string  // line 1 without its "#"
	Fields []Field // in file order; names may repeat
}

// maxLine is the longest line the parser accepts.
const maxLine = 1 << 20

// Parse reads a vector from r; name is used in errors and as Path.
func Parse(r io.Reader, name string) (*Vector, error) {
	v := &Vector{Path: name}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), " \t\r")
		if n == 1 {
			src, ok := strings.CutPrefix(line, "#")
			src = strings.TrimSpace(src)
			if !ok || src == "" {
				return nil, fmt.Errorf("testvec: %s:1: first line must be a comment naming the source", name)
			}
			v.Source = src
			continue
		}
		trimmed := strings.TrimLeft(line, " \t")
		switch {
		case trimmed == "" || trimmed[0] == '#':
			continue
		case len(trimmed) < len(line):
			if len(v.Fields) == 0 {
				return nil, fmt.Errorf("testvec: %s:%d: continuation line before any field", name, n)
			}
			f := &v.Fields[len(v.Fields)-1]
			if f.Value == "" {
				f.Value = trimmed
			} else {
				f.Value += " " + trimmed
			}
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("testvec: %s:%d: want \"name: value\", got %q", name, n, clip(line))
		}
		key = strings.TrimSpace(key)
		if !validName(key) {
			return nil, fmt.Errorf("testvec: %s:%d: bad field name %q", name, n, clip(key))
		}
		v.Fields = append(v.Fields, Field{Name: key, Value: strings.TrimSpace(val), Line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("testvec: %s:%d: %w", name, n+1, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("testvec: %s: empty file", name)
	}
	if len(v.Fields) == 0 {
		return nil, fmt.Errorf("testvec: %s: no fields", name)
	}
	return v, nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// ReadFile parses the vector file at path.
func ReadFile(path string) (*Vector, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("testvec: %w", err)
	}
	defer f.Close()
	return Parse(f, path)
}

// Load parses the vector file at path and fails the test if it cannot.
func Load(t testing.TB, path string) *Vector {
	t.Helper()
	v, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Glob loads every file matching pattern, in name order, and fails the test
// when none matches: a vector test that finds no vectors proves nothing.
func Glob(t testing.TB, pattern string) []*Vector {
	t.Helper()
	paths, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatalf("testvec: %v", err)
	}
	if len(paths) == 0 {
		t.Fatalf("testvec: no vector files match %s", pattern)
	}
	out := make([]*Vector, 0, len(paths))
	for _, p := range paths {
		out = append(out, Load(t, p))
	}
	return out
}

// Name returns the file name without directory and extension, e.g.
// "rfc3602-case5", for subtest names.
func (v *Vector) Name() string {
	return strings.TrimSuffix(filepath.Base(v.Path), filepath.Ext(v.Path))
}

// ErrMissing and ErrAmbiguous are what Lookup reports.
var (
	ErrMissing   = errors.New("testvec: no such field")
	ErrAmbiguous = errors.New("testvec: field appears more than once")
)

// Lookup returns the value of the field called name, which must appear
// exactly once.
func (v *Vector) Lookup(name string) (string, error) {
	var found *Field
	for i := range v.Fields {
		if v.Fields[i].Name != name {
			continue
		}
		if found != nil {
			return "", fmt.Errorf("%w: %s:%d and %d: %s", ErrAmbiguous, v.Path, found.Line, v.Fields[i].Line, name)
		}
		found = &v.Fields[i]
	}
	if found == nil {
		return "", fmt.Errorf("%w: %s: %s", ErrMissing, v.Path, name)
	}
	return found.Value, nil
}

// Has reports whether the vector has a field called name.
func (v *Vector) Has(name string) bool {
	for _, f := range v.Fields {
		if f.Name == name {
			return true
		}
	}
	return false
}

// Get returns the value of name and fails the test unless the field appears
// exactly once.
func (v *Vector) Get(t testing.TB, name string) string {
	t.Helper()
	s, err := v.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Hex returns the bytes of a hex field; spaces inside the value are ignored
// and an empty value is an empty slice.
func (v *Vector) Hex(t testing.TB, name string) []byte {
	t.Helper()
	b, err := DecodeHex(v.Get(t, name))
	if err != nil {
		t.Fatalf("%s: %s: %v", v.Path, name, err)
	}
	return b
}

// Uint returns a field holding an unsigned number: hex with a 0x prefix or
// with no prefix when hex is true, decimal otherwise.
func (v *Vector) Uint(t testing.TB, name string, hexadecimal bool) uint64 {
	t.Helper()
	s := strings.ReplaceAll(v.Get(t, name), " ", "")
	base := 10
	if rest, ok := strings.CutPrefix(s, "0x"); ok || hexadecimal {
		s, base = rest, 16
	}
	n, err := strconv.ParseUint(s, base, 64)
	if err != nil {
		t.Fatalf("%s: %s: %v", v.Path, name, err)
	}
	return n
}

// DecodeHex decodes hex digits separated by any amount of white space.
func DecodeHex(s string) ([]byte, error) {
	s = strings.Join(strings.Fields(s), "")
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("testvec: %w", err)
	}
	return b, nil
}

// Records splits the fields into groups, each starting at a field called
// first; fields before the first such field are shared and copied to the
// front of every group (CAVP's per-file header). Each group is a Vector with
// the same Path and Source.
func (v *Vector) Records(first string) []*Vector {
	var shared []Field
	var out []*Vector
	for _, f := range v.Fields {
		if f.Name == first {
			out = append(out, &Vector{Path: v.Path, Source: v.Source, Fields: append([]Field(nil), shared...)})
		}
		if len(out) == 0 {
			shared = append(shared, f)
			continue
		}
		r := out[len(out)-1]
		r.Fields = append(r.Fields, f)
	}
	return out
}
