package operator

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ismgw/ism/ike"
)

// IKESA is what `show ike sa` shows of an IKE SA, IKEv1 or IKEv2, and its
// -json form. It never holds key material.
type IKESA struct {
	Version int `json:"version"`
	// Mode is IKEv1's phase 1 exchange, main or aggressive.
	Mode        string `json:"mode,omitempty"`
	Role        string `json:"role"` // initiator or responder
	Local       string `json:"local"`
	Remote      string `json:"remote"`
	RemoteID    string `json:"remote_identity,omitempty"`
	State       string `json:"state"`
	Established bool   `json:"established"`
	// SPIi and SPIr are the initiator's and responder's SPIs (IKEv1:
	// cookies), in hex.
	SPIi string `json:"spi_i"`
	SPIr string `json:"spi_r"`
	// The negotiated algorithms (empty until established): Integrity is
	// "none" with an AEAD cipher; Group and AdditionalKE are numbers
	// with strongSwan's names, e.g. "20 (ecp384)", "36 (mlkem768)".
	Encryption     string   `json:"encryption,omitempty"`
	Integrity      string   `json:"integrity,omitempty"`
	PRF            string   `json:"prf,omitempty"`
	Group          string   `json:"group,omitempty"`
	AdditionalKE   []string `json:"additional_ke,omitempty"`
	Authentication string   `json:"authentication,omitempty"`
	LifetimeLeft   int64    `json:"lifetime_left_s"`
	Rekeys         int      `json:"rekeys"`
	// NATT: IKE floated to UDP 4500; LocalNAT and RemoteNAT (IKEv2): this
	// end, the peer is behind a NAT.
	NATT      bool `json:"nat_t"`
	LocalNAT  bool `json:"nat_local"`
	RemoteNAT bool `json:"nat_remote"`
	// CookiesReceived are the COOKIE notifies this end (the initiator)
	// had to answer, CookiesSent those it (the responder) demanded.
	CookiesReceived int `json:"cookies_received"`
	CookiesSent     int `json:"cookies_sent"`
	// LastHeard is when the peer last sent an authenticated message
	// (IKEv2's liveness); zero when unknown.
	LastHeard time.Time `json:"last_heard,omitzero"`
	DPD       bool      `json:"dpd"`      // this end checks liveness (IKEv1: announced DPD)
	PeerDPD   bool      `json:"peer_dpd"` // the peer answers liveness checks
}

// IKESAOf is an IKE daemon's status of an IKE SA as show shows it.
func IKESAOf(s ike.IKESAStatus) IKESA {
	v := IKESA{Version: max(s.Version, 1), Role: "responder", Local: s.Local.String(), Remote: s.Remote.String(), RemoteID: s.RemoteID,
		State: s.State, Established: s.Established, SPIi: s.ICookie, SPIr: s.RCookie, LifetimeLeft: int64(s.LifetimeLeft.Seconds()),
		Rekeys: s.Rekeys, NATT: s.NATT, LocalNAT: s.LocalNAT, RemoteNAT: s.RemoteNAT, LastHeard: s.LastHeard, DPD: s.DPD, PeerDPD: s.PeerDPD}
	if s.Initiator {
		v.Role, v.CookiesReceived = "initiator", s.Cookies
	} else {
		v.CookiesSent = s.Cookies
	}
	if v.Version == 1 {
		v.Mode = s.Mode.String()
	}
	p := s.Policy
	if p.Encryption == 0 {
		return v
	}
	v.Encryption, v.Authentication = p.Encryption.String(), p.Auth.String()
	prf := p.PRF
	if prf == 0 {
		prf = p.Hash
	}
	v.PRF = "hmac-" + hashName(prf)
	v.Integrity = integrity(v.Version, p)
	v.Group = methodName(p.Group)
	for _, m := range s.AdditionalKE {
		v.AdditionalKE = append(v.AdditionalKE, methodName(m))
	}
	return v
}

// integrity names the IKE SA's integrity algorithm: IKEv2 truncates the
// HMAC (RFC 7296 §3.3.2, RFC 4868), IKEv1 uses it whole; none with AES-GCM.
func integrity(version int, p ike.Policy) string {
	switch {
	case p.Encryption.AEAD():
		return "none"
	case version == 1:
		return "hmac-" + hashName(p.Hash)
	}
	bits := map[ike.Hash]int{ike.HashMD5: 96, ike.HashSHA1: 96, ike.HashSHA256: 128, ike.HashSHA384: 192, ike.HashSHA512: 256}[p.Hash]
	return fmt.Sprintf("hmac-%s-%d", hashName(p.Hash), bits)
}

// hashName names a hash as the RFCs do: sha1, not the configuration's sha.
func hashName(h ike.Hash) string {
	if h == ike.HashSHA1 {
		return "sha1"
	}
	return h.String()
}

