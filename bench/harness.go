package bench

import (
	"errors"
	"fmt"
)

// harness runs a setup-heavy benchmark the way a test runs: netlab reports
// to it, a fatal error ends the run with that error, and cleanups run at
// the end whatever happened. It implements netlab.TB.
type harness struct {
	cleanups []func()
}

type fatal struct{ err error }

func (h *harness) Helper()                           {}
func (h *harness) Logf(string, ...any)               {}
func (h *harness) Cleanup(f func())                  { h.cleanups = append(h.cleanups, f) }
func (h *harness) Fatalf(format string, args ...any) { panic(fatal{fmt.Errorf(format, args...)}) }
func (h *harness) Skip(args ...any)                  { panic(fatal{errors.New(fmt.Sprint(args...))}) }

// run calls fn and returns the error it ended with, after the cleanups.
func (h *harness) run(fn func()) (err error) {
	defer func() {
		for i := len(h.cleanups) - 1; i >= 0; i-- {
			h.cleanups[i]()
		}
		if r := recover(); r != nil {
			f, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			err = f.err
		}
	}()
	fn()
	return nil
}
