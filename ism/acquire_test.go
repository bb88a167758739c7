package ism

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ism/lookaside"
	"github.com/ismgw/ism/offload"
)

// stuckIKE is an IKE daemon whose acquires wait until gate closes, as a
// daemon busy with thousands of negotiations makes them wait for its lock.
type stuckIKE struct {
	ike.Daemon
	gate  chan struct{}
	calls chan string
}

func (s *stuckIKE) AcquireFor(name string, src, dst netip.Addr) {
	s.calls <- fmt.Sprintf("%s %s->%s", name, src, dst)
	<-s.gate
	s.Daemon.AcquireFor(name, src, dst)
}

// TestAcquireDoesNotWaitForIKE: the secure interface's read loop goes on
// while IKE takes its time with an acquire: a burst into a signaled
// tunnel without SAs is read whole (held, then counted as
// acquire-overflow) while the acquire it asked for waits, and the acquire
// reaches IKE. Called in the read loop, a storm of acquires after a
// peer's restart held it until the device's queue overflowed with the
// packets of tunnels that were up (the 10,000-tunnel soak: every sampled
// tunnel lost a probe at once).
func TestAcquireDoesNotWaitForIKE(t *testing.T) {
	t.Parallel()
	stuck := &stuckIKE{gate: make(chan struct{}), calls: make(chan string, 16)}
	var release sync.Once
	open := func() { release.Do(func() { close(stuck.gate) }) }
	side := ismConf{global: pskRule("aes128", "sha256", 14, ""), transforms: []string{"esp-aes128-gcm16"},
		tunnels: []ismTunnel{{name: "t1", remote: "203.0.113.0/24"}}}
	x := newLab(t, labSpec{hosts: true, aOpts: gwOpts{ike: func(c ike.Config, in ike.Installer, tr ike.Transport, l ike.Listener) (ike.Daemon, error) {
		d, err := NewIKE(c, in, tr, l)
		stuck.Daemon = d
		return stuck, err
	}}, a: func(x *lab) string {
		side.vrs = [][2]string{{"v", x.a}}
		return side.String()
	}})
	t.Cleanup(open) // before the gateway closes: its acquirer goroutine may wait in AcquireFor

	var c *net.UDPConn
	inNS(t, x.a, func() (err error) {
		c, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(ismHost+":0")),
			net.UDPAddrFromAddrPort(netip.MustParseAddrPort("203.0.113.1:9")))
		return err
	})
	defer c.Close()
	const burst = 3 * lookaside.HoldPackets
	for i := range burst {
		if _, err := c.Write([]byte(fmt.Sprintf("packet %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case call := <-stuck.calls:
		if want := "t1 " + ismHost + "->203.0.113.1"; call != want {
			t.Errorf("IKE was asked for %q, want %q", call, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the burst's acquire never reached IKE")
	}
	t1 := x.g.tunnels["t1"]
	x.waitFor(t, 10*time.Second, "the whole burst read while IKE holds the acquire", func() bool {
		return t1.d.TX.Drops(offload.DropHoldOverflow) == burst-lookaside.HoldPackets
	})
	open()
}
