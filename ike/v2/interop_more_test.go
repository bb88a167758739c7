package v2

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ike/internal/iketest"
	"github.com/ismgw/ism/internal/swantest/charon"
	"github.com/ismgw/ism/ipsec"
)

// spiSeen reports whether charon lists a CHILD_SA with the SPI.
func (x *interop) charonHasSPI(t *testing.T, spi uint32) bool {
	sas, err := x.env.ListSAs()
	if err != nil {
		t.Fatal(err)
	}
	s := fmt.Sprintf("%08x", spi)
	for _, sa := range sas {
		for _, c := range sa.Children {
			if c.F["spi-in"] == s || c.F["spi-out"] == s {
				return true
			}
		}
	}
	return false
}

// rekeyed waits until the installer has replaced the tunnel's first SA
// pair and checks make before break: the new pair added before either old
// SA was deleted.
func rekeyed(t *testing.T, inst *iketest.Installer, within time.Duration) (old, cur []ipsec.SAID) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		calls := inst.Calls()
		var adds []iketest.Call
		deleted := map[ipsec.SAID]int{}
		for i, c := range calls {
			if c.Op == "add" {
				adds = append(adds, c)
			} else {
				deleted[c.ID] = i
			}
		}
		if len(adds) >= 4 {
			_, d0 := deleted[adds[0].ID]
			_, d1 := deleted[adds[1].ID]
			if d0 && d1 {
				firstDelete := len(calls)
				for _, i := range deleted {
					firstDelete = min(firstDelete, i)
				}
				for i, c := range calls[:firstDelete] {
					_ = i
					_ = c
				}
				if firstDelete < 4 {
					t.Fatalf("an old SA was deleted before the new pair was in: %v", calls)
				}
				return []ipsec.SAID{adds[0].ID, adds[1].ID}, []ipsec.SAID{adds[2].ID, adds[3].ID}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rekey within %v: %v", within, calls)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestInteropRekey: a child SA rekeyed by time, once by ISM (its
// lifetime) and once by charon (its rekey_time), with PFS: charon shows
// the new SPIs, with the DH group, and no longer the old ones.
func TestInteropRekey(t *testing.T) {
	t.Parallel()
	for _, ismRekeys := range []bool{true, false} {
		name := map[bool]string{true: "ISMRekeys", false: "CharonRekeys"}[ismRekeys]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := pskConfig(ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: 14})
			tu := interopTunnel(t, "esp-aes128-hmac-sha")
			tu.PFSGroup = 14
			var timers charon.Timers
			if ismRekeys {
				tu.Lifetime = ipsec.Lifetime{Time: 12 * time.Second}
			} else {
				timers = charon.Timers{Rekey: 5 * time.Second, Life: 60 * time.Second, Rand: charon.Never}
			}
			cfg.Tunnels = []ike.Tunnel{tu}
			x := newInterop(t, cfg, swanConn{Proposals: "aes128-sha256-modp2048", ESPProposals: "aes128-sha1-modp2048", ChildTimers: timers}.render())
			x.up(t, true)
			old, cur := rekeyed(t, x.inst, 30*time.Second)
			_, c := x.waitCharon(t)
			if c.F["dh-group"] != "MODP_2048" {
				t.Errorf("the rekeyed CHILD_SA has no PFS: %v", c.F)
			}
			if !x.charonHasSPI(t, cur[0].SPI) {
				t.Errorf("charon does not list the new SPIs")
			}
			deadline := time.Now().Add(10 * time.Second)
			for x.charonHasSPI(t, old[0].SPI) || x.charonHasSPI(t, old[1].SPI) {
				if time.Now().After(deadline) {
					t.Fatalf("charon still lists the old SPIs %08x/%08x", old[0].SPI, old[1].SPI)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if n := countEvents(x.lis, "down", "t1"); n != 0 {
				t.Errorf("the tunnel went down during the rekey")
			}
		})
	}
}

// TestInteropDelete: child and IKE SA deletes each way.
func TestInteropDelete(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"ISMChild", "CharonChild", "CharonIKE", "ISMIKE"} {
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			cfg := pskConfig(ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: 14})
			cfg.Tunnels = []ike.Tunnel{interopTunnel(t, "esp-aes128-gcm16")}
			x := newInterop(t, cfg, swanConn{Proposals: "aes128-sha256-modp2048", ESPProposals: "aes128gcm16"}.render())
			x.up(t, true)
			x.waitCharon(t)
			_, out, ids := x.inst.Tunnel("t1")
			_ = out
			switch tc {
			case "ISMChild":
				x.d.Expire(ids[0], true)
			case "CharonChild":
				if o, err := x.env.Swanctl("--terminate", "--child", "net"); err != nil {
					t.Fatalf("%v: %s", err, o)
				}
			case "CharonIKE":
				if o, err := x.env.Swanctl("--terminate", "--ike", "ism"); err != nil {
					t.Fatalf("%v: %s", err, o)
				}
			case "ISMIKE":
				x.d.Close()
			}
			if tc != "ISMIKE" {
				waitEvent(t, x.lis, "down", "t1")
			}
			waitFor(t, "ISM's SAs gone", func() bool { return len(x.inst.SAs()) == 0 })
			deadline := time.Now().Add(10 * time.Second)
			for {
				sas, err := x.env.ListSAs()
				if err != nil {
					t.Fatal(err)
				}
				children := 0
				for _, sa := range sas {
					children += len(sa.Children)
				}
				ikeGone := len(sas) == 0
				if children == 0 && (ikeGone || tc == "ISMChild" || tc == "CharonChild") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("charon still has SAs: %+v", sas)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if st := x.d.Status(); tc == "CharonIKE" && len(st.IKESAs) != 0 {
				t.Fatalf("ISM still has IKE SAs: %+v", st.IKESAs)
			}
		})
	}
}

