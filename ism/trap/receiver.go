package trap

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/ism/config"
)

// sendTimeout bounds one write of a trap to its socket.
const sendTimeout = time.Second

// maxCommunity is the longest community gosnmp encodes correctly: it writes
// the BER length of the community in one octet, the short form.
const maxCommunity = 127

// logInterval is the least time between two logged send errors of one
// receiver; the errors in between are counted in the next log line.
const logInterval = time.Minute

// receiver is one trap receiver: its SNMP session, queue and counters. Only
// its own goroutine uses snmp.
type receiver struct {
	addr    netip.AddrPort
	version config.SNMPVersion
	user    string

	snmp *gosnmp.GoSNMP
	usm  *gosnmp.UsmSecurityParameters // nil for SNMPv2c
	// community backs the string snmp.Community aliases; Close zeroes it.
	community ipsec.Key

	q                     chan *notification
	sent, dropped, errors atomic.Uint64

	log        *slog.Logger
	lastLog    time.Time
	suppressed uint64
}

// newReceiver prepares the session for h and opens its UDP socket in the
// calling thread's network namespace.
func newReceiver(h config.TrapHost, engineID []byte, boots uint32, queueLen int, log *slog.Logger) (*receiver, error) {
	r := &receiver{
		addr:    h.Addr,
		version: h.Version,
		user:    h.User,
		q:       make(chan *notification, queueLen),
		log:     log.With("receiver", h),
	}
	// An unconnected socket: opening it needs no route to the receiver,
	// so a receiver unreachable at start-up costs send errors until it
	// is reachable, not the Sender.
	target := h.Addr.Addr().Unmap()
	network, local := "udp4", "0.0.0.0:0"
	if target.Is6() {
		network, local = "udp6", "[::]:0"
	}
	r.snmp = &gosnmp.GoSNMP{
		Target:                  target.String(),
		Port:                    h.Addr.Port(),
		Transport:               network,
		LocalAddr:               local,
		UseUnconnectedUDPSocket: true,
		Timeout:                 sendTimeout,
		Retries:                 0,
		MaxOids:                 gosnmp.MaxOids,
	}
	switch h.Version {
	case config.SNMPv2c:
		if len(h.Community) == 0 || len(h.Community) > maxCommunity {
			return nil, fmt.Errorf("trap: receiver %s: the community must have 1 to %d characters", h.Addr, maxCommunity)
		}
		r.community = h.Community.Clone()
		r.snmp.Version = gosnmp.Version2c
		r.snmp.Community = aliasString(r.community)
	case config.SNMPv3:
		if err := r.setUSM(h, engineID, boots); err != nil {
			r.zero()
			return nil, err
		}
	default:
		return nil, fmt.Errorf("trap: receiver %s: unknown SNMP version %q", h.Addr, h.Version)
	}
	if err := r.snmp.Connect(); err != nil {
		r.zero()
		return nil, fmt.Errorf("trap: receiver %s: %w", h.Addr, err)
	}
	return r, nil
}

// setUSM sets the SNMPv3 USM parameters of h (RFC 3414). The localized keys
// are derived here, once, for this engine ID; the copies of the passwords
// used for that are zeroed before it returns.
func (r *receiver) setUSM(h config.TrapHost, engineID []byte, boots uint32) error {
	usm := &gosnmp.UsmSecurityParameters{
		UserName:                 h.User,
		AuthoritativeEngineID:    string(engineID),
		AuthoritativeEngineBoots: boots,
	}
	flags := gosnmp.NoAuthNoPriv
	var auth, priv ipsec.Key
	defer func() { auth.Zero(); priv.Zero() }()
	if h.AuthProtocol != "" {
		p, ok := authProtocols[h.AuthProtocol]
		if !ok {
			return fmt.Errorf("trap: receiver %s: unknown auth protocol %q", h.Addr, h.AuthProtocol)
		}
		auth = h.AuthPassword.Clone()
		usm.AuthenticationProtocol, usm.AuthenticationPassphrase = p, aliasString(auth)
		flags = gosnmp.AuthNoPriv
		if h.PrivProtocol != "" {
			p, ok := privProtocols[h.PrivProtocol]
			if !ok {
				return fmt.Errorf("trap: receiver %s: unknown priv protocol %q", h.Addr, h.PrivProtocol)
			}
			priv = h.PrivPassword.Clone()
			usm.PrivacyProtocol, usm.PrivacyPassphrase = p, aliasString(priv)
			flags = gosnmp.AuthPriv
		}
	}
	// gosnmp caches password digests in a global map keyed by the
	// password unless told not to.
	gosnmp.PasswordCaching(false)
	r.usm = usm
	err := usm.InitSecurityKeys()
	usm.AuthenticationPassphrase, usm.PrivacyPassphrase = "", ""
	if err != nil {
		return fmt.Errorf("trap: receiver %s: localize the USM keys: %w", h.Addr, err)
	}
	r.snmp.Version = gosnmp.Version3
	r.snmp.SecurityModel = gosnmp.UserSecurityModel
	r.snmp.MsgFlags = flags
	r.snmp.SecurityParameters = usm
	r.snmp.ContextEngineID = string(engineID)
	return nil
}

var authProtocols = map[string]gosnmp.SnmpV3AuthProtocol{
	"md5":    gosnmp.MD5,
	"sha":    gosnmp.SHA,
	"sha256": gosnmp.SHA256,
}

var privProtocols = map[string]gosnmp.SnmpV3PrivProtocol{
	"des": gosnmp.DES,
	"aes": gosnmp.AES,
}

// run sends the queued traps until done is closed, then sends what is
// still queued and returns.
func (r *receiver) run(done <-chan struct{}, start time.Time, now func() time.Time) {
	r.log.Debug("trap sender started")
	defer r.log.Debug("trap sender stopped")
	for {
		select {
		case n := <-r.q:
			r.send(n, start, now())
		case <-done:
			for {
				select {
				case n := <-r.q:
					r.send(n, start, now())
				default:
					return
				}
			}
		}
	}
}

// send sends one trap, and counts and logs the outcome.
func (r *receiver) send(n *notification, start, now time.Time) {
	if r.usm != nil {
		r.usm.AuthoritativeEngineTime = engineTime(start, now)
	}
	_, err := r.snmp.SendTrap(gosnmp.SnmpTrap{Variables: n.varbinds()})
	if err == nil {
		r.sent.Add(1)
		return
	}
	r.errors.Add(1)
	if !r.lastLog.IsZero() && now.Sub(r.lastLog) < logInterval {
		r.suppressed++
		return
	}
	r.log.Warn("trap not sent", "trap", string(n.kind), "err", err, "suppressed", r.suppressed)
	r.lastLog, r.suppressed = now, 0
}

// close closes the socket and zeroes the secrets; run must have returned.
func (r *receiver) close() error {
	err := r.snmp.Close()
	r.zero()
	if err != nil {
		return fmt.Errorf("trap: receiver %s: %w", r.addr, err)
	}
	return nil
}

// zero overwrites the community and the localized USM keys.
func (r *receiver) zero() {
	r.community.Zero()
	if r.usm != nil {
		clear(r.usm.SecretKey)
		clear(r.usm.PrivacyKey)
	}
}

// stats returns the receiver's counters.
func (r *receiver) stats() ReceiverStats {
	return ReceiverStats{
		Addr:    r.addr,
		Version: r.version,
		User:    r.user,
		Sent:    r.sent.Load(),
		Dropped: r.dropped.Load(),
		Errors:  r.errors.Load(),
	}
}
