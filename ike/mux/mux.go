// Package mux runs IKEv1 (ike/v1, RFC 2409) and IKEv2 (ike/v2, RFC 7296)
// side by side behind one ike.Daemon: the version multiplexer the line card
// holds. Each signaled tunnel negotiates with the version it is configured
// for (ike.Tunnel.Version); a datagram goes to the daemon of the major
// version in its header (octet 17, RFC 2408 §3.1 and RFC 7296 §3.1), on
// UDP 500 and 4500 alike; the data path's acquires and expires go to the
// daemon that owns the tunnel or SA.
package mux

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/ismgw/ism/ike"
	v1 "github.com/ismgw/ism/ike/v1"
	v2 "github.com/ismgw/ism/ike/v2"
	"github.com/ismgw/ism/ipsec"
)

// Versions are the IKE versions the multiplexer runs, in order.
var Versions = []int{1, 2}

// headerSize is the fixed IKE header of both versions (RFC 2408 §3.1,
// RFC 7296 §3.1); the version octet is its 18th.
const (
	headerSize    = 28
	versionOctet  = 17
	numberOfSlots = 3 // by version: 1 and 2
)

// New is a constructor of one version's daemon, as v1.New and v2.New.
type New func(ike.Config, ike.Installer, ike.Transport, ike.Listener) (ike.Daemon, error)

// Daemon runs an IKEv1 and an IKEv2 daemon, each made when the
// configuration first has a tunnel of its version and closed when it has
// none left. Its methods are safe for concurrent use; the zero value is not
// usable (NewDaemon).
type Daemon struct {
	inst ike.Installer
	tr   ike.Transport
	lis  ike.Listener
	make [numberOfSlots]New

	// mu serializes Reconfigure and Close: the daemons change only under
	// it. The fields below it are read without it.
	mu     sync.Mutex
	closed bool

	daemons [numberOfSlots]atomic.Pointer[slot]
	// tunnels says each tunnel's version.
	tunnels atomic.Pointer[versions]

	// malformed counts datagrams too short for an IKE header, and
	// unowned, per version, those of a version that runs no daemon.
	malformed atomic.Uint64
	unowned   [numberOfSlots]atomic.Uint64
	// unknown counts datagrams of a major version neither speaks.
	unknown atomic.Uint64
}

// versions says each tunnel's IKE version: byName maps tunnels to their
// versions when both versions have some, else only is the version of them
// all (0 when there are none) and byName is nil, which saves a map entry
// a tunnel (about 50 bytes: issue 13).
type versions struct {
	only   int
	byName map[string]int
}

// of returns a tunnel's version, or 0 when it is not configured.
func (vs *versions) of(name string) int {
	if vs.byName != nil {
		return vs.byName[name]
	}
	return vs.only
}

// versionsOf says the version of each of the tunnels.
func versionsOf(tunnels []ike.Tunnel) *versions {
	vs := &versions{}
	for i, t := range tunnels {
		v := version(t)
		switch {
		case i == 0:
			vs.only = v
		case vs.byName == nil && v != vs.only:
			vs.byName = make(map[string]int, len(tunnels))
			for _, u := range tunnels[:i] {
				vs.byName[u.Name] = vs.only
			}
			fallthrough
		case vs.byName != nil:
			vs.byName[t.Name] = v
		}
	}
	if vs.byName != nil {
		vs.only = 0
	}
	return vs
}

// slot holds a daemon for an atomic pointer.
type slot struct{ ike.Daemon }

var _ ike.Daemon = (*Daemon)(nil)

// NewDaemon starts the daemons the configuration's tunnels need. It is
// Options.IKE's default in package ism.
func NewDaemon(cfg ike.Config, inst ike.Installer, tr ike.Transport, lis ike.Listener) (ike.Daemon, error) {
	return NewWith(cfg, inst, tr, lis, func(c ike.Config, i ike.Installer, t ike.Transport, l ike.Listener) (ike.Daemon, error) {
		return v1.New(c, i, t, l)
	}, func(c ike.Config, i ike.Installer, t ike.Transport, l ike.Listener) (ike.Daemon, error) {
		return v2.New(c, i, t, l)
	})
}

