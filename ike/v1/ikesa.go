package v1

import (
	"crypto"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/ismgw/ism/ike"
)

// ikeSA is an ISAKMP SA: one per pair of local and remote IKE endpoints,
// shared by every tunnel between them (the seed). Its fields are guarded
// by Daemon.mu, except the keys, which are written once before the SA is
// marked established and only read afterwards.
type ikeSA struct {
	icookie, rcookie Cookie
	// The small fields together, so that the struct fits 512 bytes, a
	// size class without a header (TestSASizes).
	initiator   bool
	mode        ike.Phase1Mode
	natt        bool // using UDP 4500
	localNAT    bool // this end is behind a NAT (keepalives)
	remoteNAT   bool
	peerNATT    bool // the peer announced RFC 3947
	localDPD    bool // this end announced RFC 3706
	peerDPD     bool // the peer announced RFC 3706
	peerSeq     uint32
	peerSeqSeen bool // peerSeq holds the peer's last R-U-THERE number
	established bool
	dead        bool
	opening     bool  // a responder counted in Daemon.opening
	nextEnded   uint8 // in ended
	nextReply   uint8 // in replies
	// elen and dlen are the lengths of the message cipher's key and
	// SKEYID_d at the start of keys.
	elen, dlen uint8
	rekeys     int32
	state      saState // where phase 1 stands

	local, remote netip.AddrPort // current endpoints; ports float to 4500
	lastRecv      time.Time      // any message for the SA arrived
	failure       string

	policy ike.Policy // negotiated; Lifetime is the one in force
	hash   crypto.Hash
	// keys are the message cipher's key (blockLocked; none once
	// deleted), SKEYID_d and SKEYID_a, one after the other in one array
	// (setKeys, ekey, skeyidD, skeyidA).
	keys     []byte
	p1IV     []byte // last CBC block of phase 1, for quick mode IVs
	remoteID ike.Identity

	exchanges map[uint32]*exchange // nil when none runs (exchange.go)
	replies   []reply              // recently answered messages, for retransmits (remember)
	ended     [8]uint32            // message IDs of the last quick modes to end
	// queued holds what waits for phase 1 to complete; nil when nothing
	// does (queue).
	queued *phase1Queue

	created, expires time.Time
	life             lifeTimer // rekey, then expiry
	alive            lifeTimer // NAT-T keepalives, every Config.Keepalive

	// users are the tunnels whose SAs were last negotiated on it
	// (tunnel.sa), so that its rekey or removal looks at those only; an
	// entry whose tunnel has moved on since is skipped (usersLocked).
	users []*tunnel
}

// saState is where an IKE SA's phase 1 stands, as show names it.
type saState uint8

// IKE SA states.
const (
	stateNone saState = iota
	stateMMSAI
	stateAMSAI
	stateMMSAR
	stateAMSAR
	stateMMKEI
	stateMMAuthI
	stateMMKER
	stateMMAuthR
	stateAMAuthR
	stateEstablished
	stateDeleted
)

func (s saState) String() string {
	return [...]string{"", "MM_SA_I", "AM_SA_I", "MM_SA_R", "AM_SA_R", "MM_KE_I", "MM_AUTH_I", "MM_KE_R", "MM_AUTH_R", "AM_AUTH_R",
		"established", "deleted"}[s]
}

// phase1Queue is what waits for an IKE SA's phase 1 to complete.
type phase1Queue struct {
	pending []packet  // arrived before phase 1 completed
	waiting []*qmPlan // quick modes to start once established
}

// queue returns the SA's queue, made if need be. Daemon.mu must be held.
func (sa *ikeSA) queue() *phase1Queue {
	if sa.queued == nil {
		sa.queued = new(phase1Queue)
	}
	return sa.queued
}

// takeQueued empties the queue and returns what it held. Daemon.mu must
// be held.
func (sa *ikeSA) takeQueued() (pending []packet, waiting []*qmPlan) {
	if q := sa.queued; q != nil {
		pending, waiting = q.pending, q.waiting
		sa.queued = nil
	}
	return pending, waiting
}

