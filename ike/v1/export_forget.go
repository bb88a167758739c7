package v1

// Forget drops the matched tunnels' child SAs and the IKE SAs they and
// their sources use, telling neither the peer nor the Installer.
func (d *Daemon) Forget(match func(tunnel string) bool) {
	d.mu.Lock()
	picked, sources := d.matchLocked(match)
	drop := map[*ikeSA]bool{}
	for _, tu := range picked {
		for _, c := range append([]*childSA(nil), tu.children...) {
			if c.ikesa != nil {
				drop[c.ikesa] = true
			}
			if s := c.successorOf(); s != nil && !s.done { // its switch does nothing now
				s.done = true
				delete(d.pendingIn, s.c.in)
			}
			d.stopChildLocked(c)
		}
		if tu.sa != nil {
			drop[tu.sa] = true
		}
		tu.state, tu.sa, tu.acq, tu.qm = stateDown, nil, nil, ""
		tu.lastError = "handed to another node"
	}
	for _, sa := range d.sas {
		if sources[sa.local.Addr()] {
			drop[sa] = true
		}
	}
	for _, sa := range d.halfOpen {
		if sources[sa.local.Addr()] {
			drop[sa] = true
		}
	}
	for key, p := range d.dpd {
		if sources[key.local] {
			if p.timer != nil {
				p.timer.Stop()
			}
			delete(d.dpd, key)
		}
	}
	d.mu.Unlock()
	for sa := range drop {
		d.removeIKESA(sa)
	}
}
