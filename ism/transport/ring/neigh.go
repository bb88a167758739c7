package ring

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/jsimonetti/rtnetlink/v2"
	"golang.org/x/sys/unix"
)

// neighTTL is how long a resolved next hop is used before it is looked up
// again: the kernel's own neighbour entry may have changed or gone stale
// meanwhile (ring traffic does not keep it fresh).
const neighTTL = time.Second

// missTTL is how long a destination without a usable neighbour entry
// stays on the socket path before the kernel's table is read again: the
// packet that took the socket path made the kernel resolve it, which
// takes a round trip on the link.
const missTTL = 20 * time.Millisecond

// Neighbour states whose link-layer address may be used (rtnetlink(7)).
const usableNUD = unix.NUD_REACHABLE | unix.NUD_STALE | unix.NUD_DELAY | unix.NUD_PROBE | unix.NUD_PERMANENT | unix.NUD_NOARP

// nextHops resolves destinations to the link-layer address of their next
// hop through the interface, with the kernel's routes and neighbour table
// (rtnetlink). It never resolves anything itself: a destination the kernel
// has no usable neighbour entry for is sent through the socket path, which
// makes the kernel resolve it. It is safe for concurrent use.
type nextHops struct {
	ifindex int
	conn    *rtnetlink.Conn
	now     func() time.Time

	mu     sync.Mutex
	mtu    int                // the interface's MTU, read again every neighTTL
	mtuAt  time.Time          // when mtu was read
	cache  map[netip.Addr]hop // by destination
	neighs map[netip.Addr]hop // the interface's neighbour table
	dumped time.Time          // when neighs was read
}

// hop is a resolved (or unresolvable) destination.
type hop struct {
	mac     [6]byte
	mtu     int  // the route's MTU (a path MTU the kernel learnt from ICMP included), 0 if it has none
	ok      bool // mac is usable; else use the socket path
	stale   bool // the kernel's entry is stale
	expires time.Time
}

func newNextHops(ifindex, mtu int) (*nextHops, error) {
	c, err := rtnetlink.Dial(nil)
	if err != nil {
		return nil, err
	}
	return &nextHops{ifindex: ifindex, conn: c, now: time.Now, mtu: mtu, mtuAt: time.Now(), cache: map[netip.Addr]hop{}}, nil
}

// linkMTU returns the interface's MTU, read from the kernel at most every
// neighTTL: frames over a lowered MTU would be dropped by the link.
func (n *nextHops) linkMTU() int {
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if now.Sub(n.mtuAt) >= neighTTL {
		n.mtuAt = now
		if m, err := n.conn.Link.Get(uint32(n.ifindex)); err == nil && m.Attributes != nil {
			n.mtu = int(m.Attributes.MTU)
		}
	}
	return n.mtu
}

// lookup returns the next hop's address for dst and the route's MTU (0:
// the interface's), or false when the packet must take the socket path:
// no route through the interface, no usable neighbour entry yet, or (once
// a second) a stale entry the kernel should confirm again, which a packet
// through it makes the kernel do.
func (n *nextHops) lookup(dst netip.Addr) ([6]byte, int, bool) {
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	h, found := n.cache[dst]
	if found && now.Before(h.expires) {
		return h.mac, h.mtu, h.ok
	}
	h = n.resolve(dst, now)
	h.expires = now.Add(neighTTL)
	if !h.ok {
		h.expires = now.Add(missTTL)
	}
	n.cache[dst] = h
	if h.stale {
		return h.mac, h.mtu, false
	}
	return h.mac, h.mtu, h.ok
}

// resolve asks the kernel for dst's route and finds its gateway's (or its
// own) neighbour entry.
func (n *nextHops) resolve(dst netip.Addr, now time.Time) hop {
	fam := uint8(unix.AF_INET)
	if dst.Is6() {
		fam = unix.AF_INET6
	}
	routes, err := n.conn.Route.Get(&rtnetlink.RouteMessage{Family: fam, Attributes: rtnetlink.RouteAttributes{Dst: net.IP(dst.AsSlice())}})
	if err != nil || len(routes) == 0 || int(routes[0].Attributes.OutIface) != n.ifindex {
		return hop{}
	}
	via := dst
	if gw, ok := netip.AddrFromSlice(routes[0].Attributes.Gateway); ok && gw.IsValid() {
		via = gw.Unmap()
	}
	if age := now.Sub(n.dumped); age >= neighTTL || !n.neighs[via].ok && age >= missTTL {
		n.dumpNeighbours(now)
	}
	h := n.neighs[via]
	if m := routes[0].Attributes.Metrics; m != nil {
		h.mtu = int(m.MTU)
	}
	return h
}

// dumpNeighbours reads the interface's neighbour table.
func (n *nextHops) dumpNeighbours(now time.Time) {
	list, err := n.conn.Neigh.List()
	if err != nil {
		return
	}
	n.neighs, n.dumped = map[netip.Addr]hop{}, now
	for _, m := range list {
		if int(m.Index) != n.ifindex || m.Attributes == nil || len(m.Attributes.LLAddress) != 6 || m.State&usableNUD == 0 {
			continue
		}
		a, ok := netip.AddrFromSlice(m.Attributes.Address)
		if !ok {
			continue
		}
		h := hop{ok: true, stale: m.State&unix.NUD_STALE != 0}
		copy(h.mac[:], m.Attributes.LLAddress)
		n.neighs[a.Unmap()] = h
	}
}

func (n *nextHops) close() error { return n.conn.Close() }
