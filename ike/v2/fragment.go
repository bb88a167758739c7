package v2

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ismgw/ism/ike"
)

// IKE fragmentation (RFC 7383). Both ends announce
// IKEV2_FRAGMENTATION_SUPPORTED in IKE_SA_INIT (§2.3); then any encrypted
// message (IKE_AUTH onwards) whose datagram would exceed the fragment MTU
// is sent as several messages of the same header, each with one Encrypted
// Fragment payload (§2.5):
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	| Next Payload  |C|  RESERVED   |         Payload Length        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|        Fragment Number        |        Total Fragments        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                   Initialization Vector                       |
//	~                      Encrypted content                        ~
//	~                    Integrity Checksum Data                    ~
//
// The content of fragment N is the Nth piece of the message's inner
// payloads; Next Payload names the first of them in fragment 1 and is zero
// in the others. Each fragment is encrypted and protected on its own, its
// payload header (numbers included) in the associated data, and checked
// before it joins the others (§2.6). The receiver keeps one message in
// reassembly per direction of the window; a fragment with a larger Total
// Fragments restarts it (the sender went to smaller fragments, §2.5.2), a
// smaller one is dropped, a duplicate ignored. A retransmitted request is
// answered again only on its fragment 1 (§2.6.1). Fragment size: the
// configured datagram size (576 bytes over IPv4, 1280 over IPv6 by
// default, §2.5.1), less the IP, UDP and non-ESP marker headers; a
// fragmented request unanswered after two sends goes again in fragments
// for the next smaller of 1280 and 576 bytes (§2.5.2), never below those
// defaults.

// Reassembly limits.
const (
	maxFragments    = 128            // Total Fragments above this is refused
	maxReassembled  = MaxMessageSize // the payloads of a reassembled message
	fragHeaderSize  = 4              // Fragment Number and Total Fragments
	triesPerMTU     = 2              // sends of a fragmented request before smaller fragments
	defaultMTU4     = 576            // RFC 7383 §2.5.1, RFC 791
	defaultMTU6     = 1280           // RFC 8200 §5
	udpHeaderSize   = 8
	nonESPMarkerLen = 4 // RFC 3948 §2.2, on port 4500
)

// fragState is an IKE SA's fragmentation. Guarded by the SA's mutex.
type fragState struct {
	mtu int32 // the datagram size this end's fragments fill
	on  bool  // both ends announced IKEV2_FRAGMENTATION_SUPPORTED
	// in are the peer's request [0] and response [1] being reassembled;
	// nil when neither is (issue 13: an SA seldom reassembles).
	in *[2]*reassembly
}

// held returns the message in reassembly in a slot, or nil.
func (f *fragState) held(slot int) *reassembly {
	if f.in == nil {
		return nil
	}
	return f.in[slot]
}

// put puts a message in reassembly in a slot, or takes it out (nil),
// letting the slots go when both are empty.
func (f *fragState) put(slot int, r *reassembly) {
	if f.in == nil {
		if r == nil {
			return
		}
		f.in = new([2]*reassembly)
	}
	f.in[slot] = r
	if f.in[0] == nil && f.in[1] == nil {
		f.in = nil
	}
}

// reassembly is one fragmented message being put together.
type reassembly struct {
	hdr   Header
	total int
	next  PayloadType // the first inner payload, from fragment 1
	parts [][]byte    // decrypted content, by fragment number - 1
	got   int
	size  int
	large int // the longest fragment, as an IKE message
}

// fragmentMTU returns the configured fragment datagram size for a peer
// address family; 0 when fragmentation is off. Daemon.mu must be held.
func (d *Daemon) fragmentMTU(ipv4 bool) int {
	switch mtu := d.cfg.FragmentMTU; {
	case mtu < 0:
		return 0
	case mtu > 0:
		return mtu
	case ipv4:
		return defaultMTU4
	}
	return defaultMTU6
}

// floorMTU is the size below which this end does not go looking for a
// path that works: the default of the family, or the configured size if
// that is smaller.
func (sa *ikeSA) floorMTU() int {
	floor := defaultMTU6
	if sa.remote.Addr().Unmap().Is4() {
		floor = defaultMTU4
	}
	sa.d.mu.Lock()
	mtu := sa.d.cfg.FragmentMTU
	sa.d.mu.Unlock()
	if mtu > 0 && mtu < floor {
		return mtu
	}
	return floor
}

