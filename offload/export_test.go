package offload

// Test hooks. Other test files may add hooks in files of their own.

// SetIVHook makes p write each outbound ESP IV with f (known-answer tests).
func SetIVHook(p *Processor, f func(iv []byte, seq uint64)) { p.ivHook = f }

// SetSeq sets the last outbound sequence number used; the next packet gets
// seq+1.
func SetSeq(sa *SA, seq uint64) { sa.seq.Store(seq) }

// SetReplayTop sets an inbound SA's highest verified sequence number.
func SetReplayTop(sa *SA, seq uint64) {
	sa.mu.Lock()
	sa.replay.top.Store(seq)
	sa.mu.Unlock()
}

// HoldFinish makes a pipeline call hold before it finishes each inbound
// burst (tests that need several bursts prepared before any finishes).
func HoldFinish(c *PipelineConfig, hold func()) { c.holdFinish = hold }
