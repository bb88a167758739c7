package checkpoint

import (
	"bytes"
	"errors"
	"testing"
)

// TestSealBindsContext: a record opens only as its kind, under its key,
// at its place (the context: an etcd key), and any changed byte fails.
func TestSealBindsContext(t *testing.T) {
	s, _ := NewSealer(bytes.Repeat([]byte{1}, KeySize))
	rec := []byte("the record of tunnel branch1")
	env, err := s.Seal(KindTunnel, rec, []byte("/ism/groups/g1/state/branch1"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Open(KindTunnel, env, []byte("/ism/groups/g1/state/branch1")); err != nil || !bytes.Equal(got, rec) {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := s.Open(KindTunnel, env, []byte("/ism/groups/g1/state/branch2")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("record moved to another key: %v", err)
	}
	if bytes.Contains(env, rec) {
		t.Fatal("record in the clear")
	}
	again, _ := s.Seal(KindTunnel, rec, nil)
	if bytes.Equal(again[headerLen:], env[headerLen:]) {
		t.Fatal("two seals of one record are equal: the salt is not fresh")
	}
	for i := range env {
		if _, err := s.Open(KindTunnel, flip(env, i), []byte("/ism/groups/g1/state/branch1")); err == nil {
			t.Fatalf("byte %d changed and the record still opened", i)
		}
	}
}
