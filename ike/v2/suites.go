package v2

import (
	"fmt"
	"sync"
	"time"

	"github.com/ismgw/ism/ike"
)

// suiteTable interns the suites of a daemon's IKE SAs: the SAs negotiated
// with the same transforms share one suite, which nothing changes (issue
// 13: a suite is 120 bytes, and 10,000 IKE SAs have a handful). The zero
// value is empty and ready; it is safe for concurrent use.
type suiteTable struct {
	mu sync.Mutex
	m  map[suiteKey]*suite
}

// suiteKey is a suite made comparable.
type suiteKey struct {
	encr          encrFunc
	prf           prfFunc
	integ         integFunc
	group         int
	lifetime      time.Duration
	auth          ike.AuthMethod
	addke         string
	addkeOptional bool
}

// noSuite is the suite of an IKE SA before IKE_SA_INIT chooses one.
var noSuite = &suite{}

// get returns the table's suite equal to s, adding a copy of s when it
// has none. The caller must not change it.
func (t *suiteTable) get(s suite) *suite {
	k := suiteKey{encr: s.encr, prf: s.prf, integ: s.integ, group: s.group, lifetime: s.lifetime, auth: s.auth,
		addke: fmt.Sprint(s.addke), addkeOptional: s.addkeOptional}
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.m[k]; p != nil {
		return p
	}
	if t.m == nil {
		t.m = map[suiteKey]*suite{}
	}
	p := &s
	p.addke = append([]int(nil), s.addke...)
	t.m[k] = p
	return p
}
