package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// What only one IKE version negotiates, checked against the versions the
// tunnels use: a policy rule that names an IKEv2-only choice while every
// signaled tunnel speaks IKEv1 (or the other way round) would never be
// used as written, so it is refused rather than silently ignored.

// choice is one command of a policy rule that only one version negotiates.
type choice struct {
	line       int
	cmd, value string // e.g. "encryption", "aes128-gcm"
}

// versionChoices returns what of a rule only IKEv2 and only IKEv1 can
// negotiate, with the lines that say it.
func (r *policyDraft) versionChoices() (v2, v1 []choice) {
	if e := r.enc.v; r.enc.ok() && e.AEAD() {
		v2 = append(v2, choice{r.enc.line, "encryption", string(e)})
	}
	if h := r.hash.v; r.hash.ok() && (h == IKESHA384 || h == IKESHA512) {
		v2 = append(v2, choice{r.hash.line, "hash", string(h)})
	}
	if r.prf.ok() {
		v2 = append(v2, choice{r.prf.line, "prf", string(r.prf.v)})
	}
	if r.group.ok() && r.group.v == Curve25519 {
		v2 = append(v2, choice{r.group.line, "group", "31 (Curve25519)"})
	}
	if r.addKE.ok() {
		v2 = append(v2, choice{r.addKE.line, "additional-key-exchange", "mlkem768"})
	}
	if r.auth.ok() && r.auth.v == ECDSASignatureAuth {
		v2 = append(v2, choice{r.auth.line, "authentication", "ecdsa-signature"})
	}
	if r.enc.ok() && r.enc.v == IKEDES {
		v1 = append(v1, choice{r.enc.line, "encryption", "des"})
	}
	return v2, v1
}

// checkIKEVersions checks the policy rules against the IKE versions the
// signaled tunnels use (the global default when there are none): every
// rule must be negotiable by a version in use, and every version in use
// must have a rule it can negotiate.
func (p *parser) checkIKEVersions(c *Config) {
	used := map[int]*Tunnel{} // the first tunnel of each version
	for _, t := range c.Tunnels {
		if t.Type == Signaled && used[t.IKEVersion] == nil {
			used[t.IKEVersion] = t
		}
	}
	inUse := func(v int) bool { return used[v] != nil || len(used) == 0 && c.IKEVersion == v }
	for _, r := range p.d.rules {
		v2, v1 := r.versionChoices()
		switch {
		case len(v2) > 0 && len(v1) > 0:
			p.errs.add(v1[0].line, "%s: %s is IKEv1 only and %s %s (line %d) IKEv2 only: no IKE version can negotiate isakmp-policy-rule %d",
				v1[0].cmd, v1[0].value, v2[0].cmd, v2[0].value, v2[0].line, r.prio)
		case len(v2) > 0 && !inUse(2):
			for _, ch := range v2 {
				p.errs.add(ch.line, "%s: %s is IKEv2 only, and every signaled tunnel uses IKEv1: set \"tunnel ike-version 2\" or \"ipsec ike-version 2\", or remove it", ch.cmd, ch.value)
			}
		case len(v1) > 0 && !inUse(1):
			p.errs.add(v1[0].line, "%s: %s cannot protect an IKEv2 SA (RFC 8247 §2.1), and every signaled tunnel uses IKEv2", v1[0].cmd, v1[0].value)
		}
	}
	if !inUse(2) {
		g := &p.d.g
		for _, o := range []struct {
			line      int
			cmd, what string
		}{
			{g.fragMTU.line, "ipsec ike fragmentation", "IKE fragmentation (RFC 7383)"},
			{g.cookies.line, "ipsec ike cookie-threshold", "the cookie threshold (RFC 7296 §2.6)"},
			{g.pssLine, "ipsec local-certificate", "rsa-pss (RFC 7427)"},
		} {
			if o.line != 0 {
				p.errs.add(o.line, "%s: %s is IKEv2's, and every signaled tunnel uses IKEv1", o.cmd, o.what)
			}
		}
	}
	for _, v := range []int{1, 2} {
		t := used[v]
		if t == nil || len(p.d.rules) == 0 {
			continue
		}
		usable := slices.ContainsFunc(p.d.rules, func(r *policyDraft) bool {
			v2, v1 := r.versionChoices()
			return v == 1 && len(v2) == 0 || v == 2 && len(v1) == 0
		})
		if !usable {
			p.errs.add(t.Pos.Line, "interface tunnel ipsec:%s: no isakmp-policy-rule can be negotiated with IKEv%d, which the tunnel uses", t.Name, v)
		}
	}
}

// versionChecks refuses, on a signaled IKEv1 tunnel, what only IKEv2
// negotiates.
func (k *tunnelCheck) versionChecks() {
	d, t := k.d, k.t
	if t.IKEVersion != 1 {
		return
	}
	const fix = "add \"tunnel ike-version 2\""
	if t.Mode == ipsec.Transport {
		k.errf(d.mode.line, "tunnel mode", "IKEv1 negotiates tunnel mode only; transport mode on a signaled tunnel needs IKEv2 (USE_TRANSPORT_MODE, RFC 7296 §1.3.1): %s", fix)
	}
	if t.ESN {
		k.errf(d.esn.line, "tunnel esn", "IKEv1 does not negotiate extended sequence numbers (IKEv2 does, RFC 7296 §3.3.2): %s, or turn it off", fix)
	}
	if t.PFSGroup == Curve25519 {
		k.errf(d.pfs.line, "tunnel pfs group", "group 31 (Curve25519, RFC 8031) is IKEv2 only: %s", fix)
	}
	var v2 []string
	for _, tr := range t.TransformSet.Transforms {
		if tr.Cipher == transform.CipherChaCha20Poly1305 {
			v2 = append(v2, tr.Name())
		}
	}
	if len(v2) > 0 {
		k.errf(d.tset.line, "tunnel transform-set", "%s: IKEv2 only (RFC 7634), and this tunnel uses IKEv1: %s", strings.Join(v2, ", "), fix)
	}
}

// versionWhere says where a tunnel's IKE version comes from, for errors.
func versionWhere(d *ifaceDraft) string {
	if d.ikeVersion.ok() {
		return fmt.Sprintf("tunnel ike-version on line %d", d.ikeVersion.line)
	}
	return "ipsec ike-version"
}
