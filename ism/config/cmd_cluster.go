package config

import (
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// checkpointCommands and clusterCommands are top-level commands: the
// state a restarted gateway resumes from, and the node's cluster on etcd.
var (
	checkpointCommands = []command{
		{"checkpoint state-directory", "PATH", 1, 1, true, (*parser).cmdCkptDir},
		{"checkpoint key-file", "FILE", 1, 1, true, (*parser).cmdCkptKey},
		{"checkpoint interval", "MILLISECONDS", 1, 1, true, (*parser).cmdCkptInterval},
	}
	clusterCommands = []command{
		{"cluster node", "NAME", 1, 1, true, (*parser).cmdClusterNode},
		{"cluster etcd endpoint", "URL", 1, 1, false, (*parser).cmdEtcdEndpoint},
		{"cluster etcd ca-certificate", "FILE", 1, 1, true, (*parser).cmdEtcdCA},
		{"cluster etcd certificate", "CERTIFICATE-FILE key KEY-FILE", 3, 3, true, (*parser).cmdEtcdCert},
		{"cluster etcd virtual-router", "NAME", 1, 1, true, (*parser).cmdEtcdVR},
		{"cluster etcd election-timeout", "MILLISECONDS", 1, 1, true, (*parser).cmdEtcdElection},
		{"cluster lease ttl", "SECONDS", 1, 1, true, (*parser).cmdLeaseTTL},
		{"cluster fence-margin", "MILLISECONDS", 1, 1, true, (*parser).cmdFenceMargin},
		{"cluster key-file", "FILE", 1, 1, true, (*parser).cmdClusterKey},
		{"cluster group", "NAME", 1, 1, false, (*parser).cmdClusterGroup},
	}
	// topTable is the top level's table.
	topTable = slices.Concat(topCommands, checkpointCommands, clusterCommands)
	// groupCommands are the commands of a "cluster group" block.
	groupCommands = []command{
		{"transport-virtual-router", "NAME", 1, 1, true, (*parser).cmdGroupVR},
		{"virtual-address", "ADDRESS MASK|ADDRESS/LENGTH", 1, 2, true, (*parser).cmdGroupVIP},
		{"tunnel", "ipsec:NAME", 1, 1, false, (*parser).cmdGroupTunnel},
	}
)

// ckptDraft is the checkpoint commands.
type ckptDraft struct {
	dir, key opt[string]
	interval opt[time.Duration]
}

// clusterDraft is the cluster commands; first is the line of the first.
type clusterDraft struct {
	first                int
	node                 opt[string]
	endpoints            []string
	ca, cert, key, keyFn opt[string]
	vr                   opt[string]
	election, ttl, fence opt[time.Duration]
	groups               []*groupDraft
}

// groupDraft is a "cluster group" block.
type groupDraft struct {
	name    string
	line    int
	vr      opt[string]
	vip     opt[netip.Prefix]
	tunnels []opt[string]
}

func (p *parser) cmdCkptDir(c *cmdCtx) {
	if f := c.arg(0); !filepath.IsAbs(f) {
		c.errf("%q is not an absolute path", f)
		return
	}
	p.d.ckpt.dir.put(c.file(0), c.line)
}

func (p *parser) cmdCkptKey(c *cmdCtx) { p.d.ckpt.key.put(c.file(0), c.line) }

func (p *parser) cmdCkptInterval(c *cmdCtx) {
	if n, ok := c.number(0, "interval", 0, uint64(MaxCheckpointInterval/time.Millisecond)); ok {
		d := time.Duration(n) * time.Millisecond
		if d != 0 && d < MinCheckpointInterval {
			c.errf("%d ms is below %v (0 turns checkpoints off)", n, MinCheckpointInterval)
			return
		}
		p.d.ckpt.interval.put(d, c.line)
	}
}

// cl returns the cluster draft, noting the first cluster line.
func (p *parser) cl(c *cmdCtx) *clusterDraft {
	if p.d.cl.first == 0 {
		p.d.cl.first = c.line
	}
	return &p.d.cl
}

func (p *parser) cmdClusterNode(c *cmdCtx) {
	if n, ok := c.name(0, "node name"); ok {
		p.cl(c).node.put(n, c.line)
	}
}

func (p *parser) cmdEtcdEndpoint(c *cmdCtx) {
	s := c.arg(0)
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") || u.User != nil {
		c.errf("bad endpoint %q: expected https://HOST:PORT (etcd's client URL; ISM speaks to etcd over TLS only)", s)
		return
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		c.errf("bad endpoint %q: %v", s, err)
		return
	}
	cl := p.cl(c)
	for _, e := range cl.endpoints {
		if e == "https://"+u.Host {
			c.errf("endpoint %s is listed twice", s)
			return
		}
	}
	cl.endpoints = append(cl.endpoints, "https://"+u.Host)
}

