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
	fmt.Fprintln(tw, "transform\tsize\tdir\tdriver\tcores\tMpps\tGbps\traw Gbps\tratio\tvs software\t")
	for _, r := range rows {
		vs := "-"
		if r.VsSoftware > 0 {
			vs = fmt.Sprintf("%.2f", r.VsSoftware)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%.3f\t%.2f\t%.2f\t%.2f\t%s\t\n",
			r.Transform, r.Size, r.Direction, r.Driver, r.Cores, r.PPS/1e6, r.Gbps, r.RawGbps, r.Ratio, vs)
	}
	return tw.Flush()
}
