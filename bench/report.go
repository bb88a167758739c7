package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// PrintJSON writes v as one JSON object on a line.
func PrintJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// EngineTable prints engine results as a readable table.
func EngineTable(w io.Writer, rows []EngineResult) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "transform\tsize\tdir\tdriver\tcores\tMpps\tGbps\traw Gbps\tratio\tvs software\tvs crypto-perf\t")
	dash := func(v float64) string {
		if v > 0 {
			return fmt.Sprintf("%.2f", v)
		}
		return "-"
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%.3f\t%.2f\t%s\t%s\t%s\t%s\t\n",
			r.Transform, r.Size, r.Direction, r.Driver, r.Cores, r.PPS/1e6, r.Gbps, dash(r.RawGbps), dash(r.Ratio), dash(r.VsSoftware), dash(r.VsCryptoPerf))
	}
	return tw.Flush()
}
