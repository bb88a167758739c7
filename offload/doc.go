// Package offload is the data path between the ISM and the crypto drivers:
// the SA database, ESP (RFC 4303) and AH (RFC 4302) framing in tunnel and
// transport mode, UDP encapsulation (RFC 3948), sequence numbers with ESN,
// anti-replay (RFC 4303 Appendix A, RFC 6479), lifetime accounting, and the
// choice of driver for each SA with fallback to the software engine.
//
// The pipeline for one burst, run by a Processor owned by one goroutine:
//
//  1. prepare: look up or take the SA, check its state and lifetime, assign
//     the sequence number (outbound) or pre-check the replay window
//     (inbound), frame the packet in place and fill the packet's driver.Op;
//     outbound packets go in runs with one SA, whose binding, sequence
//     numbers and lifetime account are taken once a run;
//  2. crypto: ops go to the SA's bound driver, inline (driver.Synchronous)
//     or enqueued on the Processor's queue pair and polled back; a queue that
//     stays full or a driver fault moves the work to the fallback engine;
//  3. finish: inbound, update the replay window only now that the ICV has
//     verified, check the padding and strip the framing; outbound, move the
//     ICV into place.
//
// A Pipeline runs the same three stages on several lanes (goroutines), each
// taking a whole burst from its input to its delivery, so that a single SA
// can use more than one core: the intake (reading the burst and stage 1)
// and the delivery (inbound, stage 3; then the send or write) take turns in
// one order, stage 2 runs on the lanes at once.
//
// Packets come back in the order given. A packet that cannot be sent or
// delivered gets a DropReason, counted per SA and globally; the data path
// never returns an error or logs per packet.
package offload
