package v1

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"hash/maphash"
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

// Daemon is the IKEv1 daemon. It runs no goroutine while idle: an exchange
// in progress has one goroutine that is discarded when the exchange ends,
// and lifetimes run on timers of the configured clock.
//
// Locking: mu guards every map and every field of the IKE SAs, tunnels and
// child SAs that more than one goroutine touches. It is never held across a
// call to the Installer, the Transport or the Listener, nor across DH or
// signature computations.
type Daemon struct {
	inst ike.Installer
	tr   ike.Transport
	lis  ike.Listener

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	rand io.Reader // safe for concurrent use
	clk  clock.Clock
	log  *slog.Logger
	// lives runs the SAs' lifetime events (lifeTimer) on one clock timer.
	lives *timerList

	mu       sync.Mutex
	cfg      *config
	sas      map[saKey]*ikeSA   // by both cookies
	halfOpen map[Cookie]*ikeSA  // initiators waiting for the responder cookie
	inits    map[respKey]*ikeSA // responders, by initiator cookie and peer
	// opening counts the responders in inits whose phase 1 is not
	// complete, which maxOpening bounds (maxHalfOpen; tests lower it):
	// inits keeps the established ones too, to answer a late copy of
	// the peer's first message.
	opening, maxOpening int
	// initiating counts the phase 1 negotiations this end started and
	// not yet finished, which maxInitiating bounds (maxInitiations;
	// tests lower it); the plans beyond it wait in initQueue, in order.
	initiating, maxInitiating int
	initQueue                 []*qmPlan
	tunnels                   map[string]*tunnel
	// bySource files the tunnels by their configured source address, in
	// configuration order: a responder looks only at the tunnels on the
	// address a message arrived on.
	bySource map[netip.Addr][]*tunnel
	// children holds the child SAs by the hashes of their inbound and
	// outbound SAIDs (an 8-byte key where the SAID is 32: childLocked
	// filters out another SA with the same hash); seed is the hash's.
	children ike.Index[uint64, *childSA]
	seed     maphash.Seed
	// pendingIn maps the inbound SAID of a rekey's pair waiting to take
	// over (switchLater) to the child it replaces.
	pendingIn map[ipsec.SAID]*childSA
	pairs     pairIndex            // sas and children by endpoint pair
	dpd       map[peerKey]*dpdPeer // peers DPD watches
	counters  ike.Counters
	closed    bool
	// busy counts the exchange goroutines not waiting in read, and
	// waiting the exchanges that are; quiet (for tests) reads both.
	busy    int
	waiting map[*exchange]bool
}

var _ ike.Daemon = (*Daemon)(nil)

// saKey names an IKE SA by its cookies.
type saKey struct{ i, r Cookie }

// respKey names a phase 1 a peer initiated before the responder cookie is
// known to it.
type respKey struct {
	i    Cookie
	peer netip.Addr
}

// config is a validated, compiled ike.Config.
type config struct {
	ike.Config
	psk     *ike.PSKTable
	roots   *x509.CertPool
	rand    io.Reader
	clk     clock.Clock
	log     *slog.Logger
	retrans ike.Retransmit
	// anyDPD says whether some tunnel has DPD on; when none has, a phase
	// 1 need not look through the tunnels for one to the peer.
	anyDPD bool
}

func compile(c ike.Config) (*config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	cc := &config{Config: c, psk: ike.NewPSKTable(c.PreSharedKeys), rand: c.Rand, clk: clock.Or(c.Clock), log: c.Logger, retrans: c.Retransmit}
	cc.PreSharedKeys = nil // the table holds copies
	if cc.rand == nil {
		cc.rand = rand.Reader
	}
	if cc.log == nil {
		cc.log = slog.New(slog.DiscardHandler)
	}
	if cc.retrans.Timeout <= 0 {
		cc.retrans.Timeout = 2 * time.Second
	}
	if cc.retrans.Base < 1 {
		cc.retrans.Base = 1.8
	}
	switch {
	case cc.retrans.Tries == 0:
		cc.retrans.Tries = 5
	case cc.retrans.Tries < 0:
		cc.retrans.Tries = 0 // no resend
	}
	if cc.Keepalive <= 0 {
		cc.Keepalive = 20 * time.Second
	}
	if cc.Lifetime == (ipsec.Lifetime{}) {
		cc.Lifetime = ike.DefaultLifetime
	}
	if c.Certificates != nil {
		cc.roots = x509.NewCertPool()
		for _, ca := range c.Certificates.CAs {
			cc.roots.AddCert(ca)
		}
	}
	for i := range cc.Tunnels {
		cc.anyDPD = cc.anyDPD || cc.TunnelDPD(&cc.Tunnels[i]).Enabled
	}
	return cc, nil
}

