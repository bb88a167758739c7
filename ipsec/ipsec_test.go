package ipsec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestKeyNeverPrinted: every way of printing a Key prints "[redacted]".
func TestKeyNeverPrinted(t *testing.T) {
	k := Key{0xde, 0xad, 0xbe, 0xef}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("sa", "key", k)
	js, _ := json.Marshal(struct{ K Key }{k})
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%x %v %#v %s %q", k, k, k, k, k), fmt.Sprintf("%+v", struct{ K Key }{k}), logged.String(), string(js)} {
		if strings.Contains(strings.ToLower(s), "dead") || strings.Contains(s, "222") {
			t.Errorf("key printed: %s", s)
		}
		if !strings.Contains(s, "[redacted]") {
			t.Errorf("no [redacted] in %q", s)
		}
	}
	c := k.Clone()
	k.Zero()
	if !bytes.Equal(k, make([]byte, 4)) || bytes.Equal(c, k) {
		t.Fatalf("Zero or Clone: %x %x", []byte(k), []byte(c))
	}
}

// TestDPDResolve: zero timers take the base's, then the seed's defaults.
func TestDPDResolve(t *testing.T) {
	base := DPD{Enabled: true, Idle: 10 * time.Second, Retries: 5}
	if got := (DPD{}).Resolve(DPD{}); got.Enabled || got.Sent != 30*time.Second || got.Silent != time.Minute ||
		got.Idle != 150*time.Second || got.RetryInterval != 5*time.Second || got.Retries != 3 {
		t.Errorf("defaults: %+v, want the seed's 30 s, 60 s and 150 s", got)
	}
	if got := (DPD{Enabled: true, Silent: time.Second}).Resolve(base); !got.Enabled || got.Silent != time.Second ||
		got.Idle != 10*time.Second || got.Retries != 5 || got.Sent != DefaultDPDSent {
		t.Errorf("over base: %+v", got)
	}
	if (DPD{Retries: -1}).Validate() == nil {
		t.Error("negative retries accepted")
	}
}

func TestNames(t *testing.T) {
	id := SAID{Dst: netip.MustParseAddr("192.0.2.1"), SPI: 0x1001, Protocol: 50}
	if s := id.String(); s != "0x00001001/esp/192.0.2.1" {
		t.Errorf("SAID %q", s)
	}
	if Inbound.String() != "inbound" || Outbound.String() != "outbound" || Tunnel.String() != "tunnel" || Transport.String() != "transport" {
		t.Error("names")
	}
	if !(Lifetime{}).IsZero() || (Lifetime{Bytes: 1}).IsZero() {
		t.Error("IsZero")
	}
}

func TestLifetimeMinimum(t *testing.T) {
	for _, c := range []struct {
		l  Lifetime
		ok bool
	}{
		{Lifetime{}, true},
		{Lifetime{Time: MinLifetime}, true},
		{Lifetime{Time: 22 * time.Second}, false},
		{Lifetime{Time: time.Hour, Bytes: 512}, false},
		{Lifetime{Bytes: MinLifetimeBytes}, true},
	} {
		err := c.l.CheckMinimum(Lifetime{Time: time.Hour})
		if (err == nil) != c.ok || err != nil && !errors.Is(err, ErrLifetimeTooShort) {
			t.Errorf("%+v: %v", c.l, err)
		}
	}
	if err := (Lifetime{Time: 6 * time.Second}).CheckMinimum(Lifetime{Time: 5 * time.Second}); err != nil {
		t.Errorf("a lifetime above this end's own shorter one: %v", err)
	}
}
