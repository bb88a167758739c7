package checkpoint_test

import (
	"bytes"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ismgw/ism/checkpoint"
	"github.com/ismgw/ism/fallback"
	"github.com/ismgw/ism/internal/testpkt"
	"github.com/ismgw/ism/ipsec"
	"github.com/ismgw/ism/offload"
	"github.com/ismgw/ism/transform"
)

// This file runs issue 11's single-gateway restart through the real
// offload engine: a gateway's SAs are checkpointed to its state file, the
// gateway sends on, dies, and a new engine resumes them from the file;
// its peer, whose replay windows remember everything, takes the new
// packets. ism does the same with its tunnels.

// engine is a gateway's SA database with a processor.
type engine struct {
	e *offload.Engine
	p *offload.Processor
}

func newEngine(t testing.TB) *engine {
	fb := fallback.New(1)
	t.Cleanup(func() { fb.Close() })
	e, err := offload.New(offload.Config{Fallback: fb})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return &engine{e: e, p: e.NewProcessor()}
}

var (
	local, peer = netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	tr, _       = transform.Lookup("esp-aes128-hmac-sha256")
)

// saPair is one tunnel's SAs: outbound local→peer with SPI spi, inbound
// peer→local with spi+1, with keys derived from spi.
func saPair(spi uint32) (out, in offload.SAConfig) {
	key := func(n int, salt byte) ipsec.Key {
		k := make(ipsec.Key, n)
		for i := range k {
			k[i] = byte(spi>>3) ^ salt ^ byte(i*29)
		}
		return k
	}
	out = offload.SAConfig{SPI: spi, Transform: tr, Direction: ipsec.Outbound, Src: local, Dst: peer, ESN: true,
		ReplayWindow: offload.DefaultReplayWindow, CipherKey: key(tr.CipherKeyLen(), 1), AuthKey: key(tr.AuthKeyLen(), 2)}
	in = out
	in.SPI, in.Direction, in.Src, in.Dst = spi+1, ipsec.Inbound, peer, local
	in.CipherKey, in.AuthKey = key(tr.CipherKeyLen(), 3), key(tr.AuthKeyLen(), 4)
	return out, in
}

// mirror returns the config of the other side of an SA.
func mirror(c offload.SAConfig) offload.SAConfig {
	c.Direction = 1 - c.Direction
	c.CipherKey, c.AuthKey = c.CipherKey.Clone(), c.AuthKey.Clone()
	return c
}

// record turns an SA of the engine into a checkpoint record, as ism's
// export does.
func record(sa *offload.SA, keys offload.SAConfig) checkpoint.SA {
	c, s := sa.Config(), sa.Snapshot()
	return checkpoint.SA{ID: ipsec.SAID{Dst: c.Dst, SPI: c.SPI, Protocol: c.Transform.Protocol},
		Direction: c.Direction, Transform: c.Transform, Mode: c.Mode,
		Src: c.Src, Dst: c.Dst, UDPEncap: c.UDPEncap, SrcPort: c.SrcPort, DstPort: c.DstPort, ESN: c.ESN,
		ReplayWindow: c.ReplayWindow, Used: s.Used, Seq: s.Seq, Replay: s.Replay,
		CipherKey: keys.CipherKey.Clone(), AuthKey: keys.AuthKey.Clone()}
}

// config turns a record back into an SA config.
func config(r *checkpoint.SA) offload.SAConfig {
	return offload.SAConfig{SPI: r.ID.SPI, Transform: r.Transform, Direction: r.Direction,
		Mode: r.Mode, Src: r.Src, Dst: r.Dst, UDPEncap: r.UDPEncap, SrcPort: r.SrcPort,
		DstPort: r.DstPort, ESN: r.ESN, ReplayWindow: r.ReplayWindow,
		CipherKey: r.CipherKey.Clone(), AuthKey: r.AuthKey.Clone()}
}

