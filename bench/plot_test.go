package bench

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// TestPlots writes the scale and soak plots of made-up results and reads
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
	titles := map[string]string{"scale-setups": "Tunnel setups per second", "scale-up": "Tunnels up",
		"soak-heap": "Soak: 10 tunnels", "soak-goroutines": "Soak: 10 tunnels", "soak-rekeys": "Soak: 10 tunnels"}
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
