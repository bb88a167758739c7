package charon

import (
	"fmt"
	"strings"
	"time"
)

// Swanctl is the content of a swanctl.conf (strongSwan's swanctl.conf(5)):
// connections, their children, proposals, identities, timers and DPD, and
// the secrets. Render writes it in swanctl's syntax; Conf.Swanctl takes the
// result. The zero value renders an empty configuration.
type Swanctl struct {
	Connections []Connection
	Secrets     []Secret
}

// Connection is one entry of the connections section.
type Connection struct {
	Name       string
	Version    int  // IKE version, 1 or 2; 0 leaves it to charon (either)
	Aggressive bool // IKEv1 aggressive mode
	// LocalAddrs and RemoteAddrs are addresses, prefixes or ranges.
	LocalAddrs, RemoteAddrs []string
	// Proposals are the IKE proposals, e.g. "aes128-sha1-modp2048".
	Proposals []string
	// Timers are the IKE SA's rekey, life and jitter times.
	Timers Timers
	// DPDDelay is the interval of charon's own inquiries (dpd_delay);
	// zero leaves them off. DPDTimeout is how long charon waits for an
	// answer before it declares the peer dead (dpd_timeout, IKEv1 only).
	DPDDelay, DPDTimeout time.Duration
	// Mobike, for IKEv2; nil leaves charon's default (on).
	Mobike *bool
	// Encap forces UDP encapsulation of ESP.
	Encap         bool
	Local, Remote End
	Children      []Child
	// Extra holds more "key = value" lines for options this type lacks.
	Extra []string
}

// End is the local or remote authentication round of a connection.
type End struct {
	Auth  string   // psk, pubkey, ...
	ID    string   // the identity; empty leaves it to charon
	Certs []string // certificates under x509/, local end only
}

// Child is one CHILD_SA configuration of a connection.
type Child struct {
	Name              string
	LocalTS, RemoteTS []string
	// ESPProposals; a DH group in one means PFS.
	ESPProposals []string
	Mode         string // "tunnel" unless set
	StartAction  string // "none" unless set
	Timers       Timers
	Extra        []string
}

// Timers are an SA's lifetimes (rekey_time, life_time, rand_time): zero
// leaves charon's default, Never turns the timer off. Values are written in
// whole seconds (charon's unit), rounded up.
type Timers struct {
	Rekey, Life, Rand time.Duration
}

// Never turns a timer off (renders as 0).
const Never time.Duration = -1

// Secret is one entry of the secrets section, e.g. "ike-1" with the
// identities it is for and the pre-shared key, or "rsa-1" with the file of
// a private key under private/ or rsa/.
type Secret struct {
	Name   string
	IDs    []string // rendered as id-a, id-b, ...
	Secret string   // a pre-shared key, quoted
	File   string
}

// Render returns the configuration in swanctl.conf syntax.
func (s Swanctl) Render() string {
	w := &writer{}
	w.open("connections")
	for _, c := range s.Connections {
		c.render(w)
	}
	w.close()
	w.open("secrets")
	for _, sec := range s.Secrets {
		w.open(sec.Name)
		for i, id := range sec.IDs {
			w.kv(fmt.Sprintf("id-%c", 'a'+i), id)
		}
		if sec.Secret != "" {
			w.kv("secret", fmt.Sprintf("%q", sec.Secret))
		}
		w.kv("file", sec.File)
		w.close()
	}
	w.close()
	return w.b.String()
}

func (c Connection) render(w *writer) {
	w.open(c.Name)
	if c.Version != 0 {
		w.kv("version", fmt.Sprint(c.Version))
	}
	if c.Aggressive {
		w.kv("aggressive", "yes")
	}
	w.kv("local_addrs", list(c.LocalAddrs))
	w.kv("remote_addrs", list(c.RemoteAddrs))
	w.kv("proposals", list(c.Proposals))
	c.Timers.render(w)
	w.kv("dpd_delay", seconds(c.DPDDelay))
	w.kv("dpd_timeout", seconds(c.DPDTimeout))
	if c.Mobike != nil {
		w.kv("mobike", yesNo(*c.Mobike))
	}
	if c.Encap {
		w.kv("encap", "yes")
	}
	w.lines(c.Extra)
	c.Local.render(w, "local")
	c.Remote.render(w, "remote")
	w.open("children")
	for _, ch := range c.Children {
		ch.render(w)
	}
	w.close()
	w.close()
}

func (e End) render(w *writer, name string) {
	w.open(name)
	w.kv("auth", e.Auth)
	w.kv("id", e.ID)
	w.kv("certs", list(e.Certs))
	w.close()
}

func (ch Child) render(w *writer) {
	w.open(ch.Name)
	w.kv("local_ts", list(ch.LocalTS))
	w.kv("remote_ts", list(ch.RemoteTS))
	w.kv("esp_proposals", list(ch.ESPProposals))
	w.kv("mode", or(ch.Mode, "tunnel"))
	w.kv("start_action", or(ch.StartAction, "none"))
	ch.Timers.render(w)
	w.lines(ch.Extra)
	w.close()
}

func (t Timers) render(w *writer) {
	w.kv("rekey_time", seconds(t.Rekey))
	w.kv("life_time", seconds(t.Life))
	w.kv("rand_time", seconds(t.Rand))
}

// seconds renders a duration for swanctl.conf: "" for zero (left out), 0
// for Never, whole seconds otherwise.
func seconds(d time.Duration) string {
	switch {
	case d == 0:
		return ""
	case d < 0:
		return "0"
	}
	return fmt.Sprintf("%ds", (d+time.Second-1)/time.Second)
}

func list(s []string) string { return strings.Join(s, ", ") }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// writer writes swanctl.conf's nested sections, two spaces a level.
type writer struct {
	b     strings.Builder
	depth int
}

func (w *writer) line(s string) {
	w.b.WriteString(strings.Repeat("  ", w.depth))
	w.b.WriteString(s)
	w.b.WriteByte('\n')
}

func (w *writer) open(name string) {
	w.line(name + " {")
	w.depth++
}

func (w *writer) close() {
	w.depth--
	w.line("}")
}

// kv writes "key = value" unless value is empty.
func (w *writer) kv(key, value string) {
	if value != "" {
		w.line(key + " = " + value)
	}
}

func (w *writer) lines(ls []string) {
	for _, l := range ls {
		w.line(l)
	}
}