// New starts an IKEv1 daemon. It returns an error if the configuration is
// invalid.
func New(cfg ike.Config, inst ike.Installer, tr ike.Transport, lis ike.Listener) (*Daemon, error) {
	c, err := compile(cfg)
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		inst: inst, tr: tr, lis: lis, cfg: c,
		sas: map[saKey]*ikeSA{}, halfOpen: map[Cookie]*ikeSA{}, inits: map[respKey]*ikeSA{}, maxOpening: maxHalfOpen, maxInitiating: maxInitiations,
		tunnels: map[string]*tunnel{}, seed: maphash.MakeSeed(), pendingIn: map[ipsec.SAID]*childSA{}, dpd: map[peerKey]*dpdPeer{},
		waiting: map[*exchange]bool{},
	}
	d.rand, d.clk, d.log = &lockedReader{r: c.rand}, c.clk, c.log
	d.lives = newTimerList(c.clk, d.runLife)
	d.ctx, d.cancel = context.WithCancel(context.Background())
	for i := range c.Tunnels {
		t := &c.Tunnels[i]
		d.tunnels[t.Name] = &tunnel{cfg: t, state: stateDown}
	}
	d.fileSourcesLocked()
	return d, nil
}

// fileSourcesLocked files the tunnels by source address again, in the
// configuration's order. Daemon.mu is held (or d is not shared yet).
func (d *Daemon) fileSourcesLocked() {
	d.bySource = make(map[netip.Addr][]*tunnel)
	for i := range d.cfg.Tunnels {
		t := &d.cfg.Tunnels[i]
		if tu := d.tunnels[t.Name]; tu != nil {
			d.bySource[t.Source] = append(d.bySource[t.Source], tu)
		}
	}
}

// Reconfigure replaces the configuration. Established SAs stay; tunnels
// that disappeared lose their SAs; a changed transform set applies to
// later negotiations only (the seed). A tunnel on its backup destination
// stays there unless the backup was removed. DPD settings apply at once.
// Rand, Clock and Logger keep the values the daemon was started with.
func (d *Daemon) Reconfigure(cfg ike.Config) error {
	c, err := compile(cfg)
	if err != nil {
		return err
	}
	var gone []*tunnel
	d.mu.Lock()
	old := d.cfg
	d.cfg = c
	keep := map[string]bool{}
	for i := range c.Tunnels {
		t := &c.Tunnels[i]
		keep[t.Name] = true
		if tu, ok := d.tunnels[t.Name]; ok {
			if tu.cfg.LocalSelector != t.LocalSelector || tu.cfg.RemoteSelector != t.RemoteSelector {
				keepSelectorsLocked(tu, tu.cfg)
			}
			tu.cfg = t
			if !t.BackupDestination.IsValid() {
				tu.onBackup = false
			}
		} else {
			d.tunnels[t.Name] = &tunnel{cfg: t, state: stateDown}
		}
	}
	for name, tu := range d.tunnels {
		if !keep[name] {
			gone = append(gone, tu)
			delete(d.tunnels, name)
			if h := tu.hist; h != nil && h.timer != nil {
				h.timer.Stop()
				h.timer = nil
			}
		}
	}
	d.fileSourcesLocked()
	d.dpdRefreshLocked()
	d.mu.Unlock()
	old.psk.Zero()
	for _, tu := range gone {
		d.tunnelDown(tu, "tunnel removed from the configuration")
	}
	if len(gone) > 0 {
		d.dropUnusedIKESAs()
	}
	return nil
}

// dropUnusedIKESAs deletes, telling the peer, the IKE SAs on a local
// address that no configured tunnel has as its source any more: the
// gateway closes that address's sockets, and the SA would otherwise send
// keepalives and retransmissions into nothing, and stay in memory, until
// its lifetime ends.
func (d *Daemon) dropUnusedIKESAs() {
	d.mu.Lock()
	used := make(map[netip.Addr]bool, len(d.tunnels))
	for _, tu := range d.tunnels {
		used[tu.cfg.Source.Unmap()] = true
	}
	var drop []*ikeSA
	for _, sa := range d.sas {
		if !used[sa.local.Addr().Unmap()] {
			drop = append(drop, sa)
		}
	}
	d.mu.Unlock()
	for _, sa := range drop {
		d.deleteIKESA(sa)
	}
}

