package v2

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/ismgw/ism/clock"
	"github.com/ismgw/ism/ike"
)

// saState is where an IKE SA stands.
type saState uint8

const (
	stateInitSent    saState = iota // initiator: IKE_SA_INIT request out
	stateAuthSent                   // initiator: IKE_AUTH request out
	stateInitDone                   // responder: IKE_SA_INIT answered, IKE_AUTH awaited
	stateEstablished                // authenticated both ways
	stateDeleting                   // a Delete of the IKE SA is out
	stateRekeyed                    // a new IKE SA replaced it; it waits for its Delete (§2.8)
	stateDead                       // removed; its keys are zeroed
	stateIntSent                    // initiator: in IKE_INTERMEDIATE exchanges (RFC 9242)
)

func (s saState) String() string {
	return [...]string{"IKE_SA_INIT_I", "IKE_AUTH_I", "IKE_SA_INIT_R", "established", "deleting", "rekeyed", "deleted",
		"IKE_INTERMEDIATE_I"}[s]
}

// ikeSA is an IKE SA: one per pair of endpoints, shared by every tunnel
// between them (the seed). mu guards every field but d and the immutable
// ones named below; it is taken before Daemon.mu, never after.
type ikeSA struct {
	d  *Daemon
	mu sync.Mutex

	// The one-byte fields come together, here and below, so that the
	// struct stays within its size class (TestStateSizes).
	initiator bool // immutable: this end sent the first IKE_SA_INIT
	state     saState
	// stateShadow copies state for the daemon's look-ups under
	// Daemon.mu (findIKESA); written with both mutexes held.
	stateShadow saState
	// filed: the daemon's indexes hold the SA, under its endpoints
	// (index.go). Guarded by Daemon.mu.
	filed    bool
	flushing bool // unlock is running fx
	// unsettled marks a new IKE SA whose rekey collided with this end's
	// until the nonces decide (§2.8.2). Written with Daemon.mu held too.
	unsettled bool
	// authMethod is the AUTH method this end used (authenticate.go).
	authMethod ike.AuthMethod
	// intermediate: the peer announced IKE_INTERMEDIATE (RFC 9242; the
	// exchanges' state is in hs).
	intermediate bool

	spiI, spiR uint64 // spiI immutable; spiR set once by IKE_SA_INIT
	local      netip.AddrPort
	remote     netip.AddrPort

	suite    *suite // shared (suiteTable): never changed
	keys     ikeKeys
	hs       *handshake // until established; nil after, and on an SA made by a rekey or an import
	remoteID ike.Identity
	localID  ike.Identity

	// Authentication (authenticate.go; the peer's hashes and CERTREQ are
	// in hs): the signature schemes of both ends (nil with pre-shared
	// keys; shared with its successors).
	schemes *authSchemes
	frag    fragState // RFC 7383 (fragment.go)

	// NAT traversal (§2.23).
	localNAT, remoteNAT bool // this end, the peer, behind a NAT
	natt                bool // floated to port 4500
	forceEncap          bool // a tunnel asks for ESP-in-UDP without a NAT
	// resync, on an imported SA (import.go), is how far past
	// win.expect the peer's first request may be: its requests may have
	// moved on since the record. Zero once one is taken. resyncOut: the
	// peer has answered none of its requests yet.
	resync    uint32
	rekeys    uint32 // IKE SA rekeys that led to this one
	cookies   uint16 // COOKIE notifies its setup took (§2.6)
	resyncOut bool

	// followups are the peer's unfinished series of IKE_FOLLOWUP_KE
	// exchanges, by link (followup.go).
	followups map[string]*followupR

	win      window
	children []*childSA
	rk       *ikeRekey    // this end's rekey of the SA, while it runs
	retry    *clock.Timer // a rekey waiting after TEMPORARY_FAILURE (§2.25; rare: 8 bytes, not 16)
	// successor is the IKE SA that took over the child SAs (§2.8).
	successor *ikeSA

	// created is when the SA was established (made, until then);
	// lastHeard, the last authenticated message from the peer. Stamps of
	// Daemon.sched: createdAt and heardAt give their times.
	created   stamp
	lastHeard stamp
	// life is the one lifetime timer (Daemon.sched): the half-open SA's
	// wait for IKE_AUTH, the established SA's rekey and then its end
	// (armLifetime), the replaced SA's wait for the peer's Delete.
	life      lazyTimer
	keepalive *clock.Timer // behind a NAT only (natt.go; 8 bytes, not 16)
	dpd       *liveness

	fx []func() // effects queued while mu is held (flushing: unlock runs them)
}

// authSchemes are the signature schemes an IKE SA's ends authenticated
// with (RFC 7427).
type authSchemes struct{ own, peer sigScheme }

