package config

import (
	"net/netip"
	"time"

	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/selector"
	"github.com/ismgw/ism/transform"
)

// opt is a setting as the file gives it: a value and the line it is on, 0
// when the file does not set it.
type opt[T any] struct {
	v    T
	line int
}

func (o opt[T]) ok() bool { return o.line != 0 }

func (o *opt[T]) put(v T, line int) { o.v, o.line = v, line }

// or returns the value, or def when unset.
func (o opt[T]) or(def T) T {
	if o.ok() {
		return o.v
	}
	return def
}

// drafts is everything the commands collect, before resolve checks the
// cross-references and builds the Config.
type drafts struct {
	g      globalDraft
	vrs    []vrDraft
	tsets  []*tsetDraft
	rules  []*policyDraft
	psks   []pskDraft
	ifaces []*ifaceDraft
	// ifaceByName indexes ifaces; nil until the first.
	ifaceByName map[string]*ifaceDraft
	routes      []routeDraft
	// proutes are the policy routes.
	proutes []routeDraft
	ckpt    ckptDraft
	cl      clusterDraft
}

// zero overwrites the keys the drafts hold, including those of lines that
// did not make it into the Config.
func (d *drafts) zero() {
	for _, k := range d.psks {
		k.Key.Zero()
	}
	for _, h := range d.g.hosts {
		h.Community.Zero()
		h.AuthPassword.Zero()
		h.PrivPassword.Zero()
	}
	for _, t := range d.ifaces {
		for _, sa := range t.sa {
			sa.v.cipher.Zero()
			sa.v.auth.Zero()
		}
	}
}

type globalDraft struct {
	lifetime lifetimeDraft
	dpd      dpdDraft
	holdDown opt[time.Duration]
	backoff  backoffDraft
	// ikeVersion, fragMTU (-1 is off) and cookies are the "ipsec
	// ike-version" and "ipsec ike" settings.
	ikeVersion opt[int]
	fragMTU    opt[int]
	cookies    opt[int]
	retransmit opt[Retransmit]
	replay     opt[int]
	driver     opt[Driver]
	dpdk       DPDK
	// dataplane is "dataplane ...".
	dataplane dataplaneDraft
	certs     Certificates
	certLine  int // line of "ipsec local-certificate"
	pssLine   int // the same, when it says rsa-pss
	caLine    int // line of the first "ipsec ca-certificate"
	hosts     []hostDraft
	engineID  []byte
	traps     opt[[]Trap]
	metrics   netip.AddrPort
	control   opt[string]
}

// lifetimeDraft is "lifetime [seconds N] [kilobytes N]", the volume kept
// in bytes.
type lifetimeDraft struct {
	seconds opt[time.Duration]
	bytes   opt[uint64]
}

type dpdDraft struct {
	on                         opt[bool]
	sent, silent, idle, retryI opt[time.Duration]
	retries                    opt[int]
}

// resolve returns base with the settings of d applied.
func (d dpdDraft) resolve(base ipsec.DPD) ipsec.DPD {
	return ipsec.DPD{
		Enabled:       d.on.or(base.Enabled),
		Sent:          d.sent.or(base.Sent),
		Silent:        d.silent.or(base.Silent),
		Idle:          d.idle.or(base.Idle),
		RetryInterval: d.retryI.or(base.RetryInterval),
		Retries:       d.retries.or(base.Retries),
	}
}

type vrDraft struct {
	VR
	line int
}

type tsetDraft struct {
	name  string
	line  int
	items []tsetItem
}

type tsetItem struct {
	num  int
	t    transform.Transform
	line int
}

type policyDraft struct {
	prio, line int
	enc        opt[IKEEncryption]
	hash       opt[IKEHash]
	group      opt[DHGroup]
	prf        opt[IKEHash]
	addKE      opt[additionalKE]
	auth       opt[AuthMethod]
	life       opt[time.Duration]
}

// additionalKE is an "additional-key-exchange" line.
type additionalKE struct {
	methods  []int
	optional bool
}

type pskDraft struct {
	PreSharedKey
	line int
}

type hostDraft struct {
	TrapHost
	line int
}

type routeDraft struct {
	prefix netip.Prefix
	tunnel string
	line   int
}

// saDraft is a "tunnel sa" line.
type saDraft struct {
	proto  transform.Protocol
	spi    uint32
	cipher ipsec.Key
	auth   ipsec.Key
}

// ifaceDraft is an "interface tunnel" block.
type ifaceDraft struct {
	name string
	line int
	// failed holds the commands that had errors, so that their absence
	// is not reported again.
	failed map[string]bool

	description opt[string]
	vr, tvr     opt[string]
	addr, addr6 opt[netip.Prefix]
	mtu         opt[int]

	typ          opt[TunnelType]
	mode         opt[ipsec.Mode]
	source       opt[netip.Addr]
	dest, backup opt[Endpoint]
	tset         opt[string]
	local        opt[selector.Selector]
	remote       opt[selector.Selector]
	sa           [2]opt[saDraft] // by ipsec.Direction

	lifetime     lifetimeDraft
	pfs          opt[DHGroup]
	localID      opt[Identity]
	remoteID     opt[Identity]
	ikeMode      opt[IKEMode]
	ikeVersion   opt[int]
	dpd          dpdDraft
	holdDown     opt[time.Duration]
	driver       opt[Driver]
	replay       opt[int]
	esn          opt[bool]
	udpEncapPort opt[uint16]
}
