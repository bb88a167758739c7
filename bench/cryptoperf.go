package bench

import (
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/ismgw/ism/transform"
)

// CryptoPerfBinary is DPDK's own crypto benchmark (package dpdk-dev), the
// reference the DPDK driver is measured against.
const CryptoPerfBinary = "dpdk-test-crypto-perf"

// cryptoPerfArgs returns dpdk-test-crypto-perf's arguments for the same
// work as encapsulating size-byte packets with t on one core, or false when
// t has no like-for-like run: AES-128-GCM on crypto_aesni_gcm and
// AES-128-CBC with HMAC-SHA1-96 on crypto_aesni_mb.
func cryptoPerfArgs(t transform.Transform, size int) ([]string, bool) {
	eal := []string{"-l", "0,1", "--main-lcore", "1", "--no-huge", "-m", "512", "--no-pci", "--no-shconf", "--no-telemetry"}
	var dev string
	var test []string
	switch t.Name() {
	case "esp-aes128-gcm16":
		dev = "crypto_aesni_gcm"
		test = []string{"--optype", "aead", "--aead-algo", "aes-gcm", "--aead-op", "encrypt", "--aead-key-sz", "16",
			"--aead-iv-sz", "12", "--aead-aad-sz", "8", "--digest-sz", "16"}
	case "esp-aes128-hmac-sha":
		dev = "crypto_aesni_mb"
		size = (size + 15) / 16 * 16 // CBC takes whole blocks; ESP pads anyway
		test = []string{"--optype", "cipher-then-auth", "--cipher-algo", "aes-cbc", "--cipher-op", "encrypt",
			"--cipher-key-sz", "16", "--cipher-iv-sz", "16", "--auth-algo", "sha1-hmac", "--auth-op", "generate",
			"--auth-key-sz", "20", "--digest-sz", "12"}
	default:
		return nil, false
	}
	args := append(eal, "--vdev", dev, "--", "--ptest", "throughput", "--devtype", dev)
	args = append(args, test...)
	return append(args, "--buffer-sz", strconv.Itoa(size), "--burst-sz", "32", "--total-ops", "3000000"), true
}

// ErrNoCryptoPerf says dpdk-test-crypto-perf is not installed or has no
// like-for-like run for the transform.
var ErrNoCryptoPerf = errors.New("bench: no dpdk-test-crypto-perf run for this transform")

// MeasureCryptoPerf runs dpdk-test-crypto-perf (throughput test, burst 32,
// one worker lcore) and returns the payload rate it reports, in Gbit/s of
// size-byte packets.
func MeasureCryptoPerf(t transform.Transform, size int) (float64, error) {
	args, ok := cryptoPerfArgs(t, size)
	if !ok {
		return 0, ErrNoCryptoPerf
	}
	if _, err := exec.LookPath(CryptoPerfBinary); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNoCryptoPerf, err)
	}
	out, err := exec.Command(CryptoPerfBinary, args...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("bench: %s: %v\n%s", CryptoPerfBinary, err, out)
	}
	// The result line: lcore, buffer size, burst, enqueued, dequeued,
	// failed enq, failed deq, MOps, Gbps, cycles/buf.
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 10 && f[0] == "0" {
			mops, err := strconv.ParseFloat(f[7], 64)
			if err != nil {
				break
			}
			return mops * 1e6 * float64(size) * 8 / 1e9, nil
		}
	}
	return 0, fmt.Errorf("bench: no result in %s's output:\n%s", CryptoPerfBinary, out)
}
