package v2

import (
	"encoding/binary"
	"testing"
)

// The input of FuzzFragments is a sequence of records, each
//
//	flags (1) | Fragment Number (2) | Total Fragments (2) | Next Payload (1) | length (1) | content
//
// flags bit 0: GCM instead of CBC (first record only); bit 1: send the
// content as a raw datagram instead of sealing a fragment of it; bit 2: a
// response; bits 4-5: the message ID.

// fragmentRecord appends one record.
func fragmentRecord(b []byte, flags byte, num, total int, next PayloadType, content []byte) []byte {
	b = append(b, flags)
	b = binary.BigEndian.AppendUint16(b, uint16(num))
	b = binary.BigEndian.AppendUint16(b, uint16(total))
	return append(append(b, byte(next), byte(len(content))), content...)
}

// fragmentSeeds are a message in two fragments, out of order with a
// duplicate, a restart with more fragments, and a raw datagram.
func fragmentSeeds() [][]byte {
	_, plain := testPayloads()
	a := plain[:150]
	var s [][]byte
	s = append(s, fragmentRecord(fragmentRecord(nil, 0x10, 1, 2, PayloadNotify, plain[:100]), 0x10, 2, 2, PayloadNone, plain[100:200]))
	x := fragmentRecord(nil, 0x11, 2, 2, PayloadNone, plain[8:28])
	x = fragmentRecord(x, 0x10, 2, 2, PayloadNone, plain[8:28])
	s = append(s, fragmentRecord(x, 0x10, 1, 2, PayloadNotify, plain[:8]))
	y := fragmentRecord(nil, 0x10, 1, 2, PayloadNotify, a[:50])
	y = fragmentRecord(y, 0x10, 1, 3, PayloadNotify, a[:50])
	y = fragmentRecord(y, 0x10, 2, 3, PayloadNone, a[50:100])
	s = append(s, fragmentRecord(y, 0x10, 3, 3, PayloadNone, a[100:150]))
	raw := (&Message{Header: Header{Version: Version, Exchange: Informational, MessageID: 1},
		Payloads: []Payload{{Type: PayloadSKF, Inner: PayloadNotify, Body: []byte{0, 1, 0, 1, 9, 9, 9}}}}).Marshal()
	s = append(s, fragmentRecord(nil, 0x12, 0, 0, 0, raw))
	return s
}

// FuzzFragments gives a responder IKE SA fragments sealed with its
// peer's keys, so that they pass the integrity check and reach
// reassembly, and raw datagrams: never a panic, never more than the
// limits held, and a completed message is one parsePayloads accepts.
func FuzzFragments(f *testing.F) {
	for _, s := range fragmentSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		b := newFragBench(t, data[0]&1 == 1)
		for len(data) >= 7 {
			flags := data[0]
			num, total := int(binary.BigEndian.Uint16(data[1:])), int(binary.BigEndian.Uint16(data[3:]))
			next, n := PayloadType(data[5]), int(data[6])
			data = data[7:]
			content := data[:min(n, len(data))]
			data = data[len(content):]
			dg := content
			if flags&2 == 0 {
				dg = b.frag(t, uint32(flags>>4&3), num, total, next, content)
				if flags&4 != 0 {
					dg[hdrFlags] |= byte(FlagResponse)
				}
			}
			m, err := ParseMessage(dg)
			if err != nil || !isFragment(m) {
				continue
			}
			b.sa.lock()
			whole, ok := b.sa.receiveFragment(m)
			for _, r := range [...]*reassembly{b.sa.frag.held(0), b.sa.frag.held(1)} {
				if r != nil && (r.size > maxReassembled || r.got > r.total || len(r.parts) != r.total || r.total > maxFragments) {
					t.Fatalf("reassembly out of its limits: %d bytes, %d of %d", r.size, r.got, r.total)
				}
			}
			b.sa.unlock()
			if ok && len(whole.Payloads) > 0 {
				if _, err := parsePayloads(whole.Payloads[0].Type, marshalPayloads(nil, whole.Payloads), false); err != nil {
					t.Fatalf("a completed message does not parse again: %v", err)
				}
			}
		}
	})
}
