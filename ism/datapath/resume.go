package datapath

import (
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload"
)

// Resumer is implemented by a Path whose SAs can be checkpointed and
// resumed where they left off (issue 11): a restarted gateway, or a
// cluster node taking a tunnel group over.
type Resumer interface {
	// Checkpoint returns the path's SAs, each with its keys in fresh
	// memory (the caller seals and zeroes them), its sequence state and
	// the lifetime it used, read consistently (offload.SA.Snapshot).
	Checkpoint() ([]SAState, error)
	// ResumeSA installs an SA as AddSA does, its state continuing r: an
	// outbound SA's first packet carries r.After+1, an inbound SA's
	// window is r.Replay, and its lifetimes count r.Used as used.
	ResumeSA(sa *SA, r offload.Resume) error
}

// SAState is an SA as a checkpoint takes it.
type SAState struct {
	SA           SA // with its keys
	Mode         ipsec.Mode
	ReplayWindow int
	Snapshot     offload.SeqSnapshot
}