func send(t testing.TB, from, to *engine, sa *offload.SA, n int) (lastDrop offload.DropReason, wires [][]byte) {
	t.Helper()
	for i := range n {
		pk := offload.NewPacket()
		in := testpkt.UDP(netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.1"), 1, 2, 40, byte(i))
		pk.Reset(len(in))
		copy(pk.Buf.Bytes(), in)
		pk.SA = sa
		from.p.Encap([]*offload.Packet{pk})
		if pk.Drop != offload.NotDropped {
			t.Fatalf("encap: %v", pk.Drop)
		}
		wire := bytes.Clone(pk.Buf.Bytes())
		wires = append(wires, wire)
		lastDrop = receive(to, wire)
	}
	return lastDrop, wires
}

func receive(to *engine, wire []byte) offload.DropReason {
	pk := offload.NewPacket()
	pk.Reset(len(wire))
	copy(pk.Buf.Bytes(), wire)
	to.p.Decap([]*offload.Packet{pk})
	return pk.Drop
}

// TestRestartFromStateFile: 100 tunnels; each sends and receives, a
// checkpoint is saved, each sends and receives more, the gateway dies.
// Restarted from the file, every outbound SA's next packet is taken by the
// peer; an inbound packet received before the checkpoint is refused as a
// replay, and new ones are taken.
func TestRestartFromStateFile(t *testing.T) {
	dir := t.TempDir()
	file, err := checkpoint.OpenStateFile(filepath.Join(dir, "state"), checkpoint.KeyConfig{Machine: filepath.Join(dir, "etc", "key")})
	if err != nil {
		t.Fatal(err)
	}
	gw, pr := newEngine(t), newEngine(t)
	type tunnel struct {
		out, in         offload.SAConfig
		sOut, sIn, pOut *offload.SA
		before, after   [][]byte // peer's packets received before and after the checkpoint
	}
	var tunnels []*tunnel
	for i := range 100 {
		tu := &tunnel{}
		tu.out, tu.in = saPair(0x1000 + 2*uint32(i))
		var err error
		tu.sOut, _ = gw.e.AddSA(tu.out)
		tu.sIn, _ = gw.e.AddSA(tu.in)
		pr.e.AddSA(mirror(tu.out))
		if tu.pOut, err = pr.e.AddSA(mirror(tu.in)); err != nil || tu.sOut == nil || tu.sIn == nil {
			t.Fatal(err)
		}
		tunnels = append(tunnels, tu)
	}
	ck := checkpoint.NewCheckpointer(checkpoint.Config{Period: time.Second,
		Source: func() ([]checkpoint.Tunnel, error) {
			var out []checkpoint.Tunnel
			for i, tu := range tunnels {
				out = append(out, checkpoint.Tunnel{Name: "t" + strconv.Itoa(i),
					SAs: []checkpoint.SA{record(tu.sOut, tu.out), record(tu.sIn, tu.in)}})
			}
			return out, nil
		},
		Sink: file.Save})
	for _, tu := range tunnels {
		send(t, gw, pr, tu.sOut, 3)
		_, tu.before = send(t, pr, gw, tu.pOut, 3)
	}
	if err := ck.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	for _, tu := range tunnels { // after the checkpoint, before the crash
		send(t, gw, pr, tu.sOut, 5)
		_, tu.after = send(t, pr, gw, tu.pOut, 5)
	}
	gw.e.Close() // the crash

	began := time.Now()
	st, err := file.Load()
	if err != nil {
		t.Fatal(err)
	}
	re := newEngine(t)
	resumed := map[uint32]*offload.SA{}
	for i := range st.Tunnels {
		tu := &st.Tunnels[i]
		d := checkpoint.Plan(tu, checkpoint.Restart{Policy: checkpoint.PolicyOf(st), Down: time.Since(st.Written)})
		if d.Action != checkpoint.Resume {
			t.Fatalf("%s: %v: %s", tu.Name, d.Action, d.Reason)
		}
		for _, r := range d.SAs {
			sa, err := re.e.ResumeSA(config(r.SA), offload.Resume{After: r.After, Replay: r.SA.Replay, Used: r.Used})
			if err != nil {
				t.Fatal(err)
			}
			resumed[r.SA.ID.SPI] = sa
			if r.SA.Direction == ipsec.Outbound && r.After != r.SA.Seq+r.Margin.N {
				t.Fatalf("resumes after %d: %s", r.After, r.Margin)
			}
		}
		tu.Zero()
	}
	t.Logf("%d tunnels resumed %v after the state file was opened", len(st.Tunnels), time.Since(began))
	for _, tu := range tunnels {
		if drop, _ := send(t, re, pr, resumed[tu.out.SPI], 1); drop != offload.NotDropped {
			t.Fatalf("SPI %#x: the peer dropped the resumed SA's packet: %v", tu.out.SPI, drop)
		}
		if drop := receive(re, tu.before[2]); drop != offload.DropReplay {
			t.Fatalf("SPI %#x: a packet received before the checkpoint, replayed: %v", tu.in.SPI, drop)
		}
		// The window is as the checkpoint left it: a packet received
		// between the checkpoint and the crash is taken once more
		// (DESIGN.md, Cluster: at most a period of traffic).
		if drop := receive(re, tu.after[4]); drop != offload.NotDropped {
			t.Fatalf("SPI %#x: a packet received after the checkpoint: %v", tu.in.SPI, drop)
		}
		if drop, _ := send(t, pr, re, tu.pOut, 1); drop != offload.NotDropped {
			t.Fatalf("SPI %#x: a new packet from the peer: %v", tu.in.SPI, drop)
		}
	}
}

// A process that saves the state file in a loop, to be killed mid-save.
const saverEnv = "ISM_CHECKPOINT_TEST_SAVER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(saverEnv); dir != "" {
		f, err := checkpoint.OpenStateFile(filepath.Join(dir, "state"), checkpoint.KeyConfig{Machine: filepath.Join(dir, "key")})
		if err != nil {
			os.Exit(2)
		}
		for i := uint64(1); ; i++ {
			s := &checkpoint.State{Written: time.Unix(0, int64(i)), Tunnels: []checkpoint.Tunnel{{Name: "x", IKE: []checkpoint.IKESA{{Version: 2, Data: bytes.Repeat([]byte{byte(i)}, 60000)}}}}}
			if f.Save(s) != nil {
				os.Exit(3)
			}
			if i == 1 {
				os.Stdout.WriteString("saved\n") // the parent kills from now on
			}
		}
	}
	os.Exit(m.Run())
}

