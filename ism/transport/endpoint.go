package transport

import (
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/ismgw/ism/ism/vr"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/offload/header"
)

// Handler takes what the endpoints' sockets receive: IKE messages for the
// IKE daemon, ESP and AH for a datapath. Its methods are called from the
// sockets' read loops.
type Handler interface {
	// IKE takes an IKE message (the non-ESP marker taken off) that
	// arrived on local from remote; it copies msg and must not block.
	IKE(local, remote netip.AddrPort, msg []byte)
	// Serve runs the receive side of one socket or ring queue: it reads
	// bursts with r, from goroutines of its own taking turns, until
	// r.Read reports net.ErrClosed, and then returns.
	Serve(r Reader)
	// Drop counts a packet that reached no tunnel.
	Drop(r offload.DropReason)
}

// Endpoints are the tunnel endpoints of every transport VR, each shared by
// the tunnels whose source it is, and the goroutines that read their
// sockets. Its methods are safe for concurrent use; the zero value is not
// usable (NewEndpoints).
type Endpoints struct {
	h   Handler
	log *slog.Logger
	wg  sync.WaitGroup

	mu sync.Mutex
	m  map[endpointKey]*Endpoint
	// byAddr files the endpoints by local address alone, for UDP: IKE
	// names the address it sends from, not its VR (usually one endpoint).
	byAddr map[netip.Addr][]*Endpoint
	closed bool
	// udp is how UDP sockets open; wild holds the wildcard ones open.
	udp  UDPMode
	wild map[wildKey]*wildSocket
	// raw is how raw ESP and AH travel; rings are the AF_XDP rings open,
	// noRing why a ring could not open on an interface.
	raw             RawMode
	rings           map[ringKey]*rawRing
	noRing          map[ringKey]error
	ringUnavailable atomic.Uint64
}

type endpointKey struct {
	vr    *vr.VR
	local netip.Addr
}

// NewEndpoints returns an empty set whose sockets hand what they read to h.
func NewEndpoints(h Handler, log *slog.Logger) *Endpoints {
	return &Endpoints{h: h, log: log, m: map[endpointKey]*Endpoint{}, byAddr: map[netip.Addr][]*Endpoint{}, raw: RawSockets,
		udp: UDPWildcard, wild: map[wildKey]*wildSocket{},
		rings: map[ringKey]*rawRing{}, noRing: map[ringKey]error{}}
}

// Get returns the endpoint for local in v, with a reference taken for the
// caller (Release gives it back).
func (e *Endpoints) Get(v *vr.VR, local netip.Addr) *Endpoint {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := endpointKey{v, local}
	ep, ok := e.m[k]
	if !ok {
		ep = &Endpoint{set: e, key: k, socks: map[sockKey]*Socket{}}
		e.m[k] = ep
		e.byAddr[local] = append(e.byAddr[local], ep)
	}
	ep.refs++
	return ep
}

// Release gives back a reference Get took; the endpoint's sockets close
// with the last one.
func (e *Endpoints) Release(ep *Endpoint) {
	e.mu.Lock()
	ep.refs--
	last := ep.refs == 0
	if last {
		delete(e.m, ep.key)
		e.unfile(ep)
	}
	e.mu.Unlock()
	if last {
		ep.close()
	}
}

// UDP returns the UDP socket bound to local, for IKE to send from, or nil.
func (e *Endpoints) UDP(local netip.AddrPort) *Socket {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ep := range e.byAddr[local.Addr()] {
		if s := ep.lookup(UDP, local.Port()); s != nil {
			return s
		}
	}
	return nil
}

// unfile takes ep out of byAddr. e.mu is held.
func (e *Endpoints) unfile(ep *Endpoint) {
	eps := e.byAddr[ep.key.local]
	for i, x := range eps {
		if x == ep {
			eps = append(eps[:i], eps[i+1:]...)
			break
		}
	}
	if len(eps) == 0 {
		delete(e.byAddr, ep.key.local)
	} else {
		e.byAddr[ep.key.local] = eps
	}
}

// Close closes every socket and waits for the read loops to end.
func (e *Endpoints) Close() {
	e.mu.Lock()
	e.closed = true
	eps := e.m
	e.m = map[endpointKey]*Endpoint{}
	e.byAddr = map[netip.Addr][]*Endpoint{}
	e.mu.Unlock()
	for _, ep := range eps {
		ep.close()
	}
	e.wg.Wait()
}

// Endpoint is a tunnel source address in a transport VR and the sockets
// the tunnels using it need: raw ESP, raw AH, and UDP for IKE and ESP in
// UDP. Sockets open on first use and stay open while a tunnel uses the
// endpoint. It is safe for concurrent use.
type Endpoint struct {
	set *Endpoints
	key endpointKey

	mu    sync.Mutex
	socks map[sockKey]*Socket
	refs  int // guarded by set.mu
}

type sockKey struct {
	kind    Kind
	port    uint16
	ifindex uint32 // a ring socket's interface
}

// Local returns the endpoint's address.
func (ep *Endpoint) Local() netip.Addr { return ep.key.local }

// Socket returns the endpoint's socket of a kind (on a port, for UDP: 0 is
// the NAT-T port), opening it and starting its read loop on first use.
func (ep *Endpoint) Socket(kind Kind, port uint16) (*Socket, error) {
	if kind == UDP && port == 0 {
		port = header.NATTPort
	}
	if kind != UDP {
		port = 0
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	k := sockKey{kind: kind, port: port}
	if s, ok := ep.socks[k]; ok {
		return s, nil
	}
	if kind == UDP {
		s, err := ep.openUDP(port)
		if err != nil {
			return nil, err
		}
		ep.socks[k] = s
		return s, nil
	}
	e := ep.set
	e.mu.Lock()
	closed := e.closed
	if !closed {
		e.wg.Add(1)
	}
	e.mu.Unlock()
	if closed {
		return nil, errClosed
	}
	s, err := openSocket(ep.key.vr.NS, kind, netip.AddrPortFrom(ep.key.local, port))
	if err != nil {
		e.wg.Done()
		return nil, err
	}
	ep.socks[k] = s
	go e.loop(s)
	return s, nil
}

func (ep *Endpoint) lookup(kind Kind, port uint16) *Socket {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.socks[sockKey{kind: kind, port: port}]
}

func (ep *Endpoint) close() {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	for k, s := range ep.socks {
		switch {
		case s.ring != nil:
			ep.set.releaseRing(s.ring, ep.key.local)
		case s.base != nil:
			ep.set.releaseView(s)
		default:
			s.close()
		}
		delete(ep.socks, k)
	}
}
