package vr

import (
	"net/netip"

	"github.com/ismgw/ism/netns"
)

// Host is the running system as the configuration's second validation stage
// sees it (config.CheckHost): the addresses configured in each namespace.
// The zero value is ready.
type Host struct{}

// Addresses lists the addresses configured in the network namespace netns
// ("" is the daemon's own).
func (Host) Addresses(name string) ([]netip.Addr, error) {
	ns, err := netns.Open(name)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	nl, err := DialNetlink(ns)
	if err != nil {
		return nil, err
	}
	defer nl.Close()
	return nl.Addresses()
}
