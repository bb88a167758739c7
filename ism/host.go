package ism

import "net/netip"

// Host is the running system as the configuration's second validation stage
// sees it (config.CheckHost): the addresses configured in each namespace.
type Host struct{}

// Addresses lists the addresses configured in the network namespace netns
// ("" is the daemon's own).
func (Host) Addresses(netns string) ([]netip.Addr, error) {
	ns, err := openNetns(netns)
	if err != nil {
		return nil, err
	}
	defer ns.close()
	rt, err := dialRtnl(ns)
	if err != nil {
		return nil, err
	}
	defer rt.close()
	return rt.addresses()
}