// TestInteropTsharkDecrypt: tshark decrypts the IKE_AUTH exchange it
// captured with the SK keys ISM derived (read through the daemon's
// state) and finds the payloads ISM sent and charon's answer.
func TestInteropTsharkDecrypt(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Fatal("needs tshark (apt-get install tshark)")
	}
	cfg := pskConfig(ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: 14})
	cfg.Tunnels = []ike.Tunnel{interopTunnel(t, "esp-aes128-gcm16")}
	x := newInterop(t, cfg, swanConn{Proposals: "aes128-sha256-modp2048", ESPProposals: "aes128gcm16"}.render())
	pcap := filepath.Join(t.TempDir(), "ike.pcap")
	cap := exec.Command("ip", "netns", "exec", x.env.NSISM, "tshark", "-q", "-i", "any", "-w", pcap, "-f", "udp port 500 or udp port 4500")
	errf, _ := os.Create(pcap + ".err")
	cap.Stderr = errf
	cap.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cap.Start(); err != nil {
		t.Fatal(err)
	}
	stop := func() {
		if cap.Process != nil {
			_ = syscall.Kill(cap.Process.Pid, syscall.SIGINT)
			_ = cap.Wait()
			cap.Process = nil
		}
	}
	t.Cleanup(stop)
	waitWithin(t, tsharkStart, "tshark capturing", func() bool {
		b, _ := os.ReadFile(pcap + ".err")
		return strings.Contains(string(b), "Capture started")
	})
	x.up(t, true)
	x.waitCharon(t)
	time.Sleep(500 * time.Millisecond)
	stop()

	x.d.mu.Lock()
	var sa *ikeSA
	for _, s := range x.d.sas {
		sa = s
	}
	x.d.mu.Unlock()
	if sa == nil {
		t.Fatal("no IKE SA")
	}
	sa.lock()
	k := sa.keys
	table := fmt.Sprintf(`uat:ikev2_decryption_table:%016x,%016x,%x,%x,"AES-CBC-128 [RFC3602]",%x,%x,"HMAC_SHA2_256_128 [RFC4868]"`,
		sa.spiI, sa.spiR, k.ei(), k.er(), k.ai(), k.ar())
	sa.unlock()
	out, err := exec.Command("tshark", "-r", pcap, "-o", table, "-V").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{"Identification - Initiator", "Identification - Responder", "Authentication",
		"Traffic Selector - Initiator", "Traffic Selector - Responder", "Security Association", "Checksum: ", "[correct]"} {
		if !strings.Contains(text, want) {
			t.Errorf("tshark's decryption lacks %q", want)
		}
	}
	if strings.Contains(text, "[incorrect") {
		t.Errorf("tshark found an incorrect checksum")
	}
	if t.Failed() {
		fi, _ := os.Stat(pcap)
		sum, _ := exec.Command("tshark", "-r", pcap).CombinedOutput()
		t.Logf("capture %d bytes:\n%s\ntshark -V:\n%s", fi.Size(), sum, text)
	}
}