// TestSaveKilled: a daemon killed (SIGKILL) while saving leaves either
// the old state or the new one, never a torn file, and its temporary file
// is cleaned up at the next start.
func TestSaveKilled(t *testing.T) {
	dir := t.TempDir()
	var last uint64
	for run := range 10 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), saverEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(out, make([]byte, len("saved\n"))); err != nil {
			t.Fatalf("run %d: the saver did not save: %v", run, err)
		}
		time.Sleep(time.Duration(5+run*17) * time.Millisecond)
		syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		f, err := checkpoint.OpenStateFile(filepath.Join(dir, "state"), checkpoint.KeyConfig{Machine: filepath.Join(dir, "key")})
		if err != nil {
			t.Fatal(err)
		}
		st, err := f.Load()
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		d := st.Tunnels[0].IKE[0].Data
		if n := uint64(st.Written.UnixNano()); len(d) != 60000 || d[0] != d[len(d)-1] || byte(n) != d[0] {
			t.Fatalf("run %d: state %d does not hold its own data", run, n)
		}
		last = max(last, uint64(st.Written.UnixNano()))
		f.Close() // the next saver takes the directory's lock
		left, _ := filepath.Glob(filepath.Join(dir, "state", ".*"))
		if len(left) != 0 {
			t.Fatalf("run %d: left %v", run, left)
		}
	}
	if last < 2 {
		t.Fatalf("the saver saved %d states: the kills proved nothing", last)
	}
}

// BenchmarkRestart: load a state file of 1000 tunnels (2000 SAs), plan
// and resume them in a fresh engine: the time a restarted gateway's
// manual tunnels take to come back, past the daemon's own start.
func BenchmarkRestart(b *testing.B) {
	dir := b.TempDir()
	file, err := checkpoint.OpenStateFile(filepath.Join(dir, "state"), checkpoint.KeyConfig{Machine: filepath.Join(dir, "etc", "key")})
	if err != nil {
		b.Fatal(err)
	}
	st := &checkpoint.State{Written: time.Now(), Period: time.Second}
	src := newEngine(b)
	for i := range 1000 {
		out, in := saPair(0x1000 + 2*uint32(i))
		so, _ := src.e.AddSA(out)
		si, _ := src.e.AddSA(in)
		st.Tunnels = append(st.Tunnels, checkpoint.Tunnel{Name: "t" + strconv.Itoa(i), SAs: []checkpoint.SA{record(so, out), record(si, in)}})
	}
	if err := file.Save(st); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		re := newEngine(b)
		b.StartTimer()
		st, err := file.Load()
		if err != nil {
			b.Fatal(err)
		}
		for i := range st.Tunnels {
			d := checkpoint.Plan(&st.Tunnels[i], checkpoint.Restart{Policy: checkpoint.PolicyOf(st)})
			for _, r := range d.SAs {
				if _, err := re.e.ResumeSA(config(r.SA), offload.Resume{After: r.After, Replay: r.SA.Replay, Used: r.Used}); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StopTimer()
		re.e.Close()
		b.StartTimer()
	}
}
