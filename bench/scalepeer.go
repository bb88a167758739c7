package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ismgw/ism/ism"
	"github.com/ismgw/ism/ism/config"
	"golang.org/x/sys/unix"
)

// gwStats is what the scale and soak runs read of one gateway: its
// tunnels and SAs, its IKE counters, and its process's memory, goroutines
// and file descriptors (of the whole process when the gateway shares it).
type gwStats struct {
	Up          int    `json:"up"`      // distinct tunnels logged up since the start
	UpNow       int    `json:"up_now"`  // tunnels up now
	Tunnels     int    `json:"tunnels"` // configured
	SAs         int    `json:"sas"`
	Failures    int    `json:"failures"` // negotiations that failed
	Rekeys      uint64 `json:"rekeys"`   // SAs installed beyond each tunnel's first
	Retransmits uint64 `json:"retransmits"`
	Downs       int    `json:"downs"` // "tunnel down" records
	LastDown    string `json:"last_down,omitempty"`
	HeapLive    uint64 `json:"heap_live"`   // after a full collection
	HeapInUse   uint64 `json:"heap_in_use"` // heap spans and stacks in use
	// BufferBytes is what of the heap the data path's pipelines hold in
	// packet buffers (by socket, device and lane, not by tunnel).
	BufferBytes int64    `json:"buffer_bytes"`
	RSS         uint64   `json:"rss"`
	Goroutines  int      `json:"goroutines"`
	FDs         int      `json:"fds"`
	LeakedSAs   int      `json:"leaked_sas"`             // "full SECONDS": SAs older, or beyond three pairs a tunnel
	LeakedWhere []string `json:"leaked_where,omitempty"` // the tunnels with LeakedSAs
	Malformed   int      `json:"malformed"`              // quick modes refused as malformed: messages it could not decrypt or parse
	// Drops are the data path's dropped packets by where and reason
	// ("inbound replay", "gateway no-sa"), of the tunnels configured now
	// and the gateway's own (full readings).
	Drops map[string]uint64 `json:"drops,omitempty"`
	Error string            `json:"error,omitempty"`
}

// upLog is a gateway's logger during a scale or soak run: it records when
// each tunnel ("ipsec:tN") was first logged up, counts the later "tunnel
// up" records (rekeys and re-negotiations) and the failed negotiations,
// and drops everything. Safe for concurrent use.
type upLog struct {
	mu       sync.Mutex
	upAt     map[int]time.Time
	again    uint64
	failures int
	refused  int // quick modes refused as malformed
	downs    int
	lastDown string // the reason of the last "tunnel down"
	changed  chan struct{}
}

func newUpLog() *upLog {
	return &upLog{upAt: map[int]time.Time{}, changed: make(chan struct{}, 1)}
}

func (l *upLog) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelInfo }

func (l *upLog) Handle(_ context.Context, r slog.Record) error {
	switch r.Message {
	case "tunnel up":
		i := -1
		r.Attrs(func(a slog.Attr) bool {
			if a.Key != "tunnel" {
				return true
			}
			if n, err := strconv.Atoi(strings.TrimPrefix(a.Value.String(), "ipsec:t")); err == nil {
				i = n
			}
			return false
		})
		l.mu.Lock()
		if _, ok := l.upAt[i]; ok {
			l.again++
		} else {
			l.upAt[i] = r.Time
		}
		l.mu.Unlock()
		select {
		case l.changed <- struct{}{}:
		default:
		}
	case "quick mode refused":
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" && strings.Contains(a.Value.String(), "malformed") {
				l.mu.Lock()
				l.refused++
				l.mu.Unlock()
			}
			return true
		})
	case "IKE: negotiation failed":
		l.mu.Lock()
		l.failures++
		l.mu.Unlock()
	case "tunnel down", "IKE: tunnel down":
		var reason string
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "reason" {
				reason = a.Value.String()
			}
			return true
		})
		l.mu.Lock()
		l.downs++
		l.lastDown = reason
		l.mu.Unlock()
	}
	return nil
}

func (l *upLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *upLog) WithGroup(string) slog.Handler      { return l }

