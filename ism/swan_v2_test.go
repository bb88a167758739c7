package ism

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/swantest"
	"github.com/ismgw/ism/internal/swantest/charon"
	"github.com/ismgw/ism/ipsec"
)

// The gateway-level IKEv2 cases against charon (swan_v2_*_test.go): ISM
// with ike-version 2, charon with version = 2, each case with ISM as
// initiator and as responder, traffic through the tunnels. Cases share
// labs where they can: one charon with several connections, each at an
// address of its own, and ISM with a tunnel to each.

// v2Family is one connection of an IKEv2 lab: charon at addr with its own
// proposals and identities, ISM's tunnel name to it, the inner subnets
// 198.51.100.16k/28 (ISM) and 203.0.113.16k/28 (charon).
type v2Family struct {
	name string // ISM's tunnel, charon's connection and child
	addr string // charon's address
	k    int
	// ike and esp are charon's proposals; pfs ISM's tunnel pfs group.
	ike, esp string
	pfs      int
	// swanID and ismID are charon's and ISM's identities (addresses when
	// empty); ismKey is ISM's pre-shared key line.
	swanID, ismID, ismKey string
	// ismExtra is more of ISM's tunnel's lines; childTimers and
	// ikeTimers are charon's child's and IKE SA's, ikeExtra more settings of
	// charon's connection (over_time).
	ismExtra               string
	childTimers, ikeTimers charon.Timers
	ikeExtra               []string
	// algorithms is what `show ike sa` says of the IKE SA; swanIKE what
	// charon lists (encr-alg, integ-alg, prf-alg, dh-group), swanESP its
	// child's encr-alg and, after a rekey with PFS, dh-group.
	algorithms string
	swanIKE    [4]string
	swanESP    [2]string
}

func (f v2Family) ismHost() string  { return fmt.Sprintf("198.51.100.%d", 16*f.k+1) }
func (f v2Family) swanHost() string { return fmt.Sprintf("203.0.113.%d", 16*f.k+1) }
func (f v2Family) ismNet() string   { return fmt.Sprintf("198.51.100.%d/28", 16*f.k) }
func (f v2Family) swanNet() string  { return fmt.Sprintf("203.0.113.%d/28", 16*f.k) }

// peer is charon's connection of the family.
func (f v2Family) peer() swanPeer {
	p := swanPeer{Name: f.name, Child: f.name, Version: 2, Addr: f.addr, Proposals: f.ike, ESP: f.esp,
		LocalTS: f.swanNet(), RemoteTS: f.ismNet(), LocalID: f.swanID, RemoteID: f.ismID, Timers: f.childTimers, IKETimers: f.ikeTimers, IKEExtra: f.ikeExtra}
	return p
}

// tunnel is ISM's tunnel of the family.
func (f v2Family) tunnel() ismTunnel {
	tu := ismTunnel{name: f.name, dest: f.addr, local: f.ismNet(), remote: f.swanNet(), extra: f.ismExtra}
	if f.pfs != 0 {
		tu.extra += fmt.Sprintf("  tunnel pfs group %d\n", f.pfs)
	}
	if f.ismID != "" {
		tu.extra += fmt.Sprintf("  tunnel local-identity %s\n", f.ismID)
	}
	if f.swanID != "" {
		tu.extra += fmt.Sprintf("  tunnel remote-identity %s\n", f.swanID)
	}
	return tu
}

// v2Lab is a lab of IKEv2 families: ISM's global lines, then each
// family's key, tunnel and connection.
func v2Lab(global string, transforms []string, conf swantest.Conf, fams ...v2Family) labSpec {
	side := ismConf{global: "ipsec ike-version 2\n" + global, transforms: transforms}
	var peers []swanPeer
	var hosts []string
	for _, f := range fams {
		side.global += f.ismKey
		side.tunnels = append(side.tunnels, f.tunnel())
		peers = append(peers, f.peer())
		if f.k > 0 {
			hosts = append(hosts, f.ismHost(), f.swanHost())
		}
	}
	s := swanSpecPeers(side, conf, peers...)
	s.hostAddrs = hosts
	return s
}

