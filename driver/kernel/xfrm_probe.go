package kernel

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/netns"
	"github.com/ismgw/ism/transform"
)

// Addresses of the throwaway SAs (RFC 5737 documentation range); they live
// in a namespace of their own and never carry a packet.
var (
	probeSrc = netip.MustParseAddr("192.0.2.1")
	probeDst = netip.MustParseAddr("192.0.2.2")
)

var protoConfig = map[transform.Protocol]string{
	transform.ESP: "CONFIG_INET_ESP",
	transform.AH:  "CONFIG_INET_AH",
}

// probeXFRM opens XFRM netlink in a fresh network namespace, which
// disappears with the socket, and adds and deletes an SA of every transform
// there.
func probeXFRM() (xfrm, esp, ah Status, ts []transform.Transform) {
	var x *XFRM
	err := netns.Fresh(func() (err error) {
		x, err = newXFRM()
		return err
	})
	if err != nil {
		var why string
		switch {
		case errors.Is(err, unix.EPROTONOSUPPORT):
			why = fmt.Sprintf("kernel has no XFRM netlink (CONFIG_XFRM_USER): %v", err)
		case errors.Is(err, unix.EPERM):
			why = fmt.Sprintf("cannot probe XFRM without CAP_SYS_ADMIN and CAP_NET_ADMIN (a throwaway network namespace is needed): %v", err)
		default:
			why = fmt.Sprintf("cannot probe XFRM: %v", err)
		}
		s := Status{Reason: why}
		return s, s, s, nil
	}
	defer x.Close()
	// XFRM netlink answers if a query for a missing SA says ESRCH.
	if _, err := x.QuerySA(ipsec.SAID{Dst: probeDst, SPI: 0x100, Protocol: transform.ESP}); !errors.Is(err, ErrNoSA) {
		s := Status{Reason: fmt.Sprintf("XFRM netlink does not answer as expected: querying a missing SA gave %v", err)}
		return s, s, s, nil
	}
	xfrm = Status{Present: true}
	esp, tsESP := probeProtocol(x, transform.ESP, 0x1000)
	ah, tsAH := probeProtocol(x, transform.AH, 0x2000)
	return xfrm, esp, ah, append(tsESP, tsAH...)
}

// probeProtocol tries every transform of one protocol. The kernel looks up
// the algorithms first (ENOSYS when one is missing) and the protocol after
// (EPROTONOSUPPORT), so the first EPROTONOSUPPORT settles the protocol.
func probeProtocol(x *XFRM, p transform.Protocol, spi uint32) (Status, []transform.Transform) {
	var ok []transform.Transform
	var failed []string
	for _, t := range transform.All() {
		if t.Protocol != p {
			continue
		}
		spi++
		id := ipsec.SAID{Dst: probeDst, SPI: spi, Protocol: p}
		err := tryAddSA(x, id, t)
		switch {
		case err == nil:
			ok = append(ok, t)
			if err := x.DeleteSA(id); err != nil {
				return Status{Reason: fmt.Sprintf("a %s SA installs but does not delete: %v", p, err)}, ok
			}
		case errors.Is(err, unix.EPROTONOSUPPORT):
			return Status{Reason: fmt.Sprintf("kernel XFRM has no %s (%s): adding an %s SA fails with EPROTONOSUPPORT: %v",
				strings.ToUpper(p.String()), protoConfig[p], strings.ToUpper(p.String()), err)}, nil
		default:
			failed = append(failed, fmt.Sprintf("%s: %v", t, err))
		}
	}
	if len(ok) == 0 {
		return Status{Reason: fmt.Sprintf("no %s SA installs: %s", strings.ToUpper(p.String()), strings.Join(failed, "; "))}, nil
	}
	return Status{Present: true}, ok
}

// tryAddSA adds a tunnel-mode SA of transform t with random keys, which are
// zeroed before it returns.
func tryAddSA(x *XFRM, id ipsec.SAID, t transform.Transform) error {
	c := &SAConfig{Src: probeSrc, Mode: ipsec.Tunnel, Transform: t, ReplayWindow: 32, Inbound: true,
		CipherKey: make(ipsec.Key, t.CipherKeyLen()), AuthKey: make(ipsec.Key, t.AuthKeyLen())}
	defer c.CipherKey.Zero()
	defer c.AuthKey.Zero()
	rand.Read(c.CipherKey)
	rand.Read(c.AuthKey)
	return x.AddSA(id, c)
}
