package config

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/transform"
)

// transformSetCommands are the commands of an "ipsec transform-set" block.
var transformSetCommands = []command{
	{"transform", "NUMBER TRANSFORM", 2, 2, false, (*parser).cmdTransform},
}

// policyCommands are the commands of an "ipsec isakmp-policy-rule" block.
var policyCommands = []command{
	{"encryption", "des|3des|aes128|aes192|aes256|aes128-gcm|aes256-gcm", 1, 1, true, (*parser).cmdEncryption},
	{"hash", "md5|sha|sha1|sha256|sha384|sha512", 1, 1, true, (*parser).cmdHash},
	{"prf", "md5|sha|sha256|sha384|sha512", 1, 1, true, (*parser).cmdPRF},
	{"group", "1|2|5|14|15|16|19|20|21|31", 1, 1, true, (*parser).cmdGroup},
	{"additional-key-exchange", "mlkem768 [optional]", 1, 2, true, (*parser).cmdAdditionalKE},
	{"authentication", "pre-shared-key|rsa-signature|ecdsa-signature", 1, 1, true, (*parser).cmdAuthentication},
	{"lifetime seconds", "SECONDS", 1, 1, true, (*parser).cmdPolicyLifetime},
}

// maxTransforms is the highest transform number of a transform set.
const maxTransforms = 10

func (p *parser) cmdTransformSet(c *cmdCtx) {
	name, ok := c.name(0, "transform set name")
	if !ok {
		return
	}
	for _, s := range p.d.tsets {
		if s.name == name {
			p.errs.add(c.line, "duplicate ipsec transform-set %q (first on line %d)", name, s.line)
			return
		}
	}
	s := &tsetDraft{name: name, line: c.line}
	p.d.tsets = append(p.d.tsets, s)
	p.open(transformSetBlock, "ipsec transform-set "+name).tset = s
}

func (p *parser) cmdTransform(c *cmdCtx) {
	s := p.cur.tset
	n, ok := c.number(0, "transform number", 1, maxTransforms)
	if !ok {
		return
	}
	t, ok := transform.Lookup(c.arg(1))
	if !ok {
		if near := closest(c.arg(1), transform.Names()); near != "" {
			c.errf("unknown transform %q; did you mean %q?", c.arg(1), near)
		} else {
			c.errf("unknown transform %q; the transforms are listed in docs/config.md", c.arg(1))
		}
		return
	}
	for _, it := range s.items {
		if it.num == int(n) {
			c.errf("transform %d is already set on line %d", n, it.line)
			return
		}
		if it.t == t {
			c.errf("%s is already transform %d (line %d)", t, it.num, it.line)
			return
		}
	}
	s.items = append(s.items, tsetItem{num: int(n), t: t, line: c.line})
}

func (p *parser) cmdPolicyRule(c *cmdCtx) {
	n, ok := c.number(0, "priority", 1, 10000)
	if !ok {
		return
	}
	for _, r := range p.d.rules {
		if r.prio == int(n) {
			p.errs.add(c.line, "duplicate ipsec isakmp-policy-rule %d (first on line %d)", n, r.line)
			return
		}
	}
	if len(p.d.rules) == MaxIKEPolicies {
		c.errf("at most %d rules are allowed", MaxIKEPolicies)
		return
	}
	r := &policyDraft{prio: int(n), line: c.line}
	p.d.rules = append(p.d.rules, r)
	p.open(policyBlock, "ipsec isakmp-policy-rule "+strconv.Itoa(int(n))).rule = r
}

func (p *parser) cmdEncryption(c *cmdCtx) {
	k, ok := c.keyword(0, string(IKEDES), string(IKE3DES), string(IKEAES128), string(IKEAES192), string(IKEAES256),
		string(IKEAES128GCM), string(IKEAES256GCM))
	if ok {
		p.cur.rule.enc.put(IKEEncryption(k), c.line)
	}
}

func (p *parser) cmdHash(c *cmdCtx) {
	if h, ok := c.hash("md5", "sha", "sha1", "sha256", "sha384", "sha512"); ok {
		p.cur.rule.hash.put(h, c.line)
	}
}

func (p *parser) cmdPRF(c *cmdCtx) {
	if h, ok := c.hash("md5", "sha", "sha256", "sha384", "sha512"); ok {
		p.cur.rule.prf.put(h, c.line)
	}
}

