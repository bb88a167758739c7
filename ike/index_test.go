package ike

import (
	"net/netip"
	"testing"
)

func TestIndexAddRemove(t *testing.T) {
	var x Index[string, int]
	x.Add("a", 1)
	x.Add("a", 2)
	x.Add("a", 2)
	x.Add("b", 3)
	if len(x["a"]) != 2 || len(x["b"]) != 1 {
		t.Fatalf("after adds: %v", x)
	}
	x.Remove("a", 1)
	x.Remove("a", 7) // not there
	x.Remove("c", 1) // no such key
	if _, ok := x["a"][2]; !ok || len(x["a"]) != 1 {
		t.Fatalf("after removing 1 from a: %v", x)
	}
	x.Remove("a", 2)
	if _, ok := x["a"]; ok {
		t.Fatalf("an empty set stays: %v", x)
	}
	if len(x) != 1 {
		t.Fatalf("keys: %v", x)
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
