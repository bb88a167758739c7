package trap

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/ismgw/ism/ism/config"
)

// FuzzVarbinds builds a trap of every kind from arbitrary names, reasons
// and addresses, encodes it as an SNMPv2c message and decodes it again:
// encoding never fails, decode(encode(x)) == x, and octet strings stay
// within their DisplayString bound.
func FuzzVarbinds(f *testing.F) {
	f.Add([]byte("branch1\x00administratively down\x00\xc0\x00\x02\x01"))
	f.Add([]byte(strings.Repeat("é", 200) + "\x00" + strings.Repeat("x", 300)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		parts := bytes.SplitN(data, []byte{0}, 3)
		for len(parts) < 3 {
			parts = append(parts, nil)
		}
		addr, _ := netip.AddrFromSlice(parts[2])
		x := &gosnmp.GoSNMP{Version: gosnmp.Version2c, Community: "c", Logger: gosnmp.NewLogger(nil)}
		for _, kind := range config.AllTraps() {
			n := &notification{kind: kind, uptime: 7, tunnel: string(parts[0]), destination: addr, to: addr,
				reason: string(parts[1]), detectedAt: time.Unix(int64(len(data))*1e6, 0)}
			vars := n.varbinds()
			msg, err := x.MkSnmpPacket(gosnmp.SNMPv2Trap, vars, 0, 0).MarshalMsg()
			if err != nil {
				t.Fatalf("%s: encode: %v", kind, err)
			}
			p, err := x.SnmpDecodePacket(msg)
			if err != nil {
				t.Fatalf("%s: decode: %v", kind, err)
			}
			if len(p.Variables) != len(vars) {
				t.Fatalf("%s: %d varbinds decoded, %d sent", kind, len(p.Variables), len(vars))
			}
			for i, v := range vars {
				d := p.Variables[i]
				if strings.TrimPrefix(d.Name, ".") != v.Name || d.Type != v.Type {
					t.Fatalf("%s varbind %d: decoded %s %v, sent %s %v", kind, i, d.Name, d.Type, v.Name, v.Type)
				}
				if b, ok := v.Value.([]byte); ok {
					if len(b) > maxDisplayString || !bytes.Equal(d.Value.([]byte), b) {
						t.Fatalf("%s %s: decoded % x, sent % x", kind, v.Name, d.Value, b)
					}
				}
			}
		}
	})
}