func (p *parser) cmdEtcdCA(c *cmdCtx) { p.cl(c).ca.put(c.file(0), c.line) }

func (p *parser) cmdEtcdCert(c *cmdCtx) {
	if _, ok := c.keyword(1, "key"); !ok {
		return
	}
	cl := p.cl(c)
	cl.cert.put(c.file(0), c.line)
	cl.key.put(c.file(2), c.line)
}

func (p *parser) cmdEtcdVR(c *cmdCtx) {
	if n, ok := c.name(0, "virtual router name"); ok {
		p.cl(c).vr.put(n, c.line)
	}
}

// millis parses argument 0 as milliseconds from lo to hi.
func (c *cmdCtx) millis(what string, lo, hi time.Duration, o *opt[time.Duration]) {
	if n, ok := c.number(0, what, uint64(lo/time.Millisecond), uint64(hi/time.Millisecond)); ok {
		o.put(time.Duration(n)*time.Millisecond, c.line)
	}
}

func (p *parser) cmdEtcdElection(c *cmdCtx) {
	c.millis("election timeout", 50*time.Millisecond, time.Minute, &p.cl(c).election)
}

func (p *parser) cmdLeaseTTL(c *cmdCtx) {
	if v, ok := c.seconds(0, "TTL", 1, uint64(MaxLeaseTTL/time.Second)); ok {
		p.cl(c).ttl.put(v, c.line)
	}
}

func (p *parser) cmdFenceMargin(c *cmdCtx) {
	c.millis("fence margin", time.Millisecond, MaxLeaseTTL/2, &p.cl(c).fence)
}

func (p *parser) cmdClusterKey(c *cmdCtx) { p.cl(c).keyFn.put(c.file(0), c.line) }

func (p *parser) cmdClusterGroup(c *cmdCtx) {
	name, ok := c.name(0, "group name")
	if !ok {
		return
	}
	cl := p.cl(c)
	for _, g := range cl.groups {
		if g.name == name {
			p.errs.add(c.line, "duplicate cluster group %s (first on line %d)", name, g.line)
			return
		}
	}
	g := &groupDraft{name: name, line: c.line}
	cl.groups = append(cl.groups, g)
	p.open(clusterGroupBlock, "cluster group "+name).group = g
}

func (p *parser) cmdGroupVR(c *cmdCtx) {
	if n, ok := c.name(0, "virtual router name"); ok {
		p.cur.group.vr.put(n, c.line)
	}
}

func (p *parser) cmdGroupVIP(c *cmdCtx) {
	pfx, n, ok := c.prefix(0, "virtual address")
	if !ok {
		return
	}
	if n != len(c.args) {
		c.errf("expected ADDRESS MASK or ADDRESS/LENGTH")
		return
	}
	p.cur.group.vip.put(pfx, c.line)
}

func (p *parser) cmdGroupTunnel(c *cmdCtx) {
	name, ok := c.tunnelRef(0)
	if !ok {
		return
	}
	g := p.cur.group
	for _, t := range g.tunnels {
		if t.v == name {
			c.errf("ipsec:%s is listed twice (line %d)", name, t.line)
			return
		}
	}
	g.tunnels = append(g.tunnels, opt[string]{v: name, line: c.line})
}

// resolveCheckpoint builds the checkpoint settings.
func (p *parser) resolveCheckpoint() Checkpoint {
	d := &p.d.ckpt
	ck := Checkpoint{StateDir: d.dir.v, KeyFile: d.key.v, Interval: d.interval.v, Off: d.interval.ok() && d.interval.v == 0,
		StateDirLine: d.dir.line, KeyFileLine: d.key.line}
	if d.key.ok() && d.dir.ok() && (d.key.v == d.dir.v || strings.HasPrefix(d.key.v, d.dir.v+"/")) {
		p.errs.add(d.key.line, "checkpoint key-file: %s is inside the state directory %s: a copy of the state (a backup) would carry its key", d.key.v, d.dir.v)
	}
	return ck
}

