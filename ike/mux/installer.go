package mux

import (
	"net/netip"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
)

// installer is the line card's Installer as one version's daemon sees it:
// it notes which version installed each SA, so that the data path's expire
// events reach the daemon that owns the SA.
type installer struct {
	ike.Installer
	m *Daemon
	v int
}

// endpointInstaller is an installer whose line card can also move an SA to
// new outer ports (ike.EndpointUpdater): the daemon finds that ability by a
// type assertion, so only an installer that has it offers it.
type endpointInstaller struct {
	installer
	up ike.EndpointUpdater
}

// installer returns the Installer for version v's daemon.
func (m *Daemon) installer(v int) ike.Installer {
	in := installer{Installer: m.inst, m: m, v: v}
	if up, ok := m.inst.(ike.EndpointUpdater); ok {
		return &endpointInstaller{installer: in, up: up}
	}
	return &in
}

// AddSA installs the SA and notes its owner.
func (i *installer) AddSA(id ipsec.SAID, sa ike.UserSA) error {
	i.m.owners.store(id, i.v)
	if err := i.Installer.AddSA(id, sa); err != nil {
		i.m.owners.compareAndDelete(id, i.v)
		return err
	}
	return nil
}

// DeleteSA removes the SA and forgets its owner.
func (i *installer) DeleteSA(id ipsec.SAID) error {
	err := i.Installer.DeleteSA(id)
	i.m.owners.compareAndDelete(id, i.v)
	return err
}

// UpdateSAEndpoints moves an SA to new outer addresses and ports.
func (i *endpointInstaller) UpdateSAEndpoints(id ipsec.SAID, src, dst netip.AddrPort) error {
	return i.up.UpdateSAEndpoints(id, src, dst)
}
