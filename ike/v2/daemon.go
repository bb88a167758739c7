package v2

import (
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/ismgw/ism/clock"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
)

// Daemon is the IKEv2 daemon. It keeps no goroutine: a datagram is handled
// on the goroutine that delivers it (Receive), a timer on the clock's.
//
// Locking: each IKE SA has a mutex (ikeSA.mu) held while an event of the
// SA is handled, including its DH and AUTH computations; Daemon.mu guards
// the maps, the tunnels and the counters, and is taken after an ikeSA.mu,
// never before one. Neither is held across a call to the Installer, the
// Transport or the Listener: those are queued on the SA as effects and
// run, in order, when its mutex is released (ikeSA.unlock).
type Daemon struct {
	inst ike.Installer
	tr   ike.Transport
	lis  ike.Listener
	clk  clock.Clock
	rand io.Reader // safe for concurrent use
	log  *slog.Logger
	// inboundGrace is rekeyedInboundGrace; the pair tests, whose fake
	// clock stands still between steps, set it to zero.
	inboundGrace time.Duration

	mu       sync.Mutex
	cfg      *config
	sas      map[uint64]*ikeSA // by this end's SPI
	halfOpen map[respKey]*ikeSA
	tunnels  map[string]*tunnel
	children ike.Index[uint64, *childSA] // by inbound and outbound SAID (fileChildLocked)
	idx      indexes                     // sas and tunnels by peer (index.go)
	counters ike.Counters
	cookies  cookieJar
	spiLimit rateLimit // INVALID_IKE_SPI notifies
	suites   suiteTable
	sched    *schedule // the lifetime timers
	closed   bool

	// initiating counts the IKE SAs this end initiated that are neither
	// established nor gone, which maxInitiating bounds (maxInitiations;
	// tests lower it); the acquires beyond it wait in initQueue, in
	// order (acquire.go).
	initiating, maxInitiating int
	initQueue                 []initTurn

	// classicAuth (tests) makes the daemon a peer without RFC 7427: it
	// neither announces SIGNATURE_HASH_ALGORITHMS nor reads the peer's.
	classicAuth bool
}

var _ ike.Daemon = (*Daemon)(nil)

// respKey names an IKE SA a peer initiated, until its IKE_SA_INIT
// request can no longer be retransmitted.
type respKey struct {
	spiI uint64
	peer netip.Addr
}

// config is a validated, compiled ike.Config.
type config struct {
	ike.Config
	psk     *ike.PSKTable
	suites  []suite // the policies' suites, in priority order
	retrans ike.Retransmit
	roots   *x509.CertPool // the trusted CAs
	certReq []byte         // their CERTREQ hashes (§3.7)
}

// Default retransmission schedule (RFC 7296 §2.1 leaves it to the
// implementation; these are ike/v1's).
var defaultRetransmit = ike.Retransmit{Timeout: 2 * time.Second, Base: 1.8, Tries: 5}

func compile(c ike.Config) (*config, error) {
	if err := c.ValidateV2(); err != nil {
		return nil, err
	}
	cc := &config{Config: c, psk: ike.NewPSKTable(c.PreSharedKeys), retrans: c.Retransmit}
	cc.PreSharedKeys = nil // the table holds copies
	for _, p := range c.Policies {
		s, err := policySuite(p)
		if err != nil {
			return nil, err
		}
		cc.suites = append(cc.suites, s)
	}
	if c.Certificates != nil {
		cc.roots = x509.NewCertPool()
		for _, ca := range c.Certificates.CAs {
			cc.roots.AddCert(ca)
		}
		cc.certReq = caHashes(c.Certificates.CAs)
	}
	if cc.retrans.Timeout <= 0 {
		cc.retrans.Timeout = defaultRetransmit.Timeout
	}
	if cc.retrans.Base < 1 {
		cc.retrans.Base = defaultRetransmit.Base
	}
	switch {
	case cc.retrans.Tries == 0:
		cc.retrans.Tries = defaultRetransmit.Tries
	case cc.retrans.Tries < 0:
		cc.retrans.Tries = 0 // no resend
	}
	if cc.Keepalive <= 0 {
		cc.Keepalive = 20 * time.Second
	}
	if cc.Lifetime == (ipsec.Lifetime{}) {
		cc.Lifetime = ike.DefaultLifetime
	}
	return cc, nil
}