// signed returns the SA's schemes, making the record.
func (sa *ikeSA) signed() *authSchemes {
	if sa.schemes == nil {
		sa.schemes = &authSchemes{}
	}
	return sa.schemes
}

// stopTimers stops the timers that are armed; a nil one is not.
func stopTimers(ts ...*clock.Timer) {
	for _, t := range ts {
		if t != nil && *t != nil {
			(*t).Stop()
		}
	}
}

// lifetime is the IKE SA's lifetime, its policy's (§2.8: not negotiated).
func (sa *ikeSA) lifetime() time.Duration { return sa.suite.lifetime }

// lock takes the SA's mutex.
func (sa *ikeSA) lock() { sa.mu.Lock() }

// unlock releases the SA's mutex and runs the queued effects in order
// outside it. An effect that queues more (through a call back into the
// daemon) has them run by the same loop; effects never run concurrently
// for one SA.
func (sa *ikeSA) unlock() {
	for len(sa.fx) > 0 && !sa.flushing {
		fx := sa.fx
		sa.fx = nil
		sa.flushing = true
		sa.mu.Unlock()
		for _, f := range fx {
			f()
		}
		sa.mu.Lock()
		sa.flushing = false
	}
	sa.mu.Unlock()
}

// after queues an effect: a call to the Installer, Transport or Listener.
func (sa *ikeSA) after(f func()) { sa.fx = append(sa.fx, f) }

// endTurn gives back the daemon's initiation place the SA's handshake
// holds, once it is established or gone; the next acquire waiting for one
// starts when the SA's mutex is released. The SA's mutex must be held.
func (sa *ikeSA) endTurn() {
	if sa.hs != nil && sa.hs.turn {
		sa.hs.turn = false
		sa.after(sa.d.initiationEnded)
	}
}

// localSPI is this end's SPI, by which the daemon finds the SA.
func (sa *ikeSA) localSPI() uint64 {
	if sa.initiator {
		return sa.spiI
	}
	return sa.spiR
}

// header returns the header of a message this end sends.
func (sa *ikeSA) header(t ExchangeType, msgID uint32, response bool) Header {
	h := Header{SPIi: sa.spiI, SPIr: sa.spiR, Version: Version, Exchange: t, MessageID: msgID}
	if sa.initiator {
		h.Flags |= FlagInitiator
	}
	if response {
		h.Flags |= FlagResponse
	}
	return h
}

// newIKESA makes an IKE SA and indexes it by this end's SPI.
func (d *Daemon) newIKESA(initiator bool, local, remote netip.AddrPort, peerSPI uint64) *ikeSA {
	sa := &ikeSA{d: d, initiator: initiator, local: local, remote: remote, created: d.sched.nowStamp(), hs: &handshake{}, suite: noSuite}
	sa.lastHeard = sa.created
	d.mu.Lock()
	defer d.mu.Unlock()
	spi := d.freeSPILocked()
	if initiator {
		sa.spiI, sa.state = spi, stateInitSent
	} else {
		sa.spiI, sa.spiR, sa.state = peerSPI, spi, stateInitDone
		d.halfOpen[respKey{peerSPI, remote.Addr()}] = sa
	}
	d.putSALocked(sa)
	return sa
}

// freeSPILocked returns a random IKE SPI no IKE SA of this end uses.
// Daemon.mu must be held.
func (d *Daemon) freeSPILocked() uint64 {
	for {
		var b [8]byte
		d.random(b[:])
		if spi := binary.BigEndian.Uint64(b[:]); spi != 0 && d.sas[spi] == nil {
			return spi
		}
	}
}

// findIKESA returns the IKE SA between two endpoints, preferring an
// established one, then the newest. Daemon.mu must be held.
func (d *Daemon) findIKESA(local, remote netip.Addr) *ikeSA {
	var best *ikeSA
	var bestEst bool
	for sa := range d.sasAt(endpointPair{local, remote}) {
		if !sa.usableLocked() {
			continue
		}
		est := sa.establishedLocked()
		if best == nil || (est && !bestEst) || (est == bestEst && sa.created > best.created) {
			best, bestEst = sa, est
		}
	}
	return best
}

// The flags below are read by the daemon under Daemon.mu without the SA's
// mutex; they are written with both held.
func (sa *ikeSA) establishedLocked() bool { return sa.stateShadow == stateEstablished }

// usableLocked reports whether new child SAs may go on the SA: not one
// that is going, replaced, or the subject of an unsettled rekey collision.
func (sa *ikeSA) usableLocked() bool {
	s := sa.stateShadow
	return s != stateDead && s != stateDeleting && s != stateRekeyed && !sa.unsettled
}

