package charon

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ismgw/ism/internal/testvec"
)

// readmeTree is the tree of the README's encoding example.
func readmeTree() *Message {
	return &Message{
		Keys: map[string]string{"key1": "value1"},
		Sections: map[string]*Message{"section1": {
			Sections: map[string]*Message{"sub-section": {Keys: map[string]string{"key2": "value2"}}},
			Lists:    map[string][]string{"list1": {"item1", "item2"}},
		}},
	}
}

func TestParseReadmeExample(t *testing.T) {
	v := testvec.Load(t, "testdata/vectors/strongswan-vici-readme-example.txt")
	wire := v.Hex(t, "message")
	m, err := ParseMessage(wire)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Equal(readmeTree()) {
		t.Fatalf("parsed %+v, want the README's tree", m)
	}
	// Marshal puts lists before sections; the tree must survive.
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != len(wire) {
		t.Errorf("re-encoded %d bytes, the README's encoding has %d", len(b), len(wire))
	}
	back, err := ParseMessage(b)
	if err != nil || !back.Equal(m) {
		t.Fatalf("round trip: %v, %+v", err, back)
	}
	// The only proper prefix that parses ends after the top-level
	// key1 = value1 element (14 bytes); every other cut is malformed.
	for i := 1; i < len(wire); i++ {
		_, err := ParseMessage(wire[:i])
		if ok := err == nil; ok != (i == 14) {
			t.Errorf("prefix of %d bytes: err %v", i, err)
		}
	}
}

func TestParseMalformed(t *testing.T) {
	cases := map[string][]byte{
		"section end without start": {elemSectionEnd},
		"unterminated section":      {elemSectionStart, 1, 'a'},
		"unterminated list":         {elemListStart, 1, 'a'},
		"item outside list":         {elemListItem, 0, 0},
		"list end outside list":     {elemListEnd},
		"key in list":               {elemListStart, 1, 'a', elemKeyValue, 1, 'b', 0, 0, elemListEnd},
		"truncated name":            {elemKeyValue, 5, 'a'},
		"truncated value":           {elemKeyValue, 1, 'a', 0, 9, 'x'},
		"truncated value length":    {elemKeyValue, 1, 'a', 0},
		"duplicate key":             {elemKeyValue, 1, 'a', 0, 0, elemKeyValue, 1, 'a', 0, 0},
		"key and section same name": {elemKeyValue, 1, 'a', 0, 0, elemSectionStart, 1, 'a', elemSectionEnd},
		"unknown element":           {9},
	}
	for name, b := range cases {
		if _, err := ParseMessage(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
		}
	}
	deep := bytes.Repeat([]byte{elemSectionStart, 1, 'a'}, maxDepth+1)
	deep = append(deep, bytes.Repeat([]byte{elemSectionEnd}, maxDepth+1)...)
	if _, err := ParseMessage(deep); !errors.Is(err, ErrMalformed) {
		t.Errorf("sections %d deep: err %v, want ErrMalformed", maxDepth+1, err)
	}
}

func TestMarshalLimits(t *testing.T) {
	long := string(make([]byte, 256))
	if _, err := (&Message{}).Set(long, "v").Marshal(); err == nil {
		t.Error("a 256-byte name was encoded")
	}
	if _, err := (&Message{}).Set("k", string(make([]byte, 1<<16))).Marshal(); err == nil {
		t.Error("a 65536-byte value was encoded")
	}
}

func TestParsePacket(t *testing.T) {
	p, err := parsePacket([]byte{pktEvent, 3, 'a', 'b', 'c', elemKeyValue, 2, 'u', 'p', 0, 3, 'y', 'e', 's'})
	if err != nil || p.typ != pktEvent || p.name != "abc" {
		t.Fatalf("%+v, %v", p, err)
	}
	m, err := ParseMessage(p.msg)
	if err != nil || m.Keys["up"] != "yes" {
		t.Fatalf("%+v, %v", m, err)
	}
	for _, b := range [][]byte{{pktEvent, 4, 'a'}, {pktCmdRequest}, {99}} {
		if _, err := parsePacket(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("% x: err %v, want ErrMalformed", b, err)
		}
	}
}

// FuzzVICIMessage: no input panics the parser, and what parses encodes to
// bytes that parse to the same tree.
func FuzzVICIMessage(f *testing.F) {
	b, _ := readmeTree().Marshal()
	f.Add(b)
	f.Add([]byte{elemKeyValue, 2, 'u', 'p', 0, 3, 'y', 'e', 's'})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			return
		}
		enc, err := m.Marshal()
		if err != nil {
			t.Fatalf("parsed message does not encode: %v", err)
		}
		back, err := ParseMessage(enc)
		if err != nil || !back.Equal(m) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzVICIPacket: no packet panics the packet or message parser.
func FuzzVICIPacket(f *testing.F) {
	f.Add([]byte{pktEvent, 3, 'a', 'b', 'c', elemKeyValue, 2, 'u', 'p', 0, 3, 'y', 'e', 's'})
	f.Add([]byte{pktCmdResponse})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return // readPacket refuses empty packets before parsing
		}
		p, err := parsePacket(b)
		if err != nil {
			return
		}
		_, _ = ParseMessage(p.msg)
	})
}
