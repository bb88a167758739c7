package mux

import (
	"sync"

	"github.com/ismgw/ism/ipsec"
)

// owners maps each installed SA to the version that installed it: a plain
// map under a lock, about 50 bytes an SA where a sync.Map took about 130
// (its boxed keys and trie nodes). SAs come and go at negotiation rates, so
// the lock is not contended. The zero value is empty and ready; it is safe
// for concurrent use.
type owners struct {
	mu sync.RWMutex
	m  map[ipsec.SAID]uint8
}

func (o *owners) store(id ipsec.SAID, v int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = make(map[ipsec.SAID]uint8)
	}
	o.m[id] = uint8(v)
}

// compareAndDelete forgets id if v installed it.
func (o *owners) compareAndDelete(id ipsec.SAID, v int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if w, ok := o.m[id]; ok && int(w) == v {
		delete(o.m, id)
	}
}

func (o *owners) load(id ipsec.SAID) (int, bool) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	v, ok := o.m[id]
	return int(v), ok
}
