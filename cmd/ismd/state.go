package main

import (
	"errors"
	"log/slog"
	"sync/atomic"

	"github.com/ismgw/ism/checkpoint"
	"github.com/ismgw/ism/ism"
	"github.com/ismgw/ism/ism/config"
)

// The state file (issue 11, §1): the SAs of the tunnels outside cluster
// groups, checkpointed on the configured schedule and read back when the
// daemon starts, so that its tunnels resume where they left off.

// stateFile opens the state file the configuration names, nil when
// checkpoints are off. It locks the state directory for the daemon's
// life: a second daemon given the same one is refused (ErrStateInUse).
// Its errors name the configuration line.
func stateFile(cfg *config.Config) (*checkpoint.StateFile, error) {
	ck := cfg.Checkpoint
	if ck.Off {
		return nil, nil
	}
	sf, err := checkpoint.OpenStateFile(ck.StateDir, checkpoint.KeyConfig{File: ck.KeyFile})
	if err != nil {
		line := ck.KeyFileLine
		switch {
		case errors.Is(err, checkpoint.ErrStateInUse):
			line = ck.StateDirLine
		case line == 0 || errors.Is(err, checkpoint.ErrKeyBesideState):
			line = max(ck.StateDirLine, line)
		}
		return nil, config.Error{File: cfg.File, Line: line, Msg: err.Error()}
	}
	return sf, nil
}

// loadState reads the last checkpoint; nil on a first start or when the
// file cannot be used (said in the log: the tunnels start afresh).
func loadState(sf *checkpoint.StateFile, log *slog.Logger) *ism.Resume {
	if sf == nil {
		return nil
	}
	st, err := sf.Load()
	switch {
	case errors.Is(err, checkpoint.ErrNoState):
		log.Info("no state file: the tunnels start afresh", "file", sf.Path())
		return nil
	case err != nil:
		log.Error("state file not used: the tunnels start afresh", "file", sf.Path(), "err", err)
		return nil
	}
	log.Info("resuming from the state file", "file", sf.Path(), "written", st.Written, "tunnels", len(st.Tunnels))
	return &ism.Resume{State: st}
}

// checkpoints writes the gateway's tunnels outside cluster groups to the
// state file on the configured schedule.
type checkpoints struct {
	c *checkpoint.Checkpointer
	// stopping leaves the signaled tunnels out: at a clean stop their IKE
	// SAs are deleted (their peers are told), so they negotiate afresh;
	// the manual tunnels' SAs, which the peers keep, resume.
	stopping atomic.Bool
}

// startCheckpoints takes a first checkpoint at once and then one every
// period; nil when checkpoints are off.
func startCheckpoints(cfg *config.Config, sf *checkpoint.StateFile, g *ism.Gateway, log *slog.Logger) *checkpoints {
	if sf == nil {
		return nil
	}
	cp := &checkpoints{}
	cp.c = checkpoint.NewCheckpointer(checkpoint.Config{Period: cfg.Checkpoint.Interval, Sink: sf.Save,
		Logger: log.With("component", "checkpoint"), Source: func() ([]checkpoint.Tunnel, error) {
			ts, err := g.CheckpointLocal()
			if err != nil || !cp.stopping.Load() {
				return ts, err
			}
			kept := ts[:0]
			for _, t := range ts {
				if len(t.IKE) == 0 {
					kept = append(kept, t)
				} else {
					t.Zero()
				}
			}
			return kept, nil
		}})
	if err := cp.c.Checkpoint(); err != nil {
		log.Warn("first checkpoint failed", "err", err)
	}
	cp.c.Start()
	return cp
}

// stop ends the schedule with a last checkpoint of the manual tunnels.
func (cp *checkpoints) stop() error {
	if cp == nil {
		return nil
	}
	cp.stopping.Store(true)
	cp.c.Stop()
	return cp.c.Checkpoint()
}
