package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestIKEv2 reads the IKEv2 commands: the global version, fragmentation
// and cookie threshold, the policy rules' IKEv2 algorithms, the hybrid
// and ECDSA, and each tunnel's version.
func TestIKEv2(t *testing.T) {
	const file = "testdata/good/ikev2.conf"
	c := mustParseFile(t, file)
	pos := func(line int) Pos { return Pos{File: file, Line: line} }
	zero := 0
	checks := []struct {
		name      string
		got, want any
	}{
		{"ike-version", c.IKEVersion, 2},
		{"fragmentation", c.FragmentMTU, 1280},
		{"cookie-threshold", c.CookieThreshold, &zero},
		{"policies", c.IKEPolicies, []IKEPolicy{
			{Priority: 10, Encryption: IKEAES256GCM, Hash: IKESHA1, PRF: IKESHA384, Group: 31, AdditionalKE: []int{MLKEM768},
				Authentication: ECDSASignatureAuth, Lifetime: 8 * time.Hour, Pos: pos(15), AuthPos: pos(20)},
			{Priority: 20, Encryption: IKEAES128, Hash: IKESHA512, Group: 20, AdditionalKE: []int{MLKEM768}, AdditionalKEOptional: true,
				Authentication: PreSharedKeyAuth, Lifetime: 8 * time.Hour, Pos: pos(21), AuthPos: pos(21)},
			{Priority: 30, Encryption: IKEAES128, Hash: IKESHA256, Group: 14, Authentication: PreSharedKeyAuth, Lifetime: 8 * time.Hour,
				Pos: pos(26), AuthPos: pos(26)},
		}},
		{"IKEv2 only", [3][]string{c.IKEPolicies[0].IKEv2Only(), c.IKEPolicies[1].IKEv2Only(), c.IKEPolicies[2].IKEv2Only()}, [3][]string{
			{"encryption aes256-gcm", "prf", "group 31", "additional-key-exchange", "authentication ecdsa-signature"},
			{"hash sha512", "additional-key-exchange"}, nil}},
		{"versions", [3]int{c.Tunnel("branch1").IKEVersion, c.Tunnel("l2tp").IKEVersion, c.Tunnel("old").IKEVersion}, [3]int{2, 2, 1}},
		{"branch1 pfs", c.Tunnel("branch1").PFSGroup, Curve25519},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s: got %+v, want %+v", ch.name, ch.got, ch.want)
		}
	}
}

// TestIKEDefaults: fragmentation and cookies at IKE's defaults.
func TestIKEDefaults(t *testing.T) {
	c := mustParse(t, "ipsec ike-version 2\nipsec local-certificate a.pem key a.key rsa-pss\n")
	if c.IKEVersion != 2 || c.FragmentMTU != 0 || c.CookieThreshold != nil || !c.Certificates.RSAPSS {
		t.Errorf("version %d, fragment MTU %d, cookie threshold %v, RSA-PSS %v: want 2, 0, nil, true",
			c.IKEVersion, c.FragmentMTU, c.CookieThreshold, c.Certificates.RSAPSS)
	}
	if c = mustParse(t, "\n"); c.IKEVersion != 1 {
		t.Errorf("default IKE version %d, want 1", c.IKEVersion)
	}
	c = mustParse(t, "ipsec ike-version 2\nipsec ike fragmentation off\n")
	if c.FragmentMTU != -1 {
		t.Errorf("fragmentation off: %d, want -1", c.FragmentMTU)
	}
}

// TestIKERetransmit: "ipsec ike retransmit" sets what it names and leaves
// the rest at DefaultRetransmit; without it the schedule is the default,
// which gives up 82.5 s after the first sending.
func TestIKERetransmit(t *testing.T) {
	for _, tc := range []struct {
		text   string
		want   Retransmit
		giveUp time.Duration
	}{
		{"", DefaultRetransmit, 82530560 * time.Microsecond},
		{"ipsec ike retransmit count 0\n", Retransmit{Count: 0, Timeout: 2 * time.Second, Base: 1.8}, 2 * time.Second},
		{"ipsec ike retransmit count 3 timeout 500 base 2 cap 1500\n",
			Retransmit{Count: 3, Timeout: 500 * time.Millisecond, Base: 2, Cap: 1500 * time.Millisecond}, 4500 * time.Millisecond},
		{"ipsec ike retransmit base 1\n", Retransmit{Count: 5, Timeout: 2 * time.Second, Base: 1}, 12 * time.Second},
	} {
		c := mustParse(t, tc.text)
		if c.Retransmit != tc.want || c.Retransmit.GiveUp() != tc.giveUp {
			t.Errorf("%q: %+v giving up after %v, want %+v and %v", tc.text, c.Retransmit, c.Retransmit.GiveUp(), tc.want, tc.giveUp)
		}
	}
}

// TestIKERetransmitBad: each wrong "ipsec ike retransmit" is refused with
// its line.
func TestIKERetransmitBad(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"ipsec ike retransmit count 21", "x.conf:2: ipsec ike retransmit: count 21 out of range: expected 0 to 20"},
		{"ipsec ike retransmit timeout 50", "x.conf:2: ipsec ike retransmit: timeout 50 out of range: expected 100 to 60000"},
		{"ipsec ike retransmit base 0.5", `x.conf:2: ipsec ike retransmit: base "0.5": expected a factor from 1 to 4, such as 1.5`},
		{"ipsec ike retransmit base NaN", `x.conf:2: ipsec ike retransmit: base "NaN": expected a factor from 1 to 4, such as 1.5`},
		{"ipsec ike retransmit cap 1000", "x.conf:2: ipsec ike retransmit: cap 1000 ms is shorter than the first wait (timeout 2000 ms)"},
		{"ipsec ike retransmit cap 400 timeout 500", "x.conf:2: ipsec ike retransmit: cap 400 ms is shorter than the first wait (timeout 500 ms)"},
		{"ipsec ike retransmit tries 3", `x.conf:2: ipsec ike retransmit: expected count or timeout or base or cap, got "tries"`},
		{"ipsec ike retransmit count 2 count 3", "x.conf:2: ipsec ike retransmit: count given twice"},
		{"ipsec ike retransmit count", "x.conf:2: ipsec ike retransmit: takes 2 to 8 arguments, got 1"},
		{"ipsec ike retransmit count 3\nipsec ike retransmit count 4", `x.conf:3: duplicate "ipsec ike retransmit" (first on line 2)`},
	} {
		c, err := Parse("x.conf", strings.NewReader("!\n"+tc.text+"\n"))
		if c != nil || err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.text, err, tc.want)
		}
	}
}
