package bench

import (
	"errors"
	"fmt"
	"sync"
)

// running holds the harnesses of benchmarks in progress, for Abort.
var running struct {
	sync.Mutex
	m map[*harness]bool
}

// Abort runs the cleanups of every benchmark in progress (namespaces,
// processes); the caller exits right after. cmd/ismbench calls it on
// SIGINT and SIGTERM.
func Abort() {
	running.Lock()
	defer running.Unlock()
	for h := range running.m {
		h.cleanup()
	}
}

// harness runs a setup-heavy benchmark the way a test runs: netlab reports
// to it, a fatal error ends the run with that error, and cleanups run at
// the end whatever happened. It implements netlab.TB.
type harness struct {
	cleanups []func()
}

type fatal struct{ err error }

func (h *harness) Helper()             {}
func (h *harness) Logf(string, ...any) {}
func (h *harness) Cleanup(f func()) {
	running.Lock()
	h.cleanups = append(h.cleanups, f)
	running.Unlock()
}
func (h *harness) Fatalf(format string, args ...any) { panic(fatal{fmt.Errorf(format, args...)}) }
func (h *harness) Skip(args ...any)                  { panic(fatal{errors.New(fmt.Sprint(args...))}) }

// TempDir and Failed complete etcdlab.TB: a directory removed at the end,
// and never failed (a failure ends the run at once).
func (h *harness) TempDir() string { return tempDir(h) }
func (h *harness) Failed() bool    { return false }

func (h *harness) cleanup() {
	for i := len(h.cleanups) - 1; i >= 0; i-- {
		h.cleanups[i]()
	}
	h.cleanups = nil
}

// run calls fn and returns the error it ended with, after the cleanups.
func (h *harness) run(fn func()) (err error) {
	running.Lock()
	if running.m == nil {
		running.m = map[*harness]bool{}
	}
	running.m[h] = true
	running.Unlock()
	defer func() {
		running.Lock()
		delete(running.m, h)
		h.cleanup()
		running.Unlock()
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
