package bench

import (
	"bufio"
	"context"
	"os"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/ismgw/ism/internal/etcdlab"
)

// etcdWatch splits a takeover between etcd and ISM: a client in the
// observer namespace watches the group's election and sees when the
// killed owner's key is deleted, that is when etcd expired its lease and
// revoked it (etcd's part: the TTL from the owner's last renewal, the
// lessor's expiry check, raft); from then on the survivor's watch,
// campaign and start are ISM's. It also reads the members' raft terms
// (a term change is a leader election, which extends every lease) and
// the warnings they logged meanwhile.
type etcdWatch struct {
	etcd  *etcdlab.Cluster
	cli   *clientv3.Client
	marks map[string]int64 // log offsets at start
	terms uint64

	mu      sync.Mutex
	deleted []time.Time // when election keys were deleted
}

// watchElection starts watching group g1's election.
func watchElection(h *harness, etcd *etcdlab.Cluster) *etcdWatch {
	cli, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), TLS: etcd.PKI.ClientTLS(h, "bench-observer"),
		DialTimeout: 2 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(etcdlab.Dialer(etcd.Observer))}})
	if err != nil {
		h.Fatalf("bench: etcd client: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.Cleanup(func() { cancel(); cli.Close() })
	w := &etcdWatch{etcd: etcd, cli: cli, marks: map[string]int64{}}
	w.terms = w.term()
	for _, m := range etcd.Members {
		if st, err := os.Stat(m.LogPath()); err == nil {
			w.marks[m.Name] = st.Size()
		}
	}
	ch := cli.Watch(ctx, "/ism/election/g1/", clientv3.WithPrefix(), clientv3.WithFilterPut())
	go func() {
		for r := range ch {
			at := time.Now()
			if len(r.Events) > 0 {
				w.mu.Lock()
				w.deleted = append(w.deleted, at)
				w.mu.Unlock()
			}
		}
	}()
	return w
}

// term returns the highest raft term a member reports.
func (w *etcdWatch) term() uint64 {
	var top uint64
	for _, ep := range w.etcd.Endpoints() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if st, err := w.cli.Status(ctx, ep); err == nil {
			top = max(top, st.RaftTerm)
		}
		cancel()
	}
	return top
}

// expired returns when the first election key was deleted after since.
func (w *etcdWatch) expired(since time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, at := range w.deleted {
		if at.After(since) {
			return at, true
		}
	}
	return time.Time{}, false
}

// elections returns the leader elections since the watch began.
func (w *etcdWatch) elections() uint64 { return w.term() - w.terms }

// warnings returns the lines the members logged since the watch began.
func (w *etcdWatch) warnings() []string {
	var out []string
	for _, m := range w.etcd.Members {
		f, err := os.Open(m.LogPath())
		if err != nil {
			continue
		}
		if _, err := f.Seek(w.marks[m.Name], 0); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				if l := strings.TrimSpace(sc.Text()); l != "" {
					out = append(out, m.Name+": "+l)
				}
			}
		}
		f.Close()
	}
	return out
}
