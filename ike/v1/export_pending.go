package v1

import (
	"fmt"
	"time"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
)

// A rekey this end started waits rekeySwitchDelay after QM3 before its
// new pair takes over (switchLater): the new inbound SA is in the data
// path, the outbound SA only in the daemon. The record carries that
// waiting pair (format 2), so that a daemon importing the IKE SA in the
// window installs the outbound SA and retires the old pair when this one
// would have; without it the peer, which sends on the new pair from QM3
// on, would reach an inbound SA the importer does not know, and the old
// pair would run out with no successor.

// writeSuccessors writes the pairs waiting to take over from kids.
// Daemon.mu must be held.
func writeSuccessors(w *ike.RecordWriter, kids []*childSA) {
	var waiting []*childSA
	for _, c := range kids {
		if s := c.successorOf(); s != nil && !s.done {
			waiting = append(waiting, c)
		}
	}
	w.U8(uint8(len(waiting)))
	for _, old := range waiting {
		s := old.successorOf()
		w.Block(func(w *ike.RecordWriter) {
			w.SAID(old.in)
			writeChild(w, s.c)
			writeUserSA(w, &s.out)
			w.Time(s.due)
			w.Bool(s.resent)
			w.Bytes(s.qm3)
		})
	}
}

// writeChild writes what a child SA's record holds.
func writeChild(w *ike.RecordWriter, c *childSA) {
	w.SAID(c.in)
	w.SAID(c.out)
	w.Transform(c.transform)
	w.U16(c.pfs)
	w.Lifetime(c.lifetime)
	w.Bool(c.encap)
	w.Bool(c.initiator)
	w.Time(c.created)
	w.Selector(c.local())
	w.Selector(c.remote())
}

// readChild reads a child SA of format; format 1 has no selectors (adopt
// gives such a child its tunnel's).
func readChild(r *ike.RecordReader, format int, sa *ikeSA) *childSA {
	c := &childSA{ikesa: sa, own: new(selectorPair)} // until adopted
	c.in, c.out, c.transform = r.SAID(), r.SAID(), r.Transform()
	c.pfs, c.lifetime = r.U16(), r.Lifetime()
	c.encap, c.initiator, c.created = r.Bool(), r.Bool(), r.Time()
	if format >= 2 {
		c.own.local, c.own.remote = r.Selector(), r.Selector()
	}
	return c
}

// writeUserSA writes the outbound SA a waiting pair will install.
func writeUserSA(w *ike.RecordWriter, u *ike.UserSA) {
	w.String(u.Tunnel)
	w.Bool(u.Inbound)
	w.Transform(u.Transform)
	w.Addr(u.Src)
	w.Addr(u.Dst)
	w.Bool(u.UDPEncap)
	w.U16(u.SrcPort)
	w.U16(u.DstPort)
	w.Bytes(u.CipherKey)
	w.Bytes(u.AuthKey)
	w.Lifetime(u.Soft)
	w.Lifetime(u.Hard)
	w.SelectorSet(u.Local)
	w.SelectorSet(u.Remote)
	w.U16(uint16(u.PFSGroup))
	w.U8(uint8(u.Mode))
	w.Bool(u.ESN)
}

func readUserSA(r *ike.RecordReader) ike.UserSA {
	var u ike.UserSA
	u.Tunnel, u.Inbound, u.Transform = r.String(), r.Bool(), r.Transform()
	u.Src, u.Dst = r.Addr(), r.Addr()
	u.UDPEncap, u.SrcPort, u.DstPort = r.Bool(), r.U16(), r.U16()
	u.CipherKey, u.AuthKey = r.Bytes(), r.Bytes()
	u.Soft, u.Hard = r.Lifetime(), r.Lifetime()
	u.Local, u.Remote = r.SelectorSet(), r.SelectorSet()
	u.PFSGroup = int(r.U16())
	u.Mode = ipsec.Mode(r.U8())
	u.ESN = r.Bool()
	return u
}

// importedSuccessor is a waiting pair read back: the pair it replaces is
// the child whose inbound SA is replaces.
type importedSuccessor struct {
	replaces ipsec.SAID
	c        *childSA
	out      ike.UserSA
	due      time.Time
	resent   bool
	qm3      []byte
}

// readSuccessors reads the waiting pairs of a format 2 record.
func readSuccessors(r *ike.RecordReader, sa *ikeSA) []importedSuccessor {
	n := r.U8()
	var out []importedSuccessor
	for range n {
		var s importedSuccessor
		r.Block("waiting pair", func(r *ike.RecordReader) {
			s.replaces = r.SAID()
			s.c = readChild(r, 2, sa)
			s.out = readUserSA(r)
			s.due, s.resent, s.qm3 = r.Time(), r.Bool(), r.Bytes()
		})
		out = append(out, s)
	}
	return out
}

// checkSuccessor refuses a waiting pair the daemon could not switch to.
func checkSuccessor(s *importedSuccessor) error {
	if s.out.Inbound || s.out.Dst != s.c.out.Dst || s.c.in.SPI == 0 || s.c.out.SPI == 0 || len(s.qm3) == 0 {
		return fmt.Errorf("%w: waiting pair %s: inconsistent", ike.ErrImport, hexSPI(s.c.in.SPI))
	}
	return nil
}

func (s *importedSuccessor) zero() {
	clear(s.out.CipherKey)
	clear(s.out.AuthKey)
}

// adoptSuccessorsLocked makes the imported waiting pairs wait again, each
// behind the adopted child it replaces, and returns the switches to arm
// once Daemon.mu is let go: each for what was left of its wait (at once
// when that is past). A pair whose inbound SA the installer does not hold
// (ready: false), or whose old pair was not adopted, is dropped: its
// tunnel rekeys on schedule. Daemon.mu must be held.
func (d *Daemon) adoptSuccessorsLocked(sa *ikeSA, ss []importedSuccessor, ready map[ipsec.SAID]bool, now time.Time) []func() {
	var arm []func()
	for i := range ss {
		s := &ss[i]
		old := d.childLocked(s.replaces)
		if old == nil || old.in != s.replaces || old.ikesa != sa || !ready[s.c.in] {
			d.log.Warn("imported rekey waiting to take over left out", "spi_in", hexSPI(s.c.in.SPI))
			s.zero()
			continue
		}
		c := s.c
		c.tu = old.tu
		plan := &qmPlan{tu: old.tu, local: c.local(), remote: c.remote(), replaces: old}
		c.setSelectors(c.local(), c.remote())
		old.pend().successor = &successor{c: c, out: s.out, plan: plan, due: s.due, qm3: s.qm3, resent: s.resent}
		d.pendingIn[c.in] = old
		wait := max(0, s.due.Sub(now))
		d.log.Info("imported rekey waiting to take over", "tunnel", old.tu.cfg.Name, "spi_in", hexSPI(c.in.SPI), "in", wait)
		arm = append(arm, func() { d.armSwitch(old, sa, wait) })
	}
	return arm
}
