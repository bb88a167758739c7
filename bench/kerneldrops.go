package bench

import "encoding/json"

// kernelDrops reads what the kernels of namespaces dropped where a
// gateway cannot count it: each link's receive and transmit drops (a
// secure interface's device queue, full while the gateway does not read
// it, counts as its transmit drops) and UDP datagrams dropped for a full
// socket buffer, keyed "NS LINK tx", "NS Udp6RcvbufErrors".
func (s *scaleLab) kernelDrops(nss ...string) map[string]uint64 {
	out := map[string]uint64{}
	for _, ns := range nss {
		var links []struct {
			Name  string `json:"ifname"`
			Stats struct {
				RX struct{ Dropped uint64 } `json:"rx"`
				TX struct{ Dropped uint64 } `json:"tx"`
			} `json:"stats64"`
		}
		if b, err := s.l.Run(ns, "ip", "-j", "-s", "link", "show"); err == nil && json.Unmarshal([]byte(b), &links) == nil {
			for _, l := range links {
				out[ns+" "+l.Name+" rx"] = l.Stats.RX.Dropped
				out[ns+" "+l.Name+" tx"] = l.Stats.TX.Dropped
			}
		}
		var udp struct{ Kernel map[string]uint64 }
		if b, err := s.l.Run(ns, "nstat", "-az", "--json", "UdpRcvbufErrors", "Udp6RcvbufErrors"); err == nil && json.Unmarshal([]byte(b), &udp) == nil {
			for k, v := range udp.Kernel {
				out[ns+" "+k] = v
			}
		}
	}
	return out
}

// since returns the counters of now that grew since then, by how much.
func since(now, then map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range now {
		if v > then[k] {
			out[k] = v - then[k]
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