// times returns when each tunnel first came up, unordered.
// reserve makes room for n tunnels' up times, so that the log's own
// growth during a run is not counted in the gateway's heap per tunnel.
func (l *upLog) reserve(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	upAt := make(map[int]time.Time, n)
	maps.Copy(upAt, l.upAt)
	l.upAt = upAt
}

func (l *upLog) times() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]time.Time, 0, len(l.upAt))
	for _, t := range l.upAt {
		out = append(out, t)
	}
	return out
}

// scaleGateway is one gateway of a run with what its upLog saw. It is not
// safe for concurrent use.
type scaleGateway struct {
	g    *ism.Gateway
	log  *upLog
	file *os.File // the full log, or nil
}

// newScaleGateway starts a gateway; with logDir, its whole log (debug
// level) goes to a file of its own there too.
func newScaleGateway(cfg *config.Config, logDir string) (*scaleGateway, error) {
	s := &scaleGateway{log: newUpLog()}
	var h slog.Handler = s.log
	if logDir != "" {
		f, err := openGatewayLog(logDir)
		if err != nil {
			return nil, err
		}
		s.file = f
		h = teeHandler{s.log, slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})}
	}
	g, err := ism.New(cfg, ism.Options{Logger: slog.New(h), NoXFRM: true})
	if err != nil {
		s.close()
		return nil, err
	}
	s.g = g
	return s, nil
}

// close closes the gateway and its log.
func (s *scaleGateway) close() {
	if s.g != nil {
		s.g.Close()
	}
	if s.file != nil {
		s.file.Close()
	}
}

// stats reads the gateway's counters; with full, also the tunnels and SAs
// up now and the process's memory after a collection (each walks every
// tunnel or the whole heap).
func (s *scaleGateway) stats(full bool) gwStats {
	s.log.mu.Lock()
	st := gwStats{Up: len(s.log.upAt), Failures: s.log.failures, Malformed: s.log.refused, Rekeys: s.log.again, Downs: s.log.downs, LastDown: s.log.lastDown}
	s.log.mu.Unlock()
	st.Goroutines = runtime.NumGoroutine()
	st.FDs = countFDs()
	st.RSS = selfRSS()
	if !full {
		return st
	}
	gs := s.g.Statistics()
	st.UpNow, st.Tunnels, st.SAs = gs.TunnelsUp, gs.Tunnels, gs.SAs
	st.BufferBytes = gs.Pipelines.BufferBytes
	st.Drops = map[string]uint64{}
	for where, m := range map[string]map[string]uint64{"gateway": gs.Gateway, "inbound": gs.Inbound.Drops, "outbound": gs.Outbound.Drops} {
		for reason, n := range m {
			st.Drops[where+" "+reason] += n
		}
	}
	if gs.IKE != nil {
		st.Retransmits = gs.IKE.Retransmits
	}
	m := readMemory()
	st.HeapLive, st.HeapInUse = m.live, m.inUse
	return st
}

// countFDs is the number of this process's open file descriptors.
func countFDs() int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(es)
}

// selfRSS is this process's resident set size, from /proc/self/statm.
func selfRSS() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// ServeScalePeer runs the responding gateway of `ismbench scale` and
// `soak` in a process of its own, so that its CPU time and memory are
// measured apart from the initiator's: it builds the gateway from the
// configuration file at path, prints one JSON line when it is up, then
// answers each line of in with one JSON line of out (with $ISMBENCH_LOG_DIR
// set, its gateway's whole log goes to a file there): "stats" and "full"
// (gwStats), "reload PATH" (gwStats after the reload), "quit" (closes the
// gateway and returns).
func ServeScalePeer(path string, in io.Reader, out io.Writer) error {
	// Thousands of endpoints, two sockets each.
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Max < 1<<20 {
		lim.Cur, lim.Max = 1<<20, 1<<20
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}
	cfg, err := config.ParseFile(path)
	if err != nil {
		return err
	}
	s, err := newScaleGateway(cfg, os.Getenv(logDirEnv))
	if err != nil {
		return err
	}
	defer s.close()
	enc := json.NewEncoder(out)
	if err := enc.Encode(s.stats(false)); err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		var st gwStats
		switch cmd {
		case "stats", "full":
			st = s.stats(cmd == "full")
			if secs, err := strconv.Atoi(arg); err == nil && cmd == "full" {
				st.LeakedSAs, st.LeakedWhere = s.leakedSAs(time.Duration(secs) * time.Second)
			}
		case "reload":
			cfg, err := config.ParseFile(arg)
			if err == nil {
				err = s.g.Reload(cfg)
			}
			st = s.stats(false)
			if err != nil {
				st.Error = err.Error()
			}
		case "quit":
			return nil
		default:
			st.Error = fmt.Sprintf("unknown command %q", cmd)
		}
		if err := enc.Encode(st); err != nil {
			return err
		}
	}
	return sc.Err()
}

