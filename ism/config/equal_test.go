package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestEqualCoversEveryField sets each exported field of a parsed tunnel to
// its zero value in turn: Equal must notice every change but one of Pos.
// Between the manual and the signaled examples every field is set in at
// least one tunnel, so no field escapes.
func TestEqualCoversEveryField(t *testing.T) {
	var tunnels []*Tunnel
	for _, f := range []string{"testdata/good/manual-gw1.conf", "testdata/good/signaled.conf"} {
		tunnels = append(tunnels, mustParseFile(t, f).Tunnels...)
	}
	typ := reflect.TypeFor[Tunnel]()
	covered := map[string]bool{}
	for _, tn := range tunnels {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			cp := *tn
			v := reflect.ValueOf(&cp).Elem().Field(i)
			if v.IsZero() {
				continue
			}
			covered[f.Name] = true
			v.SetZero()
			if got, want := tn.Equal(&cp), f.Name == "Pos"; got != want {
				t.Errorf("%s: Equal after clearing %s = %v, want %v", tn, f.Name, got, want)
			}
		}
	}
	for i := range typ.NumField() {
		if f := typ.Field(i); f.IsExported() && !covered[f.Name] {
			t.Errorf("no example tunnel sets %s, so Equal is not tested on it", f.Name)
		}
	}
}

func TestEqualAcrossReloads(t *testing.T) {
	base := mustParseFile(t, "testdata/good/signaled.conf")
	same := mustParseFile(t, "testdata/good/signaled.conf")
	for i := range base.Tunnels {
		if !base.Tunnels[i].Equal(same.Tunnels[i]) {
			t.Errorf("%s differs from itself", base.Tunnels[i])
		}
	}
	const manual = `ipsec transform-set m
  transform 1 esp-aes128-gcm16
interface tunnel ipsec:m
  tunnel source 192.0.2.1
  tunnel destination 192.0.2.2
  tunnel transform-set m
  tunnel sa inbound esp spi 0x1001 cipher-key 0x000102030405060708090a0b0c0d0e0f10111213
  tunnel sa outbound esp spi 0x2001 cipher-key 0x000102030405060708090a0b0c0d0e0f10111213
`
	a := mustParse(t, manual)
	moved := mustParse(t, "! moved down\n\n"+manual)
	if !a.Tunnels[0].Equal(moved.Tunnels[0]) {
		t.Error("a tunnel moved in the file no longer equals itself")
	}
	rekeyed := mustParse(t, strings.Replace(manual, "0x2001 cipher-key 0x00", "0x2001 cipher-key 0xff", 1))
	if a.Tunnels[0].Equal(rekeyed.Tunnels[0]) {
		t.Error("a new outbound key went unnoticed")
	}
	// A global setting reaches the tunnels that inherit it.
	src := func(global string) string {
		return global + `ipsec transform-set s
  transform 1 esp-aes128-gcm16
ipsec pre-shared-key address 192.0.2.2 ascii k
interface tunnel ipsec:s
  tunnel source 192.0.2.1
  tunnel destination 192.0.2.2
  tunnel transform-set s
`
	}
	s1 := mustParse(t, src(""))
	for _, g := range []string{"ipsec lifetime seconds 3600\n", "ipsec dpd on\n", "ipsec replay-window 64\n", "driver software\n", "ipsec failover hold-down 5\n"} {
		if s2 := mustParse(t, src(g)); s1.Tunnels[0].Equal(s2.Tunnels[0]) {
			t.Errorf("global %q did not change the tunnel", strings.TrimSpace(g))
		}
	}
	var nilT *Tunnel
	if !nilT.Equal(nil) || nilT.Equal(s1.Tunnels[0]) || s1.Tunnels[0].Equal(nil) {
		t.Error("Equal with nil")
	}
}
