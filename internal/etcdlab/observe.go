package etcdlab

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Observing a cluster without etcd's client (which only package cluster
// and the tests may load): etcd's JSON gateway, over the same mutual TLS,
// from the observer namespace in namespace mode.

// gateway returns an HTTP client for the members' JSON gateway; timeout 0
// is none (a watch).
func (c *Cluster) gateway(name string, timeout time.Duration) *http.Client {
	dial := Dialer(c.Observer)
	return &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: c.PKI.ClientTLS(c.t, name),
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return dial(ctx, addr) }}}
}

// RaftTerm returns the highest raft term a member reports
// (/v3/maintenance/status); every leader election raises it.
func (c *Cluster) RaftTerm() uint64 {
	cl := c.gateway("etcdlab-observer", time.Second)
	defer cl.CloseIdleConnections()
	var top uint64
	for _, m := range c.Members {
		resp, err := cl.Post(m.ClientURL+"/v3/maintenance/status", "application/json", bytes.NewReader([]byte("{}")))
		if err != nil {
			continue
		}
		var st struct {
			RaftTerm uint64 `json:"raftTerm,string"`
		}
		if json.NewDecoder(resp.Body).Decode(&st) == nil {
			top = max(top, st.RaftTerm)
		}
		resp.Body.Close()
	}
	return top
}

// WatchDeletes watches the keys under prefix (/v3/watch on the first
// member that answers) and calls deleted with the time each response
// holding deletes arrived, until ctx ends. It returns once the watch is
// set up.
func (c *Cluster) WatchDeletes(ctx context.Context, prefix string, deleted func(time.Time)) error {
	end := []byte(prefix)
	end[len(end)-1]++ // the prefix's range end
	req, _ := json.Marshal(map[string]any{"create_request": map[string]any{
		"key": base64.StdEncoding.EncodeToString([]byte(prefix)), "range_end": base64.StdEncoding.EncodeToString(end),
		"filters": []string{"NOPUT"}}})
	cl := c.gateway("etcdlab-observer", 0)
	var lastErr error
	for _, m := range c.Members {
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, m.ClientURL+"/v3/watch", bytes.NewReader(req))
		if err != nil {
			return err
		}
		resp, err := cl.Do(hr)
		if err != nil {
			lastErr = err
			continue
		}
		dec := json.NewDecoder(resp.Body)
		var first struct{ Result struct{ Created bool } }
		if err := dec.Decode(&first); err != nil || !first.Result.Created {
			resp.Body.Close()
			lastErr = fmt.Errorf("etcdlab: watch on %s not created: %v", m.Name, err)
			continue
		}
		go func() {
			defer resp.Body.Close()
			for {
				var r struct {
					Result struct{ Events []json.RawMessage }
				}
				if dec.Decode(&r) != nil {
					return
				}
				if len(r.Result.Events) > 0 {
					deleted(time.Now())
				}
			}
		}()
		return nil
	}
	return fmt.Errorf("etcdlab: watch %s: %w", prefix, lastErr)
}
