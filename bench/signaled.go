package bench

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"

	"github.com/ismgw/ism/transform"
)

// signaledTunnel is one ISM signaled tunnel of a benchmark.
type signaledTunnel struct {
	Name                string
	Source, Destination netip.Addr
	// Local and Remote are the selectors; Remote is routed into the
	// tunnel.
	Local, Remote netip.Prefix
}

// signaledConfig renders an ISM gateway's configuration: VR v in netns
// (operational and transport), the IKE policy rule, one pre-shared key per
// destination, transform set ts with t, the tunnels with ESP in UDP and
// their routes. User SAs live as long as the configuration allows, so that
// no run rekeys (charon's SAs have no volume limit either).
func signaledConfig(netns string, p IKE, psk string, t transform.Transform, tunnels []signaledTunnel) string {
	var b strings.Builder
	fmt.Fprintf(&b, "virtual-router v netns %s\n%s", netns, p.policyRule())
	b.WriteString("ipsec lifetime seconds 864000 kilobytes 4294967295\n")
	seen := map[netip.Addr]bool{}
	for _, tu := range tunnels {
		if !seen[tu.Destination] {
			seen[tu.Destination] = true
			fmt.Fprintf(&b, "ipsec pre-shared-key address %s ascii %s\n", tu.Destination, psk)
		}
	}
	fmt.Fprintf(&b, "ipsec transform-set ts\n  transform 1 %s\n", t.Name())
	for _, tu := range tunnels {
		fmt.Fprintf(&b, "interface tunnel ipsec:%s\n  virtual-router v\n  tunnel source %s\n  tunnel destination %s\n"+
			"  tunnel transform-set ts\n  tunnel local-selector %s\n  tunnel remote-selector %s\n  tunnel udp-encapsulation\n",
			tu.Name, tu.Source, tu.Destination, tu.Local, tu.Remote)
	}
	for _, tu := range tunnels {
		fmt.Fprintf(&b, "ip route %s ipsec:%s\n", tu.Remote, tu.Name)
	}
	return b.String()
}

// newPSK returns a fresh pre-shared key for one run: 32 hex digits, ASCII
// to both ISM and charon.
func newPSK() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
