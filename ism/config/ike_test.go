package config

import (
	"reflect"
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
