package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ismgw/ism/checkpoint"
)

// errDeposed says etcd refused a guarded write: the election key it was
// guarded by is gone or belongs to another campaign.
var errDeposed = errors.New("cluster: guarded write refused: no longer the owner")

// Write batching: a checkpoint of a group is one guarded transaction of at
// most maxTxnOps operations (etcd's default --max-txn-ops is 128), more
// only for a group with more changed tunnels; a tunnel whose state did not
// change but for its age and rate is rewritten every refreshPeriods
// periods only.
const (
	maxTxnOps      = 100
	refreshPeriods = 30
)

// writeState is what an owner last wrote of each tunnel, one per
// ownership. Only that ownership's checkpointer touches it.
type writeState struct {
	fp  map[string][32]byte  // fingerprint of the record without age and rate
	put map[string]time.Time // when it was last written
}

// writeGroup writes a checkpoint of g in guarded transactions: each
// compares the create revision of this node's election key with the one
// it won with, so that only the owner's writes land.
func (n *Node) writeGroup(ctx context.Context, g *group, w *writeState, key string, rev int64, st *checkpoint.State) error {
	if w.fp == nil {
		w.fp, w.put = map[string][32]byte{}, map[string]time.Time{}
	}
	var ops []clientv3.Op
	present := make(map[string]bool, len(st.Tunnels))
	wrote := map[string][32]byte{}
	for i := range st.Tunnels {
		t := &st.Tunnels[i]
		present[t.Name] = true
		fp, err := fingerprint(t)
		if err != nil {
			return err
		}
		if old, ok := w.fp[t.Name]; ok && old == fp && st.Written.Sub(w.put[t.Name]) < refreshPeriods*st.Period {
			continue
		}
		one := checkpoint.State{Written: st.Written, Period: st.Period, WriteLatency: st.WriteLatency,
			Tunnels: []checkpoint.Tunnel{*t}}
		body, err := one.MarshalBinary()
		if err != nil {
			return err
		}
		k := n.stateKey(g.cfg.Name, t.Name)
		env, err := n.cfg.Key.Seal(checkpoint.KindTunnel, body, []byte(k))
		clear(body)
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(k, string(env)))
		wrote[t.Name] = fp
	}
	for name := range w.fp {
		if !present[name] {
			ops = append(ops, clientv3.OpDelete(n.stateKey(g.cfg.Name, name)))
		}
	}
	meta := groupMeta{Owner: n.cfg.Node, Written: st.Written, Period: st.Period, Latency: st.WriteLatency, Tunnels: len(st.Tunnels)}
	ops = append(ops, clientv3.OpPut(n.metaKey(g.cfg.Name), mustJSON(meta)))
	guard := clientv3.Compare(clientv3.CreateRevision(key), "=", rev)
	for len(ops) > 0 {
		chunk := ops[:min(len(ops), maxTxnOps)]
		ops = ops[len(chunk):]
		tctx, cancel := context.WithTimeout(ctx, n.cfg.TTL)
		r, err := n.cli.Txn(tctx).If(guard).Then(chunk...).Commit()
		cancel()
		if err != nil {
			return fmt.Errorf("cluster: checkpoint of %s: %w", g.cfg.Name, err)
		}
		if !r.Succeeded {
			g.refused.Add(1)
			return errDeposed
		}
		g.txns.Add(1)
		g.puts.Add(uint64(len(chunk)))
	}
	for name, fp := range wrote {
		w.fp[name], w.put[name] = fp, st.Written
	}
	for name := range w.fp {
		if !present[name] {
			delete(w.fp, name)
			delete(w.put, name)
		}
	}
	g.lastWrite.Store(st.Written.UnixNano())
	return nil
}

// fingerprint hashes a tunnel's record without what changes on every
// checkpoint of an idle tunnel: its SAs' age and decaying rate.
func fingerprint(t *checkpoint.Tunnel) ([32]byte, error) {
	c := *t
	c.SAs = append([]checkpoint.SA(nil), t.SAs...)
	for i := range c.SAs {
		c.SAs[i].Used.Time, c.SAs[i].Rate = 0, 0
	}
	b, err := c.MarshalBinary()
	if err != nil {
		return [32]byte{}, err
	}
	defer clear(b)
	return sha256.Sum256(b), nil
}

// readGroup reads what a new owner starts from: the records of the
// group's configured tunnels and the last owner's meta. A record that
// does not open (another key, corrupt) is left out, and its tunnel starts
// afresh.
func (n *Node) readGroup(ctx context.Context, g *group) (Takeover, groupMeta, error) {
	tk := Takeover{Group: g.cfg, Written: map[string]time.Time{}}
	var meta groupMeta
	r, err := n.cli.Txn(ctx).Then(
		clientv3.OpGet(n.statePrefix(g.cfg.Name), clientv3.WithPrefix()),
		clientv3.OpGet(n.metaKey(g.cfg.Name))).Commit()
	if err != nil {
		return tk, meta, fmt.Errorf("cluster: read group %s: %w", g.cfg.Name, err)
	}
	configured := map[string]bool{}
	for _, t := range g.cfg.Tunnels {
		configured[t] = true
	}
	for _, kv := range r.Responses[0].GetResponseRange().Kvs {
		name := strings.TrimPrefix(string(kv.Key), n.statePrefix(g.cfg.Name))
		if !configured[name] {
			continue
		}
		body, err := n.cfg.Key.Open(checkpoint.KindTunnel, kv.Value, kv.Key)
		if err != nil {
			n.log.Warn("tunnel record does not open", "group", g.cfg.Name, "tunnel", name, "err", err)
			continue
		}
		var st checkpoint.State
		err = st.UnmarshalBinary(body)
		clear(body)
		if err != nil || len(st.Tunnels) != 1 || st.Tunnels[0].Name != name {
			st.Zero()
			n.log.Warn("tunnel record malformed", "group", g.cfg.Name, "tunnel", name, "err", err)
			continue
		}
		tk.Tunnels = append(tk.Tunnels, st.Tunnels[0])
		tk.Written[name] = st.Written
		tk.Policy.Period = max(tk.Policy.Period, st.Period)
		tk.Policy.Latency = max(tk.Policy.Latency, st.WriteLatency)
	}
	if kvs := r.Responses[1].GetResponseRange().Kvs; len(kvs) == 1 {
		if err := json.Unmarshal(kvs[0].Value, &meta); err != nil {
			n.log.Warn("group meta malformed", "group", g.cfg.Name, "err", err)
		}
	}
	tk.Previous, tk.Handover = meta.Owner, !meta.StoppedAt.IsZero()
	if tk.Policy.Period == 0 {
		tk.Policy.Period = n.cfg.CheckpointPeriod
	}
	// An owner cut off from etcd sends until its fence, up to a TTL
	// after the last write that could land.
	tk.Policy.Extra = n.cfg.TTL
	return tk, meta, nil
}

// resign records a handover's stop and deletes the election key in one
// guarded transaction: the successor's campaign wins on the deletion and
// finds the stop recorded.
func (n *Node) resign(ctx context.Context, group, key string, rev int64, meta groupMeta) error {
	r, err := n.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", rev)).
		Then(clientv3.OpPut(n.metaKey(group), mustJSON(meta)), clientv3.OpDelete(key)).Commit()
	if err != nil {
		return err
	}
	if !r.Succeeded {
		return errDeposed
	}
	return nil
}
