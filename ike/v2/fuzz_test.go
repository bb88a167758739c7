package v2

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpora in testdata/fuzz")

// seedMessages are the seeds of the message fuzzer: random valid messages
// of every payload.
func seedMessages() [][]byte {
	r := rand.New(rand.NewSource(7))
	var out [][]byte
	for i := 0; i < 8; i++ {
		out = append(out, randomMessage(r).Marshal())
	}
	return out
}

// writeCorpus writes seeds in the go test fuzz corpus format.
func writeCorpus(t *testing.T, name string, seeds [][]byte) {
	dir := filepath.Join("testdata", "fuzz", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzIKEv2Message parses datagrams: never a panic, never a read past
// the input, and what parses re-marshals to something that parses the
// same.
func FuzzIKEv2Message(f *testing.F) {
	for _, s := range seedMessages() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := append([]byte(nil), b...)
		m, err := ParseMessage(b)
		if !bytes.Equal(orig, b) {
			t.Fatal("ParseMessage wrote to its input")
		}
		if err != nil {
			return
		}
		again, err := ParseMessage(m.Marshal())
		if err != nil {
			t.Fatalf("re-marshalled message does not parse: %v", err)
		}
		again.Length, again.Next, again.raw = m.Length, m.Next, m.raw
		if !reflect.DeepEqual(again, m) {
			t.Fatalf("round trip changed the message")
		}
		decodeAll(t, m)
	})
}

// decodeAll parses every payload body of m: each that parses must
// re-marshal to a body that parses the same.
func decodeAll(t *testing.T, m *Message) {
	for _, p := range m.Payloads {
		for _, v := range bodiesFor(p.Type) {
			if v.unmarshal(p.Body) != nil {
				continue
			}
			w := reflect.New(reflect.TypeOf(v).Elem()).Interface().(payloadBody)
			if err := w.unmarshal(v.marshal()); err != nil {
				t.Fatalf("%v: re-marshalled body does not parse: %v", p.Type, err)
			}
			if !reflect.DeepEqual(v, w) {
				t.Fatalf("%v: round trip changed the body: %+v %+v", p.Type, v, w)
			}
		}
	}
}

func bodiesFor(t PayloadType) []payloadBody {
	switch t {
	case PayloadSA:
		return []payloadBody{&SA{}}
	case PayloadKE:
		return []payloadBody{&KE{}}
	case PayloadIDi, PayloadIDr:
		return []payloadBody{&ID{}}
	case PayloadCERT, PayloadCERTREQ:
		return []payloadBody{&Cert{}}
	case PayloadAUTH:
		return []payloadBody{&Auth{}}
	case PayloadNotify:
		return []payloadBody{&Notify{}}
	case PayloadDelete:
		return []payloadBody{&Delete{}}
	case PayloadTSi, PayloadTSr:
		return []payloadBody{&TS{}}
	}
	return nil
}

// FuzzIKEv2Payload parses one payload body of each type (the first byte
// picks the type): the same invariants, without the message around it.
func FuzzIKEv2Payload(f *testing.F) {
	r := rand.New(rand.NewSource(9))
	f.Add(append([]byte{byte(PayloadSA)}, randomSA(r).marshal()...))
	f.Add(append([]byte{byte(PayloadTSi)}, randomTS(r).marshal()...))
	d := Delete{Protocol: ProtoESP, SPIs: []uint32{1, 2}}
	f.Add(append([]byte{byte(PayloadDelete)}, d.marshal()...))
	n := Notify{Protocol: ProtoESP, SPI: []byte{1, 2, 3, 4}, Type: RekeySA}
	f.Add(append([]byte{byte(PayloadNotify)}, n.marshal()...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		m := &Message{Payloads: []Payload{{Type: PayloadType(b[0]), Body: b[1:]}}}
		decodeAll(t, m)
	})
}

// TestFuzzCorpus writes the seed corpora with -update-corpus; otherwise it
// checks that they exist, so that `go test` runs them.
func TestFuzzCorpus(t *testing.T) {
	r := rand.New(rand.NewSource(9))
	payloads := [][]byte{
		append([]byte{byte(PayloadSA)}, randomSA(r).marshal()...),
		append([]byte{byte(PayloadTSi)}, randomTS(r).marshal()...),
	}
	if *updateCorpus {
		writeCorpus(t, "FuzzIKEv2Message", seedMessages())
		writeCorpus(t, "FuzzIKEv2Payload", payloads)
		writeCorpus(t, "FuzzReceive", seedMessages()[:4])
		writeCorpus(t, "FuzzFragments", fragmentSeeds())
		writeCorpus(t, "FuzzADDKE", addkeSeeds())
	}
	for _, name := range []string{"FuzzIKEv2Message", "FuzzIKEv2Payload", "FuzzReceive", "FuzzFragments", "FuzzADDKE"} {
		if ents, err := os.ReadDir(filepath.Join("testdata", "fuzz", name)); err != nil || len(ents) == 0 {
			t.Errorf("no seed corpus for %s (go test -run TestFuzzCorpus -update-corpus)", name)
		}
	}
}
