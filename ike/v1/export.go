package v1

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
)

// Export and import of ISAKMP SAs (ike.Exporter): what another daemon
// needs to carry on with the same IKE SA and the quick-mode SAs negotiated
// on it. An IKEv1 SA has no message-ID window (message IDs are random,
// RFC 2408 §3.1) and the IV of each informational or quick mode exchange
// is derived from the last phase 1 block and the message ID (RFC 2409
// Appendix B), so the record carries that block; the DPD sequence number
// of this end jumps on import (RFC 3706 §7 has the receiver take any
// number above the last), the peer's is kept so that a replayed inquiry
// is still no sign of life.

var _ ike.Exporter = (*Daemon)(nil)

// exportFormat is the record format this daemon writes; it reads it and
// format 1 (no child selectors, no waiting pairs: export_pending.go).
const exportFormat = 2

// Export returns the established IKE SAs of the tunnels match accepts.
func (d *Daemon) Export(match func(tunnel string) bool) ([]ike.SAState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	picked, sources := d.matchLocked(match)
	kids := map[*ikeSA][]*childSA{}
	for _, tu := range picked {
		for _, c := range tu.children {
			if sa := d.usableSA(c); sa != nil && !c.dead {
				kids[sa] = append(kids[sa], c)
			}
		}
	}
	var out []ike.SAState
	for _, sa := range d.sas {
		if !sa.established || sa.dead || (len(kids[sa]) == 0 && !sources[sa.local.Addr()]) {
			continue
		}
		st, err := d.exportLocked(sa, kids[sa], now)
		if err != nil {
			for i := range out {
				out[i].Zero()
			}
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// matchLocked returns the tunnels match accepts and their sources.
// Daemon.mu must be held.
func (d *Daemon) matchLocked(match func(string) bool) ([]*tunnel, map[netip.Addr]bool) {
	var picked []*tunnel
	sources := map[netip.Addr]bool{}
	for name, tu := range d.tunnels {
		if match == nil || match(name) {
			picked = append(picked, tu)
			sources[tu.cfg.Source] = true
		}
	}
	return picked, sources
}

// exportLocked writes one IKE SA's record. Daemon.mu must be held.
func (d *Daemon) exportLocked(sa *ikeSA, kids []*childSA, now time.Time) (ike.SAState, error) {
	w := ike.NewRecordWriter()
	w.Time(now)
	w.Bytes(sa.icookie[:])
	w.Bytes(sa.rcookie[:])
	for _, b := range []bool{sa.initiator, sa.mode == ike.AggressiveMode, sa.natt, sa.localNAT, sa.remoteNAT,
		sa.peerNATT, sa.localDPD, sa.peerDPD, sa.peerSeqSeen} {
		w.Bool(b)
	}
	w.AddrPort(sa.local)
	w.AddrPort(sa.remote)
	w.U32(sa.peerSeq)
	p := sa.policy
	w.U8(uint8(p.Encryption))
	w.U8(uint8(p.Hash))
	w.U8(uint8(p.Auth))
	w.U16(uint16(p.Group))
	w.Duration(p.Lifetime)
	w.Bytes(sa.ekey())
	w.Bytes(sa.skeyidD())
	w.Bytes(sa.skeyidA())
	w.Bytes(sa.p1IV)
	w.Identity(sa.remoteID)
	w.Time(sa.created)
	w.Time(sa.expires)
	w.U32(uint32(sa.rekeys))
	var seq uint32
	if p := d.dpd[sa.peer()]; p != nil {
		seq = p.seq
	}
	w.U32(seq)
	w.U8(uint8(len(kids)))
	var names []string
	for _, c := range kids {
		tu := c.tu
		if !slices.Contains(names, tu.cfg.Name) {
			names = append(names, tu.cfg.Name)
		}
		w.Block(func(w *ike.RecordWriter) {
			w.String(tu.cfg.Name)
			w.AddrPort(tu.peer)
			w.Bool(tu.onBackup)
			writeChild(w, c)
		})
	}
	writeSuccessors(w, kids)
	data, err := w.Finish()
	if err != nil {
		return ike.SAState{}, err
	}
	return ike.SAState{Version: 1, Format: exportFormat, Tunnels: names, Data: data}, nil
}

// CanImport reports whether s is an IKEv1 record of a format this daemon
// reads.
func (d *Daemon) CanImport(s ike.SAState) bool {
	return s.Version == 1 && (s.Format == 1 || s.Format == exportFormat)
}

// importedSA is a record read back.
type importedSA struct {
	at       time.Time
	sa       *ikeSA
	dpdSeq   uint32
	children []importedChild
	waiting  []importedSuccessor
}

type importedChild struct {
	tunnel   string
	peer     netip.AddrPort
	onBackup bool
	c        *childSA
}

// Import takes the records' IKE SAs and child SAs over.
func (d *Daemon) Import(states []ike.SAState, o ike.ImportOptions) error {
	if o.DPDSequence == 0 {
		o.DPDSequence = ike.DefaultDPDSequenceMargin
	}
	newest := map[saKey]*importedSA{}
	var order []saKey
	for _, s := range states {
		if !d.CanImport(s) {
			return fmt.Errorf("%w: IKEv%d record format %d", ike.ErrImport, s.Version, s.Format)
		}
		im, err := readIKESA(s.Data, int(s.Format))
		if err != nil {
			return err
		}
		k := im.sa.key()
		if old, ok := newest[k]; ok && !im.at.After(old.at) {
			im.zero()
			continue
		} else if ok {
			old.zero()
		} else {
			order = append(order, k)
		}
		newest[k] = im
	}
	for _, k := range order {
		d.adopt(newest[k], o)
	}
	return nil
}

func (im *importedSA) zero() {
	clear(im.sa.keys)
	for i := range im.waiting {
		im.waiting[i].zero()
	}
}

// readIKESA decodes a record of format.
func readIKESA(data []byte, format int) (*importedSA, error) {
	r := ike.NewRecordReader(data)
	im := &importedSA{at: r.Time()}
	sa := &ikeSA{established: true, state: stateEstablished}
	copy(sa.icookie[:], r.Bytes())
	copy(sa.rcookie[:], r.Bytes())
	var aggressive bool
	for _, b := range []*bool{&sa.initiator, &aggressive, &sa.natt, &sa.localNAT, &sa.remoteNAT,
		&sa.peerNATT, &sa.localDPD, &sa.peerDPD, &sa.peerSeqSeen} {
		*b = r.Bool()
	}
	if aggressive {
		sa.mode = ike.AggressiveMode
	}
	sa.local, sa.remote = r.AddrPort(), r.AddrPort()
	sa.peerSeq = r.U32()
	sa.policy = ike.Policy{Encryption: ike.Encryption(r.U8()), Hash: ike.Hash(r.U8()), Auth: ike.AuthMethod(r.U8()),
		Group: int(r.U16()), Lifetime: r.Duration()}
	ekey, skeyidD, skeyidA := r.Bytes(), r.Bytes(), r.Bytes()
	sa.setKeys(ekey, skeyidD, skeyidA)
	sa.p1IV = r.Bytes()
	sa.remoteID = r.Identity()
	sa.created, sa.expires = r.Time(), r.Time()
	sa.rekeys = int32(r.U32())
	im.dpdSeq = r.U32()
	n := r.U8()
	for range n {
		var ic importedChild
		r.Block("child SA", func(r *ike.RecordReader) {
			ic.tunnel, ic.peer, ic.onBackup = r.String(), r.AddrPort(), r.Bool()
			ic.c = readChild(r, format, sa)
		})
		im.children = append(im.children, ic)
	}
	if format >= 2 {
		im.waiting = readSuccessors(r, sa)
	}
	im.sa = sa
	if err := r.Err(true); err != nil {
		im.zero()
		return nil, err
	}
	err := checkImported(sa)
	for i := range im.waiting {
		if err == nil {
			err = checkSuccessor(&im.waiting[i])
		}
	}
	if err != nil {
		im.zero()
		return nil, err
	}
	return im, nil
}

// checkImported refuses a record the daemon could not run.
func checkImported(sa *ikeSA) error {
	h := sa.policy.Hash.Crypto()
	switch {
	case sa.icookie.IsZero() || sa.rcookie.IsZero():
		return fmt.Errorf("%w: zero cookie", ike.ErrImport)
	case !sa.local.IsValid() || !sa.remote.IsValid():
		return fmt.Errorf("%w: %s: endpoints", ike.ErrImport, sa)
	case h == 0 || !h.Available() || len(sa.skeyidD()) == 0 || len(sa.skeyidA()) == 0:
		return fmt.Errorf("%w: %s: hash or keys", ike.ErrImport, sa)
	case sa.expires.IsZero():
		return fmt.Errorf("%w: %s: no lifetime", ike.ErrImport, sa)
	}
	block, err := newBlock(sa.policy.Encryption, sa.ekey())
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ike.ErrImport, sa, err)
	}
	if len(sa.p1IV) != block.BlockSize() {
		return fmt.Errorf("%w: %s: phase 1 IV of %d bytes", ike.ErrImport, sa, len(sa.p1IV))
	}
	sa.hash = h
	return nil
}

// adopt makes an imported IKE SA and its children the daemon's own, unless
// it has that SA already.
func (d *Daemon) adopt(im *importedSA, o ike.ImportOptions) {
	sa := im.sa
	d.mu.Lock()
	if _, ok := d.sas[sa.key()]; ok || d.closed {
		d.mu.Unlock()
		im.zero()
		return
	}
	// The installer must hold both SAs of a child: the line card resumed
	// them. QuerySA is a call out of the daemon, so it runs unlocked.
	d.mu.Unlock()
	var kids []importedChild
	for _, ic := range im.children {
		_, errIn := d.inst.QuerySA(ic.c.in)
		_, errOut := d.inst.QuerySA(ic.c.out)
		if errIn != nil || errOut != nil {
			d.log.Warn("imported child SA not installed: left out", "tunnel", ic.tunnel, "spi_in", hexSPI(ic.c.in.SPI))
			continue
		}
		kids = append(kids, ic)
	}
	ready := map[ipsec.SAID]bool{}
	for _, s := range im.waiting {
		_, err := d.inst.QuerySA(s.c.in)
		ready[s.c.in] = err == nil
	}
	d.mu.Lock()
	now := d.now()
	sa.lastRecv = now
	d.putSALocked(sa)
	d.armImportedLocked(sa, now)
	var up []string
	for _, ic := range kids {
		tu := d.tunnels[ic.tunnel]
		if tu == nil {
			continue
		}
		c := ic.c
		c.tu = tu
		if !c.local().Valid() || !c.remote().Valid() { // a format 1 record
			c.own = nil // the tunnel's
		} else {
			c.setSelectors(c.local(), c.remote())
		}
		d.setSALocked(tu, sa)
		tu.peer, tu.onBackup = ic.peer, ic.onBackup
		d.putChildLocked(c)
		tu.children = append(tu.children, c)
		slices.SortFunc(tu.children, func(a, b *childSA) int { return a.created.Compare(b.created) })
		if tu.state != stateUp {
			tu.state = stateUp
			up = append(up, tu.cfg.Name)
		}
		if c.lifetime.Time > 0 {
			hard, _ := ike.Deadline(c.created.Add(c.lifetime.Time), now, 0)
			soft, _ := ike.Deadline(c.created.Add(d.jitter(c.lifetime.Time)), now, 0)
			d.armLifeLocked(&c.life, soft, hard, func(soft bool) {
				if soft {
					d.rekeyChild(c)
				} else {
					d.removeChild(c, "lifetime expired")
				}
			})
		}
		d.dpdArmSALocked(sa.peer(), tu, sa)
	}
	if p := d.dpd[sa.peer()]; p != nil {
		p.lastIKE = now
		if im.dpdSeq != 0 {
			p.seq = max(p.seq, im.dpdSeq+o.DPDSequence)
		}
	}
	arm := d.adoptSuccessorsLocked(sa, im.waiting, ready, now)
	d.mu.Unlock()
	for _, f := range arm {
		f()
	}
	d.log.Info("IKE SA imported", "sa", sa.String(), "children", len(kids))
	for _, name := range up {
		if d.lis != nil {
			d.lis.TunnelUp(name, sa.remote)
		}
	}
}

// armImportedLocked arms an imported SA's lifetime timers: the hard one at
// the record's expiry, the rekey at 80 to 90 % of the lifetime from when
// it was established, as establish does. Daemon.mu must be held.
func (d *Daemon) armImportedLocked(sa *ikeSA, now time.Time) {
	life := sa.policy.Lifetime
	hard, _ := ike.Deadline(sa.expires, now, 0)
	soft, _ := ike.Deadline(sa.expires.Add(-life).Add(d.jitter(life)), now, 0)
	d.armLifeLocked(&sa.life, soft, hard, sa.lifeEvent(d))
	if sa.localNAT {
		d.armKeepalive(sa)
	}
}