// methodName is a key exchange method with its name: "20 (ecp384)".
func methodName(n int) string {
	if g, ok := ike.LookupMethod(n); ok {
		return fmt.Sprintf("%d (%s)", n, g.Name)
	}
	return fmt.Sprint(n)
}

// algorithms is the SA's algorithms in one word: encryption, integrity,
// PRF, group and additional key exchanges, e.g.
// "aes256-gcm/none/hmac-sha384/ecp384+mlkem768".
func (v IKESA) algorithms() string {
	if v.Encryption == "" {
		return "-"
	}
	group := nameOf(v.Group)
	for _, m := range v.AdditionalKE {
		group += "+" + nameOf(m)
	}
	return fmt.Sprintf("%s/%s/%s/%s", v.Encryption, v.Integrity, v.PRF, group)
}

// nameOf returns the name in a method "20 (ecp384)", or the method.
func nameOf(m string) string {
	if _, n, ok := strings.Cut(m, " ("); ok {
		return strings.TrimSuffix(n, ")")
	}
	return m
}

// nat says who is behind a NAT.
func (v IKESA) nat() string {
	switch {
	case v.LocalNAT && v.RemoteNAT:
		return "local+remote"
	case v.LocalNAT:
		return "local"
	case v.RemoteNAT:
		return "remote"
	case v.NATT:
		return "nat-t"
	}
	return "no"
}

// cookies says how many COOKIE notifies the SA's setup took.
func (v IKESA) cookies() string {
	switch {
	case v.CookiesReceived > 0:
		return fmt.Sprintf("%d received", v.CookiesReceived)
	case v.CookiesSent > 0:
		return fmt.Sprintf("%d sent", v.CookiesSent)
	}
	return "-"
}

// version is "IKEv1 main", "IKEv1 aggressive" or "IKEv2".
func (v IKESA) version() string {
	if v.Mode != "" {
		return fmt.Sprintf("IKEv%d %s", v.Version, v.Mode)
	}
	return fmt.Sprintf("IKEv%d", v.Version)
}

// IKESAs are the views of a snapshot's IKE SAs.
func IKESAs(sas []ike.IKESAStatus) []IKESA {
	out := make([]IKESA, len(sas))
	for i, s := range sas {
		out[i] = IKESAOf(s)
	}
	return out
}

// writeIKESAs prints `show ike sa`: a line an IKE SA.
func writeIKESAs(w io.Writer, sas []IKESA) {
	if len(sas) == 0 {
		fmt.Fprintln(w, "No IKE SAs")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "Version\tLocal\tRemote\tRemote identity\tRole\tState\tAlgorithms\tAuthentication\tNAT\tLifetime left\tRekeys\tCookies\tLast heard\tSPIs")
	for _, v := range sas {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s/%s\n", v.version(), v.Local, v.Remote, orDash(v.RemoteID),
			v.Role, v.State, v.algorithms(), orDash(v.Authentication), v.nat(), time.Duration(v.LifetimeLeft)*time.Second, v.Rekeys,
			v.cookies(), ago(v.LastHeard), v.SPIi, v.SPIr)
	}
	tw.Flush()
}

// linkIKESAs gives each signaled tunnel the IKE SA it rides on: the
// established one between its source and its peer (or, with no child SA
// left, the destination in use), so that tunnel detail tells what `show
// ike sa` does.
func (s *Snapshot) linkIKESAs() {
	// One pass over the IKE SAs, not one per tunnel: with 10,000 tunnels
	// each with its own IKE SA, a show walked 10^8 pairs.
	type pair struct {
		local   string
		remote  netip.Addr
		version int
	}
	first := make(map[pair]int, len(s.IKESAs))
	for i, sa := range s.IKESAs {
		k := pair{sa.Local.Addr().String(), sa.Remote.Addr(), max(sa.Version, 1)}
		if _, ok := first[k]; !ok && sa.Established {
			first[k] = i
		}
	}
	for i := range s.Tunnels {
		t := &s.Tunnels[i]
		if t.IKE == nil {
			continue
		}
		peer := t.IKE.Peer.Addr()
		if !peer.IsValid() {
			peer = t.IKE.Destination
		}
		if !peer.IsValid() {
			continue
		}
		if j, ok := first[pair{t.Source, peer, max(t.IKE.Version, 1)}]; ok {
			v := IKESAOf(s.IKESAs[j])
			t.IKESA = &v
		}
	}
}