// smallerMTU returns the next fragment size to try after size went
// unanswered, or 0 when there is none (§2.5.2).
func (sa *ikeSA) smallerMTU(size int) int {
	for _, c := range []int{defaultMTU6, defaultMTU4} {
		if c < size && c >= sa.floorMTU() {
			return c
		}
	}
	return 0
}

// overhead is the IP, UDP and non-ESP marker headers around an IKE message
// of the SA.
func (sa *ikeSA) overhead() int {
	n := 20 + udpHeaderSize
	if !sa.remote.Addr().Unmap().Is4() {
		n = 40 + udpHeaderSize
	}
	if sa.local.Port() == 4500 {
		n += nonESPMarkerLen
	}
	return n
}

// room returns how many bytes of content a fragment of at most limit
// bytes (an IKE message) carries.
func (c *skCrypto) room(limit int) int {
	n := limit - HeaderSize - payloadHeaderSize - fragHeaderSize - c.ivLen() - c.icvLen()
	if !c.gcm() {
		bs := c.blockSize()
		n -= n % bs
	}
	return n - 1 // the Pad Length octet
}

// sealOut encrypts a message of the SA with header h and payloads ps, in
// fragments for datagrams of mtu bytes (0: the SA's fragment size) when
// fragmentation is on and the message does not fit one.
func (sa *ikeSA) sealOut(h Header, ps []Payload, mtu int) ([][]byte, error) {
	sk := sa.sealer()
	msg, err := sk.seal(h, ps, sa.d.rand)
	if err != nil || !sa.frag.on {
		return [][]byte{msg}, err
	}
	if mtu == 0 {
		mtu = int(sa.frag.mtu)
	}
	limit := mtu - sa.overhead()
	if len(msg) <= limit {
		return [][]byte{msg}, nil
	}
	room := sk.room(limit)
	if room < 1 {
		return nil, fmt.Errorf("v2: a fragment MTU of %d bytes leaves no room for content", mtu)
	}
	plain := marshalPayloads(nil, ps)
	total := (len(plain) + room - 1) / room
	if total > maxFragments {
		return nil, fmt.Errorf("v2: %d fragments of %d bytes for a %d-byte message, over %d", total, mtu, len(plain), maxFragments)
	}
	out := make([][]byte, 0, total)
	for n := 1; n <= total; n++ {
		chunk := plain[(n-1)*room : min(n*room, len(plain))]
		next := PayloadNone
		if n == 1 {
			next = ps[0].Type
		}
		var fh [fragHeaderSize]byte
		binary.BigEndian.PutUint16(fh[:2], uint16(n))
		binary.BigEndian.PutUint16(fh[2:], uint16(total))
		f, err := sk.sealPayload(h, PayloadSKF, next, fh[:], chunk, sa.d.rand)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// sendAll queues the datagrams of one message.
func (sa *ikeSA) sendAll(wire [][]byte) {
	if len(wire) > 1 {
		sa.d.count(func(c *ike.Counters) { c.FragmentsSent += uint64(len(wire)) })
	}
	for _, b := range wire {
		sa.send(b)
	}
}

// isFragment reports whether a message carries an Encrypted Fragment.
func isFragment(m *Message) bool {
	return len(m.Payloads) > 0 && m.Payloads[len(m.Payloads)-1].Type == PayloadSKF
}

// errFragment is a fragment that breaks RFC 7383 §2.5's rules.
var errFragment = errors.New("v2: bad IKE fragment")

// parseFragment reads the numbers of a message's Encrypted Fragment
// payload and checks them: the payload alone in the message, 1 ≤ number ≤
// total ≤ maxFragments, the Next Payload set in fragment 1 only.
func parseFragment(m *Message) (num, total int, skf Payload, err error) {
	skf = m.Payloads[len(m.Payloads)-1]
	if len(m.Payloads) != 1 || len(skf.Body) < fragHeaderSize {
		return 0, 0, skf, fmt.Errorf("%w: %d payloads, %d-byte body", errFragment, len(m.Payloads), len(skf.Body))
	}
	num, total = int(binary.BigEndian.Uint16(skf.Body)), int(binary.BigEndian.Uint16(skf.Body[2:]))
	switch {
	case num < 1 || num > total:
		err = fmt.Errorf("%w: fragment %d of %d", errFragment, num, total)
	case total > maxFragments:
		err = fmt.Errorf("%w: %d fragments, at most %d", errFragment, total, maxFragments)
	case (num == 1) != (skf.Inner != PayloadNone):
		err = fmt.Errorf("%w: fragment %d with Next Payload %v", errFragment, num, skf.Inner)
	}
	return num, total, skf, err
}

// receiveFragment takes a fragment of the peer's request or response,
// whose message ID the window expects, and returns the whole message, its
// payloads decrypted, when this fragment completes it. A fragment of the
// peer's previous request is a retransmission: fragment 1 has the response
// sent again. The SA's mutex must be held.
func (sa *ikeSA) receiveFragment(m *Message) (*Message, bool) {
	d := sa.d
	drop := func(f func(c *ike.Counters), why string, err error) (*Message, bool) {
		d.count(func(c *ike.Counters) { c.FragmentsDropped++; f(c) })
		d.log.Debug("IKE fragment dropped", "msgid", m.MessageID, "why", why, "err", err)
		return nil, false
	}
	nothing := func(*ike.Counters) {}
	d.count(func(c *ike.Counters) { c.FragmentsReceived++ })
	w := &sa.win
	slot, retransmit := 0, false
	switch {
	case m.IsResponse() && w.out != nil && m.MessageID == w.out.msgID:
		slot = 1
	case m.IsResponse():
		return drop(func(c *ike.Counters) { c.OutOfWindow++ }, "not the outstanding request's", nil)
	case m.MessageID == w.expect:
	case m.MessageID+1 == w.expect && w.hasResp:
		retransmit = true
	default:
		return drop(func(c *ike.Counters) { c.OutOfWindow++ }, "outside the window", nil)
	}
	num, total, skf, err := parseFragment(m)
	if err != nil {
		return drop(func(c *ike.Counters) { c.Malformed++ }, "malformed", err)
	}
	in := sa.opener(retransmit) // the keys it came under (dispatch.go)
	content, err := in.decrypt(m.raw, skf.Body[fragHeaderSize:])
	if err != nil {
		return drop(nothing, "does not open", err)
	}
	if retransmit {
		if num == 1 {
			d.count(func(c *ike.Counters) { c.Duplicates++ })
			sa.sendAll(w.lastResp)
		}
		return nil, false
	}
	r := sa.frag.held(slot)
	switch {
	case r == nil || r.hdr.MessageID != m.MessageID || total > r.total:
		r = &reassembly{hdr: m.Header, total: total, parts: make([][]byte, total)}
		sa.frag.put(slot, r)
	case total < r.total:
		return drop(nothing, "fewer fragments than the message in reassembly", nil)
	case r.parts[num-1] != nil:
		return drop(func(c *ike.Counters) { c.Duplicates++ }, "duplicate", nil)
	}
	if r.size+len(content) > maxReassembled {
		sa.frag.put(slot, nil)
		return drop(nothing, "reassembled message too long", nil)
	}
	r.parts[num-1] = content
	r.got++
	r.size += len(content)
	r.large = max(r.large, len(m.raw))
	if num == 1 {
		r.next = skf.Inner
	}
	if r.got < r.total {
		return nil, false
	}
	sa.frag.put(slot, nil)
	plain := make([]byte, 0, r.size)
	for _, p := range r.parts {
		plain = append(plain, p...)
	}
	inner, err := parsePayloads(r.next, plain, false)
	if err != nil {
		return drop(func(c *ike.Counters) { c.Malformed++ }, "reassembled message malformed", err)
	}
	if size := r.large + sa.overhead(); size < int(sa.frag.mtu) {
		// The peer found a smaller path than this end's setting: its
		// answers go in fragments no larger than the peer's.
		sa.frag.mtu = int32(max(size, sa.floorMTU()))
	}
	h := r.hdr
	h.Next = PayloadSKF
	return &Message{Header: h, Payloads: inner, inner: r.next, plain: plain}, true
}
