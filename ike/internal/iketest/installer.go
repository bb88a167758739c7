package iketest

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// Call is one recorded Installer call.
type Call struct {
	Op string // "add", "delete" or "update"
	ID ipsec.SAID
	SA ike.UserSA // for "add"; keys are copies. For "update": the SA after it
}

func (c Call) String() string {
	dir := "out"
	if c.SA.Inbound {
		dir = "in"
	}
	if c.Op == "delete" {
		return fmt.Sprintf("delete %s/%08x", c.ID.Dst, c.ID.SPI)
	}
	if c.Op == "update" {
		return fmt.Sprintf("update %s/%08x %v:%d->%v:%d", c.ID.Dst, c.ID.SPI, c.SA.Src, c.SA.SrcPort, c.SA.Dst, c.SA.DstPort)
	}
	return fmt.Sprintf("add-%s %s/%08x", dir, c.ID.Dst, c.ID.SPI)
}

// Installer records the SAs IKE installs. It is safe for concurrent use.
type Installer struct {
	mu      sync.Mutex
	next    uint32
	calls   []Call
	sas     map[ipsec.SAID]ike.UserSA
	usage   map[ipsec.SAID]ike.SAUsage
	usageFn func(ipsec.SAID, ike.UserSA) ike.SAUsage
	changed chan struct{}
}

// NewInstaller returns an empty recording installer whose SPIs start at
// base (distinct per daemon in one test makes the logs readable).
func NewInstaller(base uint32) *Installer {
	return &Installer{next: base, sas: map[ipsec.SAID]ike.UserSA{}, usage: map[ipsec.SAID]ike.SAUsage{}, changed: make(chan struct{}, 1)}
}

var (
	_ ike.Installer       = (*Installer)(nil)
	_ ike.EndpointUpdater = (*Installer)(nil)
)

// AllocateSPI returns the next SPI.
func (in *Installer) AllocateSPI(tunnel string, p transform.Protocol, local netip.Addr) (uint32, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.next++
	return in.next, nil
}

// AddSA records an SA.
func (in *Installer) AddSA(id ipsec.SAID, sa ike.UserSA) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if _, dup := in.sas[id]; dup {
		return fmt.Errorf("iketest: duplicate SA %v", id)
	}
	sa.CipherKey = sa.CipherKey.Clone()
	sa.AuthKey = sa.AuthKey.Clone()
	in.sas[id] = sa
	in.calls = append(in.calls, Call{Op: "add", ID: id, SA: sa})
	in.signal()
	return nil
}

// DeleteSA records a delete.
func (in *Installer) DeleteSA(id ipsec.SAID) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if _, ok := in.sas[id]; !ok {
		return fmt.Errorf("iketest: no SA %v", id)
	}
	delete(in.sas, id)
	in.calls = append(in.calls, Call{Op: "delete", ID: id})
	in.signal()
	return nil
}

// UpdateSAEndpoints moves an installed SA to new outer addresses and
// ports, and records it.
func (in *Installer) UpdateSAEndpoints(id ipsec.SAID, src, dst netip.AddrPort) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	sa, ok := in.sas[id]
	if !ok {
		return fmt.Errorf("iketest: no SA %v", id)
	}
	sa.Src, sa.Dst = src.Addr(), dst.Addr()
	sa.SrcPort, sa.DstPort = src.Port(), dst.Port()
	in.sas[id] = sa
	in.calls = append(in.calls, Call{Op: "update", ID: id, SA: sa})
	in.signal()
	return nil
}

// QuerySA returns the usage the function set with SetUsageFunc computes,
// or else the usage set with SetUsage.
func (in *Installer) QuerySA(id ipsec.SAID) (ike.SAUsage, error) {
	in.mu.Lock()
	sa, ok := in.sas[id]
	u, fn := in.usage[id], in.usageFn
	in.mu.Unlock()
	if !ok {
		return ike.SAUsage{}, fmt.Errorf("iketest: no SA %v", id)
	}
	if fn != nil {
		return fn(id, sa), nil
	}
	return u, nil
}

// SetUsageFunc makes QuerySA compute the usage of an installed SA at
// each call: a data path whose traffic goes on while the test runs. The
// function must not call the Installer.
func (in *Installer) SetUsageFunc(f func(ipsec.SAID, ike.UserSA) ike.SAUsage) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.usageFn = f
}

// SetUsage sets what QuerySA reports.
func (in *Installer) SetUsage(id ipsec.SAID, u ike.SAUsage) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.usage[id] = u
}

func (in *Installer) signal() {
	select {
	case in.changed <- struct{}{}:
	default:
	}
}

// Calls returns the calls so far.
func (in *Installer) Calls() []Call {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]Call(nil), in.calls...)
}

// SAs returns the installed SAs.
func (in *Installer) SAs() map[ipsec.SAID]ike.UserSA {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make(map[ipsec.SAID]ike.UserSA, len(in.sas))
	for k, v := range in.sas {
		out[k] = v
	}
	return out
}

// Tunnel returns the installed inbound and outbound SAs of a tunnel.
func (in *Installer) Tunnel(name string) (inbound, outbound []ike.UserSA, ids []ipsec.SAID) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for id, sa := range in.sas {
		if sa.Tunnel != name {
			continue
		}
		ids = append(ids, id)
		if sa.Inbound {
			inbound = append(inbound, sa)
		} else {
			outbound = append(outbound, sa)
		}
	}
	return inbound, outbound, ids
}

// Changed is signalled after each call.
func (in *Installer) Changed() <-chan struct{} { return in.changed }