// setState changes the state, and its copy read under Daemon.mu. The
// SA's mutex must be held.
func (sa *ikeSA) setState(s saState) {
	sa.state = s
	sa.d.mu.Lock()
	sa.stateShadow = s
	sa.d.mu.Unlock()
}

// destroy removes the SA: its child SAs are deleted from the Installer
// (their tunnels go down), its timers stop, its keys are zeroed. Nothing
// is sent. The SA's mutex must be held.
func (sa *ikeSA) destroy(reason string) {
	if sa.state == stateDead {
		return
	}
	for _, c := range append([]*childSA(nil), sa.children...) {
		sa.removeChild(c, reason)
	}
	held := sa.win.stop()
	// A child SA negotiation that waited its turn, or its answer, fails
	// with the SA: an acquire left pending held its tunnel negotiating,
	// refusing every later acquire, after the peer was found gone.
	for _, r := range held {
		if r.onDrop != nil {
			r.onDrop(sa, reason)
		}
	}
	sa.d.sched.stop(&sa.life)
	stopTimers(sa.keepalive, sa.retry)
	if sa.dpd != nil {
		sa.dpd.stop()
	}
	sa.endTurn()
	var waiting []string
	if sa.hs != nil {
		waiting, sa.hs.waiting = sa.hs.waiting, nil
	}
	d := sa.d
	// Dead and out of the maps in one step: an SA the indexes hold is
	// never dead (onlySA counts them).
	sa.state = stateDead
	d.mu.Lock()
	sa.stateShadow = stateDead
	d.deleteSALocked(sa)
	if k := (respKey{sa.spiI, sa.remote.Addr()}); d.halfOpen[k] == sa {
		delete(d.halfOpen, k)
	}
	d.mu.Unlock()
	sa.keys.zero()
	sa.keys = ikeKeys{}
	sa.hs.zero()
	for _, f := range sa.followups {
		f.zero()
	}
	sa.followups = nil
	if sa.rk != nil {
		sa.rk.zero()
		sa.rk = nil
	}
	remote, heard := sa.remote.Addr(), sa.heardAt()
	setup := sa.initiator && reason != closedReason
	for _, name := range waiting {
		if setup {
			// An IKE SA this end started for the tunnel failed
			// (failover.go).
			sa.after(func() { d.setupFailed(name, remote, reason, heard) })
		} else {
			sa.after(func() { d.negotiationFailed(name, remote, reason) })
		}
	}
}

// status describes the SA. Its mutex must be held.
func (sa *ikeSA) status(now time.Time) ike.IKESAStatus {
	st := ike.IKESAStatus{
		Version: 2, Local: sa.local, Remote: sa.remote,
		ICookie: fmt.Sprintf("%016x", sa.spiI), RCookie: fmt.Sprintf("%016x", sa.spiR),
		Initiator: sa.initiator, State: sa.state.String(), Established: sa.state == stateEstablished,
		NATT: sa.natt, LocalNAT: sa.localNAT, RemoteNAT: sa.remoteNAT, LastHeard: sa.heardAt(),
	}
	st.Rekeys, st.Cookies = int(sa.rekeys), int(sa.cookies)
	if sa.state == stateEstablished || sa.state == stateDeleting || sa.state == stateRekeyed {
		st.Policy = sa.suite.policy()
		st.Policy.Auth = sa.authMethod
		st.AdditionalKE = append([]int(nil), sa.suite.addke...)
		st.Policy.Lifetime = sa.lifetime()
		if left := sa.createdAt().Add(sa.lifetime()).Sub(now); left > 0 {
			st.LifetimeLeft = left
		}
	}
	if !sa.remoteID.IsZero() {
		st.RemoteID = sa.remoteID.String()
	}
	if sa.dpd != nil {
		st.DPD, st.PeerDPD = true, true // every IKEv2 peer answers liveness checks (§1.4)
	}
	return st
}

// send queues a datagram to the peer on the SA's current endpoints.
func (sa *ikeSA) send(msg []byte) {
	local, remote, d := sa.local, sa.remote, sa.d
	sa.after(func() {
		if err := d.tr.Send(local, remote, msg); err != nil {
			d.log.Warn("send failed", "local", local, "remote", remote, "err", err)
		}
	})
}

// heard records an authenticated message from the peer.
func (sa *ikeSA) heard() { sa.lastHeard = sa.d.sched.nowStamp() }

// heardAt is when the last authenticated message from the peer came.
func (sa *ikeSA) heardAt() time.Time { return sa.d.sched.time(sa.lastHeard) }

// createdAt is when the SA was established (made, until then).
func (sa *ikeSA) createdAt() time.Time { return sa.d.sched.time(sa.created) }

func (sa *ikeSA) String() string {
	return fmt.Sprintf("%016x/%016x %s->%s", sa.spiI, sa.spiR, sa.local, sa.remote)
}