// NewWith is NewDaemon with other constructors of the IKEv1 and IKEv2
// daemons.
func NewWith(cfg ike.Config, inst ike.Installer, tr ike.Transport, lis ike.Listener, newV1, newV2 New) (*Daemon, error) {
	m := &Daemon{inst: inst, tr: tr, lis: lis}
	m.make[1], m.make[2] = newV1, newV2
	m.tunnels.Store(&versions{})
	if err := m.Reconfigure(cfg); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// daemon returns the daemon of a version, or nil.
func (m *Daemon) daemon(v int) ike.Daemon {
	if v < 1 || v >= numberOfSlots {
		return nil
	}
	if s := m.daemons[v].Load(); s != nil {
		return s.Daemon
	}
	return nil
}

// Receive hands the datagram to the daemon of its major version.
func (m *Daemon) Receive(local, remote netip.AddrPort, msg []byte) {
	if len(msg) < headerSize {
		if len(msg) != 1 || msg[0] != 0xff { // not a NAT-T keepalive (RFC 3948 §2.3)
			m.malformed.Add(1)
		}
		return
	}
	v := int(msg[versionOctet] >> 4)
	if v != 1 && v != 2 {
		m.unknown.Add(1)
		return
	}
	d := m.daemon(v)
	if d == nil {
		m.unowned[v].Add(1)
		return
	}
	d.Receive(local, remote, msg)
}

// Acquire starts a negotiation with the tunnel's daemon.
func (m *Daemon) Acquire(tunnel string) {
	if d := m.daemon(m.tunnels.Load().of(tunnel)); d != nil {
		d.Acquire(tunnel)
	}
}

// AcquireFor starts a negotiation for traffic from src to dst with the
// tunnel's daemon.
func (m *Daemon) AcquireFor(tunnel string, src, dst netip.Addr) {
	if d := m.daemon(m.tunnels.Load().of(tunnel)); d != nil {
		d.AcquireFor(tunnel, src, dst)
	}
}

// Expire goes to each daemon, and those that do not know the SA ignore it
// (an SA's identity is one daemon's: the data path holds each once). A
// map of SAs to their daemon cost about 100 bytes an SA, and an expire is
// rare.
func (m *Daemon) Expire(id ipsec.SAID, hard bool) {
	for _, v := range Versions {
		if d := m.daemon(v); d != nil {
			d.Expire(id, hard)
		}
	}
}

// Reconfigure gives each version its tunnels and the policies it can
// negotiate, starting a daemon for a version that gets its first tunnel
// and closing one that has none left. Nothing changes if either version's
// part is invalid.
func (m *Daemon) Reconfigure(cfg ike.Config) error {
	parts, err := split(cfg)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("mux: daemon closed")
	}
	vs := versionsOf(cfg.Tunnels)
	var errs []error
	for _, v := range Versions {
		c, d := parts[v], m.daemon(v)
		switch {
		case len(c.Tunnels) == 0 && d != nil:
			m.daemons[v].Store(nil)
			d.Close()
		case len(c.Tunnels) == 0:
		case d != nil:
			if err := d.Reconfigure(c); err != nil {
				errs = append(errs, fmt.Errorf("IKEv%d: %w", v, err))
			}
		default:
			d, err := m.make[v](c, m.inst, m.tr, m.lis)
			if err != nil {
				errs = append(errs, fmt.Errorf("IKEv%d: %w", v, err))
				continue
			}
			m.daemons[v].Store(&slot{d})
		}
	}
	m.tunnels.Store(vs)
	return errors.Join(errs...)
}

// version is a tunnel's IKE version, 1 or 2.
func version(t ike.Tunnel) int {
	if t.Version == 2 {
		return 2
	}
	return 1
}

