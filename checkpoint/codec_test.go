package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ismgw/ism/transform"
)

// TestRecordRoundTrip: every transform's SAs, ESN or not, come back equal,
// and no proper prefix of an encoding decodes.
func TestRecordRoundTrip(t *testing.T) {
	s := &State{Written: time.Unix(1700000000, 123), Period: time.Second, WriteLatency: 7 * time.Millisecond}
	for i, x := range transform.All() {
		tu := sampleTunnel(t, fmt.Sprintf("t%d", i), x.Name(), byte(i))
		if i%2 == 1 { // 32-bit numbers, no IKE SA, UDP encapsulation
			for j := range tu.SAs {
				tu.SAs[j].ESN, tu.SAs[j].Seq, tu.SAs[j].Replay.Top = false, 789, 0
				tu.SAs[j].Replay.Seen = nil
				tu.SAs[j].UDPEncap, tu.SAs[j].SrcPort, tu.SAs[j].DstPort = x.Protocol == transform.ESP, 4500, 4501
			}
			tu.IKE = nil
		}
		s.Tunnels = append(s.Tunnels, tu)
	}
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got State
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, s) {
		t.Fatalf("round trip differs")
	}
	for n := 0; n < len(b); n += 1 + n/50 {
		var p State
		if err := p.UnmarshalBinary(b[:n]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("a %d-byte prefix of %d: %v", n, len(b), err)
		}
	}
	if err := got.UnmarshalBinary(append(bytes.Clone(b), 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: %v", err)
	}
}

// TestRecordRefusesWhatCannotInstall: a record that could not become an SA
// does not encode, and the error names no key.
func TestRecordRefusesWhatCannotInstall(t *testing.T) {
	for name, spoil := range map[string]func(*SA){
		"short key":       func(s *SA) { s.CipherKey = s.CipherKey[:3] },
		"32-bit overflow": func(s *SA) { s.ESN = false },
		"family mix":      func(s *SA) { s.Src = s.Src.Unmap().Prev().Next(); s.Dst = mustAddr("2001:db8::1"); s.ID.Dst = s.Dst },
		"protocol":        func(s *SA) { s.ID.Protocol = transform.AH },
		"window":          func(s *SA) { s.ReplayWindow = MaxReplayWindow + 1 },
		"negative rate":   func(s *SA) { s.Rate = -1 },
		"replay words":    func(s *SA) { s.Replay.Seen = make([]uint64, 40); s.Replay.Size = 64 },
		"direction":       func(s *SA) { s.Direction = 7 },
	} {
		tu := sampleTunnel(t, "x", "esp-aes256-gcm16", 9)
		spoil(&tu.SAs[0])
		_, err := tu.MarshalBinary()
		if err == nil {
			t.Errorf("%s: encoded", name)
			continue
		}
		if findSecret([]byte(err.Error()), [][]byte{tu.SAs[0].CipherKey, tu.SAs[0].AuthKey}) >= 0 {
			t.Errorf("%s: key in error %v", name, err)
		}
	}
	tu := sampleTunnel(t, "", "esp-aes256-gcm16", 9)
	if _, err := tu.MarshalBinary(); err == nil {
		t.Error("empty tunnel name encoded")
	}
}

// TestRecordNeverPrintsKeys: %v, %+v and %#v of records print no key.
func TestRecordNeverPrintsKeys(t *testing.T) {
	tu := sampleTunnel(t, "x", "esp-aes128-hmac-sha256", 3)
	st := &State{Tunnels: []Tunnel{tu}}
	out := fmt.Sprintf("%v %+v %#v %v %+v", tu, tu, tu, tu.SAs[0], st)
	if i := findSecret([]byte(out), secrets(st)); i >= 0 {
		t.Fatalf("key %d printed: %s", i, out)
	}
}
