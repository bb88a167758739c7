package ism

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/operator"
)

// TestShowCommands runs every show command on a live tunnel: the output
// names what the operator needs, -json data decodes, and no key appears
// anywhere (the seed: the operator may not read session keys).
func TestShowCommands(t *testing.T) {
	t.Parallel()
	x := newLab(t, manualSpec(t, e2eCase{transform: "esp-3des-hmac-sha", mode: ipsec.Tunnel}))
	if err := x.ping(t, 4); err != nil {
		t.Fatal(err)
	}
	keys := regexp.MustCompile(`[0-9a-f]{40,}`).FindAllString(x.ka+" "+x.kb, -1)
	if len(keys) != 4 {
		t.Fatalf("found %d keys in the config lines", len(keys))
	}
	want := map[string][]string{
		"show ipsec tunnel":                 {"ipsec:t1", "manual", "up", "192.0.2.1", "192.0.2.2", "esp-3des-hmac-sha"},
		"show ipsec tunnel detail":          {"Secure IP interface ipsec:t1 is up", "Transport virtual router: tr", "MTU 1446", "0x00002001", "0x00001001", "Inbound: 4 packets", "Outbound: 4 packets", "replay window 1024"},
		"show ipsec tunnel detail t1":       {"ipsec:t1 is up"},
		"show ipsec transform-set":          {"Transform set ts", "transform 1 esp-3des-hmac-sha", "used by: ipsec:t1"},
		"show ipsec sa":                     {"outbound SA spi 0x00001001", "inbound SA spi 0x00002001", "driver software", "4 packets"},
		"show ipsec statistics":             {"1 tunnels, 1 up; 2 SAs", "Drivers: software"},
		"clear ipsec tunnel statistics":     {"cleared the statistics of 1 tunnel(s)"},
		"show ipsec tunnel detail ipsec:t1": {"Inbound: 0 packets"},
	}
	for _, cmd := range []string{"show ipsec tunnel", "show ipsec tunnel detail", "show ipsec tunnel detail t1", "show ipsec transform-set",
		"show ipsec sa", "show ipsec statistics", "clear ipsec tunnel statistics", "show ipsec tunnel detail ipsec:t1"} {
		text, data, err := x.ga.Exec(cmd)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		js, err := json.Marshal(data)
		if err != nil {
			t.Fatalf("%s: json: %v", cmd, err)
		}
		for _, w := range want[cmd] {
			if !strings.Contains(text, w) {
				t.Errorf("%s: output lacks %q:\n%s", cmd, w, text)
			}
		}
		for _, k := range keys {
			if strings.Contains(text, k) || strings.Contains(string(js), k) || strings.Contains(strings.ToUpper(string(js)), strings.ToUpper(k)) {
				t.Fatalf("%s shows a key", cmd)
			}
		}
	}
	if _, _, err := x.ga.Exec("show ipsec tunnel detail nosuch"); err == nil || !strings.Contains(err.Error(), "no tunnel nosuch") {
		t.Errorf("unknown tunnel: %v", err)
	}
	if _, _, err := x.ga.Exec("show bogus"); err == nil {
		t.Error("unknown command accepted")
	}
}

// TestControlSocketAndMetrics: ismctl's protocol over the unix socket (root
// only), reload through it, and the Prometheus endpoint.
func TestControlSocketAndMetrics(t *testing.T) {
	t.Parallel()
	x := newLab(t, manualSpec(t, e2eCase{transform: "esp-aes128-gcm16", mode: ipsec.Tunnel}))
	if err := x.ping(t, 2); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock := filepath.Join(t.TempDir(), "run", "ismd.sock")
	reloads := 0
	if err := operator.ServeControl(ctx, sock, x.ga, func() error { reloads++; return fmt.Errorf("file.conf:3: bad") }, x.ga.log); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v; want 0600", fi.Mode(), err)
	}
	if di, _ := os.Stat(filepath.Dir(sock)); di.Mode().Perm() != 0o700 {
		t.Errorf("socket directory mode %v, want 0700", di.Mode())
	}
	resp, err := operator.Call(sock, "show ipsec tunnel")
	if err != nil || !strings.Contains(resp.Text, "ipsec:t1") {
		t.Fatalf("show over the socket: %+v %v", resp, err)
	}
	var ts []operator.TunnelStatus
	if err := json.Unmarshal(resp.Data, &ts); err != nil || len(ts) != 1 || ts[0].Outbound.Packets < 2 {
		t.Fatalf("json data: %v %+v", err, ts)
	}
	if resp, _ := operator.Call(sock, "reload"); resp.Error != "file.conf:3: bad" || reloads != 1 {
		t.Errorf("reload: %+v (%d)", resp, reloads)
	}
	if resp, _ := operator.Call(sock, "show nothing"); resp.Error == "" {
		t.Error("bad command gave no error")
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	if err := operator.ServeMetrics(ctx, addr, x.ga, x.ga.log); err != nil {
		t.Fatal(err)
	}
	r, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	for _, w := range []string{`ism_tunnel_up{tunnel="ipsec:t1"} 1`, `ism_tunnel_packets_total{direction="outbound",tunnel="ipsec:t1"} 2`,
		`ism_tunnel_packets_total{direction="inbound",tunnel="ipsec:t1"} 2`} {
		if !strings.Contains(string(body), w) {
			t.Errorf("metrics lack %q:\n%s", w, body)
		}
	}
}
