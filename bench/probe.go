package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ismgw/ism/netns"
)

// A probe stream measures a path packet by packet: a sender sends
// numbered UDP datagrams at a fixed interval, echo servers at the far end
// send each one back with a byte that says which server answered, and the
// sender records, per sequence number, when the answer came and from
// whom. Packets lost and the moment traffic came back through another
// server follow exactly.

// probePort is the echo servers' UDP port.
const probePort = 7007

// echoServer answers probes in a namespace, marking its answers with id.
type echoServer struct {
	conn *net.UDPConn
	done chan struct{}
}

// startEcho opens an echo server on addr:probePort inside namespace ns.
func startEcho(h *harness, ns, addr string, id byte) {
	var conn *net.UDPConn
	if err := netns.Do(ns, func() error {
		// Free bind: the address may come later (a tunnel's, once its
		// gateway runs) and go and come back (a gateway restarted).
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1) }); err != nil {
				return err
			}
			return serr
		}}
		pc, err := lc.ListenPacket(context.Background(), "udp", net.JoinHostPort(addr, strconv.Itoa(probePort)))
		if err == nil {
			conn = pc.(*net.UDPConn)
		}
		return err
	}); err != nil {
		h.Fatalf("bench: echo server in %s: %v", ns, err)
	}
	s := &echoServer{conn: conn, done: make(chan struct{})}
	go s.serve(id)
	h.Cleanup(func() { conn.Close(); <-s.done })
}

func (s *echoServer) serve(id byte) {
	defer close(s.done)
	buf := make([]byte, 64)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf[:len(buf)-1])
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil || n < 8 {
			continue
		}
		buf[n] = id
		_, _ = s.conn.WriteToUDPAddrPort(buf[:n+1], from)
	}
}

// answer is the echo of one probe.
type answer struct {
	at   time.Time
	from byte
}

// prober sends the probes and collects the answers. Its methods are safe
// for concurrent use.
type prober struct {
	conn     *net.UDPConn
	dst      *net.UDPAddr
	interval time.Duration
	stop     chan struct{}
	done     sync.WaitGroup

	mu      sync.Mutex
	sent    []time.Time // by sequence number
	answers []answer    // first answer per sequence number; at zero: none
}

// startProber sends a probe from src in namespace ns to dst:probePort
// every interval until stopped.
func startProber(h *harness, ns, src, dst string, interval time.Duration) *prober {
	p := &prober{dst: &net.UDPAddr{IP: net.ParseIP(dst), Port: probePort}, interval: interval,
		stop: make(chan struct{})}
	if err := netns.Do(ns, func() (err error) {
		// Not connected: ICMP errors while the tunnel is down must not
		// end up as read errors.
		p.conn, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)})
		return err
	}); err != nil {
		h.Fatalf("bench: prober in %s: %v", ns, err)
	}
	p.done.Add(2)
	go p.send()
	go p.receive()
	h.Cleanup(p.close)
	return p
}

func (p *prober) send() {
	defer p.done.Done()
	t := time.NewTicker(p.interval)
	defer t.Stop()
	var b [8]byte
	for seq := uint64(0); ; seq++ {
		binary.BigEndian.PutUint64(b[:], seq)
		p.mu.Lock()
		p.sent = append(p.sent, time.Now())
		p.answers = append(p.answers, answer{})
		p.mu.Unlock()
		_, _ = p.conn.WriteToUDP(b[:], p.dst) // no route or no SA yet: lost, and counted so
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
	}
}

func (p *prober) receive() {
	defer p.done.Done()
	buf := make([]byte, 64)
	for {
		n, err := p.conn.Read(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil || n != 9 {
			continue
		}
		seq, now := binary.BigEndian.Uint64(buf), time.Now()
		p.mu.Lock()
		if seq < uint64(len(p.answers)) && p.answers[seq].at.IsZero() {
			p.answers[seq] = answer{at: now, from: buf[8]}
		}
		p.mu.Unlock()
	}
}

// halt stops sending; answers still arrive until close.
func (p *prober) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
}

func (p *prober) close() {
	p.halt()
	p.conn.Close()
	p.done.Wait()
}

// firstFrom returns when the first answer from server id arrived after
// the probe sent at or after since, and whether one did.
func (p *prober) firstFrom(id byte, since time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var first time.Time
	for seq, a := range p.answers {
		if !a.at.IsZero() && a.from == id && !p.sent[seq].Before(since) && (first.IsZero() || a.at.Before(first)) {
			first = a.at
		}
	}
	return first, !first.IsZero()
}

// lost counts the probes sent after the first one answered that got no
// answer, and returns it with the number of probes it counted among.
func (p *prober) lost() (lost, counted int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	first := p.firstAnsweredLocked()
	for seq := first; seq < len(p.sent); seq++ {
		counted++
		if p.answers[seq].at.IsZero() {
			lost++
		}
	}
	return lost, counted
}

// timeline counts the probes sent and those lost in bins of width bin,
// from the bin that holds the first probe answered (sent before it are not
// counted: the tunnel was not up yet) to the last probe; bins are numbered
// from origin, so the first may be negative: first is its number.
func (p *prober) timeline(origin time.Time, bin time.Duration) (first int, sent, lost []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	seq0 := p.firstAnsweredLocked()
	if seq0 == len(p.sent) {
		return 0, nil, nil
	}
	binOf := func(t time.Time) int {
		d := t.Sub(origin)
		if d < 0 {
			return int((d - bin + 1) / bin)
		}
		return int(d / bin)
	}
	first = binOf(p.sent[seq0])
	n := binOf(p.sent[len(p.sent)-1]) - first + 1
	sent, lost = make([]int, n), make([]int, n)
	for seq := seq0; seq < len(p.sent); seq++ {
		b := binOf(p.sent[seq]) - first
		sent[b]++
		if p.answers[seq].at.IsZero() {
			lost[b]++
		}
	}
	return first, sent, lost
}

// firstAnsweredLocked is the first sequence number answered, or how many
// were sent. p.mu must be held.
func (p *prober) firstAnsweredLocked() int {
	for seq, a := range p.answers {
		if !a.at.IsZero() {
			return seq
		}
	}
	return len(p.sent)
}

// footprint is the heap the prober's records take: what a soak takes off
// the initiating gateway's heap, which shares this process.
func (p *prober) footprint() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return uint64(cap(p.sent))*uint64(unsafe.Sizeof(time.Time{})) + uint64(cap(p.answers))*uint64(unsafe.Sizeof(answer{}))
}

// waitFrom waits until server id answered a probe sent at or after since,
// and returns when the answer came.
func (p *prober) waitFrom(h *harness, what string, id byte, since time.Time, timeout time.Duration) time.Time {
	deadline := time.Now().Add(timeout)
	for {
		if at, ok := p.firstFrom(id, since); ok {
			return at
		}
		if time.Now().After(deadline) {
			h.Fatalf("bench: no probe answered %s within %v", what, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
