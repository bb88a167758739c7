package v2

import (
	"fmt"
	"slices"
)

// Negotiating additional key exchanges (RFC 9370 §2.2.1). A policy's
// additional key exchanges go in its proposal as Additional Key Exchange
// 1, 2, ... transforms (types 6 to 12, IDs of Transform Type 4), each
// with a second transform of ID NONE when they are optional. The
// responder picks one transform of each type the proposal has, never the
// same method twice but for NONE; the exchanges run in the order of the
// types, NONE ones skipped. An initiator that proposes any MUST also
// negotiate IKE_INTERMEDIATE (INTERMEDIATE_EXCHANGE_SUPPORTED, RFC 9242
// §3.1); without it, or against a peer that proposes or answers no
// ADDKE transforms, optional ones fall back to NONE and required ones
// make the proposal unacceptable (NO_PROPOSAL_CHOSEN).

// addkeNone is the Transform ID NONE of an ADDKE type (§2.2.1).
const addkeNone = 0

// isADDKE reports whether a transform type is an Additional Key Exchange.
func isADDKE(t TransformType) bool { return t >= TransformADDKE1 && t <= TransformADDKE7 }

// addkeTransforms are a configured suite's ADDKE transforms.
func (su suite) addkeTransforms() []Transform {
	var ts []Transform
	for i, m := range su.addke {
		t := TransformADDKE1 + TransformType(i)
		ts = append(ts, Transform{Type: t, ID: uint16(m)})
		if su.addkeOptional {
			ts = append(ts, Transform{Type: t, ID: addkeNone})
		}
	}
	return ts
}

// wantsIntermediate reports whether a suite proposes additional key
// exchanges in IKE_SA_INIT, and so IKE_INTERMEDIATE.
func wantsIntermediate(suites []suite) bool {
	for _, su := range suites {
		if len(su.addke) > 0 {
			return true
		}
	}
	return false
}

// pickADDKE is the responder's choice of the ADDKE transforms of the
// peer's proposal p for configured suite su: the methods to perform in
// order, the transforms of the answer (one per ADDKE type of p), and false
// when su cannot accept p. allowed is false when the peer cannot do the
// exchanges (no IKE_INTERMEDIATE): every type must then allow NONE.
func pickADDKE(su suite, p Proposal, allowed bool) (methods []int, answer []Transform, ok bool) {
	offered := map[TransformType][]uint16{}
	for _, t := range p.Transforms {
		if isADDKE(t.Type) {
			if t.KeyLength != 0 || t.Other != nil {
				return nil, nil, false // §3.3.6: attributes this end does not know
			}
			offered[t.Type] = append(offered[t.Type], t.ID)
		}
	}
	for i := 0; i < int(TransformADDKE7-TransformADDKE1)+1; i++ {
		typ := TransformADDKE1 + TransformType(i)
		mine := addkeNone
		if i < len(su.addke) {
			mine = su.addke[i]
		}
		ids, present := offered[typ]
		switch {
		case !present && (mine == addkeNone || su.addkeOptional):
			continue
		case !present:
			return nil, nil, false
		case allowed && mine != addkeNone && slices.Contains(ids, uint16(mine)):
			methods = append(methods, mine)
			answer = append(answer, Transform{Type: typ, ID: uint16(mine)})
		case slices.Contains(ids, addkeNone) && (mine == addkeNone || su.addkeOptional):
			answer = append(answer, Transform{Type: typ, ID: addkeNone})
		default:
			return nil, nil, false
		}
	}
	return methods, answer, true
}

// acceptADDKE checks the ADDKE transforms of the responder's choice p
// against configured suite su and returns the methods to perform: at most
// one transform of each type, each one su proposed; a type su requires
// must be there with its method.
func acceptADDKE(su suite, p Proposal) ([]int, error) {
	got := map[TransformType]uint16{}
	for _, t := range p.Transforms {
		if !isADDKE(t.Type) {
			continue
		}
		if _, dup := got[t.Type]; dup {
			return nil, fmt.Errorf("%w: two transforms of type %d in the response", ErrMalformed, t.Type)
		}
		got[t.Type] = t.ID
		i := int(t.Type - TransformADDKE1)
		if i >= len(su.addke) || (t.ID != uint16(su.addke[i]) && (t.ID != addkeNone || !su.addkeOptional)) {
			return nil, fmt.Errorf("v2: the responder chose additional key exchange %d of type %d, not proposed", t.ID, t.Type)
		}
	}
	var methods []int
	for i, m := range su.addke {
		id, ok := got[TransformADDKE1+TransformType(i)]
		switch {
		case ok && id != addkeNone:
			methods = append(methods, m)
		case !su.addkeOptional:
			return nil, fmt.Errorf("v2: the responder left out the required additional key exchange %d", m)
		}
	}
	return methods, nil
}
