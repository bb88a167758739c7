package ism

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/config"
	"github.com/ismgw/ism/ism/operator"
)

// TestReloadKeepsUntouchedTunnels: a reload that changes one tunnel rebuilds
// that one only; the other keeps its SAs (the same objects, sequence numbers
// and counters) and its traffic keeps flowing.
func TestReloadKeepsUntouchedTunnels(t *testing.T) {
	t.Parallel()
	x := newLab(t, manualSpec(t, e2eCase{transform: "esp-aes128-gcm16", mode: ipsec.Tunnel}))
	if err := x.ping(t, 3); err != nil {
		t.Fatal(err)
	}
	keepOut, keepIn := sas(x.ga, "t1")
	seq := keepOut.Seq()
	before := x.ga.tunnels["t1"].d.TX.Packets.Load()

	// A second tunnel appears; t1 is untouched.
	c := x.manualConf("a", x.kb, x.ka, "")
	c.tunnels = append(c.tunnels, ismTunnel{name: "t2", vr: "tr", address: "198.51.100.5 255.255.255.252", source: "192.0.2.1", dest: "192.0.2.2",
		in: "esp spi 0x3001 cipher-key " + strings.Repeat("11", 20), out: "esp spi 0x4001 cipher-key " + strings.Repeat("22", 20)})
	text := c.String()
	reload := func(text string) { t.Helper(); reloadText(t, x.ga, text) }
	reload(text)
	out, in := sas(x.ga, "t1")
	if out != keepOut || in != keepIn || out.Seq() != seq || x.ga.tunnels["t1"].d.TX.Packets.Load() != before {
		t.Fatal("reload rebuilt an untouched tunnel")
	}
	if x.ga.tunnels["t2"] == nil || !x.ga.tunnels["t2"].Up() {
		t.Fatal("the new tunnel is not up")
	}
	if err := x.ping(t, 2); err != nil {
		t.Fatalf("traffic after the reload: %v", err)
	}
	if out.Seq() < seq+2 {
		t.Errorf("sequence %d after 2 more pings, want %d or more", out.Seq(), seq+2)
	}

	// Now t2 changes keys and t1 is still untouched; then t2 goes away.
	t2 := x.ga.tunnels["t2"]
	reload(strings.Replace(text, strings.Repeat("22", 20), strings.Repeat("33", 20), 1))
	if x.ga.tunnels["t2"] == t2 {
		t.Error("a changed tunnel was not rebuilt")
	}
	if o, _ := sas(x.ga, "t1"); o != keepOut {
		t.Error("t1 rebuilt when t2 changed")
	}
	reload(x.config(t, "a", x.kb, x.ka, ""))
	if x.ga.tunnels["t2"] != nil {
		t.Error("a removed tunnel is still there")
	}
	if o, _ := sas(x.ga, "t1"); o != keepOut {
		t.Error("t1 rebuilt when t2 was removed")
	}
	if keepOut.State() != "active" {
		t.Errorf("t1's SA is %s", keepOut.State())
	}
}