// setKeys keeps the phase 1 keys in one array and zeroes the slices given.
// Daemon.mu must be held (or sa not shared yet).
func (sa *ikeSA) setKeys(ekey, skeyidD, skeyidA []byte) {
	sa.keys = slices.Concat(ekey, skeyidD, skeyidA)
	sa.elen, sa.dlen = uint8(len(ekey)), uint8(len(skeyidD))
	clear(ekey)
	clear(skeyidD)
	clear(skeyidA)
}

// ekey returns the message cipher's key; empty before keying and once the
// SA is deleted.
func (sa *ikeSA) ekey() []byte {
	if len(sa.keys) == 0 {
		return nil
	}
	return sa.keys[:sa.elen:sa.elen]
}

// skeyidD returns SKEYID_d, from which quick modes derive keys.
func (sa *ikeSA) skeyidD() []byte {
	if len(sa.keys) == 0 {
		return nil
	}
	e, d := int(sa.elen), int(sa.elen)+int(sa.dlen)
	return sa.keys[e:d:d]
}

// skeyidA returns SKEYID_a, the key of the messages' hashes.
func (sa *ikeSA) skeyidA() []byte {
	if len(sa.keys) == 0 {
		return nil
	}
	return sa.keys[int(sa.elen)+int(sa.dlen):]
}

// setSALocked makes sa the IKE SA tu's SAs were last negotiated on.
// Daemon.mu must be held.
func (d *Daemon) setSALocked(tu *tunnel, sa *ikeSA) {
	if sa != nil && tu.sa != sa && !slices.Contains(sa.users, tu) {
		sa.users = append(sa.users, tu)
	}
	tu.sa = sa
}

// usersLocked returns the configured tunnels whose IKE SA is sa.
// Daemon.mu must be held.
func (d *Daemon) usersLocked(sa *ikeSA) []*tunnel {
	var out []*tunnel
	for _, tu := range sa.users {
		if tu.sa == sa && d.tunnels[tu.cfg.Name] == tu {
			out = append(out, tu)
		}
	}
	return out
}

// reply remembers the answer to a message so that a retransmission of
// that message gets the same answer (RFC 2408 §5: retransmission).
type reply struct {
	msgID uint32
	sum   replySum
	resp  []byte
}

// replySum identifies a message: the first half of its SHA-256, which
// keeps a reply at 48 bytes.
type replySum [sha256.Size / 2]byte

// sumOf returns a message's replySum.
func sumOf(msg []byte) replySum {
	s := sha256.Sum256(msg)
	return replySum(s[:len(replySum{})])
}

type peerKey struct{ local, remote netip.Addr }

func (sa *ikeSA) key() saKey { return saKey{sa.icookie, sa.rcookie} }

func (sa *ikeSA) peer() peerKey { return peerKey{sa.local.Addr(), sa.remote.Addr()} }

// remember records resp as the answer to msg. Daemon.mu must be held.
// The last rememberedReplies answers are kept, in a slice that grows to
// that: most IKE SAs answer one or two messages.
func (sa *ikeSA) remember(msgID uint32, msg, resp []byte) {
	r := reply{msgID: msgID, sum: sumOf(msg), resp: resp}
	if len(sa.replies) < rememberedReplies {
		sa.replies = append(sa.replies, r)
		return
	}
	sa.replies[sa.nextReply] = r
	sa.nextReply = (sa.nextReply + 1) % rememberedReplies
}

// rememberedReplies is how many answers an IKE SA keeps for retransmits.
const rememberedReplies = 4

// answer returns the remembered answer to msg. Daemon.mu must be held.
func (sa *ikeSA) answer(msg []byte) ([]byte, bool) {
	sum := sumOf(msg)
	for _, r := range sa.replies {
		if r.sum == sum && r.resp != nil {
			return r.resp, true
		}
	}
	return nil, false
}

// endQuickMode records that the quick mode with msgID ended, however it
// ended. Daemon.mu must be held.
func (sa *ikeSA) endQuickMode(msgID uint32) {
	sa.ended[sa.nextEnded] = msgID
	sa.nextEnded = (sa.nextEnded + 1) % uint8(len(sa.ended))
}

