package charon

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/ismgw/ism/internal/netlab"
)

// TestCharonVici starts a real charon in a namespace, talks to it over
// vici, and stops it.
func TestCharonVici(t *testing.T) {
	l := netlab.New(t) // skips unless root
	if _, err := os.Stat(Binary); err != nil {
		t.Fatal("needs strongSwan's charon (make deps, or apt-get install strongswan-charon strongswan-swanctl)")
	}
	ns := l.NS("swan")
	ch := Start(t, ns, t.TempDir(), Conf{Quiet: true, Swanctl: `connections {
  c {
    version = 1
    remote_addrs = 192.0.2.2
    local {
      auth = psk
    }
    remote {
      auth = psk
    }
    children {
      net {
        local_ts = 198.51.100.0/24
        remote_ts = 203.0.113.0/24
      }
    }
  }
}
`})
	c, err := ch.Vici()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := c.Call("version", nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.Keys["daemon"] != "charon" || !strings.HasPrefix(v.Keys["version"], "5.") {
		t.Errorf("version: %+v", v.Keys)
	}
	conns, err := c.Call("get-conns", nil)
	if err != nil || len(conns.Lists["conns"]) != 1 || conns.Lists["conns"][0] != "c" {
		t.Errorf("get-conns: %+v, %v", conns, err)
	}
	if err := c.Listen("ike-updown", func(*Message) {}); err != nil {
		t.Errorf("listen ike-updown: %v", err)
	}
	if err := c.Listen("no-such-event", func(*Message) {}); err == nil {
		t.Error("registering an unknown event succeeded")
	}
	err = Check(c.Call("initiate", (&Message{}).Set("child", "nope").Set("timeout", "-1")))
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "not found") {
		t.Errorf("initiate an unknown child: %v", err)
	}
	if _, err := c.Call("no-such-command", nil); err == nil {
		t.Error("an unknown command succeeded")
	}
	pid := ch.Pid()
	ch.Stop()
	if ch.Pid() != 0 || syscall.Kill(pid, 0) == nil {
		t.Errorf("charon %d still running after Stop", pid)
	}
	if _, err := c.Call("version", nil); err == nil {
		t.Error("a call succeeded after charon stopped")
	}
}
