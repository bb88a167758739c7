package v2

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/ismgw/ism/ike"
	"github.com/ismgw/ism/ipsec"
)

// The import half of ike.Exporter (export.go): records read back, IKE SAs
// adopted with their child SAs and timers, and Forget.

// readRecord decodes a record into an IKE SA of this daemon, not yet
// published, its keys checked.
func (d *Daemon) readRecord(data []byte) (*imported, error) {
	r := ike.NewRecordReader(data)
	im := &imported{at: r.Time()}
	sa := &ikeSA{d: d, state: stateEstablished, stateShadow: stateEstablished, suite: &suite{}}
	sa.spiI, sa.spiR = r.U64(), r.U64()
	for _, b := range []*bool{&sa.initiator, &sa.natt, &sa.localNAT, &sa.remoteNAT, &sa.forceEncap, &sa.frag.on} {
		*b = r.Bool()
	}
	sa.frag.mtu = int32(min(r.U32(), math.MaxInt32))
	sa.local, sa.remote = r.AddrPort(), r.AddrPort()
	su := sa.suite // the record's own until checked, then interned
	su.encr = encrFunc{id: r.U16(), keyBits: int(r.U16()), aeadICV: int(r.U8())}
	prfID, integID := r.U16(), r.U16()
	su.group = int(r.U16())
	for n := r.U8(); n > 0; n-- {
		su.addke = append(su.addke, int(r.U16()))
	}
	sa.authMethod = ike.AuthMethod(r.U8())
	su.lifetime, su.auth = r.Duration(), sa.authMethod
	var keys [7][]byte
	for i := range keys {
		keys[i] = r.Bytes()
	}
	_, _ = r.Bytes(), r.Bytes() // the nonces, not kept (export.go)
	defer func() {
		for _, b := range keys {
			clear(b)
		}
	}()
	sa.remoteID, sa.localID = r.Identity(), r.Identity()
	sa.win.nextID, sa.win.expect = r.U32(), r.U32()
	created := r.Time()
	sa.created = d.sched.stamp(created)
	sa.rekeys = r.U32()
	for n := r.U8(); n > 0; n-- {
		c := &childSA{sa: sa}
		var ic importedChild
		r.Block("child SA", func(r *ike.RecordReader) {
			c.tunnel, ic.onBackup = r.String(), r.Bool()
			c.in, c.out, c.transform = r.SAID(), r.SAID(), r.Transform()
			c.mode, c.esn, c.encap = ipsec.Mode(r.U8()), r.Bool(), r.Bool()
			c.local, c.remote = r.SelectorSet(), r.SelectorSet()
			c.pfs, c.lifetime, c.created = int(r.U16()), r.Lifetime(), d.sched.stamp(r.Time())
		})
		ic.c = c
		im.children = append(im.children, ic)
	}
	im.sa = sa
	if err := r.Err(true); err != nil {
		return nil, err
	}
	if created.IsZero() {
		return nil, fmt.Errorf("%w: %s: no creation time", ike.ErrImport, sa)
	}
	var err error
	if sa.keys, err = packKeys(keys); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ike.ErrImport, sa, err)
	}
	sa.keys.dropAuth() // a record of an older daemon has them
	if err := checkRecord(sa, prfID, integID); err != nil {
		sa.keys.zero()
		return nil, err
	}
	sa.suite = d.suites.get(*sa.suite)
	return im, nil
}

// checkRecord completes the suite of a record's SA from its transform IDs
// and checks its keys, refusing what the daemon could not run.
func checkRecord(sa *ikeSA, prfID, integID uint16) error {
	su := sa.suite
	var ok bool
	if su.prf, ok = lookupPRF(prfID); !ok {
		return fmt.Errorf("%w: %s: PRF %d", ike.ErrImport, sa, prfID)
	}
	if integID != 0 {
		if su.integ, ok = lookupInteg(integID); !ok {
			return fmt.Errorf("%w: %s: integrity algorithm %d", ike.ErrImport, sa, integID)
		}
	}
	switch {
	case sa.spiI == 0 || sa.spiR == 0:
		return fmt.Errorf("%w: zero SPI", ike.ErrImport)
	case !sa.local.IsValid() || !sa.remote.IsValid():
		return fmt.Errorf("%w: %s: endpoints", ike.ErrImport, sa)
	case sa.lifetime() <= 0:
		return fmt.Errorf("%w: %s: no lifetime", ike.ErrImport, sa)
	case len(sa.keys.d()) != su.prf.size():
		return fmt.Errorf("%w: %s: SK_d of the wrong length", ike.ErrImport, sa)
	}
	if _, ok := ike.LookupGroup(su.group); !ok {
		return fmt.Errorf("%w: %s: DH group %d", ike.ErrImport, sa, su.group)
	}
	if err := sa.checkKeys(); err != nil {
		return fmt.Errorf("%w: %s: %w", ike.ErrImport, sa, err)
	}
	return nil
}

