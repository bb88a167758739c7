package ike

import (
	"maps"
	"net/netip"
	"slices"
	"testing"
)

// TestIndexAddRemove: sets grow from one value to several and back, a
// value added twice is there once, and removing what is not there
// changes nothing.
func TestIndexAddRemove(t *testing.T) {
	var x Index[string, int]
	get := func(k string) []int { return slices.Sorted(x.Get(k)) }
	x.Remove("a", 1) // empty
	x.Add("a", 1)
	x.Add("a", 1)
	if got := get("a"); !slices.Equal(got, []int{1}) || !x.Has("a", 1) || x.Has("a", 2) {
		t.Fatalf("a: %v", got)
	}
	x.Add("a", 2)
	x.Add("a", 3)
	x.Add("b", 3)
	if got := get("a"); !slices.Equal(got, []int{1, 2, 3}) || x.Keys() != 2 {
		t.Fatalf("a: %v, %d keys", got, x.Keys())
	}
	x.Remove("a", 7) // not there
	x.Remove("c", 1) // no such key
	x.Remove("b", 1) // another value
	x.Remove("a", 1)
	x.Remove("a", 3)
	if got := get("a"); !slices.Equal(got, []int{2}) || !x.Has("a", 2) || x.Has("a", 3) {
		t.Fatalf("a after removals: %v", got)
	}
	x.Add("a", 4)
	all := map[int]string{}
	for k, v := range x.All() {
		all[v] = k
	}
	if want := map[int]string{2: "a", 4: "a", 3: "b"}; !maps.Equal(all, want) {
		t.Fatalf("All: %v, want %v", all, want)
	}
	x.Remove("a", 2)
	x.Remove("a", 4)
	x.Remove("b", 3)
	if x.Keys() != 0 || len(get("a")) != 0 {
		t.Fatalf("emptied index: %d keys, a: %v", x.Keys(), get("a"))
	}
	for k, v := range x.All() {
		t.Fatalf("emptied index yields %v %v", k, v)
	}
}

// TestIdentityFolded: identities are Equal exactly when their folded
// forms are ==, so that an index keyed by the folded form finds what
// Equal would.
func TestIdentityFolded(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.1")
	ids := []Identity{AddressIdentity(a), {Kind: IDAddress, Addr: a, Name: "ignored"},
		AddressIdentity(netip.MustParseAddr("192.0.2.2")),
		{Kind: IDFQDN, Name: "Gw.Example"}, {Kind: IDFQDN, Name: "gw.example"}, {Kind: IDFQDN, Name: "gw2.example"},
		{Kind: IDUserFQDN, Name: "Ops@GW.example"}, {Kind: IDUserFQDN, Name: "ops@gw.example"},
		{Kind: IDDN, Name: "CN=gw"}, {Kind: IDDN, Name: "cn=gw"}, {}}
	for _, x := range ids {
		for _, y := range ids {
			if eq, same := x.Equal(y), x.Folded() == y.Folded(); eq != same {
				t.Errorf("%#v and %#v: Equal %v, folded forms equal %v", x, y, eq, same)
			}
		}
	}
}
