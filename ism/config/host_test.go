package config

import (
	"errors"
	"net/netip"
	"testing"
)

// fakeHost is a Host with fixed addresses per network namespace.
type fakeHost struct {
	addrs map[string][]netip.Addr
	errs  map[string]error
	calls map[string]int
}

func (h *fakeHost) Addresses(netns string) ([]netip.Addr, error) {
	h.calls[netns]++
	if err := h.errs[netns]; err != nil {
		return nil, err
	}
	return h.addrs[netns], nil
}

const hostConf = `virtual-router transit netns transit0
virtual-router cust netns cust0
ipsec transform-set t
  transform 1 esp-aes128-gcm16
ipsec pre-shared-key address 192.0.2.2 ascii k
ipsec pre-shared-key address 192.0.2.3 ascii k
ipsec pre-shared-key address 192.0.2.4 ascii k
interface tunnel ipsec:a
  transport-virtual-router transit
  tunnel source 192.0.2.1
  tunnel destination 192.0.2.2
  tunnel transform-set t
interface tunnel ipsec:b
  virtual-router cust
  tunnel destination 192.0.2.3
  tunnel source 192.0.2.1
  tunnel transform-set t
interface tunnel ipsec:c
  tunnel transform-set t
  tunnel destination 192.0.2.4
  tunnel source 192.0.2.1
`

func TestCheckHost(t *testing.T) {
	c := mustParse(t, hostConf)
	a := netip.MustParseAddr
	h := &fakeHost{
		addrs: map[string][]netip.Addr{
			"transit0": {a("127.0.0.1"), a("::ffff:192.0.2.1")}, // an IPv4-mapped form still matches
			"cust0":    {a("192.0.2.9")},
			"":         {a("fe80::1%eth0"), a("192.0.2.1")},
		},
		calls: map[string]int{},
	}
	err := c.CheckHost(h)
	want := "test.conf:16: tunnel source: 192.0.2.1 is not an address of virtual-router cust (netns cust0)"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	var ce Error
	if !errors.As(err, &ce) || ce.Line != 16 {
		t.Errorf("not a config.Error at line 16: %#v", err)
	}

	h.addrs["cust0"] = append(h.addrs["cust0"], a("192.0.2.1"))
	h.calls = map[string]int{}
	if err := c.CheckHost(h); err != nil {
		t.Errorf("all sources present: %v", err)
	}
	for ns, n := range h.calls {
		if n != 1 {
			t.Errorf("netns %q asked %d times", ns, n)
		}
	}

	h.errs = map[string]error{"transit0": errors.New("netns: no such file or directory"), "": errors.New("netlink: permission denied")}
	err = c.CheckHost(h)
	want = "test.conf:10: tunnel source: cannot list the addresses of virtual-router transit (netns transit0): netns: no such file or directory\n" +
		"test.conf:21: tunnel source: cannot list the addresses of virtual-router default: netlink: permission denied"
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}
