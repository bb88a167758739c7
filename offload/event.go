package offload

// EventKind classifies an SA event.
type EventKind uint8

// Event kinds.
const (
	// EventSoftExpire: a soft limit was crossed; the owner should rekey.
	EventSoftExpire EventKind = iota
	// EventHardExpire: the SA is unusable.
	EventHardExpire
)

func (k EventKind) String() string {
	if k == EventHardExpire {
		return "hard-expire"
	}
	return "soft-expire"
}

// Cause says which limit an expiry event is about.
type Cause uint8

// Causes.
const (
	CauseAge Cause = iota
	CauseBytes
	CausePackets
	CauseSequence // outbound sequence numbers exhausted
)

func (c Cause) String() string {
	return [...]string{"age", "bytes", "packets", "sequence"}[c]
}

// Event is an SA lifetime event. Each kind fires at most once per SA.
type Event struct {
	Kind  EventKind
	Cause Cause
	SA    *SA
}