// Status returns a snapshot of the IKE SAs, the tunnels and the counters.
func (d *Daemon) Status() ike.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	var st ike.Status
	seen := map[*ikeSA]bool{}
	newest := map[peerKey]*ikeSA{}
	for _, sa := range d.sas {
		seen[sa] = true
		st.IKESAs = append(st.IKESAs, sa.status(now))
		if o := newest[sa.peer()]; sa.established && !sa.dead && (o == nil || sa.created.After(o.created)) {
			newest[sa.peer()] = sa
		}
	}
	for _, sa := range d.halfOpen {
		if !seen[sa] {
			st.IKESAs = append(st.IKESAs, sa.status(now))
		}
	}
	for _, tu := range d.tunnels {
		st.Tunnels = append(st.Tunnels, d.tunnelStatusLocked(tu, now, newest))
	}
	sort.Slice(st.Tunnels, func(i, j int) bool { return st.Tunnels[i].Name < st.Tunnels[j].Name })
	sort.Slice(st.IKESAs, func(i, j int) bool { return st.IKESAs[i].ICookie < st.IKESAs[j].ICookie })
	st.Counters = d.counters
	return st
}

// TunnelStatus returns one tunnel's status and that of the IKE SAs with
// its peer (ike.TunnelStatuser), looking at that peer's SAs only.
func (d *Daemon) TunnelStatus(name string) (ike.TunnelStatus, []ike.IKESAStatus, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	tu := d.tunnels[name]
	if tu == nil {
		return ike.TunnelStatus{}, nil, false
	}
	now := d.now()
	key := tunnelPeerKey(tu)
	var sas []ike.IKESAStatus
	newest := map[peerKey]*ikeSA{}
	for sa := range d.pairs.sasOf(key) {
		sas = append(sas, sa.status(now))
		if o := newest[key]; sa.established && !sa.dead && (o == nil || sa.created.After(o.created)) {
			newest[key] = sa
		}
	}
	sort.Slice(sas, func(i, j int) bool { return sas[i].ICookie < sas[j].ICookie })
	return d.tunnelStatusLocked(tu, now, newest), sas, true
}

// Close deletes every SA, tells the peers, and waits for the exchanges in
// progress to end.
func (d *Daemon) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return errors.New("v1: daemon already closed")
	}
	d.closed = true
	var tus []*tunnel
	for _, tu := range d.tunnels {
		tus = append(tus, tu)
		if h := tu.hist; h != nil && h.timer != nil {
			h.timer.Stop()
			h.timer = nil
		}
	}
	for key, p := range d.dpd {
		if p.timer != nil {
			p.timer.Stop()
		}
		delete(d.dpd, key)
	}
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
	for _, tu := range tus {
		d.tunnelDown(tu, "daemon closed")
	}
	d.mu.Lock()
	var sas []*ikeSA
	for _, sa := range d.sas {
		sas = append(sas, sa)
	}
	d.mu.Unlock()
	for _, sa := range sas {
		d.deleteIKESA(sa)
	}
	d.cfg.psk.Zero()
	return nil
}

// count increments a counter.
func (d *Daemon) count(f func(c *ike.Counters)) {
	d.mu.Lock()
	f(&d.counters)
	d.mu.Unlock()
}

// spawn runs f as an exchange goroutine unless the daemon is closed.
func (d *Daemon) spawn(f func()) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.spawnLocked(f)
}

// spawnLocked is spawn with Daemon.mu held.
func (d *Daemon) spawnLocked(f func()) bool {
	if d.closed {
		return false
	}
	d.wg.Add(1)
	d.busy++
	go func() {
		defer d.wg.Done()
		f()
		d.mu.Lock()
		d.busy--
		d.mu.Unlock()
	}()
	return true
}

// now reads the daemon's clock.
func (d *Daemon) now() time.Time { return d.clk.Now() }

// quiet reports whether no exchange goroutine is running and none has a
// message, a timeout or a cancellation waiting for it: with a fake clock
// and an in-memory wire, nothing happens until the clock moves.
func (d *Daemon) quiet() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.busy > 0 {
		return false
	}
	for ex := range d.waiting {
		if ex.pendingLocked() {
			return false
		}
	}
	return true
}

// random fills b from the configured source. A source that fails is a
// broken configuration, like an exhausted test reader: it panics.
func (d *Daemon) random(b []byte) {
	if _, err := io.ReadFull(d.rand, b); err != nil {
		panic(fmt.Sprintf("v1: random source failed: %v", err))
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

func (d *Daemon) nonce() []byte {
	n := make([]byte, 32)
	d.random(n)
	return n
}

// msgID returns a random non-zero message ID unused on sa.
func (d *Daemon) msgID(sa *ikeSA) uint32 {
	var b [4]byte
	for {
		d.random(b[:])
		id := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		d.mu.Lock()
		_, busy := sa.exchanges[id]
		used := sa.replied(id) || sa.quickModeEnded(id)
		d.mu.Unlock()
		if id != 0 && !busy && !used {
			return id
		}
	}
}
