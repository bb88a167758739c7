package v2

import (
	"net/netip"
	"sort"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
)

// tunnelState is where a signaled tunnel's child SAs stand.
type tunnelState uint8

const (
	tunnelDown tunnelState = iota
	tunnelNegotiating
	tunnelUp
)

func (s tunnelState) String() string { return [...]string{"down", "negotiating", "up"}[s] }

// tunnel is a signaled tunnel's negotiation state. Guarded by Daemon.mu.
type tunnel struct {
	// cfg is the tunnel's entry in the configuration the daemon was
	// given (config.Tunnels), shared, never changed.
	cfg   *ike.Tunnel
	state tunnelState
	peer  netip.AddrPort // where its SAs go, once negotiated
	// children are its live child SAs, oldest first, each with its own
	// traffic selectors inside the tunnel's.
	children []*childSA
	// acq is the child SA this end negotiates for traffic none of the
	// tunnel's covered (acquire.go); nil when none. Rekeys run beside
	// it, one per child.
	acq *acquire
	// retries are the back-off records of the selector pairs whose
	// acquires failed; an entry goes when its pair gets a child SA.
	retries            map[[2]selector.Selector]*ike.Retry
	attempts, failures int // negotiations this end started, and failed
	lastError          string
	rekeys             int
	onBackup           bool           // the backup destination is in use (failover.go)
	hist               *tunnelHistory // failover history, nil until needed
	// filed: Daemon.idx holds the tunnel, under the keys of its
	// configuration and filedPeer, the address it had learned then
	// (index.go).
	filed     bool
	filedPeer netip.Addr
}

// cur returns the newest child SA.
func (tu *tunnel) cur() *childSA {
	if len(tu.children) == 0 {
		return nil
	}
	return tu.children[len(tu.children)-1]
}

// newest returns the newest live child SA with the given selectors.
func (tu *tunnel) newest(local, remote selector.Set) *childSA {
	for i := len(tu.children) - 1; i >= 0; i-- {
		if c := tu.children[i]; c.local.Equal(local) && c.remote.Equal(remote) {
			return c
		}
	}
	return nil
}

// pairs returns the selectors of the tunnel's child SAs.
func (tu *tunnel) pairs() []ike.Pair {
	ps := make([]ike.Pair, len(tu.children))
	for i, c := range tu.children {
		ps[i] = ike.Pair{Local: c.local, Remote: c.remote}
	}
	return ps
}

// remoteAddr is where this end initiates to: the peer it learned, or the
// destination in use; invalid for a tunnel known only by identity.
func (tu *tunnel) remoteAddr() netip.Addr {
	if tu.peer.IsValid() {
		return tu.peer.Addr()
	}
	return tu.dest()
}

// status describes the tunnel. Daemon.mu must be held.
func (d *Daemon) tunnelStatus(tu *tunnel, now time.Time) ike.TunnelStatus {
	st := ike.TunnelStatus{Name: tu.cfg.Name, State: tu.state.String(), Peer: tu.peer, Rekeys: tu.rekeys,
		LastError: tu.lastError, Destination: tu.dest(), Failover: d.failoverStatusLocked(tu, now),
		Attempts: tu.attempts, Failures: tu.failures}
	st.IKESA = "none"
	if remote := tu.remoteAddr(); remote.IsValid() {
		if sa := d.findIKESA(tu.cfg.Source, remote); sa != nil {
			st.IKESA = sa.stateShadow.String()
		}
	}
	for _, c := range tu.children {
		st.Children = append(st.Children, c.status(d.sched, now))
	}
	st.Negotiations = d.negotiationsLocked(tu, now)
	if len(tu.children) == 0 && tu.acq == nil {
		st.Waiting = "traffic"
		if !tu.remoteAddr().IsValid() {
			st.Waiting = "the peer"
		}
	}
	if c := tu.cur(); c != nil {
		cs := c.status(d.sched, now)
		st.Transform, st.PFSGroup, st.UDPEncap, st.Lifetime = c.transform, c.pfs, c.encap, c.lifetime
		st.InboundSPI, st.OutboundSPI, st.TimeLeft = c.in.SPI, c.out.SPI, cs.TimeLeft
	}
	return st
}

var _ ike.TunnelStatuser = (*Daemon)(nil)

// TunnelStatus returns one tunnel's status and that of the IKE SAs
// between its source and the addresses it may use (ike.TunnelStatuser),
// found through the daemon's indexes: the cost is that tunnel's, not the
// daemon's (`show ipsec tunnel NAME` among 10,000 tunnels).
func (d *Daemon) TunnelStatus(name string) (ike.TunnelStatus, []ike.IKESAStatus, bool) {
	d.mu.Lock()
	tu := d.tunnels[name]
	if tu == nil {
		d.mu.Unlock()
		return ike.TunnelStatus{}, nil, false
	}
	var sas []*ikeSA
	for _, p := range tu.endpoints(tu.peer.Addr()) {
		for sa := range d.sasAt(p) {
			sas = append(sas, sa)
		}
	}
	d.mu.Unlock()
	now := d.clk.Now()
	sts := make([]ike.IKESAStatus, 0, len(sas))
	for _, sa := range sas { // an SA's mutex comes before Daemon.mu
		sa.mu.Lock()
		sts = append(sts, sa.status(now))
		sa.mu.Unlock()
	}
	sort.Slice(sts, func(i, j int) bool { return sts[i].ICookie < sts[j].ICookie })
	d.mu.Lock()
	defer d.mu.Unlock()
	if tu = d.tunnels[name]; tu == nil { // removed meanwhile
		return ike.TunnelStatus{}, nil, false
	}
	return d.tunnelStatus(tu, now), sts, true
}

// Expire handles a lifetime crossing the data path reports: a soft one
// rekeys the child SA, a hard one deletes it.
func (d *Daemon) Expire(id ipsec.SAID, hard bool) {
	d.mu.Lock()
	c := d.childLocked(id)
	d.mu.Unlock()
	if c == nil {
		return
	}
	if hard {
		d.deleteChild(c, "lifetime expired", true)
		return
	}
	sa := d.lockOwner(c)
	sa.rekeyChild(c)
	sa.unlock()
}

// lifetimeFor returns a tunnel's child SA lifetime. Daemon.mu must be
// held.
func (d *Daemon) lifetimeFor(t *ike.Tunnel) ipsec.Lifetime {
	if t.Lifetime != (ipsec.Lifetime{}) {
		return t.Lifetime
	}
	return d.cfg.Lifetime
}