// hash parses argument 0 as one of the hash names; "sha" is SHA-1.
func (c *cmdCtx) hash(names ...string) (IKEHash, bool) {
	k, ok := c.keyword(0, names...)
	if k == "sha" {
		k = string(IKESHA1)
	}
	return IKEHash(k), ok
}

// group parses argument i as a Diffie-Hellman group.
func (c *cmdCtx) group(i int) (DHGroup, bool) {
	n, err := strconv.ParseUint(c.arg(i), 10, 16)
	if g := DHGroup(n); err == nil && g.Valid() {
		return g, true
	}
	if err == nil && n == MLKEM768 {
		c.errf("%d is ML-KEM-768, a key encapsulation mechanism, not a Diffie-Hellman group: use \"additional-key-exchange mlkem768\" in the isakmp-policy-rule", n)
		return 0, false
	}
	c.errf("bad Diffie-Hellman group %q: expected 1, 2, 5, 14, 15, 16, 19, 20, 21 or 31", c.arg(i))
	return 0, false
}

// cmdAdditionalKE: "additional-key-exchange mlkem768 [optional]".
func (p *parser) cmdAdditionalKE(c *cmdCtx) {
	if _, ok := c.keyword(0, "mlkem768"); !ok {
		return
	}
	optional := false
	if len(c.args) == 2 {
		if _, ok := c.keyword(1, "optional"); !ok {
			return
		}
		optional = true
	}
	p.cur.rule.addKE.put(additionalKE{methods: []int{MLKEM768}, optional: optional}, c.line)
}

func (p *parser) cmdGroup(c *cmdCtx) {
	if g, ok := c.group(0); ok {
		p.cur.rule.group.put(g, c.line)
	}
}

func (p *parser) cmdAuthentication(c *cmdCtx) {
	k, ok := c.keyword(0, string(PreSharedKeyAuth), string(RSASignatureAuth), string(ECDSASignatureAuth))
	if ok {
		p.cur.rule.auth.put(AuthMethod(k), c.line)
	}
}

func (p *parser) cmdPolicyLifetime(c *cmdCtx) {
	if v, ok := c.seconds(0, "seconds", uint64(ipsec.MinIKELifetime/time.Second), uint64(ipsec.MaxIKELifetime/time.Second)); ok {
		p.cur.rule.life.put(v, c.line)
	}
}

func (p *parser) cmdPSK(c *cmdCtx) {
	kind, ok := c.keyword(0, "address", "identity")
	if !ok {
		return
	}
	var k PreSharedKey
	if kind == "address" {
		if k.Addr, ok = c.addr(1, "address"); !ok {
			return
		}
	} else {
		if k.Identity, ok = c.identity(1, "identity"); !ok {
			return
		}
		if k.Identity.Kind == IdentityAddress {
			c.errf("identity %s is an address: use ipsec pre-shared-key address", k.Identity)
			return
		}
	}
	for _, o := range p.d.psks {
		if o.Addr == k.Addr && o.Identity.Kind == k.Identity.Kind && strings.EqualFold(o.Identity.Value, k.Identity.Value) {
			c.errf("a key for %s %s is already set on line %d", kind, c.arg(1), o.line)
			return
		}
	}
	if k.Key, ok = c.secret(2, "pre-shared key"); ok {
		p.d.psks = append(p.d.psks, pskDraft{PreSharedKey: k, line: c.line})
	}
}

// file resolves argument i, a file name, against the file's directory.
func (c *cmdCtx) file(i int) string {
	f := c.arg(i)
	if !filepath.IsAbs(f) {
		f = filepath.Join(c.p.dir, f)
	}
	return filepath.Clean(f)
}

func (p *parser) cmdLocalCert(c *cmdCtx) {
	if _, ok := c.keyword(1, "key"); !ok {
		return
	}
	if len(c.args) == 4 {
		if _, ok := c.keyword(3, "rsa-pss"); !ok {
			return
		}
		p.d.g.certs.RSAPSS = true
		p.d.g.pssLine = c.line
	}
	p.d.g.certs.Local, p.d.g.certs.Key = c.file(0), c.file(2)
	p.d.g.certs.Pos = Pos{File: p.file, Line: c.line}
	p.d.g.certLine = c.line
}

func (p *parser) cmdCACert(c *cmdCtx) {
	f := c.file(0)
	if slices.Contains(p.d.g.certs.CAs, f) {
		c.errf("%s is already listed", c.arg(0))
		return
	}
	if p.d.g.caLine == 0 {
		p.d.g.caLine = c.line
	}
	p.d.g.certs.CAs = append(p.d.g.certs.CAs, f)
}
