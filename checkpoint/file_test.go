package checkpoint

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// newStateFile returns a state file in a fresh directory with a machine
// key generated in another.
func newStateFile(t *testing.T) *StateFile {
	t.Helper()
	root := t.TempDir()
	f, err := OpenStateFile(filepath.Join(root, "state"), KeyConfig{Machine: filepath.Join(root, "etc", "checkpoint.key")})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func sampleState(t *testing.T) *State {
	return &State{Written: time.Unix(1700000000, 0), Period: time.Second, Tunnels: []Tunnel{
		sampleTunnel(t, "branch1", "esp-aes256-gcm16", 0x51),
		sampleTunnel(t, "branch2", "esp-aes128-hmac-sha256", 0x72),
		sampleTunnel(t, "branch3", "ah-hmac-sha", 0x93),
	}}
}

// TestStateFileRoundTrip: what Save writes, Load reads back; the file is
// 0600, and no key of any SA or IKE SA is in it, raw or in hex.
func TestStateFileRoundTrip(t *testing.T) {
	f := newStateFile(t)
	if _, err := f.Load(); !errors.Is(err, ErrNoState) {
		t.Fatalf("first start: %v", err)
	}
	s := sampleState(t)
	if err := f.Save(s); err != nil {
		t.Fatal(err)
	}
	got, err := f.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatal("loaded state differs")
	}
	raw, err := os.ReadFile(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	if i := findSecret(raw, secrets(s)); i >= 0 {
		t.Fatalf("key %d of the state found in %s", i, f.Path())
	}
	if findSecret(append(raw, s.Tunnels[2].SAs[1].AuthKey...), secrets(s)) != 13 {
		t.Fatal("the key search finds nothing: the test would pass for the wrong reason")
	}
	fi, _ := os.Stat(f.Path())
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %04o", fi.Mode().Perm())
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(f.Path()), ".*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// TestStateFileBad: a truncated, bit-flipped, foreign, future or other
// machine's file gives an error that says which and names the file.
func TestStateFileBad(t *testing.T) {
	f := newStateFile(t)
	if err := f.Save(sampleState(t)); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(f.Path())
	other, err := NewSealer(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := other.Seal(KindState, []byte("x"), nil)
	tunnelRecord, _ := f.seal.Seal(KindTunnel, []byte("x"), nil)
	future := bytes.Clone(good)
	future[7] = 9
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrNotCheckpoint},
		{"text", []byte("interface tunnel x\n"), ErrNotCheckpoint},
		{"torn", good[:len(good)/2], ErrCorrupt},
		{"header only", good[:Overhead-1], ErrCorrupt},
		{"bit flip", flip(good, len(good)-40), ErrCorrupt},
		{"salt flip", flip(good, 20), ErrCorrupt},
		{"future version", future, ErrVersion},
		{"another machine", foreign, ErrWrongKey},
		{"a tunnel record", tunnelRecord, ErrNotCheckpoint},
	}
	for _, c := range cases {
		if err := os.WriteFile(f.Path(), c.data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := f.Load()
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), f.Path()) {
			t.Errorf("%s: %v, want %v naming the file", c.name, err, c.want)
		}
	}
	junk := make([]byte, 4096)
	rand.Read(junk)
	os.WriteFile(f.Path(), append([]byte(magic), junk...), 0o600)
	if _, err := f.Load(); err == nil {
		t.Error("random bytes after the magic loaded")
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x20
	return c
}

// TestStateFileSaveIsAtomic: a save that cannot finish (the directory
// made read-only) leaves the old file whole and no temporary file.
func TestStateFileSaveIsAtomic(t *testing.T) {
	if os.Geteuid() == 0 {
		// root ignores directory permissions; use a file in the way.
		f := newStateFile(t)
		if err := f.Save(sampleState(t)); err != nil {
			t.Fatal(err)
		}
		before, _ := os.ReadFile(f.Path())
		os.Remove(f.Path())
		os.Mkdir(f.Path(), 0o700) // rename onto a directory fails
		os.WriteFile(filepath.Join(f.Path(), "x"), nil, 0o600)
		if err := f.Save(sampleState(t)); err == nil {
			t.Fatal("save over a directory succeeded")
		}
		left, _ := filepath.Glob(filepath.Join(filepath.Dir(f.Path()), "."+StateFileName+"-*"))
		if len(left) != 0 {
			t.Fatalf("temporary files left: %v", left)
		}
		os.RemoveAll(f.Path())
		os.WriteFile(f.Path(), before, 0o600)
		if _, err := f.Load(); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Skip("needs root to exercise the rename failure the same way in CI")
}

// TestKeyFiles: the machine key is made once, 0600, in its own directory,
// and loads the same; an operator's key in hex or raw works; a key readable
// by others, of the wrong size, or inside the state directory is refused.
func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	mk := filepath.Join(dir, "etc", "ism", "checkpoint.key")
	a, err := MachineKey(mk)
	if err != nil {
		t.Fatal(err)
	}
	b, err := MachineKey(mk)
	if err != nil || a.KeyID() != b.KeyID() {
		t.Fatalf("second load: %v %v %v", a, b, err)
	}
	fi, _ := os.Stat(mk)
	di, _ := os.Stat(filepath.Dir(mk))
	if fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
		t.Fatalf("machine key %04o in a directory %04o", fi.Mode().Perm(), di.Mode().Perm())
	}
	raw := bytes.Repeat([]byte{0xab}, KeySize)
	hexKey := filepath.Join(dir, "hex.key")
	os.WriteFile(hexKey, []byte("  "+strings.Repeat("AB", KeySize)+"\n"), 0o600)
	rawKey := filepath.Join(dir, "raw.key")
	os.WriteFile(rawKey, raw, 0o400)
	h, err1 := LoadKeyFile(hexKey)
	r, err2 := LoadKeyFile(rawKey)
	if err1 != nil || err2 != nil || h.KeyID() != r.KeyID() {
		t.Fatalf("hex and raw keys: %v %v", err1, err2)
	}
	if s := (&struct{ S *Sealer }{h}); strings.Contains(strings.ToLower(sprint(s)), "abab") {
		t.Fatal("sealer printed its key")
	}
	os.Chmod(hexKey, 0o644)
	if _, err := LoadKeyFile(hexKey); !errors.Is(err, ErrKeyPermissions) {
		t.Fatalf("0644 key: %v", err)
	}
	short := filepath.Join(dir, "short.key")
	os.WriteFile(short, raw[:16], 0o600)
	if _, err := LoadKeyFile(short); err == nil {
		t.Fatal("16-byte key accepted")
	}
	state := filepath.Join(dir, "state")
	for _, k := range []string{filepath.Join(state, "k"), filepath.Join(state, "sub", "k")} {
		if _, err := OpenStateFile(state, KeyConfig{Machine: k}); !errors.Is(err, ErrKeyBesideState) {
			t.Fatalf("key %s beside the state: %v", k, err)
		}
	}
	if _, err := OpenStateFile(state, KeyConfig{File: rawKey}); err != nil {
		t.Fatalf("key next door: %v", err)
	}
}

// TestStateDirLocked: a state directory is one daemon's: a second open,
// here or in another process, is refused with ErrStateInUse naming the
// holder's pid until the first closes; a holder that dies (here: Close)
// leaves no stale lock behind.
func TestStateDirLocked(t *testing.T) {
	root := t.TempDir()
	state, key := filepath.Join(root, "state"), KeyConfig{Machine: filepath.Join(root, "etc", "checkpoint.key")}
	f, err := OpenStateFile(state, key)
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenStateFile(state, key)
	if !errors.Is(err, ErrStateInUse) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second open of a locked state directory: %v", err)
	}
	if err := f.Save(sampleState(t)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g, err := OpenStateFile(state, key)
	if err != nil {
		t.Fatalf("open after Close: %v", err)
	}
	defer g.Close()
	if _, err := g.Load(); err != nil {
		t.Fatalf("the state the first holder saved: %v", err)
	}
	other, err := OpenStateFile(filepath.Join(root, "state2"), key)
	if err != nil {
		t.Fatalf("another directory, same key: %v", err)
	}
	other.Close()
}
