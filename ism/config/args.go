package config

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
)

// cmdCtx is one command line being run: its line, its command words and
// its arguments. Its helpers parse arguments and report errors prefixed
// with the command, returning ok false after reporting.
type cmdCtx struct {
	p    *parser
	line int
	path string   // the command words, e.g. "tunnel source"
	args [][]byte // the words after the command
}

func (c *cmdCtx) errf(format string, args ...any) {
	c.p.errs.add(c.line, "%s: %s", c.path, fmt.Sprintf(format, args...))
}

// arg returns argument i as a string (never call it on a secret).
func (c *cmdCtx) arg(i int) string { return string(c.args[i]) }

// keyword matches argument i, case-insensitively, against choices and
// returns the choice.
func (c *cmdCtx) keyword(i int, choices ...string) (string, bool) {
	for _, k := range choices {
		if strings.EqualFold(c.arg(i), k) {
			return k, true
		}
	}
	hint := ""
	if s := closest(strings.ToLower(c.arg(i)), choices); s != "" && len(c.arg(i)) > 3 {
		hint = fmt.Sprintf(" (did you mean %q?)", s)
	}
	c.errf("expected %s, got %q%s", strings.Join(choices, " or "), c.arg(i), hint)
	return "", false
}

// quietKeyword is keyword for arguments that may be a misplaced secret: its
// error does not show the argument.
func (c *cmdCtx) quietKeyword(i int, choices ...string) (string, bool) {
	for _, k := range choices {
		if strings.EqualFold(c.arg(i), k) {
			return k, true
		}
	}
	c.errf("expected %s (the word found is not shown: it may be a secret)", strings.Join(choices, " or "))
	return "", false
}

// number parses argument i as a decimal integer from lo to hi.
func (c *cmdCtx) number(i int, what string, lo, hi uint64) (uint64, bool) {
	n, err := strconv.ParseUint(c.arg(i), 10, 64)
	if err != nil && !isDigits(c.arg(i)) {
		c.errf("bad number %q for %s: expected an integer from %d to %d", c.arg(i), what, lo, hi)
		return 0, false
	}
	if err != nil || n < lo || n > hi {
		c.errf("%s %s out of range: expected %d to %d", what, c.arg(i), lo, hi)
		return 0, false
	}
	return n, true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// addr parses argument i as an IP address without a zone.
func (c *cmdCtx) addr(i int, what string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(c.arg(i))
	if err != nil || a.Zone() != "" {
		c.errf("bad address %q for %s", c.arg(i), what)
		return netip.Addr{}, false
	}
	return a, true
}

// maskBits parses a dotted IPv4 netmask and returns its prefix length.
func maskBits(s string) (int, error) {
	m, err := netip.ParseAddr(s)
	if err != nil || !m.Is4() {
		return 0, fmt.Errorf("bad mask %q", s)
	}
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	bits := 0
	for bits < 32 && v&(1<<(31-bits)) != 0 {
		bits++
	}
	if bits < 32 && v<<bits != 0 {
		return 0, fmt.Errorf("mask %s is not contiguous", s)
	}
	return bits, nil
}

// prefix parses "ADDR MASK" (IPv4) or "ADDR/LEN" at argument i and returns
// the prefix, unmasked, and how many arguments it used.
func (c *cmdCtx) prefix(i int, what string) (netip.Prefix, int, bool) {
	s := c.arg(i)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			c.errf("bad prefix %q for %s", s, what)
			return netip.Prefix{}, 0, false
		}
		return p, 1, true
	}
	a, ok := c.addr(i, what)
	if !ok {
		return netip.Prefix{}, 0, false
	}
	if i+1 >= len(c.args) {
		c.errf("%s %s needs a mask or a /length", what, s)
		return netip.Prefix{}, 0, false
	}
	if !a.Is4() {
		c.errf("%s %s: IPv6 takes a /length, not a mask", what, s)
		return netip.Prefix{}, 0, false
	}
	bits, err := maskBits(c.arg(i + 1))
	if err != nil {
		c.errf("%v", err)
		return netip.Prefix{}, 0, false
	}
	return netip.PrefixFrom(a, bits), 2, true
}

// network parses a prefix that must have no host bits set.
func (c *cmdCtx) network(i int, what string) (netip.Prefix, int, bool) {
	p, n, ok := c.prefix(i, what)
	if !ok {
		return p, n, false
	}
	if p.Masked() != p {
		c.errf("%s %s has host bits set (the network is %s)", what, p, p.Masked())
		return p, n, false
	}
	return p, n, true
}

// hexKey decodes argument i, hex digits with an optional 0x prefix, into a
// new key. Error messages never show the argument.
func (c *cmdCtx) hexKey(i int, what string) (ipsec.Key, bool) {
	s := c.args[i]
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s = s[2:]
	}
	if len(s) == 0 {
		c.errf("%s is empty", what)
		return nil, false
	}
	if len(s)%2 != 0 {
		c.errf("%s has an odd number of hex digits", what)
		return nil, false
	}
	k := make(ipsec.Key, len(s)/2)
	if _, err := hex.Decode(k, s); err != nil {
		k.Zero()
		c.errf("%s is not hexadecimal (the value is not shown)", what)
		return nil, false
	}
	return k, true
}

// asciiKey copies argument i into a new key.
func (c *cmdCtx) asciiKey(i int, what string) (ipsec.Key, bool) {
	if len(c.args[i]) == 0 {
		c.errf("%s is empty", what)
		return nil, false
	}
	return ipsec.Key(append([]byte(nil), c.args[i]...)), true
}

