package kernel

import (
	"fmt"
	"strings"

	"github.com/ismgw/ism/transform"
)

// Status says whether the kernel has a capability and, when it has not,
// exactly what is missing and how that was observed.
type Status struct {
	Present bool
	Reason  string // empty when Present
}

func (s Status) String() string {
	if s.Present {
		return "present"
	}
	return "absent: " + s.Reason
}

// Algorithm is the availability of one crypto API algorithm through AF_ALG.
type Algorithm struct {
	Name string // crypto API name, e.g. "rfc4106(gcm(aes))"
	Type string // AF_ALG socket type: "aead", "skcipher" or "hash"
	Status
}

// Report is what Probe found, by trying rather than by reading kernel
// configuration files (which a host may not have).
type Report struct {
	// AFALG is lookaside crypto through the kernel crypto API
	// (CONFIG_CRYPTO_USER_API_{AEAD,SKCIPHER,HASH}), which reaches
	// hardware engines such as QAT or CAAM where a host has them.
	AFALG Status
	// Algorithms lists each algorithm ISM can use through AF_ALG, and a
	// few combined ones that hardware engines typically offer.
	Algorithms []Algorithm
	// XFRM is the XFRM netlink interface (CONFIG_XFRM_USER).
	XFRM Status
	// ESP and AH are XFRM SAs of each protocol (CONFIG_INET_ESP,
	// CONFIG_INET_AH, and the INET6 ones for IPv6).
	ESP, AH Status
	// XFRMTransforms lists the transforms whose XFRM SA the kernel
	// accepted, ESP then AH.
	XFRMTransforms []transform.Transform
}

// Algorithm returns the status of the named AF_ALG algorithm.
func (r *Report) Algorithm(name string) (Algorithm, bool) {
	for _, a := range r.Algorithms {
		if a.Name == name {
			return a, true
		}
	}
	return Algorithm{}, false
}

// Probe finds out what the running kernel offers: it opens AF_ALG sockets
// and binds them to each algorithm, and it adds and deletes throwaway SAs of
// each transform in a throwaway network namespace (which needs
// CAP_SYS_ADMIN and CAP_NET_ADMIN; without them the XFRM part says so).
func Probe() *Report {
	r := &Report{}
	r.AFALG, r.Algorithms = probeAFALG()
	r.XFRM, r.ESP, r.AH, r.XFRMTransforms = probeXFRM()
	return r
}

// String prints the report, one capability a line.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "AF_ALG: %s\n", r.AFALG)
	for _, a := range r.Algorithms {
		fmt.Fprintf(&b, "  %-9s %-34s %s\n", a.Type, a.Name, a.Status)
	}
	fmt.Fprintf(&b, "XFRM netlink: %s\n", r.XFRM)
	fmt.Fprintf(&b, "XFRM ESP: %s\n", r.ESP)
	fmt.Fprintf(&b, "XFRM AH: %s\n", r.AH)
	if len(r.XFRMTransforms) > 0 {
		names := make([]string, len(r.XFRMTransforms))
		for i, t := range r.XFRMTransforms {
			names[i] = t.Name()
		}
		fmt.Fprintf(&b, "XFRM transforms: %s\n", strings.Join(names, " "))
	}
	return b.String()
}