// TestSwanV2Proposals: the IKE proposal families (aes128-sha256-modp2048,
// aes256gcm16-prfsha384-ecp384, curve25519, aes128-sha1-modp1024,
// aes192-sha512-ecp521), ESP of the seed (aes128-sha1, 3des-md5,
// aes256-sha512) and AES-GCM and ChaCha20-Poly1305,
// PFS off and on (group 20, 31, 2: the child SA rekey runs a new key
// exchange), pre-shared keys by address, by FQDN and for a user@fqdn
// peer found by its FQDN (the seed's stripped lookup), and INVALID_KE
// both ways (family e: ISM's first key exchange is of group 14 and charon
// wants 19; charon's is of group 15 and ISM wants 19). One charon, six
// connections; ISM initiates, then charon does.
func TestSwanV2Proposals(t *testing.T) {
	t.Parallel()
	rules := ""
	for i, r := range [][3]string{{"aes128", "hash sha256", "14"}, {"aes256-gcm", "prf sha384", "20"}, {"aes128", "hash sha256", "31"},
		{"aes128", "hash sha", "2"}, {"aes128", "hash sha256", "19"}, {"aes192", "hash sha512", "21"}} {
		rules += fmt.Sprintf("ipsec isakmp-policy-rule %d\n  encryption %s\n  %s\n  group %s\n", i+1, r[0], r[1], r[2])
	}
	transforms := []string{"esp-aes128-hmac-sha", "esp-aes256-gcm16", "esp-chacha20-poly1305", "esp-3des-hmac-md5", "esp-aes128-gcm16", "esp-aes256-hmac-sha512"}
	fams := []v2Family{
		{name: "a", addr: "192.0.2.2", k: 0, ike: "aes128-sha256-modp2048", esp: "aes128-sha1",
			ismKey:     fmt.Sprintf("ipsec pre-shared-key address 192.0.2.2 ascii %s\n", swanPSK),
			algorithms: "aes128/hmac-sha256-128/hmac-sha256/modp2048",
			swanIKE:    [4]string{"AES_CBC", "HMAC_SHA2_256_128", "PRF_HMAC_SHA2_256", "MODP_2048"}, swanESP: [2]string{"AES_CBC", ""}},
		{name: "b", addr: "192.0.2.4", k: 1, ike: "aes256gcm16-prfsha384-ecp384", esp: "aes256gcm16-ecp384", pfs: 20,
			swanID: "swan-b.example.net", ismID: "ism.example.net",
			ismKey:     fmt.Sprintf("ipsec pre-shared-key identity swan-b.example.net ascii %s\n", swanPSK),
			algorithms: "aes256-gcm/none/hmac-sha384/ecp384",
			swanIKE:    [4]string{"AES_GCM_16", "", "PRF_HMAC_SHA2_384", "ECP_384"}, swanESP: [2]string{"AES_GCM_16", "ECP_384"}},
		{name: "c", addr: "192.0.2.5", k: 2, ike: "aes128-sha256-curve25519", esp: "chacha20poly1305-curve25519", pfs: 31,
			swanID: "branch7@swan-c.example.net", ismID: "ism.example.net",
			ismKey:     fmt.Sprintf("ipsec pre-shared-key identity swan-c.example.net ascii %s\n", swanPSK),
			algorithms: "aes128/hmac-sha256-128/hmac-sha256/curve25519",
			swanIKE:    [4]string{"AES_CBC", "HMAC_SHA2_256_128", "PRF_HMAC_SHA2_256", "CURVE_25519"}, swanESP: [2]string{"CHACHA20_POLY1305", "CURVE_25519"}},
		{name: "d", addr: "192.0.2.6", k: 3, ike: "aes128-sha1-modp1024", esp: "3des-md5-modp1024", pfs: 2,
			ismKey:     fmt.Sprintf("ipsec pre-shared-key address 192.0.2.6 ascii %s\n", swanPSK),
			algorithms: "aes128/hmac-sha1-96/hmac-sha1/modp1024",
			swanIKE:    [4]string{"AES_CBC", "HMAC_SHA1_96", "PRF_HMAC_SHA1", "MODP_1024"}, swanESP: [2]string{"3DES_CBC", "MODP_1024"}},
		{name: "e", addr: "192.0.2.7", k: 4, ike: "aes256-sha384-modp3072, aes128-sha256-ecp256", esp: "aes128gcm16",
			ismKey:     fmt.Sprintf("ipsec pre-shared-key address 192.0.2.7 ascii %s\n", swanPSK),
			algorithms: "aes128/hmac-sha256-128/hmac-sha256/ecp256",
			swanIKE:    [4]string{"AES_CBC", "HMAC_SHA2_256_128", "PRF_HMAC_SHA2_256", "ECP_256"}, swanESP: [2]string{"AES_GCM_16", ""}},
		{name: "f", addr: "192.0.2.8", k: 5, ike: "aes192-sha512-ecp521", esp: "aes256-sha512",
			ismKey:     fmt.Sprintf("ipsec pre-shared-key address 192.0.2.8 ascii %s\n", swanPSK),
			algorithms: "aes192/hmac-sha512-256/hmac-sha512/ecp521",
			swanIKE:    [4]string{"AES_CBC", "HMAC_SHA2_512_256", "PRF_HMAC_SHA2_512", "ECP_521"}, swanESP: [2]string{"AES_CBC", ""}},
	}
	for _, role := range swanRoles {
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			x := newLab(t, v2Lab(rules, transforms, swantest.Conf{}, fams...))
			for _, f := range fams {
				x.bringUpChild(t, role, f.name, f.ismHost(), f.swanHost())
			}
			var wg sync.WaitGroup
			for _, f := range fams {
				wg.Go(func() {
					transferBetween(t, x.env.NSISM, f.ismHost(), x.env.NSSwan, f.swanHost(), 256<<10)
					transferBetween(t, x.env.NSSwan, f.swanHost(), x.env.NSISM, f.ismHost(), 256<<10)
				})
			}
			wg.Wait()
			ikesa := x.show(t, "show ike sa")
			for _, f := range fams {
				if !strings.Contains(ikesa, f.algorithms) {
					t.Errorf("%s: show ike sa lacks %s:\n%s", f.name, f.algorithms, ikesa)
				}
			}
			// PFS: each child SA rekeyed once, by the role's end.
			for _, f := range fams {
				x.rekeyChild(t, role, f.name)
			}
			for _, f := range fams {
				want := "no PFS"
				if f.pfs != 0 {
					want = fmt.Sprintf("PFS group %d", f.pfs)
				}
				x.waitFor(t, 20*time.Second, f.name+" rekeyed", func() bool { return x.tunnelRekeys(t, f.name) >= 1 })
				x.wantShow(t, "show ipsec tunnel detail "+f.name, "IKE SA with "+f.addr+":4500: established", "Child SAs: up", want)
				x.pingUntil(t, x.env.NSISM, f.ismHost(), f.swanHost(), 2)
			}
			x.checkSwanSAs(t, fams)
			if n := x.g.Statistics().IKEVersions["ikev2"].InvalidKE; n < 1 || role == "initiator" && n < 4 {
				t.Errorf("INVALID_KE counted %d times, want 4 as initiator (b, c, d, e), 1 as responder (e)", n)
			}
			if role == "responder" && !strings.Contains(x.env.Log(), "it requested ECP_256") {
				t.Error("charon's log does not say ISM asked for ECP_256 with INVALID_KE_PAYLOAD")
			}
		})
	}
}

