package v2

import (
	"bufio"

	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/internal/swantest"
	"github.com/ismgw/ism/internal/swantest/charon"
	"github.com/ismgw/ism/ipsec"
)

// ISM's IKEv2 daemon in one namespace, strongSwan's charon (5.9, with
// kernel-libipsec, which fakes a NAT: IKE floats to 4500 and the child
// SAs are UDP-encapsulated) in another.

type interop struct {
	env  *swantest.Env
	d    *Daemon
	inst *iketest.Installer
	lis  *iketest.Listener
	udp  *iketest.UDPTransport
}

const interopPSK = "interop-v2-psk-0123456789"

func newInterop(t *testing.T, cfg ike.Config, swanctl string) *interop {
	t.Helper()
	return newInteropIn(t, swantest.New(t), cfg, swantest.Conf{Swanctl: swanctl})
}

// newInteropIn starts charon with conf in env, and ISM's daemon.
func newInteropIn(t *testing.T, env *swantest.Env, cfg ike.Config, conf swantest.Conf) *interop {
	t.Helper()
	env.StartCharon(conf)
	x := &interop{env: env, inst: iketest.NewInstaller(0xc2de0000), lis: iketest.NewListener()}
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

// TestMain runs sixteen tests at once unless -test.parallel says
// otherwise: the interop tests wait on charon's timers and exchanges in
// namespaces of their own, not on the CPU.
func TestMain(m *testing.M) { swantest.MainParallel(m, 16) }

// swanConn is charon's side of one test: a connection "ism" with one
// child "net", IKEv2, pre-shared keys unless Auth says otherwise, rendered
// by charon.Swanctl.
type swanConn struct {
	Local                   netip.Addr // charon's address; swantest.SwanAddr when invalid
	Proposals, ESPProposals string
	// IKETimers and ChildTimers are the IKE SA's and the child's rekey
	// and life times (charon's defaults when zero); IKEExtra more
	// settings of the connection.
	IKETimers, ChildTimers charon.Timers
	IKEExtra               []string
	LocalID, RemoteID      string // charon's own identity and ISM's; addresses when empty
	// NoSecrets leaves out the pre-shared key for the two identities.
	NoSecrets bool
	// Auth and RemoteAuth are charon's local and remote auth (psk when
	// empty; RemoteAuth defaults to Auth); LocalCert its certs file.
	Auth, RemoteAuth, LocalCert string
}

func (c swanConn) render() string {
	if !c.Local.IsValid() {
		c.Local = swantest.SwanAddr
	}
	if c.LocalID == "" {
		c.LocalID = c.Local.String()
	}
	if c.RemoteID == "" {
		c.RemoteID = swantest.ISMAddr.String()
	}
	if c.Auth == "" {
		c.Auth = "psk"
	}
	if c.RemoteAuth == "" {
		c.RemoteAuth = c.Auth
	}
	no := false
	conn := charon.Connection{Name: "ism", Version: 2, LocalAddrs: []string{c.Local.String()}, RemoteAddrs: []string{swantest.ISMAddr.String()},
		Proposals: []string{c.Proposals}, Timers: c.IKETimers, Mobike: &no, Extra: append([]string{"reauth_time = 0"}, c.IKEExtra...),
		Local: charon.End{Auth: c.Auth, ID: c.LocalID}, Remote: charon.End{Auth: c.RemoteAuth, ID: c.RemoteID},
		Children: []charon.Child{{Name: "net", LocalTS: []string{netB.String()}, RemoteTS: []string{netA.String()},
			ESPProposals: []string{c.ESPProposals}, Timers: c.ChildTimers}}}
	if c.LocalCert != "" {
		conn.Local.Certs = []string{c.LocalCert}
	}
	sc := charon.Swanctl{Connections: []charon.Connection{conn}}
	if !c.NoSecrets {
		sc.Secrets = []charon.Secret{{Name: "ike-1", IDs: []string{c.LocalID, c.RemoteID}, Secret: interopPSK}}
	}
	return sc.Render()
}

// interopTunnel is ISM's tunnel to charon.
func interopTunnel(t *testing.T, set ...string) ike.Tunnel {
	return pairTunnel(t, "t1", swantest.ISMAddr, swantest.SwanAddr, netA, netB, set...)
}

// swanWant is what charon must report of the SAs (its names).
type swanWant struct {
	encr, keysize, integ, prf, dh string // IKE SA; integ "" with AES-GCM
	espEncr, espKeysize, espInteg string
}

// waitCharon polls charon until it has an established IKE SA with an
// installed CHILD_SA whose SPIs are ISM's current ones, and returns it.
func (x *interop) waitCharon(t *testing.T) (swantest.IKESA, swantest.ChildSA) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
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
				if sa.F["state"] == "ESTABLISHED" && c.F["state"] == "INSTALLED" && spis[c.F["spi-in"]] && spis[c.F["spi-out"]] {
					return sa, c
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("charon has no installed CHILD_SA with ISM's SPIs %v; SAs: %+v", spis, sas)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// check compares charon's view with ISM's: algorithms, SPIs, and every
// ESP key ISM installed among the keys charon logged.
func (x *interop) check(t *testing.T, w swanWant) {
	t.Helper()
	sa, c := x.waitCharon(t)
	got := []string{sa.F["encr-alg"], sa.F["encr-keysize"], sa.F["integ-alg"], sa.F["prf-alg"], sa.F["dh-group"],
		c.F["encr-alg"], c.F["encr-keysize"], c.F["integ-alg"]}
	want := []string{w.encr, w.keysize, w.integ, w.prf, w.dh, w.espEncr, w.espKeysize, w.espInteg}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("charon's SAs: %q, want %q", got, want)
	}
	if c.F["encap"] != "yes" {
		t.Errorf("charon's CHILD_SA is not UDP-encapsulated: %v", c.F)
	}
	logged := loggedChildKeys(x.env.Log())
	n := 0
	for id, s := range x.inst.SAs() {
		if !s.UDPEncap || s.SrcPort != 4500 && s.DstPort != 4500 {
			t.Errorf("SA %v: not UDP-encapsulated on 4500: %+v", id, s)
		}
		for _, k := range [][]byte{s.CipherKey, s.AuthKey} {
			if len(k) == 0 {
				continue
			}
			if !logged[string(k)] {
				t.Errorf("SA %08x: a key ISM installed is not among those charon derived", id.SPI)
			}
			n++
		}
	}
	if n < 2 {
		t.Fatalf("only %d keys checked", n)
	}
}

var (
	keyHeadRE = regexp.MustCompile(`(encryption|integrity) (initiator|responder) key => (\d+) bytes`)
	keyLineRE = regexp.MustCompile(`^\S+ (\d+)\[\w+\] (.*)$`)
	keyDumpRE = regexp.MustCompile(`^\s*\d+: ((?:[0-9A-F]{2} ?){1,16})`)
)

// loggedChildKeys returns every child SA key charon logged at chd=4
// (keymat_v2's "encryption initiator key" and the like), as a set.
func loggedChildKeys(log string) map[string]bool {
	out := map[string]bool{}
	type cur struct {
		need int
		buf  []byte
	}
	threads := map[string]*cur{}
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := keyLineRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		th, rest := m[1], m[2]
		c := threads[th]
		if c != nil && c.need > 0 {
			if d := keyDumpRE.FindStringSubmatch(rest); d != nil {
				b, _ := hex.DecodeString(strings.ReplaceAll(d[1], " ", ""))
				c.buf = append(c.buf, b...)
				if len(c.buf) >= c.need {
					out[string(c.buf[:c.need])] = true
					c.need = 0
				}
				continue
			}
			c.need = 0
		}
		if h := keyHeadRE.FindStringSubmatch(rest); h != nil {
			n, _ := strconv.Atoi(h[3])
			threads[th] = &cur{need: n}
		}
	}
	return out
}

func pskConfig(policies ...ike.Policy) ike.Config {
	return ike.Config{Policies: policies,
		PreSharedKeys: []ike.PreSharedKey{{Peer: swantest.SwanAddr.String(), Key: ipsec.Key(interopPSK)}}}
}

// run brings the tunnel up with ISM as initiator or as responder.
func (x *interop) up(t *testing.T, ismInitiates bool) {
	t.Helper()
	if ismInitiates {
		x.d.Acquire("t1")
	} else if out, err := x.env.Initiate("net", 15*time.Second); err != nil {
		t.Fatalf("swanctl --initiate: %v\n%s", err, out)
	}
	waitEvent(t, x.lis, "up", "t1")
}

func roles(t *testing.T, f func(t *testing.T, ismInitiates bool)) {
	for _, r := range []struct {
		name string
		init bool
	}{{"ISMInitiator", true}, {"ISMResponder", false}} {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			f(t, r.init)
		})
	}
}
