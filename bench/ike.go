package bench

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/ismgw/ism/internal/netlab"
	"github.com/ismgw/ism/internal/swantest/charon"
	"github.com/ismgw/ism/transform"
)

// IKEOptions configure MeasureIKE.
type IKEOptions struct {
	Tunnels   int // how many tunnels each run sets up
	IKE       IKE
	Transform transform.Transform // of the quick modes
	// Window is how many tunnels an initiator may have started and not
	// yet up on the responder; 0 starts them all at once.
	Window int
	// NoStrongSwan leaves out strongSwan's runs (the comparison).
	NoStrongSwan bool
	// QuickModes adds the runs where every tunnel shares one endpoint
	// pair, so one IKE SA: quick modes alone.
	QuickModes bool
	// Timeout bounds each run; 0 means 60 seconds plus 20 ms a tunnel.
	Timeout time.Duration
	// HeapProfile, if set, receives the gateway's heap profile with its
	// tunnels established, in the ISM setup run.
	HeapProfile io.Writer
}

// IKEResult is one row of `ismbench ike`. A setup is one IKEv1 main mode
// (PSK) and one quick mode, or with IKEv2 (Version 2) one IKE_SA_INIT and
// one IKE_AUTH, which carries the first child SA: a tunnel from nothing to
// its SAs installed on both sides. In the setup runs every tunnel has its own endpoint pair, so
// its own IKE SA (ISM keeps one IKE SA per endpoint pair); they are
// initiated against one charon, first by an ISM gateway (a first packet
// routed into each tunnel), then by another charon (vici initiate
// requests), all at once or at most Window in flight, and the rate is
// tunnels over the time from the first initiation to the last tunnel up.
type IKEResult struct {
	Version  int    `json:"version"` // IKE version, 1 or 2
	Tunnels  int    `json:"tunnels"`
	Window   int    `json:"window"`   // 0: all at once
	Proposal string `json:"proposal"` // phase 1, as strongSwan names it
	ESP      string `json:"esp"`

	SetupsPerS           float64 `json:"setups_per_s"`
	StrongSwanSetupsPerS float64 `json:"strongswan_setups_per_s"`
	// Phase1PerS is tunnels over the time until the last IKE SA was
	// established, in the same runs.
	Phase1PerS           float64 `json:"phase1_per_s"`
	StrongSwanPhase1PerS float64 `json:"strongswan_phase1_per_s"`
	// T50Seconds and T90Seconds are how long after the first initiation
	// half and nine tenths of the tunnels were up (on the responder), in
	// the setup runs: a tail far beyond T90 is retransmissions.
	T50Seconds           float64 `json:"t50_s"`
	T90Seconds           float64 `json:"t90_s"`
	StrongSwanT50Seconds float64 `json:"strongswan_t50_s"`
	StrongSwanT90Seconds float64 `json:"strongswan_t90_s"`
	// QuickModesPerS is tunnels over the time until the last was up when
	// all share one IKE SA (phase 1 included, once).
	QuickModesPerS           float64 `json:"quick_modes_per_s,omitempty"`
	StrongSwanQuickModesPerS float64 `json:"strongswan_quick_modes_per_s,omitempty"`

	// BytesPerTunnel is the gateway's Go heap and stacks in use (after a
	// GC) per established idle tunnel, each with its own IKE SA: from a
	// gateway with no tunnels to N configured and established, divided by
	// N. Kernel state (routes) is not in it.
	BytesPerTunnel float64 `json:"bytes_per_tunnel"`
	// LiveBytesPerTunnel is the live objects' part of it (HeapAlloc):
	// the rest is fragmentation and the tunnels' share of the VR's data
	// path (packet buffers, TUN offload tables), which 10,000 tunnels
	// amortize.
	LiveBytesPerTunnel float64 `json:"live_bytes_per_tunnel"`
	// ConfiguredBytesPerTunnel is the part of BytesPerTunnel the
	// configured tunnels held before any negotiation.
	ConfiguredBytesPerTunnel float64 `json:"configured_bytes_per_tunnel"`
	// SharedBytesPerTunnel is BytesPerTunnel when the tunnels share one
	// IKE SA.
	SharedBytesPerTunnel float64 `json:"shared_ike_bytes_per_tunnel,omitempty"`
	// StrongSwanBytesPerTunnel is the initiating charon's malloc heap in
	// use (mallinfo used plus mmap) per tunnel, from its connections
	// loaded to the tunnels established, divided by N.
	StrongSwanBytesPerTunnel float64 `json:"strongswan_bytes_per_tunnel"`

	// CPUSeconds is what the initiator used in the setup run (ISM: the
	// whole benchmark process), ResponderCPUSeconds the responding
	// charon; the StrongSwan ones are the same in strongSwan's run.
	CPUSeconds                    float64 `json:"cpu_s"`
	ResponderCPUSeconds           float64 `json:"responder_cpu_s"`
	StrongSwanCPUSeconds          float64 `json:"strongswan_cpu_s"`
	StrongSwanResponderCPUSeconds float64 `json:"strongswan_responder_cpu_s"`

	// Retransmits and Failures are the ISM gateway's, in its setup run.
	Retransmits uint64 `json:"retransmits"`
	Failures    int    `json:"failures"`
}

