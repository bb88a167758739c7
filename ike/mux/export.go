package mux

import (
	"errors"
	"fmt"

	"github.com/ismgw/ism/ike"
)

// Export and import of IKE SAs (ike.Exporter) through the multiplexer: a
// record goes to the daemon of its version, each version exports its own.

var _ ike.Exporter = (*Daemon)(nil)

// exporter returns version v's daemon as an Exporter, or nil.
func (m *Daemon) exporter(v int) ike.Exporter {
	e, _ := m.daemon(v).(ike.Exporter)
	return e
}

// Export returns both versions' IKE SAs of the tunnels match accepts.
func (m *Daemon) Export(match func(tunnel string) bool) ([]ike.SAState, error) {
	var out []ike.SAState
	for _, v := range Versions {
		e := m.exporter(v)
		if e == nil {
			continue
		}
		states, err := e.Export(match)
		if err != nil {
			for i := range out {
				out[i].Zero()
			}
			return nil, fmt.Errorf("IKEv%d: %w", v, err)
		}
		out = append(out, states...)
	}
	return out, nil
}

// CanImport reports whether the daemon of s's version takes it.
func (m *Daemon) CanImport(s ike.SAState) bool {
	e := m.exporter(int(s.Version))
	return e != nil && e.CanImport(s)
}

// Import hands each version's records to its daemon. A record of a version
// that runs no daemon is refused (wrapping ike.ErrImport); the others are
// imported all the same.
func (m *Daemon) Import(states []ike.SAState, o ike.ImportOptions) error {
	byVersion := map[int][]ike.SAState{}
	var errs []error
	for _, s := range states {
		if m.exporter(int(s.Version)) == nil {
			errs = append(errs, fmt.Errorf("%w: no IKEv%d daemon runs", ike.ErrImport, s.Version))
			continue
		}
		byVersion[int(s.Version)] = append(byVersion[int(s.Version)], s)
	}
	for _, v := range Versions {
		if len(byVersion[v]) == 0 {
			continue
		}
		if err := m.exporter(v).Import(byVersion[v], o); err != nil {
			errs = append(errs, fmt.Errorf("IKEv%d: %w", v, err))
		}
	}
	return errors.Join(errs...)
}

// Forget has both daemons forget the tunnels match accepts.
func (m *Daemon) Forget(match func(tunnel string) bool) {
	for _, v := range Versions {
		if e := m.exporter(v); e != nil {
			e.Forget(match)
		}
	}
}
