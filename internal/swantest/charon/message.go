package charon

import (
	"errors"
	"fmt"
	"slices"
	"sort"
)

// The vici message encoding (strongSwan, src/libcharon/plugins/vici/README.md,
// "Message format"): a sequence of elements, each an 8-bit type, then an
// 8-bit-length name (SECTION_START, KEY_VALUE, LIST_START) and/or a
// 16-bit-length value in network order (KEY_VALUE, LIST_ITEM).
const (
	elemSectionStart = 1
	elemSectionEnd   = 2
	elemKeyValue     = 3
	elemListStart    = 4
	elemListItem     = 5
	elemListEnd      = 6
)

// maxDepth bounds the nesting of sections a parsed message may have.
const maxDepth = 32

// ErrMalformed is wrapped by every error about a message that does not
// parse.
var ErrMalformed = errors.New("charon: malformed vici message")

// Message is a vici message: a section of key/values, lists and
// sub-sections. The zero value is an empty message; the maps are made on
// first use. Not safe for concurrent mutation.
type Message struct {
	Keys     map[string]string
	Lists    map[string][]string
	Sections map[string]*Message
}

// Set sets a key's value and returns m.
func (m *Message) Set(key, value string) *Message {
	if m.Keys == nil {
		m.Keys = map[string]string{}
	}
	m.Keys[key] = value
	return m
}

// Marshal encodes the message, keys, lists and sections each in name
// order. Names longer than 255 bytes and values longer than 65535 bytes
// cannot be encoded.
func (m *Message) Marshal() ([]byte, error) { return m.appendTo(nil) }

func (m *Message) appendTo(b []byte) ([]byte, error) {
	var err error
	for _, k := range sortedKeys(m.Keys) {
		if b, err = appendName(b, elemKeyValue, k); err != nil {
			return nil, err
		}
		if b, err = appendValue(b, m.Keys[k]); err != nil {
			return nil, err
		}
	}
	for _, k := range sortedKeys(m.Lists) {
		if b, err = appendName(b, elemListStart, k); err != nil {
			return nil, err
		}
		for _, v := range m.Lists[k] {
			b = append(b, elemListItem)
			if b, err = appendValue(b, v); err != nil {
				return nil, err
			}
		}
		b = append(b, elemListEnd)
	}
	for _, k := range sortedKeys(m.Sections) {
		if b, err = appendName(b, elemSectionStart, k); err != nil {
			return nil, err
		}
		if b, err = m.Sections[k].appendTo(b); err != nil {
			return nil, err
		}
		b = append(b, elemSectionEnd)
	}
	return b, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func appendName(b []byte, typ byte, name string) ([]byte, error) {
	if len(name) > 0xff {
		return nil, fmt.Errorf("charon: vici name of %d bytes", len(name))
	}
	return append(append(b, typ, byte(len(name))), name...), nil
}

func appendValue(b []byte, v string) ([]byte, error) {
	if len(v) > 0xffff {
		return nil, fmt.Errorf("charon: vici value of %d bytes", len(v))
	}
	return append(append(b, byte(len(v)>>8), byte(len(v))), v...), nil
}

// ParseMessage decodes a message. Sections must balance, lists may not
// nest and hold only items, and a name appears once per section (the
// README's rules for a valid message).
func ParseMessage(b []byte) (*Message, error) {
	p := parser{b: b}
	root := &Message{}
	stack := []*Message{root}
	var list string
	inList := false
	for len(p.b) > 0 {
		typ := p.b[0]
		p.b = p.b[1:]
		cur := stack[len(stack)-1]
		if inList && typ != elemListItem && typ != elemListEnd {
			return nil, fmt.Errorf("%w: element %d inside list %q", ErrMalformed, typ, list)
		}
		switch typ {
		case elemSectionStart:
			name, err := p.name()
			if err != nil {
				return nil, err
			}
			if err := cur.claim(name); err != nil {
				return nil, err
			}
			if len(stack) > maxDepth {
				return nil, fmt.Errorf("%w: sections nested deeper than %d", ErrMalformed, maxDepth)
			}
			sub := &Message{}
			if cur.Sections == nil {
				cur.Sections = map[string]*Message{}
			}
			cur.Sections[name] = sub
			stack = append(stack, sub)
		case elemSectionEnd:
			if len(stack) == 1 {
				return nil, fmt.Errorf("%w: section end without a start", ErrMalformed)
			}
			stack = stack[:len(stack)-1]
		case elemKeyValue:
			name, err := p.name()
			if err != nil {
				return nil, err
			}
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			if err := cur.claim(name); err != nil {
				return nil, err
			}
			cur.Set(name, v)
		case elemListStart:
			name, err := p.name()
			if err != nil {
				return nil, err
			}
			if err := cur.claim(name); err != nil {
				return nil, err
			}
			if cur.Lists == nil {
				cur.Lists = map[string][]string{}
			}
			cur.Lists[name] = []string{}
			list, inList = name, true
		case elemListItem:
			if !inList {
				return nil, fmt.Errorf("%w: list item outside a list", ErrMalformed)
			}
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			cur.Lists[list] = append(cur.Lists[list], v)
		case elemListEnd:
			if !inList {
				return nil, fmt.Errorf("%w: list end outside a list", ErrMalformed)
			}
			inList = false
		default:
			return nil, fmt.Errorf("%w: element type %d", ErrMalformed, typ)
		}
	}
	if inList || len(stack) != 1 {
		return nil, fmt.Errorf("%w: unterminated list or section", ErrMalformed)
	}
	return root, nil
}

// claim refuses a name already used in the section.
func (m *Message) claim(name string) error {
	_, k := m.Keys[name]
	_, l := m.Lists[name]
	_, s := m.Sections[name]
	if k || l || s {
		return fmt.Errorf("%w: %q twice in one section", ErrMalformed, name)
	}
	return nil
}

// Equal reports whether two messages hold the same tree; a nil map and an
// empty one are the same.
func (m *Message) Equal(o *Message) bool {
	if len(m.Keys) != len(o.Keys) || len(m.Lists) != len(o.Lists) || len(m.Sections) != len(o.Sections) {
		return false
	}
	for k, v := range m.Keys {
		if w, ok := o.Keys[k]; !ok || w != v {
			return false
		}
	}
	for k, v := range m.Lists {
		if w, ok := o.Lists[k]; !ok || !slices.Equal(v, w) {
			return false
		}
	}
	for k, v := range m.Sections {
		if w, ok := o.Sections[k]; !ok || !v.Equal(w) {
			return false
		}
	}
	return true
}

type parser struct{ b []byte }

func (p *parser) name() (string, error) {
	if len(p.b) < 1 || len(p.b) < 1+int(p.b[0]) {
		return "", fmt.Errorf("%w: truncated name", ErrMalformed)
	}
	n := int(p.b[0])
	s := string(p.b[1 : 1+n])
	p.b = p.b[1+n:]
	return s, nil
}

func (p *parser) value() (string, error) {
	if len(p.b) < 2 {
		return "", fmt.Errorf("%w: truncated value length", ErrMalformed)
	}
	n := int(p.b[0])<<8 | int(p.b[1])
	if len(p.b) < 2+n {
		return "", fmt.Errorf("%w: truncated value", ErrMalformed)
	}
	s := string(p.b[2 : 2+n])
	p.b = p.b[2+n:]
	return s, nil
}
