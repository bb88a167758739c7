package lookaside

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/ismgw/ism/internal/netlab"
	"github.com/ismgw/ism/netns"
)

// TestCreateTUNWhileOldHeld: the device a datapath has just closed stays
// while another copy of its descriptor is open (a child forked meanwhile
// holds one until it execs), and the kernel refuses its name until then;
// createTUN waits for it instead of failing the VR's tunnels with "device
// or resource busy".
func TestCreateTUNWhileOldHeld(t *testing.T) {
	l := netlab.New(t) // skips unless root
	ns := l.NS("v")
	err := netns.Do(ns, func() error {
		held, err := closedButHeld()
		if err != nil {
			return err
		}
		released := time.AfterFunc(100*time.Millisecond, func() { unix.Close(held) })
		defer released.Stop()
		start := time.Now()
		dev, err := createTUN()
		if err != nil {
			return err
		}
		defer dev.Close()
		if waited := time.Since(start); waited < 50*time.Millisecond {
			t.Errorf("created after %v, while the old device was still held", waited)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Without the wait, the kernel's answer: the name is busy.
	err = netns.Do(ns, func() error {
		held, err := closedButHeld()
		if err != nil {
			return err
		}
		defer unix.Close(held)
		dev, err := tun.CreateTUN(TUNName, tunMTU)
		if err == nil {
			dev.Close()
		}
		return err
	})
	if !errors.Is(err, unix.EBUSY) {
		t.Errorf("creating the device while the old one is held: %v, want EBUSY", err)
	}
}

// closedButHeld creates the device, copies its descriptor and closes it:
// the copy, which it returns, keeps the device as a forked child would.
func closedButHeld() (int, error) {
	old, err := createTUN()
	if err != nil {
		return -1, err
	}
	defer old.Close()
	return unix.Dup(int(old.File().Fd()))
}
