package ism

import (
	"net/netip"
	"sync"

	"github.com/ismgw/ism/offload/header"
)

// endpoint is a tunnel source address in a transport VR and the sockets the
// tunnels using it need: raw ESP, raw AH, and UDP for ESP in UDP. Sockets
// open on first use and stay open while a tunnel uses the endpoint.
type endpoint struct {
	vr    *vr
	local netip.Addr

	mu    sync.Mutex
	socks map[sockKey]*sock
	refs  int
}

type sockKey struct {
	kind sockKind
	port uint16
}

// socket returns the endpoint's socket of a kind, opening it (and starting
// its receive loop through start) on first use.
func (ep *endpoint) socket(kind sockKind, port uint16, start func(*sock)) (*sock, error) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	k := sockKey{kind, port}
	if s, ok := ep.socks[k]; ok {
		return s, nil
	}
	if kind == sockUDP && port == 0 {
		port = header.NATTPort
	}
	s, err := openSock(ep.vr.ns, kind, netip.AddrPortFrom(ep.local, port))
	if err != nil {
		return nil, err
	}
	ep.socks[k] = s
	start(s)
	return s, nil
}

func (ep *endpoint) close() {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	for k, s := range ep.socks {
		s.close()
		delete(ep.socks, k)
	}
}

// endpoint returns the VR's endpoint for a local address.
func (v *vr) endpoint(local netip.Addr) *endpoint {
	v.mu.Lock()
	defer v.mu.Unlock()
	ep, ok := v.endpoints[local]
	if !ok {
		ep = &endpoint{vr: v, local: local, socks: map[sockKey]*sock{}}
		v.endpoints[local] = ep
	}
	ep.refs++
	return ep
}

// release drops a tunnel's reference to an endpoint and closes it when no
// tunnel uses it.
func (v *vr) release(ep *endpoint) {
	v.mu.Lock()
	ep.refs--
	last := ep.refs == 0
	if last && v.endpoints != nil {
		delete(v.endpoints, ep.local)
	}
	v.mu.Unlock()
	if last {
		ep.close()
	}
}
