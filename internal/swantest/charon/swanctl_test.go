package charon

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ismgw/ism/internal/netlab"
)

// sample uses every field: an IKEv1 connection with DPD, timers off, two
// children (one with PFS and its own timers), a certificate, and an
// IKEv2 one; a PSK and a key file.
func sample() Swanctl {
	no := false
	return Swanctl{
		Connections: []Connection{{
			Name: "ism", Version: 1, Aggressive: true,
			LocalAddrs: []string{"192.0.2.2"}, RemoteAddrs: []string{"192.0.2.1"},
			Proposals: []string{"aes128-sha1-modp2048", "3des-md5-modp1024"},
			Timers:    Timers{Rekey: Never},
			DPDDelay:  time.Second, DPDTimeout: 4 * time.Second,
			Local:  End{Auth: "psk", ID: "gw.example.net"},
			Remote: End{Auth: "psk", ID: "192.0.2.1"},
			Children: []Child{
				{Name: "net", LocalTS: []string{"203.0.113.0/24"}, RemoteTS: []string{"198.51.100.0/24"},
					ESPProposals: []string{"aes128-sha1-modp1536"}, Timers: Timers{Rekey: 4 * time.Second, Life: 6 * time.Second, Rand: 1500 * time.Millisecond}},
				{Name: "net2", LocalTS: []string{"203.0.113.128/25"}, RemoteTS: []string{"198.51.100.128/25"},
					ESPProposals: []string{"aes128gcm16"}, StartAction: "trap", Extra: []string{"dpd_action = clear"}},
			},
		}, {
			Name: "v2", Version: 2, Mobike: &no, Encap: true,
			RemoteAddrs: []string{"192.0.2.3"}, Proposals: []string{"aes256-sha384-ecp384"},
			Local:    End{Auth: "pubkey", Certs: []string{"swan.pem"}},
			Remote:   End{Auth: "pubkey"},
			Children: []Child{{Name: "all", ESPProposals: []string{"aes256gcm16-ecp384"}, Mode: "transport"}},
			Extra:    []string{"unique = never"},
		}},
		Secrets: []Secret{
			{Name: "ike-1", IDs: []string{"gw.example.net", "192.0.2.1"}, Secret: `pre"shared`},
			{Name: "private-1", File: "swan.pem"},
		},
	}
}

const sampleText = `connections {
  ism {
    version = 1
    aggressive = yes
    local_addrs = 192.0.2.2
    remote_addrs = 192.0.2.1
    proposals = aes128-sha1-modp2048, 3des-md5-modp1024
    rekey_time = 0
    dpd_delay = 1s
    dpd_timeout = 4s
    local {
      auth = psk
      id = gw.example.net
    }
    remote {
      auth = psk
      id = 192.0.2.1
    }
    children {
      net {
        local_ts = 203.0.113.0/24
        remote_ts = 198.51.100.0/24
        esp_proposals = aes128-sha1-modp1536
        mode = tunnel
        start_action = none
        rekey_time = 4s
        life_time = 6s
        rand_time = 2s
      }
      net2 {
        local_ts = 203.0.113.128/25
        remote_ts = 198.51.100.128/25
        esp_proposals = aes128gcm16
        mode = tunnel
        start_action = trap
        dpd_action = clear
      }
    }
  }
  v2 {
    version = 2
    remote_addrs = 192.0.2.3
    proposals = aes256-sha384-ecp384
    mobike = no
    encap = yes
    unique = never
    local {
      auth = pubkey
      certs = swan.pem
    }
    remote {
      auth = pubkey
    }
    children {
      all {
        esp_proposals = aes256gcm16-ecp384
        mode = transport
        start_action = none
      }
    }
  }
}
secrets {
  ike-1 {
    id-a = gw.example.net
    id-b = 192.0.2.1
    secret = "pre\"shared"
  }
  private-1 {
    file = swan.pem
  }
}
`

func TestSwanctlRender(t *testing.T) {
	if got := sample().Render(); got != sampleText {
		t.Errorf("rendered:\n%s\nwant:\n%s", got, sampleText)
	}
	if got, want := (Swanctl{}).Render(), "connections {\n}\nsecrets {\n}\n"; got != want {
		t.Errorf("empty: %q, want %q", got, want)
	}
}

// TestSwanctlLoads gives charon the rendered file (without the key file
// and certificate, which would need a PKI) and checks, over vici, that it
// took both connections with the versions, children and timers rendered.
func TestSwanctlLoads(t *testing.T) {
	l := netlab.New(t) // skips unless root
	if _, err := os.Stat(Binary); err != nil {
		t.Fatal("needs strongSwan's charon (make deps, or apt-get install strongswan-charon strongswan-swanctl)")
	}
	s := sample()
	s.Connections[1].Local = End{Auth: "psk"}
	s.Connections[1].Remote = End{Auth: "psk"}
	s.Secrets = s.Secrets[:1]
	ch := Start(t, l.NS("swan"), t.TempDir(), Conf{Quiet: true, Swanctl: s.Render()})
	c, err := ch.Vici()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conns := map[string]*Message{}
	if err := c.Listen("list-conn", func(m *Message) {
		for name, sec := range m.Sections {
			conns[name] = sec
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Call("list-conns", nil); err != nil {
		t.Fatal(err)
	}
	ism, v2 := conns["ism"], conns["v2"]
	if ism == nil || v2 == nil {
		t.Fatalf("charon has connections %v", conns)
	}
	if ism.Keys["version"] != "IKEv1" || v2.Keys["version"] != "IKEv2" || ism.Keys["dpd_delay"] != "1" || ism.Keys["rekey_time"] != "0" {
		t.Errorf("connection ism %+v, v2 %+v", ism.Keys, v2.Keys)
	}
	net := ism.Sections["children"]
	if net == nil || net.Sections["net"] == nil || net.Sections["net2"] == nil {
		t.Fatalf("children of ism: %+v", net)
	}
	if k := net.Sections["net"].Keys; k["rekey_time"] != "4" || k["mode"] != "TUNNEL" {
		t.Errorf("child net %+v", k)
	}
	if all := v2.Sections["children"]; all == nil || all.Sections["all"] == nil || all.Sections["all"].Keys["mode"] != "TRANSPORT" {
		t.Errorf("children of v2: %+v", all)
	}
	if out, err := ch.Swanctl("--list-conns"); err != nil || !strings.Contains(out, "ism: IKEv1") {
		t.Errorf("swanctl --list-conns: %v\n%s", err, out)
	}
}
