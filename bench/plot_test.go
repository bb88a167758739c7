package bench

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestPlots writes the scale, soak, failover and engine plots of made-up results and reads
// them back: every file is there, the PNGs decode at the size asked for
// (7 by 4 inches at gonum/plot's 96 dpi), the SVGs are SVG with the
// plot's title.
func TestPlots(t *testing.T) {
	dir := t.TempDir()
	rows := []ScaleResult{
		{Tunnels: 1000, IKEVersion: 1, SetupsSeries: []int{100, 300, 600}, UpSeries: []int{100, 400, 1000}},
		{Tunnels: 10000, IKEVersion: 1, SetupsSeries: []int{900, 3000, 6100}, UpSeries: []int{900, 3900, 10000}},
	}
	if err := PlotScale(dir, rows); err != nil {
		t.Fatal(err)
	}
	soak := SoakResult{Tunnels: 10, LifetimeS: 30, Series: SoakSeries{Seconds: []float64{0, 5, 10},
		HeapLive: []uint64{1 << 20, 2 << 20, 2 << 20}, PeerHeapLive: []uint64{3 << 20, 3 << 20, 3 << 20},
		Goroutines: []int{20, 21, 20}, RekeysPerS: []float64{0, 2, 1}, TunnelsUp: []int{10, 9, 10}}}
	if err := PlotSoak(dir, soak); err != nil {
		t.Fatal(err)
	}
	fo := []FailoverResult{{Run: 1, Loss: "kill", DetectS: 7.1, RestoreAfterDetectS: 0.4,
		Timeline: FailoverTimeline{BinS: 0.1, StartS: -1, Sent: []int{10, 10, 10, 10}, Lost: []int{0, 0, 10, 3}}}}
	if err := PlotFailover(dir, fo); err != nil {
		t.Fatal(err)
	}
	eng := []EngineResult{{Transform: "esp-aes128-gcm16", Operation: Encap, Driver: "software", Size: 1420, Gbps: 3},
		{Transform: "esp-aes128-gcm16", Operation: Encap, Driver: "software", Size: 64, Gbps: 0.5}}
	if err := PlotEngine(dir, eng); err != nil {
		t.Fatal(err)
	}
	titles := map[string]string{"scale-setups": "Tunnel setups per second", "scale-up": "Tunnels up",
		"soak-heap": "Soak: 10 tunnels", "soak-goroutines": "Soak: 10 tunnels", "soak-rekeys": "Soak: 10 tunnels",
		"failover": "Failover: probes lost", "engine": "Engine throughput"}
	for name, title := range titles {
		b, err := os.ReadFile(filepath.Join(dir, name+".svg"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte("<svg")) || !bytes.Contains(b, []byte(title)) {
			t.Errorf("%s.svg: no SVG with the title %q", name, title)
		}
		f, err := os.Open(filepath.Join(dir, name+".png"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := png.DecodeConfig(f)
		f.Close()
		if err != nil || c.Width != 7*96 || c.Height != 4*96 {
			t.Errorf("%s.png: %dx%d, %v; want 672x384", name, c.Width, c.Height, err)
		}
	}
}

// TestProberTimeline bins a probe stream: probes before the first answer
// are left out, bins before the origin are negative, lost ones counted.
func TestProberTimeline(t *testing.T) {
	origin := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	p := &prober{}
	for i, ms := range []int{-250, -150, -50, 50, 60, 150, 250} {
		p.sent = append(p.sent, origin.Add(time.Duration(ms)*time.Millisecond))
		var a answer
		if i == 1 || i == 2 || i == 5 {
			a.at = p.sent[i].Add(time.Millisecond)
		}
		p.answers = append(p.answers, a)
	}
	first, sent, lost := p.timeline(origin, 100*time.Millisecond)
	if first != -2 || !slices.Equal(sent, []int{1, 1, 2, 1, 1}) || !slices.Equal(lost, []int{0, 0, 2, 0, 1}) {
		t.Errorf("timeline: first bin %d, sent %v, lost %v; want -2, [1 1 2 1 1], [0 0 2 0 1]", first, sent, lost)
	}
}
