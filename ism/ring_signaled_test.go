package ism

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRingSignaled: two gateways that both run the AF_XDP ring
// (`dataplane raw-transport ring`) with four signaled tunnels between the
// same two addresses, two IKEv1 and two IKEv2, started at once: every
// tunnel comes up and carries pings, over the ring at both ends. The
// IKEv1 and IKEv2 messages share UDP port 500; with the ring's XDP program
// on the veth, the kernel hands them to the IKE socket in bursts, and a
// burst of IKE messages only made the socket's next read hand IKE the
// previous datagram's bytes, which IKE counted as malformed (fixed in
// 03a09cc): IKEv1's quick mode never completed and the signaled tunnel
// carried nothing, while a manual one next to it did (cmd/ismd
// TestRestartResumesTunnels with the ring). Without that fix this test
// fails 4 runs in 5.
func TestRingSignaled(t *testing.T) {
	t.Parallel()
	const n = 4
	side := func(ns, src, dst, local, remote string) string {
		c := ismConf{vrs: [][2]string{{"v", ns}}, transforms: []string{"esp-aes128-gcm16"},
			global: "dataplane raw-transport ring\n" + pskRule("aes128", "sha", 14, "", netip.MustParseAddr(dst))}
		for i := 1; i <= n; i++ {
			tu := ismTunnel{name: fmt.Sprintf("t%d", i), source: src, dest: dst,
				local: fmt.Sprintf("%s%d/32", local, i), remote: fmt.Sprintf("%s%d/32", remote, i)}
			if i%2 == 0 {
				tu.extra = "  tunnel ike-version 2\n"
			}
			c.tunnels = append(c.tunnels, tu)
		}
		return c.String()
	}
	var hostAddrs []string
	for i := 2; i <= n; i++ {
		hostAddrs = append(hostAddrs, fmt.Sprintf("198.51.100.%d", i), fmt.Sprintf("203.0.113.%d", i))
	}
	x := newLab(t, labSpec{hosts: true, hostAddrs: hostAddrs,
		a: func(x *lab) string { return side(x.a, "192.0.2.1", "192.0.2.2", "198.51.100.", "203.0.113.") },
		b: func(x *lab) string { return side(x.b, "192.0.2.2", "192.0.2.1", "203.0.113.", "198.51.100.") }})
	// The first packets start IKE on every tunnel at once.
	var wg sync.WaitGroup
	errs := make([]error, n+1)
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src, dst := fmt.Sprintf("198.51.100.%d", i), fmt.Sprintf("203.0.113.%d", i)
			for end := time.Now().Add(20 * time.Second); ; {
				out, err := runIn(x.a, "ping", "-c", "3", "-i", "0.2", "-W", "5", "-I", src, dst)
				if err == nil || time.Now().After(end) {
					if err != nil {
						errs[i] = fmt.Errorf("ping %s -> %s through t%d: %w\n%s", src, dst, i, err, out)
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for name, g := range map[string]*Gateway{"a": x.ga, "b": x.gb} {
		text, _, err := g.Exec("show ipsec tunnel detail")
		if err != nil {
			t.Fatal(err)
		}
		if k := strings.Count(text, "Transport: af_xdp ring on eth0"); k != n {
			t.Errorf("%s: %d of %d tunnels on the af_xdp ring:\n%s", name, k, n, text)
		}
		if st := g.Statistics(); st.IKE == nil || st.IKE.Malformed != 0 {
			t.Errorf("%s: IKE counted malformed messages (or none at all): %+v", name, st.IKE)
		}
		rings := g.eps.Rings()
		if len(rings) != 1 || rings[0].RingSent+rings[0].FallbackSent == 0 || rings[0].Received == 0 {
			t.Errorf("%s's rings: %v; want one that sent and received", name, rings)
		}
	}
}
