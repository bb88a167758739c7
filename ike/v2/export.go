package v2

import (
	"fmt"
	"slices"
	"time"

	"github.com/ismgw/ism/ike"
)

// Export and import of IKE SAs (ike.Exporter): what another daemon needs
// to carry on with the same IKE SA and the child SAs negotiated on it: its
// SPIs, suite and keys (SK_d, SK_a and SK_e of both directions, §2.14),
// identities, NAT and fragmentation state, message IDs, lifetimes, and
// each child SA's parameters (never its keys: the line card resumes the
// IPsec SAs).
//
// Message IDs (§2.3): a peer with a window of one — charon's default —
// ignores a request whose ID is not the one it expects, so this end's
// requests resume at the record's ID, never past it: a request the old
// daemon sent after the record reaches the peer as a retransmission, which
// it answers from its cache. The peer's requests may have moved on since
// the record; the first one that authenticates with an ID at most
// ImportOptions.MessageIDs past the expected one sets the window there.

var _ ike.Exporter = (*Daemon)(nil)

// exportFormat is the record format this daemon writes. It reads format 1
// too: the same fields, where format 2 leaves SK_pi, SK_pr and the nonces
// of IKE_SA_INIT empty, as an established IKE SA no longer keeps them
// (issue 13); a daemon that reads format 1 only refuses format 2 records
// (CanImport) rather than failing on them.
const exportFormat = 2

// Export returns the established IKE SAs of the tunnels match accepts, and
// those their sources use.
func (d *Daemon) Export(match func(tunnel string) bool) ([]ike.SAState, error) {
	d.mu.Lock()
	names, sources := map[string]bool{}, map[string]bool{}
	for name, tu := range d.tunnels {
		if match == nil || match(name) {
			names[name] = true
			sources[tu.cfg.Source.String()] = true
		}
	}
	sas := make([]*ikeSA, 0, len(d.sas))
	for _, sa := range d.sas {
		sas = append(sas, sa)
	}
	d.mu.Unlock()
	var out []ike.SAState
	for _, sa := range sas {
		sa.lock()
		st, ok, err := d.exportSA(sa, names, sources)
		sa.unlock()
		if err != nil {
			for i := range out {
				out[i].Zero()
			}
			return nil, err
		}
		if ok {
			out = append(out, st)
		}
	}
	return out, nil
}

// exportSA writes one IKE SA's record when it is established and carries a
// matched tunnel's child SAs or runs from a matched source. The SA's mutex
// must be held.
func (d *Daemon) exportSA(sa *ikeSA, names, sources map[string]bool) (ike.SAState, bool, error) {
	var kids []*childSA
	for _, c := range sa.children {
		if names[c.tunnel] && !c.dead && !c.replaced {
			kids = append(kids, c)
		}
	}
	if sa.state != stateEstablished || sa.unsettled || (len(kids) == 0 && !sources[sa.local.Addr().String()]) {
		return ike.SAState{}, false, nil
	}
	w := ike.NewRecordWriter()
	w.Time(d.clk.Now())
	w.U64(sa.spiI)
	w.U64(sa.spiR)
	for _, b := range []bool{sa.initiator, sa.natt, sa.localNAT, sa.remoteNAT, sa.forceEncap, sa.frag.on} {
		w.Bool(b)
	}
	w.U32(uint32(max(sa.frag.mtu, 0)))
	w.AddrPort(sa.local)
	w.AddrPort(sa.remote)
	su := sa.suite
	w.U16(su.encr.id)
	w.U16(uint16(su.encr.keyBits))
	w.U8(uint8(su.encr.aeadICV))
	w.U16(su.prf.id)
	w.U16(su.integ.id)
	w.U16(uint16(su.group))
	w.U8(uint8(len(su.addke)))
	for _, g := range su.addke {
		w.U16(uint16(g))
	}
	w.U8(uint8(sa.authMethod))
	w.Duration(sa.lifetime())
	k := &sa.keys
	// The nonces of IKE_SA_INIT, which an established SA no longer keeps:
	// two empty fields.
	keys := k.all()
	for _, b := range append(keys[:], nil, nil) {
		w.Bytes(b)
	}
	w.Identity(sa.remoteID)
	w.Identity(sa.localID)
	w.U32(sa.win.nextID)
	w.U32(sa.win.expect)
	w.Time(sa.createdAt())
	w.U32(sa.rekeys)
	w.U8(uint8(len(kids)))
	var tunnels []string
	d.mu.Lock()
	for _, c := range kids {
		if !slices.Contains(tunnels, c.tunnel) {
			tunnels = append(tunnels, c.tunnel)
		}
		onBackup := false
		if tu := d.tunnels[c.tunnel]; tu != nil {
			onBackup = tu.onBackup
		}
		w.Block(func(w *ike.RecordWriter) {
			w.String(c.tunnel)
			w.Bool(onBackup)
			w.SAID(c.in)
			w.SAID(c.out)
			w.Transform(c.transform)
			w.U8(uint8(c.mode))
			w.Bool(c.esn)
			w.Bool(c.encap)
			w.SelectorSet(c.local)
			w.SelectorSet(c.remote)
			w.U16(uint16(c.pfs))
			w.Lifetime(c.lifetime)
			w.Time(d.sched.time(c.created))
		})
	}
	d.mu.Unlock()
	data, err := w.Finish()
	if err != nil {
		return ike.SAState{}, false, err
	}
	return ike.SAState{Version: 2, Format: exportFormat, Tunnels: tunnels, Data: data}, true, nil
}

// CanImport reports whether s is an IKEv2 record of a format this daemon
// reads (exportFormat).
func (d *Daemon) CanImport(s ike.SAState) bool {
	return s.Version == 2 && (s.Format == 1 || s.Format == exportFormat)
}

// imported is a record read back.
type imported struct {
	at       time.Time
	sa       *ikeSA
	children []importedChild
}

type importedChild struct {
	onBackup bool
	c        *childSA
}

// Import takes the records' IKE SAs and child SAs over; of two records
// of one IKE SA, the newer.
func (d *Daemon) Import(states []ike.SAState, o ike.ImportOptions) error {
	if o.MessageIDs == 0 {
		o.MessageIDs = ike.DefaultMessageIDMargin
	}
	newest := map[uint64]*imported{}
	var order []uint64
	for _, s := range states {
		if !d.CanImport(s) {
			return fmt.Errorf("%w: IKEv%d record format %d", ike.ErrImport, s.Version, s.Format)
		}
		im, err := d.readRecord(s.Data)
		if err != nil {
			return err
		}
		k := im.sa.localSPI()
		if old, ok := newest[k]; ok && !im.at.After(old.at) {
			im.sa.keys.zero()
			continue
		} else if ok {
			old.sa.keys.zero()
		} else {
			order = append(order, k)
		}
		newest[k] = im
	}
	for _, k := range order {
		d.adopt(newest[k], o.MessageIDs)
	}
	return nil
}