// adopt makes an imported IKE SA and the child SAs whose IPsec SAs the
// installer holds the daemon's own, unless it has that SA already, and
// arms their timers where the record left them.
func (d *Daemon) adopt(im *imported, resync uint32) {
	sa := im.sa
	var kids []importedChild
	for _, ic := range im.children {
		_, errIn := d.inst.QuerySA(ic.c.in)
		_, errOut := d.inst.QuerySA(ic.c.out)
		if errIn != nil || errOut != nil {
			d.log.Warn("imported child SA not installed: left out", "tunnel", ic.c.tunnel, "spi_in", hexSPI(ic.c.in.SPI))
			continue
		}
		kids = append(kids, ic)
	}
	sa.lock()
	defer sa.unlock()
	d.mu.Lock()
	if d.sas[sa.localSPI()] != nil || d.closed {
		d.mu.Unlock()
		sa.keys.zero()
		return
	}
	now := d.clk.Now()
	sa.lastHeard, sa.resync, sa.resyncOut = d.sched.stamp(now), resync, true
	d.putSALocked(sa)
	var up []string
	for _, ic := range kids {
		c := ic.c
		tu := d.tunnels[c.tunnel]
		if tu == nil {
			continue
		}
		sa.children = append(sa.children, c)
		d.fileChildLocked(c, true)
		tu.children = append(tu.children, c)
		slices.SortFunc(tu.children, func(a, b *childSA) int { return cmp.Compare(a.created, b.created) })
		tu.peer, tu.onBackup, tu.acq, tu.lastError = sa.remote, ic.onBackup, nil, ""
		d.indexTunnelLocked(tu)
		if tu.state != tunnelUp {
			tu.state = tunnelUp
			up = append(up, c.tunnel)
		}
	}
	d.mu.Unlock()
	for _, c := range sa.children {
		if c.lifetime.Time > 0 {
			soft, _ := ike.Deadline(d.sched.time(c.created).Add(d.jitter(c.lifetime.Time)), now, 0)
			d.armLifetime(c, soft)
		}
	}
	soft, _ := ike.Deadline(sa.createdAt().Add(d.jitter(sa.lifetime())), now, 0)
	sa.armLifetime(soft)
	sa.armKeepalive()
	sa.armLiveness()
	d.log.Info("IKE SA imported", "sa", sa.String(), "children", len(sa.children))
	for _, name := range up {
		remote := sa.remote
		sa.after(func() {
			if d.lis != nil {
				d.lis.TunnelUp(name, remote)
			}
		})
	}
}

// Forget drops the matched tunnels' child SAs and the IKE SAs they and
// their sources use, telling neither the peer nor the Installer.
func (d *Daemon) Forget(match func(tunnel string) bool) {
	d.mu.Lock()
	sources := map[string]bool{}
	for name, tu := range d.tunnels {
		if match == nil || match(name) {
			sources[tu.cfg.Source.String()] = true
			tu.state, tu.acq, tu.lastError = tunnelDown, nil, "handed to another node"
		}
	}
	var drop []*ikeSA
	for _, sa := range d.sas {
		if sources[sa.local.Addr().String()] {
			drop = append(drop, sa)
		}
	}
	for _, sa := range d.halfOpen {
		if sources[sa.local.Addr().String()] && !slices.Contains(drop, sa) {
			drop = append(drop, sa)
		}
	}
	d.mu.Unlock()
	for _, sa := range drop {
		sa.lock()
		for _, c := range slices.Clone(sa.children) {
			sa.forgetChild(c)
		}
		sa.successor = nil
		sa.destroy("handed to another node")
		sa.fx = nil // nothing of the SA's reaches the Installer, the peer or the Listener
		sa.unlock()
	}
}
