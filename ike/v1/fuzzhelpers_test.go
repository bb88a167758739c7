package v1

import (
	"errors"
	"net/netip"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

type selectorT = selector.Selector

var selectorFromPrefix = selector.FromPrefix

// noInstaller refuses every SA: enough for parsers and dispatch.
type noInstaller struct{}

func (noInstaller) AllocateSPI(string, transform.Protocol, netip.Addr) (uint32, error) {
	return 0, errors.New("no")
}
func (noInstaller) AddSA(ipsec.SAID, ike.UserSA) error      { return errors.New("no") }
func (noInstaller) DeleteSA(ipsec.SAID) error               { return nil }
func (noInstaller) QuerySA(ipsec.SAID) (ike.SAUsage, error) { return ike.SAUsage{}, nil }

// dropTransport drops what the daemon sends.
type dropTransport struct{}

func (dropTransport) Send(netip.AddrPort, netip.AddrPort, []byte) error { return nil }
