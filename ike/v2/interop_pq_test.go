package v2

import (
	"strings"
	"testing"

	"github.com/ismgw/ism/ike"
)

// Interop with charon 5.9, which has neither IKE_INTERMEDIATE (RFC 9242)
// nor ML-KEM: ISM's policy with ML-KEM-768 as an optional additional key
// exchange gets a working IKE SA of the classical group and no error in
// either role; a required one is refused with NO_PROPOSAL_CHOSEN (ISM as
// initiator: charon's; as responder: ISM's).

func pqInteropPolicy(optional bool) ike.Policy {
	return ike.Policy{Encryption: ike.EncAES128, Hash: ike.HashSHA256, Auth: ike.AuthPSK, Group: 19,
		AdditionalKE: []int{ike.MLKEM768}, AdditionalKEOptional: optional}
}

// TestInteropAdditionalKEFallback: optional ML-KEM against charon 5.9.
func TestInteropAdditionalKEFallback(t *testing.T) {
	t.Parallel()
	roles(t, func(t *testing.T, ismInit bool) {
		cfg := pskConfig(pqInteropPolicy(true))
		cfg.Tunnels = []ike.Tunnel{interopTunnel(t, "esp-aes128-gcm16")}
		x := newInterop(t, cfg, swanConn{Proposals: "aes128-sha256-ecp256", ESPProposals: "aes128gcm16"}.render())
		x.up(t, ismInit)
		x.check(t, swanWant{encr: "AES_CBC", keysize: "128", integ: "HMAC_SHA2_256_128", prf: "PRF_HMAC_SHA2_256", dh: "ECP_256",
			espEncr: "AES_GCM_16", espKeysize: "128"})
		st := x.d.Status()
		if len(st.IKESAs) != 1 || len(st.IKESAs[0].AdditionalKE) != 0 || st.IKESAs[0].Policy.Group != 19 {
			t.Fatalf("IKE SA: %+v", st.IKESAs)
		}
		if c := st.Counters; c.NoProposalChosen != 0 || c.IntermediateExchanges != 0 || countEvents(x.lis, "failed", "t1") != 0 {
			t.Fatalf("a fallback with an error: %+v, events %v", c, x.lis.Events())
		}
	})
}

// TestInteropAdditionalKERequired: required ML-KEM against charon 5.9:
// no IKE SA, NO_PROPOSAL_CHOSEN counted by ISM.
func TestInteropAdditionalKERequired(t *testing.T) {
	t.Parallel()
	roles(t, func(t *testing.T, ismInit bool) {
		cfg := pskConfig(pqInteropPolicy(false))
		cfg.Tunnels = []ike.Tunnel{interopTunnel(t, "esp-aes128-gcm16")}
		x := newInterop(t, cfg, swanConn{Proposals: "aes128-sha256-ecp256", ESPProposals: "aes128gcm16"}.render())
		if ismInit {
			x.d.Acquire("t1")
			e := waitEvent(t, x.lis, "failed", "t1")
			if !strings.Contains(e.Reason, "NO_PROPOSAL_CHOSEN") {
				t.Fatalf("failed: %s", e.Reason)
			}
		} else if out, err := x.env.Initiate("net", 10e9); err == nil {
			t.Fatalf("charon set up an IKE SA with a peer that requires ML-KEM:\n%s", out)
		}
		if x.d.Status().Counters.NoProposalChosen == 0 || countEvents(x.lis, "up", "t1") != 0 {
			t.Fatalf("counters %+v, events %v", x.d.Status().Counters, x.lis.Events())
		}
	})
}
