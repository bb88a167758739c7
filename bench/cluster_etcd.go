package bench

import (
	"bufio"
	"context"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ismgw/ism/internal/etcdlab"
)

// etcdWatch splits a takeover between etcd and ISM: the observer watches
// the group's election and sees when the killed owner's key is deleted,
// that is when etcd expired its lease and revoked it (etcd's part: the
// TTL from the owner's last renewal, the lessor's expiry check every
// 500 ms, raft); from then on the survivor's watch, campaign and start
// are ISM's. It also reads the members' raft terms (a term change is a
// leader election, which extends every lease) and the warnings they
// logged meanwhile. It uses etcd's JSON gateway (etcdlab), not etcd's
// client, which only package cluster loads.
type etcdWatch struct {
	etcd  *etcdlab.Cluster
	marks map[string]int64 // log offsets at start
	terms uint64

	mu      sync.Mutex
	deleted []time.Time // when election keys were deleted
}

// watchElection starts watching group g1's election.
func watchElection(h *harness, etcd *etcdlab.Cluster) *etcdWatch {
	w := &etcdWatch{etcd: etcd, marks: map[string]int64{}, terms: etcd.RaftTerm()}
	for _, m := range etcd.Members {
		if st, err := os.Stat(m.LogPath()); err == nil {
			w.marks[m.Name] = st.Size()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.Cleanup(cancel)
	err := etcd.WatchDeletes(ctx, "/ism/election/g1/", func(at time.Time) {
		w.mu.Lock()
		w.deleted = append(w.deleted, at)
		w.mu.Unlock()
	})
	if err != nil {
		h.Fatalf("bench: %v", err)
	}
	return w
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
func (w *etcdWatch) elections() uint64 { return w.etcd.RaftTerm() - w.terms }

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
