// Package vectors reads test vector files: line 1 names the source and
// section, then come "name: value" lines (hex unless the test says
// otherwise) and "#" comments. A value may continue on following lines
// that start with whitespace.
//
// It plays the role STYLE.md gives internal/testvec for the IKE packages.
package vectors

import (
	"bufio"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// File is a parsed vector file.
type File struct {
	Source string
	fields map[string]string
	t      testing.TB
	path   string
}

// Load reads a vector file or fails the test.
func Load(t testing.TB, path string) *File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v := &File{fields: map[string]string{}, t: t, path: path}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	last := ""
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first {
			v.Source = strings.TrimSpace(line)
			first = false
			continue
		}
		trim := strings.TrimSpace(line)
		if trim == "" || strings.HasPrefix(trim, "#") {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && last != "" {
			v.fields[last] += trim
			continue
		}
		name, val, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("%s: bad line %q", path, line)
		}
		last = strings.TrimSpace(name)
		v.fields[last] = strings.TrimSpace(val)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if v.Source == "" {
		t.Fatalf("%s: line 1 must name the source", path)
	}
	return v
}

// String returns a field as text.
func (v *File) String(name string) string {
	v.t.Helper()
	s, ok := v.fields[name]
	if !ok {
		v.t.Fatalf("%s: no field %q", v.path, name)
	}
	return s
}

// Hex returns a field decoded from hex (spaces ignored).
func (v *File) Hex(name string) []byte {
	v.t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(v.String(name), " ", ""))
	if err != nil {
		v.t.Fatalf("%s: field %q: %v", v.path, name, err)
	}
	return b
}

// Has reports whether the file has a field.
func (v *File) Has(name string) bool {
	_, ok := v.fields[name]
	return ok
}
