package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
)

// logDirEnv names, in a responding process's environment, the directory
// its gateway writes its log into (see ScaleOptions.LogDir).
const logDirEnv = "ISMBENCH_LOG_DIR"

var logSeq atomic.Int32

// openGatewayLog creates a new file for a gateway's full log in dir:
// gateway-PID-N.log.
func openGatewayLog(dir string) (*os.File, error) {
	name := fmt.Sprintf("gateway-%d-%d.log", os.Getpid(), logSeq.Add(1))
	return os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
}

// teeHandler gives every record to up (which picks what it counts) and
// to full, which writes them all. Safe for concurrent use as its parts are.
type teeHandler struct {
	up   *upLog
	full slog.Handler
}

func (t teeHandler) Enabled(context.Context, slog.Level) bool { return true }

func (t teeHandler) Handle(ctx context.Context, r slog.Record) error {
	_ = t.up.Handle(ctx, r)
	return t.full.Handle(ctx, r)
}

// WithAttrs keeps the attributes for the full log; upLog reads only the
// records' own.
func (t teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{t.up, t.full.WithAttrs(as)}
}

func (t teeHandler) WithGroup(g string) slog.Handler { return teeHandler{t.up, t.full.WithGroup(g)} }