// reloadText reloads g with configuration text.
func reloadText(t *testing.T, g *Gateway, text string) {
	t.Helper()
	cfg, err := config.Parse("test.conf", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(cfg); err != nil {
		t.Fatal(err)
	}
}

// TestReloadPublishesOnce: a reload that adds many tunnels, each with its
// SAs installed at once, rebuilds the data path's map of tunnels once,
// not once a tunnel (each rebuild walks every tunnel); so does the reload
// that removes them.
func TestReloadPublishesOnce(t *testing.T) {
	t.Parallel()
	const n = 64
	x := newLab(t, labSpec{})
	conf := func(n int) string {
		c := ismConf{vrs: [][2]string{{"tr", x.a}}, transforms: []string{"esp-aes128-gcm16"}}
		for i := range n {
			c.tunnels = append(c.tunnels, ismTunnel{name: fmt.Sprintf("t%d", i), vr: "tr",
				address: fmt.Sprintf("198.51.100.%d 255.255.255.252", 4*i+1),
				in:      fmt.Sprintf("esp spi 0x%x cipher-key %s", 0x1000+i, keyHex(t, 20)),
				out:     fmt.Sprintf("esp spi 0x%x cipher-key %s", 0x2000+i, keyHex(t, 20))})
		}
		return c.String()
	}
	g, _ := startGateway(t, conf(1), gwOpts{})
	for _, want := range []int{n, 1} {
		before := g.look.Publishes()
		reloadText(t, g, conf(want))
		if got := g.look.Publishes() - before; got != 1 {
			t.Errorf("a reload to %d tunnels rebuilt the map of tunnels %d times, want 1", want, got)
		}
		st := g.Statistics()
		if st.Tunnels != want || st.TunnelsUp != want {
			t.Fatalf("after the reload to %d tunnels: %d tunnels, %d up", want, st.Tunnels, st.TunnelsUp)
		}
	}
}

// TestRemovedTunnelTellsPeer: a reload that removes a signaled tunnel
// deletes its SAs and the IKE SA no other tunnel uses, and the peer hears
// of it (its IKE SA and the tunnel's SAs go at once, not at their
// lifetimes' end): the deletes leave before the gateway closes the
// removed tunnel's sockets.
func TestRemovedTunnelTellsPeer(t *testing.T) {
	t.Parallel()
	x := newLab(t, pairSpec("", "", ""))
	// The first packet starts IKE and may be lost: ping twice.
	if _, err := x.lab.Run(x.a, "ping", "-c", "3", "-i", "0.2", "-W", "10", "-I", "198.51.100.1", "203.0.113.1"); err != nil {
		if out, err := x.lab.Run(x.a, "ping", "-c", "3", "-i", "0.2", "-W", "10", "-I", "198.51.100.1", "203.0.113.1"); err != nil {
			t.Fatalf("ping through the tunnel: %v\n%s", err, out)
		}
	}
	ikeSAOf(t, x.gb) // b has its one IKE SA
	text := ismConf{vrs: [][2]string{{"v", x.a}}, global: pskRule("aes128", "sha", 14, "", netip.MustParseAddr("192.0.2.2")), transforms: []string{"esp-aes128-gcm16"}}.String()
	cfg, err := config.Parse("test.conf", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if err := x.ga.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, data, err := x.gb.Exec("show ike sa")
		if err != nil {
			t.Fatal(err)
		}
		_, st := showTunnel(t, x.gb)
		if len(data.([]operator.IKESA)) == 0 && st.State != "up" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b has not heard that a removed its tunnel:\n%s\n%s", out, ikeDetail(x.gb))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReloadWhileIKEReports: a reload that changes nothing but the
// tunnels' positions in the file swaps their configuration while IKE's
// goroutines report tunnel state, which reads it (the race detector found
// this in the soak's reloads: run with -race).
func TestReloadWhileIKEReports(t *testing.T) {
	t.Parallel()
	x := newLab(t, labSpec{})
	c := ismConf{vrs: [][2]string{{"tr", x.a}}, transforms: []string{"esp-aes128-gcm16"},
		tunnels: []ismTunnel{{name: "t0", vr: "tr", address: "198.51.100.1 255.255.255.252",
			in:  "esp spi 0x1000 cipher-key " + keyHex(t, 20),
			out: "esp spi 0x2000 cipher-key " + keyHex(t, 20)}}}
	g, _ := startGateway(t, c.String(), gwOpts{})
	t0 := g.tunnels["t0"]
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				g.seam.TunnelDown("t0", "test")
			}
		}
	}()
	var last string
	for i := range 20 {
		last = strings.Repeat("!\n", i+1) + c.String()
		reloadText(t, g, last)
	}
	close(stop)
	<-done
	if g.tunnels["t0"] != t0 {
		t.Fatal("a reload that moved the tunnel in the file rebuilt it")
	}
	want, err := config.Parse("test.conf", strings.NewReader(last))
	if err != nil {
		t.Fatal(err)
	}
	if got := g.tunnels["t0"].conf().Pos; got != want.Tunnels[0].Pos {
		t.Fatalf("the tunnel's configuration is at %v, the file's at %v", got, want.Tunnels[0].Pos)
	}
}
