package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// Error is one problem in a configuration file, at a line (0 when the
// problem is the file as a whole).
type Error struct {
	File string
	Line int
	Msg  string
}

// Error returns "FILE:LINE: message".
func (e Error) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Pos is where something was declared: a file and a 1-based line.
type Pos struct {
	File string
	Line int
}

// String returns "FILE:LINE".
func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// errorList collects the errors of one file.
type errorList struct {
	file string
	errs []Error
}

func (l *errorList) add(line int, format string, args ...any) {
	l.errs = append(l.errs, Error{File: l.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// err returns the errors sorted by line (stable, so errors of one line keep
// their order) and joined, or nil.
func (l *errorList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(l.errs, func(a, b Error) int { return cmp.Compare(a.Line, b.Line) })
	errs := make([]error, len(l.errs))
	for i, e := range l.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}
