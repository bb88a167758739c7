package bench

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"

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

// PlotFailover writes, into dir, the failover runs' timelines (failover,
// SVG and PNG): the share of probes lost in each bin against the time
// since the destination was lost, one line per run, and the events as
// vertical lines: the loss, DPD declaring the peer dead, the first probe
// answered through the backup destination.
func PlotFailover(dir string, rows []FailoverResult) error {
	p := newPlot("Failover: probes lost against DPD events", "seconds since the destination was lost",
		"probes lost (% of those sent in 100 ms)")
	p.Y.Min, p.Y.Max = 0, 150 // room above the lines for the legend
	var lines []any
	for _, r := range rows {
		t := r.Timeline
		xy := make(plotter.XYs, len(t.Sent))
		for i := range t.Sent {
			xy[i] = plotter.XY{X: t.StartS + (float64(i)+0.5)*t.BinS, Y: 100 * float64(t.Lost[i]) / float64(max(1, t.Sent[i]))}
		}
		lines = append(lines, fmt.Sprintf("run %d (%s)", r.Run, r.Loss), xy)
	}
	if err := plotutil.AddLines(p, lines...); err != nil {
		return err
	}
	events := []struct {
		name string
		at   func(FailoverResult) float64
	}{
		{"destination lost", func(FailoverResult) float64 { return 0 }},
		{"DPD: peer dead", func(r FailoverResult) float64 { return r.DetectS }},
		{"through the backup", func(r FailoverResult) float64 { return r.DetectS + r.RestoreAfterDetectS }},
	}
	for k, e := range events {
		for i, r := range rows {
			l, err := plotter.NewLine(plotter.XYs{{X: e.at(r), Y: 0}, {X: e.at(r), Y: 110}})
			if err != nil {
				return err
			}
			l.Color = plotutil.Color(len(rows) + k)
			l.Dashes = plotutil.Dashes(1 + k)
			p.Add(l)
			if i == 0 {
				p.Legend.Add(e.name, l)
			}
		}
	}
	return savePlots(dir, map[string]*plot.Plot{"failover": p})
}

// PlotEngine writes, into dir, the engine's throughput by inner packet
// size (engine, SVG and PNG): one line per transform and operation (and
// driver, when the rows have several).
func PlotEngine(dir string, rows []EngineResult) error {
	p := newPlot("Engine throughput by packet size", "inner packet size (bytes)", "Gbit/s")
	p.Legend.Left = true
	p.Y.Min = 0
	drivers := map[string]bool{}
	for _, r := range rows {
		drivers[r.Driver] = true
	}
	var names []string
	lines := map[string]plotter.XYs{}
	for _, r := range rows {
		p.Y.Max = max(p.Y.Max, 1.6*r.Gbps) // room above the lines for the legend
		name := fmt.Sprintf("%s %s", r.Transform, r.Operation)
		if len(drivers) > 1 {
			name += " (" + r.Driver + ")"
		}
		if _, ok := lines[name]; !ok {
			names = append(names, name)
		}
		lines[name] = append(lines[name], plotter.XY{X: float64(r.Size), Y: r.Gbps})
	}
	var vs []any
	for _, n := range names {
		slices.SortFunc(lines[n], func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
		vs = append(vs, n, lines[n])
	}
	if err := plotutil.AddLinePoints(p, vs...); err != nil {
		return err
	}
	return savePlots(dir, map[string]*plot.Plot{"engine": p})
}
