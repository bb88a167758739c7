package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// inode stores the inode of the calling thread's network namespace.
func inode(ino *uint64) func() error {
	return func() error {
		var st unix.Stat_t
		err := unix.Stat("/proc/thread-self/ns/net", &st)
		*ino = st.Ino
		return err
	}
}

func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestDo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	name := fmt.Sprintf("netnstest-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	want := nsInode(t, Dir+"/"+name)
	own := nsInode(t, "/proc/self/ns/net")
	var in uint64
	if err := Do(name, inode(&in)); err != nil {
		t.Fatal(err)
	}
	if in != want || in == own {
		t.Errorf("ran in namespace %d, want %d (own %d)", in, want, own)
	}
	// fn's error comes back, and the thread went home: the next function
	// run in the own namespace sees it.
	boom := errors.New("boom")
	if err := Do(name, func() error { return boom }); !errors.Is(err, boom) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	n, err := Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for range 10 {
		if err := n.Do(inode(&in)); err != nil {
			t.Fatal(err)
		}
		if in != own {
			t.Fatalf("own namespace: ran in %d, want %d", in, own)
		}
	}
	if _, err := Open("netnstest-does-not-exist"); err == nil {
		t.Error("opened a namespace that does not exist")
	}
}

func TestFresh(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	own := nsInode(t, "/proc/self/ns/net")
	var in uint64
	if err := Fresh(inode(&in)); err != nil {
		t.Fatal(err)
	}
	if in == own || in == 0 {
		t.Errorf("fresh namespace %d, own %d", in, own)
	}
}
