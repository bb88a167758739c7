package ike

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: time.Second, Maximum: 10 * time.Second}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if got := b.Delay(i + 1); got != w {
			t.Errorf("after %d failures: %v, want %v", i+1, got, w)
		}
	}
	if got := (Backoff{}).Delay(100); got != DefaultBackoff.Maximum {
		t.Errorf("default cap: %v", got)
	}
	if got := (Backoff{Initial: time.Minute}).Or(); got.Maximum != time.Minute {
		t.Errorf("an initial wait above the default maximum is the maximum too: %+v", got)
	}
	for _, bad := range []Backoff{{Initial: -1}, {Initial: 10 * time.Second, Maximum: time.Second}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if (Backoff{Initial: 5 * time.Second}).Validate() != nil {
		t.Error("a default maximum refused")
	}
}

// TestRetry: a state change is reported on the first failure and on a new
// reason, not on each repeat; the next attempt moves out, and a success
// starts over.
func TestRetry(t *testing.T) {
	b := Backoff{Initial: time.Second, Maximum: 4 * time.Second}
	now := time.Unix(1000, 0)
	var r Retry
	if !r.Due(now) {
		t.Fatal("a new pair is not due")
	}
	r.Start()
	if !r.Fail(now, "NO_PROPOSAL_CHOSEN", b) || r.Next != now.Add(time.Second) || r.Due(now) {
		t.Fatalf("first failure: %+v", r)
	}
	r.Start()
	if r.Fail(now, "NO_PROPOSAL_CHOSEN", b) || r.Next != now.Add(2*time.Second) {
		t.Fatalf("a repeat is a state change: %+v", r)
	}
	r.Start()
	if !r.Fail(now, "timeout", b) {
		t.Fatal("a new reason is no state change")
	}
	r.Start()
	r.Fail(now, "timeout", b)
	if r.Next != now.Add(4*time.Second) || r.Attempts != 4 || r.Failures != 4 || !r.Failing() {
		t.Fatalf("capped: %+v", r)
	}
	if !r.Succeed() || r.Failing() || !r.Due(now) || r.Succeed() {
		t.Fatalf("success: %+v", r)
	}
	if !r.Fail(now, "timeout", b) || r.Next != now.Add(time.Second) {
		t.Fatalf("after a success the back-off starts over: %+v", r)
	}
}