// setupRun is what one run measured.
type setupRun struct {
	phase1     time.Duration // from the first initiation to the last phase 1 needed
	all        time.Duration // to the last tunnel up
	t50, t90   time.Duration // to half and nine tenths of the tunnels up
	cpu        time.Duration // the initiator's CPU time meanwhile
	respCPU    time.Duration // the responder's
	configured float64       // memory per configured tunnel, before negotiating
	bytes      float64       // memory per established tunnel
	live       float64       // of which live objects (ISM)
	retrans    uint64
	failures   int
}

// The IKE benchmark's addresses, IPv6 so that one initiator address (a
// hub's) reaches thousands of responder addresses, one endpoint pair per
// tunnel. The initiator (ISM, or the initiating charon) is initiatorAddr,
// the responding charon has the addresses endpoints gives for the tunnels,
// all on loopback and routed over the veth link's transit addresses, so
// that neither side needs a neighbour entry per address. Inside, the
// initiator protects innerLocal and tunnel i reaches innerRemote(i).
var (
	initiatorAddr  = netip.MustParseAddr("2001:db8:1::1")
	initiatorNet   = netip.MustParsePrefix("2001:db8:1::/64")
	responderNet   = netip.MustParsePrefix("2001:db8:2::/64")
	transitI       = netip.MustParsePrefix("2001:db8:ff::1/64")
	transitR       = netip.MustParsePrefix("2001:db8:ff::2/64")
	innerLocal     = netip.MustParsePrefix("2001:db8:100::/64")
	innerLocalHost = netip.MustParseAddr("2001:db8:100::1")
	innerAll       = netip.MustParsePrefix("2001:db8:100::/48")
	innerRemoteAll = netip.MustParsePrefix("2001:db8:200::/48")
)

// MaxIKETunnels is the most tunnels the address plan has room for: one
// inner /64 each in innerRemoteAll.
const MaxIKETunnels = 1<<16 - 1

// endpoints returns tunnel i's initiator and responder addresses when the
// run has pairs distinct endpoint pairs.
func endpoints(i, pairs int) (netip.Addr, netip.Addr) {
	a := responderNet.Addr().As16()
	n := i%pairs + 1
	a[12], a[13], a[14], a[15] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return initiatorAddr, netip.AddrFrom16(a)
}

// innerRemotes holds every tunnel's innerRemote.
var innerRemotes = netip.MustParsePrefix("2001:db8:200::/48")

// innerRemote is the prefix tunnel i protects on the responder's side,
// 2001:db8:200:i::/64.
func innerRemote(i int) netip.Prefix {
	a := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0x02, 0x00, byte(i >> 8), byte(i)}
	return netip.PrefixFrom(netip.AddrFrom16(a), 64)
}

// Validate says whether MeasureIKE can run with these options here.
func (o IKEOptions) Validate() error {
	if o.Tunnels < 1 || o.Tunnels > MaxIKETunnels {
		return fmt.Errorf("bench: %d tunnels: want 1 to %d", o.Tunnels, MaxIKETunnels)
	}
	if o.Window < 0 {
		return fmt.Errorf("bench: window %d: want 0 or more", o.Window)
	}
	if err := o.IKE.Validate(); err != nil {
		return err
	}
	if why := swanAvailable(); why != "" {
		return fmt.Errorf("bench: %s", why)
	}
	_, err := swanESP(o.Transform)
	return err
}

