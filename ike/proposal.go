package ike

import (
	"errors"
	"fmt"
	"time"

	"github.com/ismgw/ism/ipsec"
)

// ErrPFSRequired: the local end mandates PFS and the peer proposed none.
var ErrPFSRequired = errors.New("ike: PFS is enabled locally and the peer proposed none")

// ChoosePFSGroup applies the seed's PFS rules to a quick mode the peer
// initiated, where local is the tunnel's PFS group (0: disabled) and
// proposed the group in the peer's proposal (0: none):
//
//   - "If PFS is enabled, the router mandates PFS during SA negotiation":
//     a proposal without PFS is refused.
//   - "If PFS is disabled, PFS might still be negotiated if the remote
//     security gateway requests PFS": any supported group is accepted.
//   - "SA negotiation favors the highest request. If group 2 is requested
//     locally, the remote security gateway must support group 2 ... If
//     group 1 is requested locally, either groups 1 or 2 can be accepted":
//     a group at least as strong as the local one is accepted, a weaker
//     one refused.
//
// It returns the group to use (0: no PFS).
func ChoosePFSGroup(local, proposed int) (int, error) {
	if proposed == 0 {
		if local != 0 {
			return 0, ErrPFSRequired
		}
		return 0, nil
	}
	pg, ok := LookupGroup(proposed)
	if !ok {
		return 0, fmt.Errorf("ike: unsupported PFS group %d proposed", proposed)
	}
	if local == 0 {
		return proposed, nil
	}
	lg, ok := LookupGroup(local)
	if !ok {
		return 0, fmt.Errorf("ike: unsupported local PFS group %d", local)
	}
	if pg.Strength < lg.Strength {
		return 0, fmt.Errorf("ike: PFS group %d proposed is weaker than the local group %d", proposed, local)
	}
	return proposed, nil
}

// LesserLifetime returns the lesser of two lifetimes, each dimension on its
// own; zero means unlimited.
func LesserLifetime(a, b ipsec.Lifetime) ipsec.Lifetime {
	return ipsec.Lifetime{Time: lesser(a.Time, b.Time), Bytes: lesser(a.Bytes, b.Bytes), Packets: lesser(a.Packets, b.Packets)}
}

func lesser[T time.Duration | uint64](a, b T) T {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}