// split returns each version's configuration: its tunnels and the
// policies it can negotiate, validated as its daemon will.
func split(cfg ike.Config) (map[int]ike.Config, error) {
	parts := map[int]ike.Config{}
	var errs []error
	for _, v := range Versions {
		c := cfg
		c.Tunnels = tunnelsOf(cfg.Tunnels, v)
		c.Policies = slices.DeleteFunc(slices.Clone(cfg.Policies), func(p ike.Policy) bool { return p.ValidFor(v) != nil })
		parts[v] = c
		if len(c.Tunnels) == 0 {
			continue
		}
		if len(c.Policies) == 0 {
			errs = append(errs, fmt.Errorf("mux: no IKE policy can be negotiated with IKEv%d, which tunnel %q uses", v, c.Tunnels[0].Name))
			continue
		}
		validate := c.Validate
		if v == 2 {
			validate = c.ValidateV2
		}
		if err := validate(); err != nil {
			errs = append(errs, fmt.Errorf("IKEv%d: %w", v, err))
		}
	}
	return parts, errors.Join(errs...)
}

// tunnelsOf returns the tunnels of version v: all of them shared, not
// copied, when they all are (the daemons keep their tunnels' entries).
func tunnelsOf(all []ike.Tunnel, v int) []ike.Tunnel {
	n := 0
	for _, t := range all {
		if version(t) == v {
			n++
		}
	}
	switch n {
	case 0:
		return nil
	case len(all):
		return all
	}
	out := make([]ike.Tunnel, 0, n)
	for _, t := range all {
		if version(t) == v {
			out = append(out, t)
		}
	}
	return out
}

// Status merges the daemons' status: their IKE SAs (IKESAStatus.Version
// says whose), tunnels and counters, each version's counters apart in
// ByVersion. The datagrams the multiplexer itself refused count as
// malformed (too short, or of no IKE version) or dropped (of a version
// without a daemon).
func (m *Daemon) Status() ike.Status {
	st := ike.Status{ByVersion: map[int]ike.Counters{}}
	for _, v := range Versions {
		var s ike.Status
		if d := m.daemon(v); d != nil {
			s = d.Status()
		}
		for _, sa := range s.IKESAs {
			sa.Version = v
			st.IKESAs = append(st.IKESAs, sa)
		}
		for _, tu := range s.Tunnels {
			tu.Version = v
			st.Tunnels = append(st.Tunnels, tu)
		}
		n := m.unowned[v].Load()
		s.Counters.Received += n
		s.Counters.Dropped += n
		st.ByVersion[v] = s.Counters
		st.Counters.Add(s.Counters)
	}
	bad := m.malformed.Load() + m.unknown.Load()
	st.Counters.Received += bad
	st.Counters.Malformed += bad
	sort.Slice(st.Tunnels, func(i, j int) bool { return st.Tunnels[i].Name < st.Tunnels[j].Name })
	return st
}

// TunnelStatus asks the tunnel's daemon for its status
// (ike.TunnelStatuser), or takes it from that daemon's whole Status.
func (m *Daemon) TunnelStatus(name string) (ike.TunnelStatus, []ike.IKESAStatus, bool) {
	v := m.tunnels.Load().of(name)
	d := m.daemon(v)
	if d == nil {
		return ike.TunnelStatus{}, nil, false
	}
	var (
		st  ike.TunnelStatus
		sas []ike.IKESAStatus
		ok  bool
	)
	if ts, can := d.(ike.TunnelStatuser); can {
		st, sas, ok = ts.TunnelStatus(name)
	} else {
		all := d.Status()
		for _, t := range all.Tunnels {
			if t.Name == name {
				st, ok = t, true
			}
		}
		sas = all.IKESAs
	}
	st.Version = v
	for i := range sas {
		sas[i].Version = v
	}
	return st, sas, ok
}

// Close closes both daemons.
func (m *Daemon) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("mux: daemon already closed")
	}
	m.closed = true
	var errs []error
	for _, v := range Versions {
		if d := m.daemon(v); d != nil {
			m.daemons[v].Store(nil)
			errs = append(errs, d.Close())
		}
	}
	return errors.Join(errs...)
}
