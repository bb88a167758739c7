// Package etcdlab runs real etcd clusters for tests and benchmarks: members
// are etcd processes from Debian's etcd-server package, never embedded and
// never mocked, on mutual TLS with certificates the test makes
// (NewPKI). A member can be killed by pid (kill -9) and started again on
// its data. With Options.Namespaces each member lives in a network
// namespace of its own, joined with the others through a bridge in a hub
// namespace by veth pairs, and a test can attach namespaces for its nodes
// (Attach) and cut any of them off the hub (Cut, Mend).
package etcdlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ismgw/ism/internal/netlab"
	"github.com/ismgw/ism/netns"
)

// TB is what a cluster reports to: a *testing.T, or a benchmark harness
// with the same methods. It imports neither package testing nor etcd's
// client (internal/etcdtest adds the client for tests).
type TB interface {
	netlab.TB
	TempDir() string
	Failed() bool
}

// Options configures a cluster.
type Options struct {
	// Members is the member count; 0 means 3.
	Members int
	// Namespaces puts each member in a network namespace of its own
	// (192.0.2.11, .12, …/24 on a bridge in a hub namespace), so that
	// tests can partition it. Needs root.
	Namespaces bool
	// Args are extra etcd flags for every member.
	Args []string
}

// Cluster is a running etcd cluster. It is safe for concurrent use.
type Cluster struct {
	PKI     *PKI
	Members []*Member
	t       TB
	lab     *netlab.Lab
	hub     string
	// Observer is the namespace the test's own clients dial from in
	// namespace mode ("" otherwise).
	Observer string

	mu    sync.Mutex
	hosts int
	links map[string]string // namespace → its veth in the hub
}

// Member is one etcd process.
type Member struct {
	Name      string
	NS        string // its namespace, "" for the test's own
	Addr      netip.Addr
	ClientURL string
	PeerURL   string
	dir       string
	args      []string
	c         *Cluster

	mu  sync.Mutex
	cmd *exec.Cmd
	log *os.File
}

// Start starts a cluster and waits until it serves. etcd must be
// installed (apt-get install etcd-server): as root its absence fails the
// test; otherwise the test is skipped.
func Start(t TB, o Options) *Cluster {
	t.Helper()
	if _, err := exec.LookPath("etcd"); err != nil {
		if os.Geteuid() == 0 {
			t.Fatalf("etcd is required (apt-get install etcd-server etcd-client): %v", err)
		}
		t.Skip("etcd not installed and not root")
	}
	n := o.Members
	if n == 0 {
		n = 3
	}
	c := &Cluster{t: t, links: map[string]string{}}
	root := t.TempDir()
	var ips []netip.Addr
	if o.Namespaces {
		c.lab = netlab.New(t)
		c.hub = c.lab.NS("hub")
		c.lab.MustRun(c.hub, "ip", "link", "add", "br0", "type", "bridge")
		c.lab.MustRun(c.hub, "ip", "link", "set", "br0", "up")
		for i := range n {
			ips = append(ips, netip.AddrFrom4([4]byte{192, 0, 2, byte(11 + i)}))
		}
	}
	c.PKI = NewPKI(t, root, ips)
	var cluster []string
	for i := range n {
		m := &Member{Name: fmt.Sprintf("m%d", i+1), c: c, dir: filepath.Join(root, fmt.Sprintf("m%d", i+1))}
		if o.Namespaces {
			m.Addr = ips[i]
			m.NS = c.lab.NS(m.Name)
			c.link(m.NS, m.Name, netip.PrefixFrom(m.Addr, 24))
			m.ClientURL, m.PeerURL = "https://"+m.Addr.String()+":2379", "https://"+m.Addr.String()+":2380"
		} else {
			m.Addr = netip.MustParseAddr("127.0.0.1")
			m.ClientURL, m.PeerURL = "https://"+freePort(t), "https://"+freePort(t)
		}
		cluster = append(cluster, m.Name+"="+m.PeerURL)
		c.Members = append(c.Members, m)
	}
	if o.Namespaces {
		c.Observer = c.Attach("obs")
	}
	for _, m := range c.Members {
		m.args = append([]string{"etcd", "--name", m.Name, "--data-dir", m.dir,
			"--listen-client-urls", m.ClientURL, "--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.PeerURL, "--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", strings.Join(cluster, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", filepath.Base(root),
			"--cert-file", c.PKI.CertFile, "--key-file", c.PKI.KeyFile,
			"--client-cert-auth", "--trusted-ca-file", c.PKI.CAFile,
			"--peer-cert-file", c.PKI.CertFile, "--peer-key-file", c.PKI.KeyFile,
			"--peer-client-cert-auth", "--peer-trusted-ca-file", c.PKI.CAFile,
			"--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"}, o.Args...)
		m.Start()
	}
	t.Cleanup(c.stop)
	c.WaitReady(20 * time.Second)
	return c
}