// PeerCommand is how to run ServeScalePeer in a child process: Path with
// Args and the configuration file's path as its last argument, Env added
// to the environment. cmd/ismbench runs itself ("ismbench scale-peer").
type PeerCommand struct {
	Path string
	Args []string
	Env  []string
}

// peerProcess is the client of a ServeScalePeer in a child process. Not
// safe for concurrent use.
type peerProcess struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
	dir string
}

// startPeer starts the child with the configuration text and waits until
// its gateway is up.
func startPeer(h *harness, pc PeerCommand, text string) *peerProcess {
	dir, err := os.MkdirTemp("", "ismbench-peer")
	if err != nil {
		h.Fatalf("%v", err)
	}
	h.Cleanup(func() { os.RemoveAll(dir) })
	path := dir + "/peer.conf"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		h.Fatalf("%v", err)
	}
	p := &peerProcess{cmd: exec.Command(pc.Path, append(slices.Clone(pc.Args), path)...), dir: dir}
	p.cmd.Env = append(os.Environ(), pc.Env...)
	p.cmd.Stderr = os.Stderr
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		h.Fatalf("%v", err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		h.Fatalf("%v", err)
	}
	p.out = bufio.NewScanner(stdout)
	p.out.Buffer(nil, 1<<20)
	if err := p.cmd.Start(); err != nil {
		h.Fatalf("peer gateway: %v", err)
	}
	h.Cleanup(func() {
		fmt.Fprintln(p.in, "quit")
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
	})
	if _, err := p.read(); err != nil {
		h.Fatalf("peer gateway: %v", err)
	}
	return p
}

func (p *peerProcess) read() (gwStats, error) {
	var st gwStats
	if !p.out.Scan() {
		return st, fmt.Errorf("peer gateway ended: %v", errors.Join(p.out.Err(), io.ErrUnexpectedEOF))
	}
	if err := json.Unmarshal(p.out.Bytes(), &st); err != nil {
		return st, err
	}
	if st.Error != "" {
		return st, errors.New(st.Error)
	}
	return st, nil
}

// ask sends one command and returns the answer.
func (p *peerProcess) ask(h *harness, cmd string) gwStats {
	if _, err := fmt.Fprintln(p.in, cmd); err != nil {
		h.Fatalf("peer gateway: %v", err)
	}
	st, err := p.read()
	if err != nil {
		h.Fatalf("peer gateway: %s: %v", cmd, err)
	}
	return st
}

// reload gives the child a new configuration.
func (p *peerProcess) reload(h *harness, text string) gwStats {
	path := fmt.Sprintf("%s/peer-%d.conf", p.dir, time.Now().UnixNano())
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		h.Fatalf("%v", err)
	}
	defer os.Remove(path)
	return p.ask(h, "reload "+path)
}

// stop ends the child: its gateway closes (and deletes its SAs). A child
// that did not exit cleanly (a panic; under the race detector, a race it
// found) fails the run.
func (p *peerProcess) stop(h *harness) {
	fmt.Fprintln(p.in, "quit")
	if err := p.cmd.Wait(); err != nil {
		h.Fatalf("peer gateway: %v (its errors are on stderr)", err)
	}
}

// cpu is the child's CPU time so far.
func (p *peerProcess) cpu() time.Duration {
	d, _ := pidCPU(p.cmd.Process.Pid)
	return d
}