// rekeyChild rekeys a child SA from the role's end: ISM by the soft
// expire of its outbound SA, charon by swanctl --rekey.
func (x *lab) rekeyChild(t *testing.T, role, name string) {
	t.Helper()
	if role == "responder" {
		if out, err := x.env.Swanctl("--rekey", "--child", name); err != nil {
			t.Fatalf("swanctl --rekey --child %s: %v\n%s", name, err, out)
		}
		return
	}
	tu := x.g.tunnels[name]
	tu.mu.Lock()
	var out ipsec.SAID
	for id, dir := range tu.sas.all() {
		if dir == ipsec.Outbound {
			out = id
		}
	}
	tu.mu.Unlock()
	x.g.daemon().Expire(out, false)
}

// tunnelRekeys returns the rekeys `show ipsec tunnel detail` counts for a
// tunnel, -1 when it is not up.
func (x *lab) tunnelRekeys(t *testing.T, name string) int {
	t.Helper()
	m := rekeysRE.FindStringSubmatch(x.show(t, "show ipsec tunnel detail "+name))
	if m == nil {
		return -1
	}
	var n int
	fmt.Sscan(m[1], &n)
	return n
}

// checkSwanSAs compares charon's view of each family's IKE SA and child
// SA with what the family wants.
func (x *lab) checkSwanSAs(t *testing.T, fams []v2Family) {
	t.Helper()
	sas, err := x.env.ListSAs()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		found := false
		for _, sa := range sas {
			if sa.Conn != f.name || sa.F["state"] != "ESTABLISHED" {
				continue
			}
			found = true
			got := [4]string{sa.F["encr-alg"], sa.F["integ-alg"], sa.F["prf-alg"], sa.F["dh-group"]}
			if got != f.swanIKE {
				t.Errorf("%s: charon's IKE SA has %q, want %q", f.name, got, f.swanIKE)
			}
			for _, c := range sa.Children {
				if c.F["state"] != "INSTALLED" {
					continue
				}
				if esp := [2]string{c.F["encr-alg"], c.F["dh-group"]}; esp != f.swanESP || c.F["encap"] != "yes" {
					t.Errorf("%s: charon's child SA has %q (encap %s), want %q in UDP", f.name, esp, c.F["encap"], f.swanESP)
				}
			}
		}
		if !found {
			t.Errorf("%s: charon has no established IKE SA", f.name)
		}
	}
}