// resolveCluster checks the cluster commands against the tunnels.
func (p *parser) resolveCluster(c *Config) Cluster {
	d := &p.d.cl
	if d.first == 0 {
		return Cluster{}
	}
	if !d.node.ok() {
		p.errs.add(d.first, "cluster: no \"cluster node NAME\": the cluster commands need this node's name")
		return Cluster{}
	}
	cl := Cluster{Node: d.node.v, Endpoints: d.endpoints, CA: d.ca.v, Cert: d.cert.v, Key: d.key.v, KeyFile: d.keyFn.v,
		ElectionTimeout: d.election.v, TTL: d.ttl.v, FenceMargin: d.fence.v, VR: VR{Name: DefaultVR},
		NodeLine: d.node.line, CALine: d.ca.line, CertLine: d.cert.line, KeyFileLine: d.keyFn.line}
	for _, need := range []struct {
		what string
		ok   bool
	}{{"cluster etcd endpoint URL", len(d.endpoints) > 0}, {"cluster etcd ca-certificate FILE", d.ca.ok()},
		{"cluster etcd certificate FILE key FILE", d.cert.ok()}, {"cluster key-file FILE", d.keyFn.ok()}} {
		if !need.ok {
			p.errs.add(d.node.line, "cluster node: %q is required", need.what)
		}
	}
	if d.vr.ok() {
		v, found := c.VR(d.vr.v)
		if !found {
			p.errs.add(d.vr.line, "cluster etcd virtual-router: no virtual-router %q is declared", d.vr.v)
		}
		cl.VR = v
	}
	ttl := d.ttl.or(2 * time.Second)
	if d.fence.ok() && d.fence.v >= ttl/2 {
		p.errs.add(d.fence.line, "cluster fence-margin: %v must be below half the lease TTL (%v)", d.fence.v, ttl)
	}
	owner := map[string]string{}
	vips := map[netip.Addr]string{}
	for _, g := range d.groups {
		cl.Groups = append(cl.Groups, p.resolveGroup(c, g, owner, vips))
	}
	return cl
}

// resolveGroup checks a group: its VR, its VIP, and that each tunnel is
// declared, in no other group, in the group's transport VR and sourced
// from the VIP.
func (p *parser) resolveGroup(c *Config, d *groupDraft, owner map[string]string, vips map[netip.Addr]string) ClusterGroup {
	g := ClusterGroup{Name: d.name, Pos: Pos{File: p.file, Line: d.line}, VIP: d.vip.v, TransportVR: VR{Name: DefaultVR}}
	if d.vr.ok() {
		v, found := c.VR(d.vr.v)
		if !found {
			p.errs.add(d.vr.line, "transport-virtual-router: no virtual-router %q is declared", d.vr.v)
		}
		g.TransportVR = v
	}
	if !d.vip.ok() {
		p.errs.add(d.line, "cluster group %s: no virtual-address", d.name)
	} else if o, dup := vips[g.VIP.Addr()]; dup {
		p.errs.add(d.vip.line, "virtual-address: %s is also group %s's", g.VIP.Addr(), o)
	} else {
		vips[g.VIP.Addr()] = d.name
	}
	if len(d.tunnels) == 0 {
		p.errs.add(d.line, "cluster group %s: no tunnel", d.name)
	}
	for _, tr := range d.tunnels {
		t := c.Tunnel(tr.v)
		switch {
		case t == nil:
			p.errs.add(tr.line, "tunnel: no interface tunnel ipsec:%s is declared", tr.v)
			continue
		case owner[tr.v] != "":
			p.errs.add(tr.line, "tunnel: ipsec:%s is already in group %s", tr.v, owner[tr.v])
			continue
		case t.TransportVR.Name != g.TransportVR.Name:
			p.errs.add(tr.line, "tunnel: ipsec:%s is in transport-virtual-router %s, the group in %s", tr.v, t.TransportVR.Name, g.TransportVR.Name)
		case d.vip.ok() && t.TunnelSource != g.VIP.Addr():
			p.errs.add(tr.line, "tunnel: ipsec:%s has tunnel source %s, not the group's virtual address %s", tr.v, t.TunnelSource, g.VIP.Addr())
		}
		owner[tr.v] = d.name
		g.Tunnels = append(g.Tunnels, tr.v)
	}
	return g
}
