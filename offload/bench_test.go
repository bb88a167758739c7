package offload_test

import (
	"fmt"
	"testing"

	"github.com/ismgw/ism/bench"
	"github.com/ismgw/ism/transform"
)

// benchTransforms are the transforms the Go benchmarks cover: the seed's and
// the modern ones.
var benchTransforms = []string{
	"esp-aes128-gcm16", "esp-aes256-gcm16", "esp-chacha20-poly1305",
	"esp-aes128-hmac-sha", "esp-aes256-hmac-sha256", "esp-3des-hmac-sha",
	"esp-des-hmac-md5", "esp-null-hmac-sha", "ah-hmac-sha", "ah-hmac-md5",
}

var benchSizes = []int{64, 512, 1420}

// BenchmarkEncap measures outbound ESP/AH with the software engine; one op
// is bench.Pool packets. Compare with BenchmarkRawSeal in the same run.
func BenchmarkEncap(b *testing.B) { benchEngine(b, false, false) }

// BenchmarkDecap measures inbound processing; packet preparation is not
// timed.
func BenchmarkDecap(b *testing.B) { benchEngine(b, true, false) }

// BenchmarkRawSeal is the baseline: the standard library's cipher and MAC
// over the same bytes, no framing.
func BenchmarkRawSeal(b *testing.B) { benchEngine(b, false, true) }

// BenchmarkRawOpen is the inbound baseline.
func BenchmarkRawOpen(b *testing.B) { benchEngine(b, true, true) }

func benchEngine(b *testing.B, in, raw bool) {
	for _, name := range benchTransforms {
		tr, _ := transform.Lookup(name)
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/%d", name, size), func(b *testing.B) {
				w, err := bench.NewEngineWork(tr, size, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer w.Close()
				b.SetBytes(int64(size * bench.Pool))
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					var n int
					switch {
					case !in && !raw:
						n = w.Encap()
					case !in:
						n = w.RawSeal()
					default:
						b.StopTimer()
						if raw {
							w.PrepareRawOpen()
						} else {
							w.PrepareDecap()
						}
						b.StartTimer()
						if raw {
							n = w.RawOpen()
						} else {
							n = w.Decap()
						}
					}
					if n != bench.Pool {
						b.Fatalf("%d of %d packets went through", n, bench.Pool)
					}
				}
			})
		}
	}
}