// quickModeEnded reports whether a quick mode with msgID ended lately: a
// message with its ID is a late copy (a QM3 sent again, a QM2 after the
// initiator gave up), never a new quick mode. Daemon.mu must be held.
func (sa *ikeSA) quickModeEnded(msgID uint32) bool {
	return msgID != 0 && slices.Contains(sa.ended[:], msgID)
}

// replied reports whether msgID was used by a finished exchange. Daemon.mu
// must be held.
func (sa *ikeSA) replied(msgID uint32) bool {
	for _, r := range sa.replies {
		if r.msgID == msgID && r.resp != nil {
			return true
		}
	}
	return false
}

func (d *Daemon) isEstablished(sa *ikeSA) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return sa.established && !sa.dead
}

func (sa *ikeSA) status(now time.Time) ike.IKESAStatus {
	st := ike.IKESAStatus{
		Local: sa.local, Remote: sa.remote, ICookie: sa.icookie.String(), RCookie: sa.rcookie.String(),
		Initiator: sa.initiator, Mode: sa.mode, State: sa.state.String(), Established: sa.established,
		Policy: sa.policy, RemoteID: sa.remoteID.String(), NATT: sa.natt, Rekeys: int(sa.rekeys),
		DPD: sa.localDPD, PeerDPD: sa.peerDPD,
	}
	if sa.established && sa.expires.After(now) {
		st.LifetimeLeft = sa.expires.Sub(now)
	}
	if sa.remoteID.IsZero() {
		st.RemoteID = ""
	}
	return st
}

// newIKESA makes an IKE SA in negotiation and indexes it. Daemon.mu must
// be held.
func (d *Daemon) newIKESA(initiator bool, mode ike.Phase1Mode, local, remote netip.AddrPort) *ikeSA {
	sa := &ikeSA{initiator: initiator, mode: mode, local: local, remote: remote, created: d.now()}
	if initiator {
		d.random(sa.icookie[:])
		sa.state = stateMMSAI
		if mode == ike.AggressiveMode {
			sa.state = stateAMSAI
		}
		d.halfOpen[sa.icookie] = sa
	} else {
		d.random(sa.rcookie[:])
		sa.state = stateMMSAR
		if mode == ike.AggressiveMode {
			sa.state = stateAMSAR
		}
	}
	return sa
}

// findIKESA returns the usable IKE SA between two endpoints, established
// or being negotiated, preferring the newest established one. Daemon.mu
// must be held.
func (d *Daemon) findIKESA(local, remote netip.Addr) *ikeSA {
	var best *ikeSA
	consider := func(sa *ikeSA) {
		if sa.dead || sa.local.Addr() != local || sa.remote.Addr() != remote {
			return
		}
		if best == nil || (sa.established && !best.established) || (sa.established == best.established && sa.created.After(best.created)) {
			best = sa
		}
	}
	for sa := range d.pairs.sasOf(peerKey{local, remote}) {
		consider(sa)
	}
	for _, sa := range d.halfOpen {
		consider(sa)
	}
	return best
}

// established marks phase 1 complete and arms the lifetime timers; it
// returns the messages that waited for it and the tunnels to negotiate.
func (d *Daemon) establish(sa *ikeSA, lifetime time.Duration) ([]packet, []*qmPlan) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	d.stopOpeningLocked(sa)
	sa.established = true
	sa.state = stateEstablished
	sa.policy.Lifetime = lifetime
	sa.expires = now.Add(lifetime)
	d.counters.Phase1Established++
	// Rekey before expiry, jittered (the seed: "the actual lifetime may
	// differ from the configured one"): at 80–90 % of the lifetime.
	soft := d.jitter(lifetime)
	d.armLifeLocked(&sa.life, soft, lifetime, sa.lifeEvent(d))
	if sa.localNAT {
		d.armKeepalive(sa)
	}
	pending, waiting := sa.takeQueued()
	return pending, waiting
}

