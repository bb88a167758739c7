package offload

// setState sets bit and reports whether this call set it.
func (sa *SA) setState(bit uint32) bool {
	for {
		old := sa.state.Load()
		if old&bit != 0 {
			return false
		}
		if sa.state.CompareAndSwap(old, old|bit) {
			return true
		}
	}
}

// admit checks that the SA may carry a packet now.
func (sa *SA) admit(now int64) DropReason {
	if sa.state.Load()&(stateHard|stateOverflow|stateDeleted) != 0 || sa.aged {
		return sa.admitAged(now)
	}
	return NotDropped // the common case, inlined
}

// admitAged is admit for an SA that has an age limit or is unusable.
func (sa *SA) admitAged(now int64) DropReason {
	if s := sa.state.Load(); s&(stateHard|stateOverflow|stateDeleted) != 0 {
		if s&stateOverflow != 0 {
			return DropSeqOverflow
		}
		if s&stateDeleted != 0 {
			return DropNoSA
		}
		return DropLifetime
	}
	if sa.hardAt != 0 && now >= sa.hardAt {
		sa.expire(true, CauseAge)
		return DropLifetime
	}
	if sa.softAt != 0 && now >= sa.softAt {
		sa.expire(false, CauseAge)
	}
	return NotDropped
}

// account counts packets and bytes the SA carried (a burst's worth) and
// fires the lifetime events they cross. A hard limit crossed by a packet
// still lets that packet through; the ones after it are refused by admit.
func (sa *SA) account(pkts, bytes uint64, now int64) {
	pk := sa.stats.Packets.Add(pkts)
	by := sa.stats.Bytes.Add(bytes)
	sa.used.Store(now)
	l := &sa.cfg.Limits
	if l.Soft.Bytes|l.Soft.Packets|l.Hard.Bytes|l.Hard.Packets == 0 {
		return
	}
	switch {
	case l.Hard.Bytes != 0 && by >= l.Hard.Bytes:
		sa.expire(true, CauseBytes)
	case l.Hard.Packets != 0 && pk >= l.Hard.Packets:
		sa.expire(true, CausePackets)
	}
	switch {
	case l.Soft.Bytes != 0 && by >= l.Soft.Bytes:
		sa.expire(false, CauseBytes)
	case l.Soft.Packets != 0 && pk >= l.Soft.Packets:
		sa.expire(false, CausePackets)
	}
}

// refund takes back traffic accounted for packets that were dropped after
// all (a Pipeline accounts outbound packets when it prepares them). Events
// already fired stay fired.
func (sa *SA) refund(pkts, bytes uint64) {
	sa.stats.Packets.Add(-pkts)
	sa.stats.Bytes.Add(-bytes)
}

// overLimit reports whether the SA has already carried its hard limit,
// counting pending packets and bytes not yet accounted.
func (sa *SA) overLimit(pendPkts, pendBytes uint64) (bool, Cause) {
	l := &sa.cfg.Limits.Hard
	if l.Bytes != 0 && sa.stats.Bytes.Load()+pendBytes >= l.Bytes {
		return true, CauseBytes
	}
	if l.Packets != 0 && sa.stats.Packets.Load()+pendPkts >= l.Packets {
		return true, CausePackets
	}
	return false, 0
}

// hasLimits reports whether the SA has a packet or byte limit.
func (sa *SA) hasLimits() bool {
	l := &sa.cfg.Limits
	return l.Hard.Bytes|l.Hard.Packets|l.Soft.Bytes|l.Soft.Packets != 0
}

// expire sets the soft or hard state once and posts the event.
func (sa *SA) expire(hard bool, cause Cause) {
	bit, kind := uint32(stateSoft), EventSoftExpire
	if hard {
		bit, kind = stateHard, EventHardExpire
	}
	if sa.setState(bit) {
		sa.e.notify(Event{Kind: kind, Cause: cause, SA: sa})
	}
}
