package v1

import (
	"net/netip"
	"time"

	"github.com/ismgw/ism/clock"
	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// tunnelState is where a signaled tunnel's child SAs stand.
type tunnelState uint8

const (
	stateDown tunnelState = iota
	stateNegotiating
	stateUp
)

func (s tunnelState) String() string {
	return [...]string{"down", "negotiating", "up"}[s]
}

// tunnel is a signaled tunnel's negotiation state. Guarded by Daemon.mu.
type tunnel struct {
	// cfg is the tunnel's entry in the configuration the daemon was given
	// (config.Tunnels), shared, never changed.
	cfg      *ike.Tunnel
	state    tunnelState
	onBackup bool // the backup destination is in use (beside state: no padding)
	// rekeys counts the child SAs rekeyed (beside state too: the struct
	// fits 176 bytes, TestSASizes).
	rekeys int32
	peer   netip.AddrPort // where its SAs go: learned for FQDN destinations
	sa     *ikeSA         // the IKE SA its SAs were last negotiated on
	// children are its live child SAs, oldest first, each with its own
	// selectors inside the tunnel's.
	children []*childSA
	// acq is the acquire this end negotiates (a quick mode, after a phase
	// 1 if needed), nil when none: one at a time. Rekeys run beside it,
	// one per child (childSA.rekeying).
	acq *qmPlan
	qm  string // the acquire's quick mode state
	// retries are the back-off records of the selector pairs whose
	// negotiations failed (acquire.go); an entry goes when its pair
	// negotiates successfully.
	retries            []pairRetry
	attempts, failures int32  // negotiations this end started, and failed
	peerFailure        string // the last failure of a quick mode the peer started, reported
	lastError          string
	hist               *tunnelHistory // DPD and failover history, nil until needed
}

// dest returns the destination in use: the configured one, or the backup
// after a failover; invalid for a tunnel known only by its identity.
func (tu *tunnel) dest() netip.Addr {
	if tu.onBackup {
		return tu.cfg.BackupDestination
	}
	return tu.cfg.Destination
}

// current returns the tunnel's configuration with the destination in use
// as its destination.
func (tu *tunnel) current() ike.Tunnel {
	t := *tu.cfg
	t.Destination = tu.dest()
	return t
}

// isCurrent reports whether remote is the destination the tunnel uses (or
// may use, when it knows its peer only by identity).
func (tu *tunnel) isCurrent(remote netip.Addr) bool {
	if tu.dest().IsValid() {
		return remote == tu.dest()
	}
	return !tu.peer.IsValid() || tu.peer.Addr() == remote
}

// cur returns the newest child SA.
func (tu *tunnel) cur() *childSA {
	if len(tu.children) == 0 {
		return nil
	}
	return tu.children[len(tu.children)-1]
}

// newest returns the newest live child SA with the given selectors.
func (tu *tunnel) newest(local, remote selector.Selector) *childSA {
	for i := len(tu.children) - 1; i >= 0; i-- {
		if c := tu.children[i]; c.local() == local && c.remote() == remote {
			return c
		}
	}
	return nil
}

// pairs returns the selectors of the tunnel's child SAs.
func (tu *tunnel) pairs() []ike.Pair {
	ps := make([]ike.Pair, len(tu.children))
	for i, c := range tu.children {
		ps[i] = ike.Pair{Local: selector.Of(c.local()), Remote: selector.Of(c.remote())}
	}
	return ps
}

// childSA is a pair of IPsec SAs (inbound and outbound) negotiated by one
// quick mode, for the traffic between its selectors. Guarded by
// Daemon.mu.
type childSA struct {
	tu      *tunnel
	ikesa   *ikeSA
	in, out ipsec.SAID
	// own holds its selectors (IDci and IDcr, this end's first; local and
	// remote read them) when they are not its tunnel's configured ones;
	// nil when they are, as for most children: a child stays small.
	own       *selectorPair
	transform transform.Transform
	lifetime  ipsec.Lifetime
	encap     bool
	initiator bool
	rekeying  bool // (the bools together: the struct fits 224 bytes)
	dead      bool
	pfs       uint16 // the DH group of PFS, 0 for none
	created   time.Time
	life      lifeTimer // rekey, then expiry
	// pending is what only a child being rekeyed has; nil until then
	// (pend, retryTimer, successorOf).
	pending *childPending
}

// childPending is what a child SA has while a rekey of it waits.
type childPending struct {
	retry clock.Timer // a rekey waiting for the back-off after a failed one
	// successor is the rekey that replaces this pair, waiting to take
	// over (switchLater).
	successor *successor
}

// pend returns the child's pending record, made if need be. Daemon.mu
// must be held.
func (c *childSA) pend() *childPending {
	if c.pending == nil {
		c.pending = new(childPending)
	}
	return c.pending
}

// retryTimer returns the timer of a rekey waiting for its back-off, or
// nil.
func (c *childSA) retryTimer() clock.Timer {
	if c.pending == nil {
		return nil
	}
	return c.pending.retry
}

// successorOf returns the rekey waiting to take over from the child, or
// nil.
func (c *childSA) successorOf() *successor {
	if c.pending == nil {
		return nil
	}
	return c.pending.successor
}

// selectorPair is a child SA's own selectors.
type selectorPair struct{ local, remote selector.Selector }

// local returns the child's local selector (this end's IDci or IDcr).
func (c *childSA) local() selector.Selector {
	if c.own != nil {
		return c.own.local
	}
	return c.tu.cfg.LocalSelector
}

// remote returns the child's remote selector.
func (c *childSA) remote() selector.Selector {
	if c.own != nil {
		return c.own.remote
	}
	return c.tu.cfg.RemoteSelector
}

// setSelectors sets the child's selectors; c.tu must be set.
func (c *childSA) setSelectors(local, remote selector.Selector) {
	if local == c.tu.cfg.LocalSelector && remote == c.tu.cfg.RemoteSelector {
		c.own = nil
		return
	}
	c.own = &selectorPair{local, remote}
}

// keepSelectorsLocked gives the children of a tunnel whose configured
// selectors change from old's their own copy of the ones they were
// negotiated with. Daemon.mu must be held.
func keepSelectorsLocked(tu *tunnel, old *ike.Tunnel) {
	keep := func(c *childSA) {
		if c.tu == tu && c.own == nil {
			c.own = &selectorPair{old.LocalSelector, old.RemoteSelector}
		}
	}
	for _, c := range tu.children {
		keep(c)
		if s := c.successorOf(); s != nil {
			keep(s.c)
		}
	}
}

// status describes the child SA.
func (c *childSA) status(now time.Time) ike.ChildStatus {
	st := ike.ChildStatus{Local: selector.Of(c.local()), Remote: selector.Of(c.remote()), InboundSPI: c.in.SPI, OutboundSPI: c.out.SPI,
		Transform: c.transform, PFSGroup: int(c.pfs), UDPEncap: c.encap, Lifetime: c.lifetime, Initiator: c.initiator, Rekeying: c.rekeying}
	if c.lifetime.Time > 0 {
		st.TimeLeft = max(0, c.created.Add(c.lifetime.Time).Sub(now))
	}
	return st
}

// tunnelStatusLocked describes a tunnel; newest holds the newest
// established IKE SA of each peer. Daemon.mu must be held.
func (d *Daemon) tunnelStatusLocked(tu *tunnel, now time.Time, newest map[peerKey]*ikeSA) ike.TunnelStatus {
	st := ike.TunnelStatus{Name: tu.cfg.Name, State: tu.state.String(), Peer: tu.peer, QuickMode: tu.qm,
		Rekeys: int(tu.rekeys), LastError: tu.lastError, Destination: tu.dest(), Attempts: int(tu.attempts), Failures: int(tu.failures)}
	st.DPD = d.tunnelDPDLocked(tu, newest)
	st.Failover = d.tunnelFailoverLocked(tu, now)
	st.IKESA = d.tunnelIKESALocked(tu)
	for _, c := range tu.children {
		st.Children = append(st.Children, c.status(now))
	}
	st.Negotiations = d.negotiationsLocked(tu, now)
	if len(tu.children) == 0 && tu.acq == nil {
		st.Waiting = "traffic"
		if !tu.dest().IsValid() && !tu.peer.IsValid() {
			st.Waiting = "the peer"
		}
	}
	if c := tu.cur(); c != nil {
		cs := c.status(now)
		st.Transform, st.PFSGroup, st.UDPEncap, st.Lifetime = c.transform, int(c.pfs), c.encap, c.lifetime
		st.InboundSPI, st.OutboundSPI, st.TimeLeft = c.in.SPI, c.out.SPI, cs.TimeLeft
	}
	return st
}

// tunnelIKESALocked says how the IKE SA with the tunnel's peer stands, as
// `show ike sa` has it. Daemon.mu must be held.
func (d *Daemon) tunnelIKESALocked(tu *tunnel) string {
	remote := tu.dest()
	if tu.peer.IsValid() {
		remote = tu.peer.Addr()
	}
	var sa *ikeSA
	if remote.IsValid() {
		sa = d.findIKESA(tu.cfg.Source, remote)
	}
	switch {
	case sa == nil:
		return "none"
	case sa.established:
		return "established"
	case sa.state != stateNone:
		return sa.state.String()
	}
	return "negotiating"
}
