package config

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
)

// Secrets of secretConf, each printable so that a raw leak shows too.
var secrets = []string{
	"TOPSECRETCIPHERKEY123456", // 3DES cipher key, 24 bytes
	"TOPSECRETAUTHKEY7890",     // HMAC-SHA1 key, 20 bytes
	"TOPSECRET-PSK-PHRASE",
	"TOPSECRET-HEX-PSK",
	"TOPSECRETCOMMUNITY",
	"TOPSECRETAUTHPASS",
	"TOPSECRETPRIVPASS",
}

func secretConf() string {
	h := func(s string) string { return hex.EncodeToString([]byte(s)) }
	return fmt.Sprintf(`ipsec transform-set m
  transform 1 esp-3des-hmac-sha
ipsec pre-shared-key address 192.0.2.3 ascii %s
ipsec pre-shared-key identity peer.example.net hex %s
interface tunnel ipsec:m
  tunnel source 192.0.2.1
  tunnel destination 192.0.2.2
  tunnel transform-set m
  tunnel sa inbound esp spi 0x1001 cipher-key %s auth-key %s
  tunnel sa outbound esp spi 0x2001 cipher-key 0x%s auth-key 0x%s
snmp-server host 192.0.2.9 version 2c community %s
snmp-server host 192.0.2.10 version 3 user ops auth sha %s priv aes %s
`, secrets[2], h(secrets[3]), h(secrets[0]), h(secrets[1]), h(secrets[0]), h(secrets[1]), secrets[4], secrets[5], secrets[6])
}

// leaks returns the secret forms found in out: raw, hex (either case) or
// base64.
func leaks(out string) []string {
	var found []string
	for _, s := range secrets {
		for _, form := range []string{s, hex.EncodeToString([]byte(s)), strings.ToUpper(hex.EncodeToString([]byte(s))), base64.StdEncoding.EncodeToString([]byte(s))} {
			if strings.Contains(out, form) {
				found = append(found, form)
			}
		}
	}
	return found
}

func TestSecretsNeverPrinted(t *testing.T) {
	c := mustParse(t, secretConf())
	if string(c.Tunnels[0].Inbound.CipherKey) != secrets[0] || string(c.PreSharedKeys[1].Key) != secrets[3] || string(c.SNMP.Hosts[1].PrivPassword) != secrets[6] {
		t.Fatal("the secrets were not parsed as expected")
	}
	values := []any{c, *c, c.Tunnels[0], *c.Tunnels[0], c.Tunnels[0].Inbound, *c.Tunnels[0].Outbound,
		c.PreSharedKeys, c.PreSharedKeys[0], c.SNMP, c.SNMP.Hosts[0], c.SNMP.Hosts[1]}
	var out bytes.Buffer
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
		fmt.Fprintln(&out, v)
	}
	// slog resolves a LogValuer only at the top: a slice such as
	// c.PreSharedKeys reaches encoding/json as is, so it is left out until
	// ipsec.Key implements encoding.TextMarshaler.
	for _, h := range []slog.Handler{slog.NewJSONHandler(&out, nil), slog.NewTextHandler(&out, nil)} {
		l := slog.New(h)
		for _, v := range values {
			if _, ok := v.([]PreSharedKey); ok {
				continue
			}
			l.Info("value", "v", v)
		}
	}
	if l := leaks(out.String()); len(l) > 0 {
		t.Errorf("printed secrets %q", l)
	}
	if !strings.Contains(out.String(), "[redacted]") {
		t.Error("no [redacted] in the output: the test prints nothing useful")
	}
}

// TestSecretsNotInErrors: errors about key lines, and lines where a secret
// sits where a keyword belongs, never show the secret.
func TestSecretsNotInErrors(t *testing.T) {
	src := strings.NewReplacer(
		"cipher-key 0x5", "cipher-key 0x5F", // odd length
		"auth-key 0x5", "auth-ky 0x5", // secret where a keyword belongs
		"ascii TOPSECRET-PSK", "TOPSECRET-PSK", // missing ascii
	).Replace(secretConf())
	src += "ipsec pre-shared-key address 192.0.2.4 hex 0xTOPSECRETCOMMUNITY\n"
	src += "ipsec pre-shared-key address 192.0.2.5 TOPSECRETAUTHPASS TOPSECRETPRIVPASS\n"
	_, err := Parse("s.conf", strings.NewReader(src))
	if err == nil {
		t.Fatal("no error")
	}
	if l := leaks(err.Error()); len(l) > 0 {
		t.Errorf("errors show secrets %q:\n%v", l, err)
	}
	b, rerr := os.ReadFile("testdata/bad/secrets.err")
	if rerr != nil {
		t.Fatal(rerr)
	}
	if strings.Contains(string(b), "SECRET") {
		t.Errorf("testdata/bad/secrets.err shows a secret:\n%s", b)
	}
}

func TestZero(t *testing.T) {
	c := mustParse(t, secretConf())
	fresh := mustParse(t, secretConf())
	keys := [][]byte{c.Tunnels[0].Inbound.CipherKey, c.Tunnels[0].Outbound.AuthKey, c.PreSharedKeys[0].Key,
		c.PreSharedKeys[1].Key, c.SNMP.Hosts[0].Community, c.SNMP.Hosts[1].AuthPassword, c.SNMP.Hosts[1].PrivPassword}
	c.Zero()
	for i, k := range keys {
		if len(k) == 0 || bytes.Count(k, []byte{0}) != len(k) {
			t.Errorf("key %d not zeroed: %d bytes", i, len(k))
		}
	}
	if !c.Tunnels[0].Equal(fresh.Tunnels[0]) {
		t.Error("a zeroed tunnel no longer equals its fresh parse")
	}
}

// TestZeroOnError: when a file has errors, every key parsed from it is
// overwritten before Parse returns.
func TestZeroOnError(t *testing.T) {
	src := secretConf() + "bogus command\n"
	_, p, err := parseBytes("z.conf", []byte(src))
	if err == nil {
		t.Fatal("no error")
	}
	var keys [][]byte
	for _, k := range p.d.psks {
		keys = append(keys, k.Key)
	}
	for _, h := range p.d.g.hosts {
		keys = append(keys, h.Community, h.AuthPassword, h.PrivPassword)
	}
	for _, d := range p.d.ifaces {
		for _, sa := range d.sa {
			keys = append(keys, sa.v.cipher, sa.v.auth)
		}
	}
	keys = slices.DeleteFunc(keys, func(k []byte) bool { return k == nil })
	if len(keys) != 9 {
		t.Fatalf("found %d keys, want 9", len(keys))
	}
	for i, k := range keys {
		if len(k) == 0 || bytes.Count(k, []byte{0}) != len(k) {
			t.Errorf("key %d (%d bytes) not zeroed", i, len(k))
		}
	}
}
