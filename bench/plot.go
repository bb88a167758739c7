package bench

import (
	"fmt"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// PlotScale writes, into dir, the scale rows' setups per second and
// tunnels up over time (scale-setups and scale-up, SVG and PNG), one line
// per row.
func PlotScale(dir string, rows []ScaleResult) error {
	setups := newPlot("Tunnel setups per second, ISM to ISM", "seconds since the first packet", "setups per second")
	up := newPlot("Tunnels up", "seconds since the first packet", "% of the tunnels up")
	up.Legend.Top = false // bottom right: the lines rise to the top right
	var sl, ul []any
	for _, r := range rows {
		name := fmt.Sprintf("%d tunnels, IKEv%d", r.Tunnels, r.IKEVersion)
		s, u := make(plotter.XYs, len(r.SetupsSeries)), make(plotter.XYs, len(r.UpSeries))
		for i, n := range r.SetupsSeries {
			s[i] = plotter.XY{X: float64(i) + 0.5, Y: float64(n)}
		}
		for i, n := range r.UpSeries {
			u[i] = plotter.XY{X: float64(i + 1), Y: 100 * float64(n) / float64(r.Tunnels)}
		}
		sl, ul = append(sl, name, s), append(ul, name, u)
	}
	if err := plotutil.AddLines(setups, sl...); err != nil {
		return err
	}
	if err := plotutil.AddLines(up, ul...); err != nil {
		return err
	}
	return savePlots(dir, map[string]*plot.Plot{"scale-setups": setups, "scale-up": up})
}

// PlotSoak writes, into dir, the soak's heap, goroutines, rekeys per
// second and tunnels up over time (soak-heap, soak-goroutines,
// soak-rekeys, SVG and PNG).
func PlotSoak(dir string, r SoakResult) error {
	s := r.Series
	xy := func(f func(i int) float64) plotter.XYs {
		out := make(plotter.XYs, len(s.Seconds))
		for i, t := range s.Seconds {
			out[i] = plotter.XY{X: t, Y: f(i)}
		}
		return out
	}
	title := fmt.Sprintf("Soak: %d tunnels, SA lifetime %.0f s", r.Tunnels, r.LifetimeS)
	heap := newPlot(title, "seconds", "live heap (MiB)")
	gor := newPlot(title, "seconds", "goroutines")
	rk := newPlot(title, "seconds", "rekeys per second, tunnels up (% of all)")
	mib := func(v uint64) float64 { return float64(v) / (1 << 20) }
	err := plotutil.AddLines(heap, "initiator", xy(func(i int) float64 { return mib(s.HeapLive[i]) }),
		"responder", xy(func(i int) float64 { return mib(s.PeerHeapLive[i]) }))
	if err == nil {
		err = plotutil.AddLines(gor, "initiator", xy(func(i int) float64 { return float64(s.Goroutines[i]) }))
	}
	if err == nil {
		err = plotutil.AddLines(rk, "rekeys per second", xy(func(i int) float64 { return s.RekeysPerS[i] }),
			"tunnels up (%)", xy(func(i int) float64 { return 100 * float64(s.TunnelsUp[i]) / float64(r.Tunnels) }))
	}
	if err != nil {
		return err
	}
	return savePlots(dir, map[string]*plot.Plot{"soak-heap": heap, "soak-goroutines": gor, "soak-rekeys": rk})
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, x, y
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	return p
}

// savePlots writes each plot as NAME.svg and NAME.png into dir.
func savePlots(dir string, plots map[string]*plot.Plot) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, p := range plots {
		for _, ext := range []string{".svg", ".png"} {
			if err := p.Save(7*vg.Inch, 4*vg.Inch, filepath.Join(dir, name+ext)); err != nil {
				return fmt.Errorf("bench: plot %s: %w", name, err)
			}
		}
	}
	return nil
}
