package cluster

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ismgw/ism/checkpoint"
	"github.com/ismgw/ism/internal/etcdtest"
)

// A node can run in a process of its own (the test binary, started
// again), so that a test can kill it with SIGKILL. It prints every Start
// and Stop as a JSON line.

const nodeEnv = "ISM_CLUSTER_TEST_NODE"

type nodeProcConfig struct {
	Name      string
	Endpoints []string
	CA        string
	Cert, Key string
	KeyHex    string
	Groups    []string
	Secret    []byte
	Born      time.Time
}

func TestMain(m *testing.M) {
	if cfg := os.Getenv(nodeEnv); cfg != "" {
		os.Exit(runNodeProcess(cfg))
	}
	os.Exit(m.Run())
}

func runNodeProcess(js string) int {
	var pc nodeProcConfig
	if err := json.Unmarshal([]byte(js), &pc); err != nil {
		return 2
	}
	tlsc, err := LoadTLS(pc.CA, pc.Cert, pc.Key)
	if err != nil {
		return 2
	}
	raw, _ := hex.DecodeString(pc.KeyHex)
	key, err := checkpoint.NewSealer(raw)
	if err != nil {
		return 2
	}
	var mu sync.Mutex
	out := json.NewEncoder(os.Stdout)
	gw := newTestGateway(pc.Name, pc.Secret, func(e gwEvent) {
		mu.Lock()
		out.Encode(e)
		mu.Unlock()
	})
	gw.born = pc.Born
	n, err := New(Config{Node: pc.Name, Endpoints: pc.Endpoints, TLS: tlsc, Groups: testGroups(pc.Groups...),
		Key: key, Gateway: gw})
	if err != nil {
		return 2
	}
	_ = n.Run(context.Background())
	return 0
}

// nodeProc is a node in a process of its own.
type nodeProc struct {
	cmd    *exec.Cmd
	events chan gwEvent
	gw     *testGateway // a twin of the process's gateway, for its keys
}

// startNodeProc starts a node process; its gateway's sequence numbers
// count from born.
func startNodeProc(t *testing.T, c *etcdtest.Cluster, name string, keyHex string, born time.Time, groups ...string) *nodeProc {
	t.Helper()
	cert, key := c.PKI.Client(t, name)
	pc := nodeProcConfig{Name: name, Endpoints: c.Endpoints(), CA: c.PKI.CAFile, Cert: cert, Key: key,
		KeyHex: keyHex, Groups: groups, Secret: []byte("secret of " + name), Born: born}
	js, _ := json.Marshal(pc)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), nodeEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nodeProc{cmd: cmd, events: make(chan gwEvent, 256), gw: newTestGateway(name, pc.Secret, nil)}
	p.gw.born = born
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e gwEvent
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				p.events <- e
			}
		}
		close(p.events)
	}()
	t.Cleanup(p.kill)
	return p
}

// kill sends SIGKILL by pid and reaps the process; it returns when.
func (p *nodeProc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
	_ = p.cmd.Wait()
}

// waitEvent waits for an event matching f.
func waitEvent(t *testing.T, ch <-chan gwEvent, timeout time.Duration, what string, f func(gwEvent) bool) gwEvent {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("%s: the node process ended", what)
			}
			if f(e) {
				return e
			}
		case <-deadline:
			t.Fatalf("%s: nothing after %v", what, timeout)
		}
	}
}
