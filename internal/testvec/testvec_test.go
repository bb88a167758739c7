package testvec

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	const file = "# RFC 3602 §4 Case #5\n" +
		"\n" +
		"# a comment\n" +
		"transform: esp-aes128\n" +
		"key: 90d382b4 10eeba7a\n" +
		"  d938c46c ec1a82bf\n" +
		"\td938c46c\r\n" +
		"   # an indented comment is still a comment\n" +
		"empty:\n" +
		"spi: 0x4321\n" +
		"seq: 8\n"
	v, err := Parse(strings.NewReader(file), "case5.txt")
	if err != nil {
		t.Fatal(err)
	}
	if v.Source != "RFC 3602 §4 Case #5" {
		t.Errorf("source %q", v.Source)
	}
	if got := v.Get(t, "transform"); got != "esp-aes128" {
		t.Errorf("transform %q", got)
	}
	want := []byte{0x90, 0xd3, 0x82, 0xb4, 0x10, 0xee, 0xba, 0x7a, 0xd9, 0x38, 0xc4, 0x6c, 0xec, 0x1a, 0x82, 0xbf, 0xd9, 0x38, 0xc4, 0x6c}
	if got := v.Hex(t, "key"); !bytes.Equal(got, want) {
		t.Errorf("key %x", got)
	}
	if got := v.Hex(t, "empty"); len(got) != 0 {
		t.Errorf("empty %x", got)
	}
	if got := v.Uint(t, "spi", false); got != 0x4321 {
		t.Errorf("spi %#x", got)
	}
	if got := v.Uint(t, "seq", false); got != 8 {
		t.Errorf("seq %d", got)
	}
	if got := v.Uint(t, "seq", true); got != 8 {
		t.Errorf("seq hex %d", got)
	}
	names := []string{}
	for _, f := range v.Fields {
		names = append(names, f.Name)
	}
	if strings.Join(names, ",") != "transform,key,empty,spi,seq" {
		t.Errorf("order %v", names)
	}
	if v.Fields[1].Line != 5 {
		t.Errorf("key on line %d", v.Fields[1].Line)
	}
	if v.Has("iv") || !v.Has("key") {
		t.Error("Has")
	}
	if _, err := v.Lookup("iv"); !errors.Is(err, ErrMissing) {
		t.Errorf("missing field: %v", err)
	}
	if v.Name() != "case5" {
		t.Errorf("name %q", v.Name())
	}
}

func TestParseMalformed(t *testing.T) {
	cases := map[string]string{
		"empty":               "",
		"no source":           "key: 00\n",
		"blank source":        "#   \nkey: 00\n",
		"source not line 1":   "\n# RFC 1\nkey: 00\n",
		"no fields":           "# RFC 1\n# nothing else\n",
		"no colon":            "# RFC 1\nkey 00\n",
		"empty name":          "# RFC 1\n: 00\n",
		"upper-case name":     "# RFC 1\nKey: 00\n",
		"space in name":       "# RFC 1\nthe key: 00\n",
		"orphan continuation": "# RFC 1\n  00 11\nkey: 00\n",
		"line too long":       "# RFC 1\nkey: " + strings.Repeat("0", maxLine) + "\n",
	}
	for name, file := range cases {
		t.Run(name, func(t *testing.T) {
			v, err := Parse(strings.NewReader(file), "bad.txt")
			if err == nil {
				t.Fatalf("parsed: %+v", v)
			}
			if !strings.HasPrefix(err.Error(), "testvec: bad.txt") {
				t.Errorf("error does not name the file: %v", err)
			}
		})
	}
}

func TestLookupAmbiguous(t *testing.T) {
	v, err := Parse(strings.NewReader("# CAVP\ncount: 0\nkey: 00\ncount: 1\nkey: 01\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Lookup("key"); !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("got %v", err)
	}
}

func TestRecords(t *testing.T) {
	const file = "# NIST CAVP TCBCMMT3\n" +
		"mode: encrypt\n" +
		"count: 0\nkey: 00\n" +
		"count: 1\nkey: 01\nextra: ff\n"
	v, err := Parse(strings.NewReader(file), "x")
	if err != nil {
		t.Fatal(err)
	}
	rs := v.Records("count")
	if len(rs) != 2 {
		t.Fatalf("%d records", len(rs))
	}
	for i, r := range rs {
		if r.Get(t, "mode") != "encrypt" {
			t.Errorf("record %d lost the shared field", i)
		}
		if got := r.Uint(t, "count", false); got != uint64(i) {
			t.Errorf("record %d count %d", i, got)
		}
		if got := r.Hex(t, "key"); !bytes.Equal(got, []byte{byte(i)}) {
			t.Errorf("record %d key %x", i, got)
		}
	}
	if rs[0].Has("extra") || !rs[1].Has("extra") {
		t.Error("fields leaked between records")
	}
	if len(v.Records("nothing")) != 0 {
		t.Error("records without a separator")
	}
}

func TestDecodeHex(t *testing.T) {
	b, err := DecodeHex(" 0a0B \n\t 0c ")
	if err != nil || !bytes.Equal(b, []byte{10, 11, 12}) {
		t.Fatalf("%x %v", b, err)
	}
	for _, bad := range []string{"0", "0g", "00 1"} {
		if _, err := DecodeHex(bad); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("rfc1-a.txt", "# RFC 1 a\nx: 01\n")
	write("rfc1-b.txt", "# RFC 1 b\nx: 02\n")
	vs := Glob(t, filepath.Join(dir, "rfc1-*.txt"))
	if len(vs) != 2 || vs[0].Name() != "rfc1-a" || vs[1].Source != "RFC 1 b" {
		t.Fatalf("glob: %+v", vs)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing.txt")); err == nil {
		t.Error("missing file read")
	}
}