// MeasureIKE runs the setup runs (ISM, then strongSwan, as initiators) and,
// with o.QuickModes, the shared-IKE-SA runs. A run that fails leaves its
// fields zero; the error joins every failure.
func MeasureIKE(o IKEOptions) (IKEResult, error) {
	r := IKEResult{Version: o.IKE.version(), Tunnels: o.Tunnels, Window: o.Window, Proposal: o.IKE.swan()}
	if err := o.Validate(); err != nil {
		return r, err
	}
	r.ESP, _ = swanESP(o.Transform)
	esp := r.ESP
	if o.Timeout == 0 {
		o.Timeout = 60*time.Second + time.Duration(o.Tunnels)*20*time.Millisecond
	}
	n := float64(o.Tunnels)
	type step struct {
		name string
		ism  bool
		run  func(*harness) setupRun
		use  func(setupRun)
	}
	steps := []step{
		{"ISM setups", true, func(h *harness) setupRun { return ismSetups(h, o, o.Tunnels, esp) }, func(s setupRun) {
			r.SetupsPerS, r.Phase1PerS = n/s.all.Seconds(), n/s.phase1.Seconds()
			r.BytesPerTunnel, r.ConfiguredBytesPerTunnel, r.LiveBytesPerTunnel = s.bytes, s.configured, s.live
			r.Retransmits, r.Failures = s.retrans, s.failures
			r.CPUSeconds, r.ResponderCPUSeconds = s.cpu.Seconds(), s.respCPU.Seconds()
			r.T50Seconds, r.T90Seconds = s.t50.Seconds(), s.t90.Seconds()
		}},
		{"strongSwan setups", false, func(h *harness) setupRun { return swanSetups(h, o, o.Tunnels, esp) }, func(s setupRun) {
			r.StrongSwanSetupsPerS, r.StrongSwanPhase1PerS = n/s.all.Seconds(), n/s.phase1.Seconds()
			r.StrongSwanBytesPerTunnel = s.bytes
			r.StrongSwanCPUSeconds, r.StrongSwanResponderCPUSeconds = s.cpu.Seconds(), s.respCPU.Seconds()
			r.StrongSwanT50Seconds, r.StrongSwanT90Seconds = s.t50.Seconds(), s.t90.Seconds()
		}},
	}
	if o.QuickModes {
		steps = append(steps,
			step{"ISM quick modes", true, func(h *harness) setupRun { return ismSetups(h, o, 1, esp) }, func(s setupRun) {
				r.QuickModesPerS, r.SharedBytesPerTunnel = n/s.all.Seconds(), s.bytes
			}},
			step{"strongSwan quick modes", false, func(h *harness) setupRun { return swanSetups(h, o, 1, esp) }, func(s setupRun) {
				r.StrongSwanQuickModesPerS = n / s.all.Seconds()
			}})
	}
	// A run that fails says something about its initiator: the others
	// still run, and every failure is returned.
	var errs []error
	for _, s := range steps {
		if !s.ism && o.NoStrongSwan {
			continue
		}
		var h harness
		var res setupRun
		if err := h.run(func() { res = s.run(&h) }); err != nil {
			errs = append(errs, fmt.Errorf("bench: %s: %w", s.name, err))
			continue
		}
		s.use(res)
	}
	return r, errors.Join(errs...)
}

// ikeLab makes the initiator's namespace and the responder's, joined by a
// veth pair, with the addresses of pairs endpoint pairs, and starts the
// responding charon: one connection for all of them, narrowing to each
// tunnel's selectors. The responder's child-updown events go to prog.
func ikeLab(h *harness, o IKEOptions, pairs int, psk, esp string, prog *progress) (string, *charon.Charon) {
	l := netlab.New(h)
	ini, resp := l.NS("i"), l.NS("r")
	for _, ns := range []string{ini, resp} {
		// No duplicate address detection on the link: until it ends, the
		// link-local address cannot send neighbour solicitations, and the
		// first IKE packets wait or drop.
		l.MustRun(ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	}
	l.Link(ini, "eth0", transitI, resp, "eth0", transitR)
	var bi, br strings.Builder
	fmt.Fprintf(&bi, "addr add %s/128 dev lo nodad\naddr add %s/128 dev lo nodad\nroute add %s via %s\n",
		initiatorAddr, innerLocalHost, responderNet, transitR.Addr())
	fmt.Fprintf(&br, "route add %s via %s\n", initiatorNet, transitI.Addr())
	for i := range min(pairs, o.Tunnels) {
		_, b := endpoints(i, pairs)
		fmt.Fprintf(&br, "addr add %s/128 dev lo nodad\n", b)
	}
	// An address inside each child SA's local selector: charon's
	// userspace ESP routes the child's traffic from one, and refuses the
	// child SA without it. The initiator's is innerLocalHost.
	for i := range o.Tunnels {
		fmt.Fprintf(&br, "addr add %s/128 dev lo nodad\n", innerRemote(i).Addr().Next())
	}
	for ns, cmds := range map[string]string{ini: bi.String(), resp: br.String()} {
		cmd := l.Command(ns, "ip", "-batch", "-")
		cmd.Stdin = strings.NewReader(cmds)
		if out, err := cmd.CombinedOutput(); err != nil {
			h.Fatalf("ip -batch in %s: %v\n%s", ns, err, out)
		}
	}
	// Every tunnel comes from one initiator address, as from a hub: lift
	// charon's limit on half-open IKE SAs per peer address
	// (block_threshold, 5 by default), a DoS protection that would
	// otherwise drop all but 5 until a retransmit. And let it track as many
	// concurrent quick modes on one IKE SA as there are tunnels
	// (max_ikev1_exchanges, 3 by default): ISM starts them all at once.
	ch := startCharon(h, resp, charon.Conf{
		Charon: fmt.Sprintf("block_threshold = 1000000\n  max_ikev1_exchanges = %d", o.Tunnels+3),
		Swanctl: swanctlConf(psk, swanPeer{Name: "ism", Local: responderNet.String(),
			Remote: initiatorNet.String(), IKE: o.IKE.swan(), ESP: esp, Version: o.IKE.version(),
			Children: []swanChild{{Name: "net", LocalTS: innerRemoteAll.String(), RemoteTS: innerAll.String()}}})})
	ev := viciClient(h, ch)
	if err := ev.Listen("child-updown", func(m *charon.Message) {
		if m.Keys["up"] == "yes" {
			prog.addRespUp(time.Now())
		} else {
			prog.addFailed()
		}
	}); err != nil {
		h.Fatalf("%v", err)
	}
	return ini, ch
}