// freePort returns a loopback address with a port free a moment ago.
func freePort(t TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("etcdlab: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// link joins ns to the hub's bridge with a veth named ifc on the hub's
// side and eth0 on ns's side, holding addr.
func (c *Cluster) link(ns, ifc string, addr netip.Prefix) {
	c.lab.Link(ns, "eth0", addr, c.hub, ifc, netip.Prefix{})
	c.lab.MustRun(c.hub, "ip", "link", "set", ifc, "master", "br0")
	c.mu.Lock()
	c.links[ns] = ifc
	c.mu.Unlock()
}

// Attach makes a namespace for a node (namespace mode only), joined to
// the hub at 192.0.2.21 and up, and returns its name.
func (c *Cluster) Attach(name string) string {
	c.t.Helper()
	if c.lab == nil {
		c.t.Fatalf("etcdlab: Attach needs Options.Namespaces")
	}
	c.mu.Lock()
	c.hosts++
	h := c.hosts
	c.mu.Unlock()
	ns := c.lab.NS(name)
	c.link(ns, fmt.Sprintf("n%d", h), netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(20 + h)}), 24))
	return ns
}

// Cut takes ns's link to the hub down: its packets are dropped without a
// word (no reset, no ICMP), as in a real partition. Mend brings it back.
func (c *Cluster) Cut(ns string)  { c.setLink(ns, "down") }
func (c *Cluster) Mend(ns string) { c.setLink(ns, "up") }

func (c *Cluster) setLink(ns, state string) {
	c.t.Helper()
	c.mu.Lock()
	ifc, ok := c.links[ns]
	c.mu.Unlock()
	if !ok {
		c.t.Fatalf("etcdlab: %s is not on the hub", ns)
	}
	c.lab.MustRun(c.hub, "ip", "link", "set", ifc, state)
}

// Endpoints returns the members' client URLs.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

// Dialer returns a dialer whose connections are made in ns ("" for the
// test's own namespace), for etcd clients and for nodes.
func Dialer(ns string) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		if ns == "" {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		}
		var conn net.Conn
		err := netns.Do(ns, func() error {
			var err error
			conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			return err
		})
		return conn, err
	}
}

// WaitReady waits until the cluster serves: a member says it is healthy
// (GET /health on its client URL, with a client certificate: etcd answers
// true once a leader serves its reads through raft), asked from the
// observer namespace in namespace mode.
func (c *Cluster) WaitReady(timeout time.Duration) {
	c.t.Helper()
	dial := Dialer(c.Observer)
	cl := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: c.PKI.ClientTLS(c.t, "etcdlab-ready"),
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return dial(ctx, addr) }}}
	defer cl.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for {
		err := c.healthy(cl)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.dumpLogs()
			c.t.Fatalf("etcdlab: cluster not ready after %v: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// healthy returns nil once a member says it is healthy, else every
// member's error.
func (c *Cluster) healthy(cl *http.Client) error {
	var errs []error
	for _, m := range c.Members {
		resp, err := cl.Get(m.ClientURL + "/health")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var h struct{ Health string }
		err = json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: /health: %w", m.Name, err))
		case h.Health != "true":
			errs = append(errs, fmt.Errorf("%s: health %q", m.Name, h.Health))
		default:
			return nil
		}
	}
	return errors.Join(errs...)
}

func (c *Cluster) stop() {
	for _, m := range c.Members {
		m.Kill()
	}
	if c.t.Failed() {
		c.dumpLogs()
	}
}

func (c *Cluster) dumpLogs() {
	for _, m := range c.Members {
		b, _ := os.ReadFile(m.dir + ".log")
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		c.t.Logf("etcd %s log (tail):\n%s", m.Name, b)
	}
}

// Start starts the member's process (again, on its data directory).
func (m *Member) Start() {
	t := m.c.t
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		t.Fatalf("etcdlab: %s already running", m.Name)
	}
	log, err := os.OpenFile(m.dir+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("etcdlab: %v", err)
	}
	args := m.args
	if m.NS != "" {
		args = append([]string{"ip", "netns", "exec", m.NS}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("etcdlab: start %s: %v", m.Name, err)
	}
	m.cmd, m.log = cmd, log
}

// Pid returns the member's process id, or 0 when it is not running.
func (m *Member) Pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// Kill sends SIGKILL to the member's process, by pid, and reaps it.
func (m *Member) Kill() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = syscall.Kill(m.cmd.Process.Pid, syscall.SIGKILL)
	_ = m.cmd.Wait()
	m.log.Close()
	m.cmd, m.log = nil, nil
}

// LogPath returns the file the member's process logs to (etcd's zap log
// at the level Start sets, warn: slow heartbeats and applies, lost
// leaders).
func (m *Member) LogPath() string { return m.dir + ".log" }