// secret parses "ascii TEXT" or "hex HEX" at argument i.
func (c *cmdCtx) secret(i int, what string) (ipsec.Key, bool) {
	kind, ok := c.quietKeyword(i, "ascii", "hex")
	if !ok {
		return nil, false
	}
	if kind == "ascii" {
		return c.asciiKey(i+1, what)
	}
	return c.hexKey(i+1, what)
}

// name checks argument i as a name: a letter or digit, then letters,
// digits, '_', '.' or '-', at most 64 characters.
func (c *cmdCtx) name(i int, what string) (string, bool) {
	s := c.arg(i)
	if !validName(s) {
		c.errf("bad %s %q: use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit", what, s)
		return "", false
	}
	return s, true
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i, r := range s {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || (r != '_' && r != '.' && r != '-')) {
			return false
		}
	}
	return true
}

// endpoint parses argument i as an address or an FQDN.
func (c *cmdCtx) endpoint(i int, what string) (Endpoint, bool) {
	s := c.arg(i)
	if looksLikeAddr(s) {
		a, ok := c.addr(i, what)
		return Endpoint{Addr: a}, ok
	}
	if msg := checkFQDN(s); msg != "" {
		c.errf("bad %s %q: %s", what, s, msg)
		return Endpoint{}, false
	}
	return Endpoint{FQDN: s}, true
}

// looksLikeAddr reports whether s can only be meant as an IP address.
func looksLikeAddr(s string) bool {
	if strings.Contains(s, ":") {
		return true
	}
	for _, r := range s {
		if (r < '0' || r > '9') && r != '.' {
			return false
		}
	}
	return true
}

// checkFQDN returns why s is not a domain name (RFC 1035 §2.3.1 labels), or
// "".
func checkFQDN(s string) string {
	if len(s) > 253 {
		return "a name has at most 253 characters"
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return "each label of a name has 1 to 63 characters"
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "a label may not start or end with '-'"
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Sprintf("%q is not allowed in a name", r)
			}
		}
	}
	return ""
}

// identity parses argument i as an address, FQDN or user@fqdn identity.
func (c *cmdCtx) identity(i int, what string) (Identity, bool) {
	s := c.arg(i)
	if len(s) > MaxIdentityLen {
		c.errf("%s is %d characters long; at most %d are allowed", what, len(s), MaxIdentityLen)
		return Identity{}, false
	}
	if looksLikeAddr(s) {
		a, ok := c.addr(i, what)
		return Identity{Kind: IdentityAddress, Value: a.String(), Addr: a}, ok
	}
	user, fqdn, isUser := strings.Cut(s, "@")
	if isUser {
		if user == "" || strings.ContainsAny(user, "@ \t\"") {
			c.errf("bad %s %q: expected user@fqdn", what, s)
			return Identity{}, false
		}
	} else {
		fqdn = s
	}
	if msg := checkFQDN(fqdn); msg != "" {
		c.errf("bad %s %q: %s", what, s, msg)
		return Identity{}, false
	}
	if isUser {
		return Identity{Kind: IdentityUserFQDN, Value: s}, true
	}
	return Identity{Kind: IdentityFQDN, Value: s}, true
}

// selectorArgs parses the selector forms "any", "ADDR", "ADDR MASK",
// "PREFIX/LEN" and "range FROM TO" from argument 0 on. An "any" selector
// comes back with Kind selector.Any and no addresses: its family is chosen
// when the tunnel is resolved.
func (c *cmdCtx) selectorArgs(what string) (selector.Selector, bool) {
	n := len(c.args)
	switch {
	case n == 1 && strings.EqualFold(c.arg(0), "any"):
		return selector.Selector{Kind: selector.Any}, true
	case strings.EqualFold(c.arg(0), "range"):
		if n != 3 {
			c.errf("expected range FROM TO")
			return selector.Selector{}, false
		}
		from, ok1 := c.addr(1, what)
		to, ok2 := c.addr(2, what)
		if !ok1 || !ok2 {
			return selector.Selector{}, false
		}
		s, err := selector.FromRange(from, to)
		if err != nil {
			c.errf("bad range: %s", strings.TrimPrefix(err.Error(), "selector: "))
			return selector.Selector{}, false
		}
		return s, true
	case n == 1 && !strings.Contains(c.arg(0), "/"):
		a, ok := c.addr(0, what)
		return selector.Host(a), ok
	case n <= 2:
		p, used, ok := c.network(0, what)
		if !ok {
			return selector.Selector{}, false
		}
		if used != n {
			c.errf("unexpected %q after %s", c.arg(used), p)
			return selector.Selector{}, false
		}
		return selector.FromPrefix(p), true
	}
	c.errf("expected any, ADDRESS, ADDRESS MASK, PREFIX/LENGTH or range FROM TO")
	return selector.Selector{}, false
}

// pairs parses "KEY VALUE ..." arguments from argument first on, where
// each key is one of keys, at most once, and returns the value indexes by
// key. With quiet, an unknown key is not shown (it may be a secret).
func (c *cmdCtx) pairs(first int, quiet bool, keys ...string) (map[string]int, bool) {
	if (len(c.args)-first)%2 != 0 {
		c.errf("expected pairs of %s and a value", strings.Join(keys, ", "))
		return nil, false
	}
	out := map[string]int{}
	for i := first; i < len(c.args); i += 2 {
		kw := c.keyword
		if quiet {
			kw = c.quietKeyword
		}
		k, ok := kw(i, keys...)
		if !ok {
			return nil, false
		}
		if _, dup := out[k]; dup {
			c.errf("%s given twice", k)
			return nil, false
		}
		out[k] = i + 1
	}
	return out, true
}
