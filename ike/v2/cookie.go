package v2

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/ismgw/ism/ike"
)

// Cookies (RFC 7296 §2.6). While more IKE SAs are half open than the
// configured threshold (zero: always), the responder answers an
// IKE_SA_INIT request that does not start with a valid COOKIE notify
// with HDR(A,0), N(COOKIE) and keeps no state; the initiator sends the
// request again, unchanged but for the COOKIE notify first. The cookie is
// the §2.6 suggestion, with an HMAC for the hash:
//
//	Cookie = <VersionIDofSecret> | HMAC-SHA-256(<secret>, Ni | IPi | SPIi)
//
// It leaves out KEi, so that it survives an INVALID_KE_PAYLOAD retry
// (§2.6.1: "the responder SHOULD NOT include the KEi payload in cookie
// calculation"; the initiator keeps the cookie and its nonce in every
// retry). The secret changes every cookieRotate; a cookie made with the
// previous one is accepted for cookieGrace after the change.

const (
	cookieRotate     = 2 * time.Minute
	cookieGrace      = 10 * time.Second
	cookieLen        = 1 + sha256.Size
	maxCookieRetries = 3 // COOKIE answers an initiator follows for one IKE SA
)

// cookieJar is the responder's cookie secrets. Guarded by Daemon.mu; the
// zero value makes its first secret on first use.
type cookieJar struct {
	cur, prev    []byte
	ver, prevVer byte
	since        time.Time // cur's first use
	prevUntil    time.Time // prev's cookies are accepted until then
	initialized  bool
}

// cookieSecretLocked rotates the secret when it is due. Daemon.mu must be held.
func (d *Daemon) cookieSecretLocked(now time.Time) {
	j := &d.cookies
	if j.initialized && now.Sub(j.since) < cookieRotate {
		return
	}
	if j.initialized {
		clear(j.prev)
		j.prev, j.prevVer, j.prevUntil = j.cur, j.ver, now.Add(cookieGrace)
		j.ver++
	}
	j.cur = make([]byte, 32)
	d.random(j.cur)
	j.since, j.initialized = now, true
}

// cookieFor computes the cookie of an IKE_SA_INIT request with a secret.
func cookieFor(ver byte, secret, ni []byte, from netip.Addr, spiI uint64) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(ni)
	m.Write(from.Unmap().AsSlice())
	m.Write(binary.BigEndian.AppendUint64(nil, spiI))
	return m.Sum([]byte{ver})
}

// cookieRequiredLocked reports whether IKE_SA_INIT needs a cookie now.
// Daemon.mu must be held.
func (d *Daemon) cookieRequiredLocked() bool {
	return len(d.halfOpen) >= d.cfg.CookieLimit()
}

// checkCookie reports whether the request starts with a valid cookie
// (§2.6: "as the first payload"), made from the current secret or from
// the previous one within its grace time.
func (d *Daemon) checkCookie(m *Message, from netip.Addr, ni []byte) bool {
	if len(m.Payloads) == 0 || m.Payloads[0].Type != PayloadNotify {
		return false
	}
	var n Notify
	if err := n.unmarshal(m.Payloads[0].Body); err != nil || n.Type != Cookie || len(n.Data) != cookieLen {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.clk.Now()
	d.cookieSecretLocked(now)
	j := &d.cookies
	switch {
	case n.Data[0] == j.ver:
		return hmac.Equal(n.Data, cookieFor(j.ver, j.cur, ni, from, m.SPIi))
	case j.prev != nil && n.Data[0] == j.prevVer && now.Before(j.prevUntil):
		return hmac.Equal(n.Data, cookieFor(j.prevVer, j.prev, ni, from, m.SPIi))
	}
	return false
}

// sendCookie answers an IKE_SA_INIT request with a new cookie.
func (d *Daemon) sendCookie(local, remote netip.AddrPort, m *Message, ni []byte) {
	d.mu.Lock()
	d.cookieSecretLocked(d.clk.Now())
	c := cookieFor(d.cookies.ver, d.cookies.cur, ni, remote.Addr(), m.SPIi)
	d.counters.CookiesSent++
	d.mu.Unlock()
	d.refuseInit(local, remote, m, Cookie, c)
}

// followCookie retries IKE_SA_INIT with the cookie the responder sent,
// unless it asked too often. It reports whether it did. The SA's mutex
// must be held.
func (sa *ikeSA) followCookie(m *Message) bool {
	n, ok := m.Notify(Cookie)
	if !ok {
		return false
	}
	d := sa.d
	d.count(func(c *ike.Counters) { c.CookiesReceived++ })
	sa.cookies++
	if len(n.Data) == 0 || len(n.Data) > 64 || sa.cookies > maxCookieRetries || sa.hs.kex == nil {
		// §2.6: the cookie is 1 to 64 octets.
		sa.fail("the responder's COOKIE cannot be followed")
		return true
	}
	d.log.Debug("responder asks for a cookie", "remote", sa.remote, "n", sa.cookies)
	sa.hs.cookie = append([]byte(nil), n.Data...)
	sa.win.nextID = 0 // IKE_SA_INIT again: message 0 (§2.6)
	sa.requestInit()
	return true
}
