package offload

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/ismgw/ism/fallback"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// TestKeysNeverPrinted: no way of printing an SA or its config shows key
// bytes, and DeleteSA zeroes them.
func TestKeysNeverPrinted(t *testing.T) {
	fb := fallback.New(1)
	defer fb.Close()
	e, err := New(Config{Fallback: fb})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	tr, _ := transform.Lookup("esp-aes256-hmac-sha512")
	ck := ipsec.Key(bytes.Repeat([]byte{0xa5}, tr.CipherKeyLen()))
	ak := ipsec.Key(bytes.Repeat([]byte{0x5a}, tr.AuthKeyLen()))
	cfg := SAConfig{SPI: 0x4242, Transform: tr, Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2"), CipherKey: ck, AuthKey: ak}
	sa, err := e.AddSA(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	fmt.Fprintf(&out, "%v %+v %#v %s %v %+v %#v", sa, sa, sa, sa, cfg, cfg, cfg)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("sa", "cfg", cfg, "key", ck, "sa", sa)
	slog.New(slog.NewTextHandler(&out, nil)).Info("sa", "cfg", cfg, "auth", ak)
	for _, k := range []ipsec.Key{ck, ak} {
		for _, enc := range []string{hex.EncodeToString(k[:8]), fmt.Sprint([]byte(k[:8]))[1:20], string(k[:8])} {
			if strings.Contains(out.String(), enc) {
				t.Fatalf("key bytes %q printed in:\n%s", enc, out.String())
			}
		}
	}
	if !strings.Contains(out.String(), "[redacted]") {
		t.Errorf("no redaction marker in %s", out.String())
	}
	held := [2]ipsec.Key{sa.cfg.CipherKey, sa.cfg.AuthKey}
	if &held[0][0] == &ck[0] {
		t.Fatal("SA shares the caller's key memory")
	}
	if err := e.DeleteSA(sa.ID()); err != nil {
		t.Fatal(err)
	}
	for _, k := range held {
		if !bytes.Equal(k, make([]byte, len(k))) {
			t.Fatalf("key not zeroed after delete: %d nonzero bytes", len(k)-bytes.Count(k, []byte{0}))
		}
	}
	if sa.State() != "deleted" || sa.Usable() {
		t.Errorf("state %s", sa.State())
	}
}