// jitter returns the soft lifetime for a hard one: 80 % to 90 % of it.
// Daemon.mu must be held (for the random source).
func (d *Daemon) jitter(hard time.Duration) time.Duration {
	var b [2]byte
	d.random(b[:])
	frac := 0.80 + 0.10*float64(uint16(b[0])<<8|uint16(b[1]))/65535
	return time.Duration(float64(hard) * frac)
}

// armKeepalive sends NAT-T keepalives on the SA (RFC 3948 §2.3) from the
// daemon's timer list. Daemon.mu must be held.
func (d *Daemon) armKeepalive(sa *ikeSA) {
	ks, ok := d.tr.(ike.KeepaliveSender)
	if !ok {
		return
	}
	k := d.cfg.Keepalive
	d.armLifeLocked(&sa.alive, k, k, func(bool) {
		d.mu.Lock()
		if sa.dead {
			d.mu.Unlock()
			return
		}
		local, remote := sa.local, sa.remote
		d.lives.add(&sa.alive, d.lives.since()+k)
		d.mu.Unlock()
		_ = ks.SendKeepalive(local, remote)
	})
}

// lifeEvent returns the SA's lifetime events: soft, a rekey; hard, the
// end.
func (sa *ikeSA) lifeEvent(d *Daemon) func(soft bool) {
	return func(soft bool) {
		if soft {
			d.ikeSASoftExpire(sa)
		} else {
			d.ikeSAHardExpire(sa)
		}
	}
}

// ikeSASoftExpire renegotiates phase 1 if tunnels still use the SA.
func (d *Daemon) ikeSASoftExpire(sa *ikeSA) {
	d.mu.Lock()
	if sa.dead || d.closed {
		d.mu.Unlock()
		return
	}
	var users []*tunnel
	for _, tu := range d.usersLocked(sa) {
		if tu.cur() != nil {
			users = append(users, tu)
		}
	}
	mode := sa.mode
	local, remote := sa.local.Addr(), sa.remote.Addr()
	d.mu.Unlock()
	if len(users) == 0 {
		return
	}
	d.logger().Info("renegotiating phase 1", "local", local, "remote", remote)
	d.startPhase1(mode, users[0], local, remote, nil)
}

// ikeSAHardExpire deletes the SA at the end of its lifetime.
func (d *Daemon) ikeSAHardExpire(sa *ikeSA) { d.deleteIKESA(sa) }

// deleteIKESA tells the peer, if the SA is established, and forgets it.
func (d *Daemon) deleteIKESA(sa *ikeSA) {
	if d.isEstablished(sa) {
		d.sendDeleteIKESA(sa)
	}
	d.removeIKESA(sa)
}

// removeIKESA forgets an IKE SA, stops its exchanges and timers and zeroes
// its keys. The child SAs negotiated on it stay (RFC 2409: they are
// independent of it).
func (d *Daemon) removeIKESA(sa *ikeSA) {
	d.mu.Lock()
	if sa.dead {
		d.mu.Unlock()
		return
	}
	sa.dead = true
	sa.state = stateDeleted
	d.deleteSALocked(sa)
	if d.halfOpen[sa.icookie] == sa {
		delete(d.halfOpen, sa.icookie)
	}
	if k := (respKey{sa.icookie, sa.remote.Addr()}); d.inits[k] == sa {
		delete(d.inits, k)
	}
	d.stopOpeningLocked(sa)
	d.stopLifeLocked(&sa.life)
	d.stopLifeLocked(&sa.alive)
	exs := make([]*exchange, 0, len(sa.exchanges))
	for _, ex := range sa.exchanges {
		exs = append(exs, ex)
	}
	for _, tu := range sa.users {
		if tu.sa == sa {
			tu.sa = nil
		}
	}
	sa.users = nil
	clear(sa.keys)
	sa.keys, sa.elen = sa.keys[sa.elen:], 0 // no message cipher key
	if sa.queued != nil {
		sa.queued.pending = nil
	}
	d.mu.Unlock()
	for _, ex := range exs {
		ex.cancel()
	}
}

func (d *Daemon) logger() *slog.Logger { return d.log }

func (sa *ikeSA) String() string {
	return fmt.Sprintf("%s/%s %s->%s", sa.icookie, sa.rcookie, sa.local, sa.remote)
}
