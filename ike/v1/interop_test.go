package v1

import (
	"bytes"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/internal/swantest"
	"github.com/ismgw/ism/internal/swantest/charon"
	"github.com/ismgw/ism/ipsec"
)

// interop is ISM's daemon in one namespace and strongSwan's charon in
// another.
type interop struct {
	env  *swantest.Env
	d    *Daemon
	inst *iketest.Installer
	lis  *iketest.Listener
	udp  *iketest.UDPTransport
}

const interopPSK = "interop-psk-0123456789"

func newInterop(t *testing.T, cfg ike.Config, swan swantest.Conf) *interop {
	t.Helper()
	env := swantest.New(t)
	env.StartCharon(swan)
	x := &interop{env: env, inst: iketest.NewInstaller(0xc0de0000), lis: iketest.NewListener()}
	if err := swantest.InNamespace(env.NSISM, func() error {
		var err error
		x.udp, err = iketest.ListenUDP(swantest.ISMAddr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if cfg.Retransmit == (ike.Retransmit{}) {
		cfg.Retransmit = ike.Retransmit{Timeout: time.Second, Base: 1.5, Tries: 4}
	}
	d, err := New(cfg, x.inst, x.udp, x.lis)
	if err != nil {
		t.Fatal(err)
	}
	x.d = d
	x.udp.Start(d)
	t.Cleanup(func() {
		d.Close()
		x.udp.Close()
		env.Dump()
	})
	return x
}

// swanConn is charon's connection "ism" to ISM with one child "net" and
// any more children; render turns it into swanctl.conf.
type swanConn struct {
	Aggressive   bool
	Proposals    string // IKE proposals, comma-separated
	ESPProposals string // the child's, comma-separated
	LocalID      string
	RemoteID     string
	Auth         string // psk or pubkey
	LocalTS      string
	RemoteTS     string
	RemoteAddrs  string
	Children     []charon.Child // more children
	// DPDDelay and DPDTimeout are charon's own DPD (off when zero).
	DPDDelay, DPDTimeout time.Duration
	ChildTimers          charon.Timers   // the child's
	Secrets              []charon.Secret // default: the PSK for LocalID and RemoteID
	LocalCerts           string
	LocalAddr            string // charon's address; swantest.SwanAddr when empty
}

func (c swanConn) render() string {
	if c.Auth == "" {
		c.Auth = "psk"
	}
	if c.LocalAddr == "" {
		c.LocalAddr = swantest.SwanAddr.String()
	}
	if c.LocalID == "" {
		c.LocalID = c.LocalAddr
	}
	if c.RemoteID == "" {
		c.RemoteID = swantest.ISMAddr.String()
	}
	if c.LocalTS == "" {
		c.LocalTS = netB.String()
	}
	if c.RemoteTS == "" {
		c.RemoteTS = netA.String()
	}
	if c.RemoteAddrs == "" {
		c.RemoteAddrs = swantest.ISMAddr.String()
	}
	if c.Secrets == nil && c.Auth == "psk" {
		c.Secrets = []charon.Secret{{Name: "ike-1", IDs: []string{c.LocalID, c.RemoteID}, Secret: interopPSK}}
	}
	conn := charon.Connection{Name: "ism", Version: 1, Aggressive: c.Aggressive,
		LocalAddrs: []string{c.LocalAddr}, RemoteAddrs: []string{c.RemoteAddrs}, Proposals: []string{c.Proposals},
		Timers: charon.Timers{Rekey: charon.Never}, DPDDelay: c.DPDDelay, DPDTimeout: c.DPDTimeout,
		Local:  charon.End{Auth: c.Auth, ID: c.LocalID},
		Remote: charon.End{Auth: c.Auth, ID: c.RemoteID},
		Children: append([]charon.Child{{Name: "net", LocalTS: []string{c.LocalTS}, RemoteTS: []string{c.RemoteTS},
			ESPProposals: []string{c.ESPProposals}, Timers: c.ChildTimers}}, c.Children...)}
	if c.LocalCerts != "" {
		conn.Local.Certs = []string{c.LocalCerts}
	}
	return charon.Swanctl{Connections: []charon.Connection{conn}, Secrets: c.Secrets}.Render()
}

// ismTunnel returns ISM's tunnel to charon.
func ismTunnel(t *testing.T, name string, set ...string) ike.Tunnel {
	return pairTunnel(t, name, swantest.ISMAddr, swantest.SwanAddr, netA, netB, set...)
}

func pskConfig(policies ...ike.Policy) ike.Config {
	return ike.Config{
		Policies:      policies,
		PreSharedKeys: []ike.PreSharedKey{{Peer: swantest.SwanAddr.String(), Key: ipsec.Key(interopPSK)}},
	}
}

// want is what both ends must agree on.
type want struct {
	ikeEncr, ikeInteg, ikeDH string // charon's names: encr-alg, integ-alg, dh-group
	ikeKeySize               string // encr-keysize, "" for 3DES
	espEncr, espInteg        string
	espKeySize               string
	espDH                    string // PFS group charon reports, "" for none
}

// waitCharonChild polls charon until it has an installed CHILD_SA with
// one of ISM's SPIs (it installs after processing the last message).
func (x *interop) waitCharonChild(t *testing.T) []swantest.IKESA {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sas, err := x.env.ListSAs()
		if err != nil {
			t.Fatal(err)
		}
		spis := map[string]bool{}
		for id := range x.inst.SAs() {
			spis[fmt.Sprintf("%08x", id.SPI)] = true
		}
		for _, sa := range sas {
			for _, c := range sa.Children {
				if c.F["state"] == "INSTALLED" && spis[c.F["spi-in"]] && spis[c.F["spi-out"]] {
					return sas
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("charon has no installed CHILD_SA with ISM's SPIs %v; SAs: %+v", spis, sas)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkCharon checks charon's view of the tunnel against ISM's: the IKE SA
// established with the algorithms, the CHILD_SA installed with the same
// SPIs, and every ESP key byte-identical to the one charon logged.
func (x *interop) checkCharon(t *testing.T, tunnel string, w want) {
	t.Helper()
	sas := x.waitCharonChild(t)
	in, out, _ := x.inst.Tunnel(tunnel)
	if len(in) == 0 || len(out) == 0 {
		t.Fatalf("ISM installed no SA pair for %s", tunnel)
	}
	spis := map[uint32]bool{}
	for id := range x.inst.SAs() {
		spis[id.SPI] = true
	}
	var found bool
	for _, sa := range sas {
		if sa.F["state"] != "ESTABLISHED" {
			continue
		}
		if sa.F["encr-alg"] != w.ikeEncr || sa.F["integ-alg"] != w.ikeInteg || sa.F["dh-group"] != w.ikeDH || sa.F["encr-keysize"] != w.ikeKeySize {
			t.Errorf("charon IKE SA: encr %s/%s integ %s dh %s; want %s/%s %s %s", sa.F["encr-alg"], sa.F["encr-keysize"],
				sa.F["integ-alg"], sa.F["dh-group"], w.ikeEncr, w.ikeKeySize, w.ikeInteg, w.ikeDH)
		}
		for _, c := range sa.Children {
			if c.F["state"] != "INSTALLED" {
				continue
			}
			sin, _ := strconv.ParseUint(c.F["spi-in"], 16, 32)
			sout, _ := strconv.ParseUint(c.F["spi-out"], 16, 32)
			if !spis[uint32(sin)] || !spis[uint32(sout)] {
				continue
			}
			found = true
			if c.F["encr-alg"] != w.espEncr || c.F["integ-alg"] != w.espInteg || c.F["dh-group"] != w.espDH || c.F["encr-keysize"] != w.espKeySize {
				t.Errorf("charon CHILD_SA: encr %s/%s integ %s dh %q; want %s/%s %s %q", c.F["encr-alg"], c.F["encr-keysize"],
					c.F["integ-alg"], c.F["dh-group"], w.espEncr, w.espKeySize, w.espInteg, w.espDH)
			}
		}
	}
	if !found {
		t.Fatalf("charon has no installed CHILD_SA with ISM's SPIs %v; SAs: %+v", spis, sas)
	}
	logged := x.env.LoggedKeys()
	for id, sa := range x.inst.SAs() {
		k, ok := logged[id.SPI]
		if !ok {
			continue
		}
		if !bytes.Equal(k.Enc, sa.CipherKey) || !bytes.Equal(k.Integ, sa.AuthKey) {
			t.Errorf("SA %08x: ISM's keys differ from the ones charon logged", id.SPI)
		}
	}
	matched := 0
	for id := range x.inst.SAs() {
		if _, ok := logged[id.SPI]; ok {
			matched++
		}
	}
	if matched < 2 {
		t.Fatalf("only %d of ISM's SAs have keys in charon's log", matched)
	}
}

func TestInteropMainModePSK3DES(t *testing.T) {
	t.Parallel()
	cfg := pskConfig(ike.Policy{Encryption: ike.Enc3DES, Hash: ike.HashSHA1, Auth: ike.AuthPSK, Group: 2})
	cfg.Tunnels = []ike.Tunnel{ismTunnel(t, "t1", "esp-3des-hmac-sha")}
	x := newInterop(t, cfg, swantest.Conf{Swanctl: swanConn{Proposals: "3des-sha1-modp1024", ESPProposals: "3des-sha1"}.render()})
	x.d.Acquire("t1")
	waitEvent(t, x.lis, "up", "t1", 20*time.Second)
	x.checkCharon(t, "t1", want{ikeEncr: "3DES_CBC", ikeInteg: "HMAC_SHA1_96", ikeDH: "MODP_1024", espEncr: "3DES_CBC", espInteg: "HMAC_SHA1_96"})
}
