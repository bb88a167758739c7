package config

import (
	"fmt"
	"strings"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// manual resolves a manual tunnel: its two SAs, and none of the settings
// of signaled tunnels.
func (k *tunnelCheck) manual(spis map[spiKey]spiUse) {
	d, t := k.d, k.t
	for _, s := range k.signaledOnly() {
		if s.line != 0 {
			k.errf(s.line, s.cmd, "applies only to signaled tunnels, and this tunnel is manual")
		}
	}
	if d.dest.v.IsFQDN() {
		k.errf(d.dest.line, "tunnel destination", "an FQDN destination needs a signaled tunnel (manual SAs are keyed by address)")
	}
	if n := len(t.TransformSet.Transforms); n > 1 {
		k.errf(d.tset.line, "tunnel transform-set", "a manual tunnel needs a transform set with exactly one transform; %s has %d", t.TransformSet.Name, n)
	}
	for _, dir := range []ipsec.Direction{ipsec.Inbound, ipsec.Outbound} {
		if !d.sa[dir].ok() {
			if !d.failed["tunnel sa"] && !d.failed["tunnel sa "+dir.String()] {
				k.errf(d.line, "", "a manual tunnel needs a \"tunnel sa %s\" line", dir)
			}
			continue
		}
		sa := k.manualSA(dir, spis)
		if dir == ipsec.Inbound {
			t.Inbound = sa
		} else {
			t.Outbound = sa
		}
	}
}

// manualSA checks a "tunnel sa" line against the transform set and the
// SPIs seen so far, and builds the SA.
func (k *tunnelCheck) manualSA(dir ipsec.Direction, spis map[spiKey]spiUse) *SA {
	o := k.d.sa[dir]
	cmd := "tunnel sa " + dir.String()
	sa := &SA{Direction: dir, Protocol: o.v.proto, SPI: o.v.spi, CipherKey: o.v.cipher, AuthKey: o.v.auth}
	sa.Destination = k.d.source.v
	if dir == ipsec.Outbound {
		sa.Destination = k.d.dest.v.Addr
	}
	if len(k.t.TransformSet.Transforms) == 1 {
		tr := k.t.TransformSet.Transforms[0]
		sa.Transform = tr
		if tr.Protocol != sa.Protocol {
			k.errf(o.line, cmd, "protocol %s does not match transform set %s (%s): ESP and AH are never used together on a tunnel", sa.Protocol, k.t.TransformSet.Name, tr)
		} else {
			k.keyLen(o.line, cmd, "cipher-key", tr, sa.CipherKey, tr.CipherKeyLen(), tr.SaltLen())
			k.keyLen(o.line, cmd, "auth-key", tr, sa.AuthKey, tr.AuthKeyLen(), 0)
		}
	}
	if sa.Destination.IsValid() {
		key := spiKey{spi: sa.SPI, proto: uint8(sa.Protocol), dst: sa.Destination}
		if u, dup := spis[key]; dup {
			k.errf(o.line, cmd, "SPI 0x%08x %s to %s is already used by \"tunnel sa %s\" of ipsec:%s on line %d",
				sa.SPI, sa.Protocol, sa.Destination, u.dir, u.tunnel, u.line)
		} else {
			spis[key] = spiUse{tunnel: k.d.name, dir: dir, line: o.line}
		}
	}
	sa.keyDigest = digestKeys(sa)
	return sa
}

// keyLen checks a manual key against the length the transform needs.
func (k *tunnelCheck) keyLen(line int, cmd, name string, tr transform.Transform, key []byte, want, salt int) {
	switch {
	case want == 0 && key != nil:
		k.errf(line, cmd, "%s takes no %s", tr, name)
	case want == 0:
	case key == nil:
		k.errf(line, cmd, "%s needs %s of %s", tr, article(name), keyBytes(want, salt))
	case len(key) != want:
		k.errf(line, cmd, "%s is %d bytes; %s needs %s", name, len(key), tr, keyBytes(want, salt))
	}
}

func article(s string) string {
	if strings.IndexByte("aeiou", s[0]) >= 0 {
		return "an " + s
	}
	return "a " + s
}

func keyBytes(n, salt int) string {
	if salt > 0 {
		return fmt.Sprintf("%d bytes (a %d-byte key and a %d-byte salt)", n, n-salt, salt)
	}
	return fmt.Sprintf("%d bytes", n)
}
