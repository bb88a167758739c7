package checkpoint

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

// FuzzStateFile feeds the state file reader arbitrary bytes, twice: as a
// whole file (envelope first), and as the record inside an envelope that
// opened, which is where a parser bug could hide behind the GCM tag. It
// must never panic; a record that decodes must encode back to the same
// bytes (the encoding is canonical) and decode equal.
func FuzzStateFile(f *testing.F) {
	seal, err := NewSealer(bytes.Repeat([]byte{0x5a}, KeySize))
	if err != nil {
		f.Fatal(err)
	}
	s := &State{Written: time.Unix(1700000000, 0), Period: time.Second, Tunnels: []Tunnel{
		sampleTunnel(f, "t1", "esp-aes128-hmac-sha", 1), sampleTunnel(f, "t2", "ah-hmac-sha256", 2)}}
	body, err := s.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	env, _ := seal.Seal(KindState, body, nil)
	f.Add(body)
	f.Add(env)
	f.Add(body[:len(body)/3])
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		if st, err := OpenState(seal, data); err == nil && len(st.Tunnels) > 1<<20 {
			t.Fatal("absurd state opened")
		}
		var st State
		if err := st.UnmarshalBinary(data); err != nil {
			return
		}
		again, err := st.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded state does not encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("encoding not canonical:\n%x\n%x", data, again)
		}
		var st2 State
		if err := st2.UnmarshalBinary(again); err != nil || !reflect.DeepEqual(&st, &st2) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
