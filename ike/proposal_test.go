package ike

import (
	"errors"
	"testing"
	"time"

	"github.com/ismgw/ism/ipsec"
)

// TestChoosePFSGroup applies the seed's rules, including its example:
// "if group 2 is requested locally, the remote security gateway must
// support group 2 ... If group 1 is requested locally, either groups 1 or
// 2 can be accepted".
func TestChoosePFSGroup(t *testing.T) {
	cases := []struct {
		local, proposed, want int
		err                   bool
	}{
		{local: 2, proposed: 2, want: 2},
		{local: 2, proposed: 1, err: true},
		{local: 1, proposed: 1, want: 1},
		{local: 1, proposed: 2, want: 2},
		{local: 0, proposed: 0, want: 0},
		{local: 0, proposed: 5, want: 5}, // PFS may still be negotiated
		{local: 5, proposed: 0, err: true},
		{local: 14, proposed: 19, want: 19},
		{local: 21, proposed: 14, err: true},
		{local: 2, proposed: 99, err: true},
	}
	for _, c := range cases {
		got, err := ChoosePFSGroup(c.local, c.proposed)
		if (err != nil) != c.err || (!c.err && got != c.want) {
			t.Errorf("local %d proposed %d: got %d, %v", c.local, c.proposed, got, err)
		}
	}
	if _, err := ChoosePFSGroup(5, 0); !errors.Is(err, ErrPFSRequired) {
		t.Errorf("mandated PFS: %v", err)
	}
}

func TestLesserLifetime(t *testing.T) {
	a := ipsec.Lifetime{Time: time.Hour}
	b := ipsec.Lifetime{Time: 2 * time.Hour, Bytes: 1 << 20}
	if got := LesserLifetime(a, b); got != (ipsec.Lifetime{Time: time.Hour, Bytes: 1 << 20}) {
		t.Fatalf("got %+v", got)
	}
}

// TestPSKLookup finds keys by the whole identity, then by the FQDN of a
// user@fqdn identity (the seed), then by address.
func TestPSKLookup(t *testing.T) {
	tab := NewPSKTable([]PreSharedKey{
		{Peer: "branch245.customer77.isp.net", Key: ipsec.Key("fqdn-key")},
		{Peer: "user1@branch245.customer77.isp.net", Key: ipsec.Key("user1-key")},
		{Peer: "192.0.2.7", Key: ipsec.Key("addr-key")},
	})
	check := func(id string, want string) {
		t.Helper()
		i, err := ParseIdentity(id)
		if err != nil {
			t.Fatal(err)
		}
		k, ok := tab.ForIdentity(i)
		if want == "" {
			if ok {
				t.Errorf("%s: found a key", id)
			}
			return
		}
		if !ok || string(k) != want {
			t.Errorf("%s: got %q", id, k)
		}
	}
	check("user1@branch245.customer77.isp.net", "user1-key")
	check("user4919@branch245.customer77.isp.net", "fqdn-key")
	check("BRANCH245.customer77.isp.net", "fqdn-key")
	check("user@other.example", "")
	check("other.example", "")
	check("192.0.2.7", "addr-key")
	long := make([]byte, MaxIdentityLen+1)
	for i := range long {
		long[i] = 'a'
	}
	if _, err := ParseIdentity(string(long)); err == nil {
		t.Error("accepted an identity longer than 80 characters")
	}
	tab.Zero()
	if k, _ := tab.ForIdentity(Identity{Kind: IDFQDN, Name: "branch245.customer77.isp.net"}); string(k) == "fqdn-key" {
		t.Error("Zero left the key")
	}
}