// New starts an IKEv2 daemon, as v1.New starts the IKEv1 one. It returns
// an error if the configuration is invalid for IKEv2 (ike.Config.ValidateV2).
// The daemon keeps cfg.Tunnels, shared: the caller must not change them
// afterwards (Reconfigure takes a new slice).
func New(cfg ike.Config, inst ike.Installer, tr ike.Transport, lis ike.Listener) (*Daemon, error) {
	c, err := compile(cfg)
	if err != nil {
		return nil, err
	}
	r := cfg.Rand
	if r == nil {
		r = rand.Reader
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	clk := clockOf(cfg)
	d := &Daemon{inst: inst, tr: tr, lis: lis, clk: clk, sched: newSchedule(clk), rand: &lockedReader{r: r}, log: lg, cfg: c, inboundGrace: rekeyedInboundGrace,
		sas: map[uint64]*ikeSA{}, halfOpen: map[respKey]*ikeSA{}, tunnels: map[string]*tunnel{}, maxInitiating: maxInitiations}
	for i := range c.Tunnels {
		t := &c.Tunnels[i]
		tu := &tunnel{cfg: t}
		d.tunnels[t.Name] = tu
		d.indexTunnelLocked(tu)
	}
	return d, nil
}

// Reconfigure replaces the configuration. Established SAs stay; tunnels
// that disappeared lose their child SAs; changed transform sets and
// policies apply to later negotiations.
func (d *Daemon) Reconfigure(cfg ike.Config) error {
	c, err := compile(cfg)
	if err != nil {
		return err
	}
	var gone []*childSA
	d.mu.Lock()
	old := d.cfg
	d.cfg = c
	keep := map[string]bool{}
	for i := range c.Tunnels {
		t := &c.Tunnels[i]
		keep[t.Name] = true
		tu, ok := d.tunnels[t.Name]
		if ok {
			if !sameKeys(tu.cfg, t) {
				d.unindexTunnelLocked(tu) // filed under its old configuration
			}
			tu.cfg = t
			tu.onBackup = tu.onBackup && t.BackupDestination.IsValid()
		} else {
			tu = &tunnel{cfg: t}
			d.tunnels[t.Name] = tu
		}
		d.indexTunnelLocked(tu)
	}
	for name, tu := range d.tunnels {
		if !keep[name] {
			gone = append(gone, tu.children...)
			if h := tu.hist; h != nil && h.timer != nil {
				h.timer.Stop()
			}
			d.unindexTunnelLocked(tu)
			delete(d.tunnels, name)
		}
	}
	d.mu.Unlock()
	old.psk.Zero()
	for _, c := range gone {
		d.deleteChild(c, "tunnel removed from the configuration", true)
	}
	return nil
}

// Status returns a snapshot of the IKE SAs, tunnels and counters.
func (d *Daemon) Status() ike.Status {
	d.mu.Lock()
	sas := make([]*ikeSA, 0, len(d.sas))
	for _, sa := range d.sas {
		sas = append(sas, sa)
	}
	d.mu.Unlock()
	now := d.clk.Now()
	st := ike.Status{IKESAs: make([]ike.IKESAStatus, 0, len(sas))}
	for _, sa := range sas {
		sa.mu.Lock()
		st.IKESAs = append(st.IKESAs, sa.status(now))
		sa.mu.Unlock()
	}
	d.mu.Lock()
	st.Tunnels = make([]ike.TunnelStatus, 0, len(d.tunnels))
	for _, tu := range d.tunnels {
		st.Tunnels = append(st.Tunnels, d.tunnelStatus(tu, now))
	}
	st.Counters = d.counters
	d.mu.Unlock()
	sort.Slice(st.Tunnels, func(i, j int) bool { return st.Tunnels[i].Name < st.Tunnels[j].Name })
	sort.Slice(st.IKESAs, func(i, j int) bool { return st.IKESAs[i].ICookie < st.IKESAs[j].ICookie })
	return st
}

// Close deletes every SA, sends a Delete to each peer with an established
// IKE SA (without waiting for an answer) and stops every timer.
func (d *Daemon) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return errors.New("v2: daemon already closed")
	}
	d.closed = true
	d.initQueue = nil
	sas := make([]*ikeSA, 0, len(d.sas))
	for _, sa := range d.sas {
		sas = append(sas, sa)
	}
	d.mu.Unlock()
	for _, sa := range sas {
		sa.mu.Lock()
		if sa.state == stateEstablished {
			sa.sendDeleteIKE()
		}
		sa.destroy(closedReason)
		sa.unlock()
	}
	d.sched.close()
	d.cfg.psk.Zero()
	return nil
}

// closedReason is why the SAs go when the daemon closes.
const closedReason = "daemon closed"

// count changes a counter.
func (d *Daemon) count(f func(c *ike.Counters)) {
	d.mu.Lock()
	f(&d.counters)
	d.mu.Unlock()
}

// random fills b. A failing source is a broken configuration: it panics,
// as crypto/rand does.
func (d *Daemon) random(b []byte) {
	if _, err := io.ReadFull(d.rand, b); err != nil {
		panic(fmt.Sprintf("v2: random source failed: %v", err))
	}
}

// lockedReader serializes reads of a source that may not be safe for
// concurrent use (a deterministic test source).
type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return io.ReadFull(l.r, b)
}

// jitter returns a soft lifetime for a hard one: 80 % to 90 % of it, as
// ike/v1 does (the seed: the actual lifetime may differ from the
// configured one).
func (d *Daemon) jitter(hard time.Duration) time.Duration {
	var b [2]byte
	d.random(b[:])
	frac := 0.80 + 0.10*float64(uint16(b[0])<<8|uint16(b[1]))/65535
	return time.Duration(float64(hard) * frac)
}

// clockOf returns the configured clock.
func clockOf(c ike.Config) clock.Clock { return clock.Or(c.Clock) }