// writeIKEDetail prints a signaled tunnel's IKE state in `show ipsec
// tunnel detail` in the words of `show ike sa`: the IKE SA (phase 1) it
// rides on, then its child SAs (phase 2), each with its selectors, SPIs,
// transform, lifetime left and the counters of its SAs; the negotiations
// this end has under way or waiting, why the last one failed; liveness
// (DPD) and failover.
func writeIKEDetail(w io.Writer, s TunnelStatus) {
	i := s.IKE
	v2 := i.Version == 2
	fmt.Fprint(w, "  IKE SA")
	if !v2 {
		fmt.Fprint(w, " (phase 1)")
	}
	if i.Peer.IsValid() {
		fmt.Fprintf(w, " with %s", i.Peer)
	} else if i.Destination.IsValid() {
		fmt.Fprintf(w, " with %s", i.Destination)
	}
	if v := s.IKESA; v != nil {
		fmt.Fprintf(w, ": %s, %s/%s, %s %s, %s, authentication %s, NAT %s, %s left, %d rekeys\n", v.State, v.SPIi, v.SPIr, v.version(), v.Role,
			v.algorithms(), v.Authentication, v.nat(), time.Duration(v.LifetimeLeft)*time.Second, v.Rekeys)
	} else {
		fmt.Fprintf(w, ": %s\n", orDash(i.IKESA))
	}
	writeChildren(w, i, s.SAs)
	if v2 {
		writeLiveness(w, s.IKESA)
	} else {
		writeDPD(w, i.DPD)
	}
	writeFailover(w, i.Failover)
}

// writeLiveness prints IKEv2's liveness checks (RFC 7296 §2.4), IKEv2's
// dead peer detection, from the IKE SA the tunnel rides on.
func writeLiveness(w io.Writer, v *IKESA) {
	switch {
	case v == nil:
		fmt.Fprintln(w, "  Liveness: no IKE SA")
	case !v.DPD:
		fmt.Fprintf(w, "  Liveness: checks off, peer last heard %s\n", ago(v.LastHeard))
	default:
		fmt.Fprintf(w, "  Liveness: checks on, peer last heard %s\n", ago(v.LastHeard))
	}
}

// writeIKEStatistics prints the IKE lines of `show ipsec statistics`:
// the totals, then, when both versions run, each version's, with IKEv2's
// refusals by reason.
func writeIKEStatistics(w io.Writer, st Statistics) {
	c := st.IKE
	if c == nil {
		return
	}
	fmt.Fprintf(w, "IKE: %d received, %d malformed, %d unknown SA, %d auth failures, %d no proposal chosen, %d retransmits, %d phase 1 and %d quick modes done, %d rekeys, %d dropped, %d duplicates\n",
		c.Received, c.Malformed, c.UnknownSA, c.AuthFailed, c.NoProposalChosen, c.Retransmits, c.Phase1Established, c.QuickModesCompleted, c.Rekeys, c.Dropped, c.Duplicates)
	fmt.Fprintf(w, "DPD: %d inquiries, %d acknowledged, %d answered, %d peers dead; %d failovers\n",
		c.DPDInquiries, c.DPDAcks, c.DPDAnswered, c.DPDPeersDead, c.Failovers)
	if v1, ok := st.IKEVersions["ikev1"]; ok {
		fmt.Fprintf(w, "IKEv1: %d received, %d malformed, %d unknown SA, %d dropped; %d main/aggressive modes and %d quick modes done, %d rekeys\n",
			v1.Received, v1.Malformed, v1.UnknownSA, v1.Dropped, v1.Phase1Established, v1.QuickModesCompleted, v1.Rekeys)
	}
	v2, ok := st.IKEVersions["ikev2"]
	if !ok {
		return
	}
	fmt.Fprintf(w, "IKEv2: %d received; %d IKE SAs and %d child SAs created, %d child SA and %d IKE SA rekeys (%d collisions); "+
		"cookies %d sent, %d received; fragments %d sent, %d received; %d retransmits; %d liveness checks, %d answered, %d peers dead\n",
		v2.Received, v2.Phase1Established, v2.QuickModesCompleted, v2.Rekeys, v2.IKESARekeys, v2.RekeyCollisions,
		v2.CookiesSent, v2.CookiesReceived, v2.FragmentsSent, v2.FragmentsReceived, v2.Retransmits, v2.DPDInquiries, v2.DPDAcks, v2.DPDPeersDead)
	fmt.Fprintf(w, "IKEv2 refused: %d malformed, %d unknown SPI (%d INVALID_IKE_SPI sent, %d rate-limited), %d out of window, "+
		"%d auth failed, %d no proposal chosen, %d invalid KE, %d stale or wrong cookies, %d fragments dropped, %d temporary failures, %d duplicates, %d other\n",
		v2.Malformed, v2.UnknownSA, v2.InvalidIKESPISent, v2.InvalidIKESPILimited, v2.OutOfWindow, v2.AuthFailed, v2.NoProposalChosen,
		v2.InvalidKE, v2.CookiesRefused, v2.FragmentsDropped, v2.TemporaryFailures, v2.Duplicates, v2.Dropped)
}
