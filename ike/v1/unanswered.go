package v1

import "time"

// dropUnansweredIKESA handles a quick mode this end started on sa at
// start that got no answer after every retransmission. When nothing at
// all came in on sa meanwhile, the peer no longer has it: it restarted,
// or lost its state, and its deletes never arrived (a crash; a burst of
// deletes over a full socket). The SA goes (a delete is sent, in case the
// peer only was too busy), so that the next negotiation of any tunnel
// with that peer, the back-off's retry of a rekey or the next acquire,
// starts a new phase 1 instead of failing on it until it expires (a day,
// by default). Where dead peer detection watches the peer, it is left to
// declare the peer dead (its R-U-THERE on the SA goes unanswered as
// well), so that the DPD events and failover stay its. RFC 7296 §2.4 says
// as much for IKEv2, which ike/v2 does (peerGone); charon does the same
// for IKEv1 when a retransmission of any exchange times out.
func (d *Daemon) dropUnansweredIKESA(sa *ikeSA, start time.Time) {
	d.mu.Lock()
	watched := sa.peerDPD && d.dpd[sa.peer()] != nil
	silent := !sa.dead && !sa.lastRecv.After(start) && !watched
	local, remote := sa.local, sa.remote
	d.mu.Unlock()
	if !silent {
		return
	}
	d.log.Info("IKE SA dropped: the peer answered nothing on it", "local", local, "remote", remote, "sa", sa.String())
	d.deleteIKESA(sa)
}
