package swantest

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/ismgw/ism/internal/swantest/charon"
)

// IKESA is one IKE SA as swanctl --list-sas --raw shows it.
type IKESA struct {
	Conn     string
	F        map[string]string
	Children []ChildSA
}

// ChildSA is one CHILD_SA of an IKE SA.
type ChildSA struct {
	Name     string
	F        map[string]string
	LocalTS  []string
	RemoteTS []string
}

// ListSAs returns charon's IKE SAs.
func (e *Env) ListSAs() ([]IKESA, error) {
	out, err := e.Swanctl("--list-sas", "--raw")
	if err != nil {
		return nil, fmt.Errorf("swantest: list-sas: %v: %s", err, out)
	}
	return parseListSAs(out)
}

// ListSAsOf returns the IKE SAs of a charon started on its own
// (charon.Start), outside an Env.
func ListSAsOf(ch *charon.Charon) ([]IKESA, error) {
	out, err := ch.Swanctl("--list-sas", "--raw")
	if err != nil {
		return nil, fmt.Errorf("swantest: list-sas: %v: %s", err, out)
	}
	return parseListSAs(out)
}

// LoggedKeysOf reads the IPsec keys a charon started on its own logged.
func LoggedKeysOf(ch *charon.Charon) map[uint32]LoggedKey { return parseLoggedKeys(ch.Log()) }

func parseListSAs(out string) ([]IKESA, error) {
	var sas []IKESA
	for _, line := range strings.Split(out, "\n") {
		const prefix = "list-sa event "
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		toks := tokenize(line[len(prefix):])
		tree, _, err := parseBlock(toks, 0)
		if err != nil {
			return nil, err
		}
		for conn, v := range tree.blocks {
			sa := IKESA{Conn: conn, F: v.fields}
			if cs, ok := v.blocks["child-sas"]; ok {
				for name, c := range cs.blocks {
					sa.Children = append(sa.Children, ChildSA{Name: name, F: c.fields, LocalTS: c.lists["local-ts"], RemoteTS: c.lists["remote-ts"]})
				}
			}
			sas = append(sas, sa)
		}
	}
	return sas, nil
}

type block struct {
	fields map[string]string
	lists  map[string][]string
	blocks map[string]*block
}

func tokenize(s string) []string {
	s = strings.NewReplacer("{", " { ", "}", " } ", "[", " [ ", "]", " ] ").Replace(s)
	return strings.Fields(s)
}

// parseBlock parses "{ ... }" starting at toks[i] == "{".
func parseBlock(toks []string, i int) (*block, int, error) {
	if i >= len(toks) || toks[i] != "{" {
		return nil, i, fmt.Errorf("swantest: list-sas: expected {")
	}
	b := &block{fields: map[string]string{}, lists: map[string][]string{}, blocks: map[string]*block{}}
	i++
	for i < len(toks) {
		t := toks[i]
		switch {
		case t == "}":
			return b, i + 1, nil
		case strings.HasSuffix(t, "=") && i+1 < len(toks) && toks[i+1] == "[":
			key := strings.TrimSuffix(t, "=")
			i += 2
			for i < len(toks) && toks[i] != "]" {
				b.lists[key] = append(b.lists[key], toks[i])
				i++
			}
			i++
		case strings.Contains(t, "="):
			k, v, _ := strings.Cut(t, "=")
			b.fields[k] = v
			i++
		case i+1 < len(toks) && toks[i+1] == "{":
			sub, next, err := parseBlock(toks, i+1)
			if err != nil {
				return nil, i, err
			}
			b.blocks[t] = sub
			i = next
		default:
			i++
		}
	}
	return nil, i, fmt.Errorf("swantest: list-sas: unterminated block")
}

// LoggedKey is the keying material charon logged for one IPsec SA at
// chd=4, identified by the SPI of the SA's receiver.
type LoggedKey struct {
	SPI   uint32
	Enc   []byte
	Integ []byte
}

// spiOffset finds the SPI in the two KEYMAT seeds of a child SA,
// [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b (RFC 2409 §5.5): the seeds
// differ only in the SPI, which follows a protocol byte at the length of a
// DH shared secret (none without PFS).
func spiOffset(a, b []byte) int {
	if len(a) != len(b) || len(a) < 5 {
		return -1
	}
	first, last := -1, -1
	for i := range a {
		if a[i] != b[i] {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	for _, dh := range []int{0, 32, 48, 66, 96, 128, 192, 256, 384, 512} {
		o := dh + 1
		if o+4 <= len(a) && (a[dh] == 2 || a[dh] == 3) && first >= o && last < o+4 {
			return o
		}
	}
	return -1
}

var (
	lineRE = regexp.MustCompile(`^\S+ (\d+)\[(\w+)\] (.*)$`)
	dumpRE = regexp.MustCompile(`^\s*\d+: ((?:[0-9A-F]{2} ?){1,16})`)
	headRE = regexp.MustCompile(`^(initiator SA seed|responder SA seed|encryption initiator key|encryption responder key|integrity initiator key|integrity responder key) => (\d+) bytes`)
)

// LoggedKeys reads the IPsec keys charon logged. charon derives, per child
// SA, an "initiator" and a "responder" set: the initiator's keys protect
// traffic to the responder, on the SA whose SPI the responder chose; the
// SA seed it logs before them starts with the protocol and that SPI.
func (e *Env) LoggedKeys() map[uint32]LoggedKey {
	return parseLoggedKeys(e.Log())
}

func parseLoggedKeys(log string) map[uint32]LoggedKey {
	type state struct {
		cur   string
		need  int
		buf   []byte
		items map[string][]byte
	}
	threads := map[string]*state{}
	keys := map[uint32]LoggedKey{}
	flush := func(s *state) {
		off := spiOffset(s.items["initiator SA seed"], s.items["responder SA seed"])
		for _, role := range []string{"initiator", "responder"} {
			seed := s.items[role+" SA seed"]
			if off < 0 || len(seed) < off+4 {
				continue
			}
			spi := uint32(seed[off])<<24 | uint32(seed[off+1])<<16 | uint32(seed[off+2])<<8 | uint32(seed[off+3])
			keys[spi] = LoggedKey{SPI: spi, Enc: s.items["encryption "+role+" key"], Integ: s.items["integrity "+role+" key"]}
		}
		s.items = map[string][]byte{}
	}
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := lineRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		th, rest := m[1], m[3]
		s := threads[th]
		if s == nil {
			s = &state{items: map[string][]byte{}}
			threads[th] = s
		}
		if s.need > 0 {
			if d := dumpRE.FindStringSubmatch(rest); d != nil {
				for _, h := range strings.Fields(d[1]) {
					if s.need == 0 {
						break
					}
					b, _ := hex.DecodeString(h)
					s.buf = append(s.buf, b...)
					s.need--
				}
				if s.need == 0 {
					s.items[s.cur] = s.buf
				}
				continue
			}
			s.need = 0
		}
		if h := headRE.FindStringSubmatch(strings.TrimSpace(rest)); h != nil {
			n, _ := strconv.Atoi(h[2])
			s.cur, s.need, s.buf = h[1], n, nil
			continue
		}
		if strings.Contains(rest, "adding inbound ESP SA") || strings.Contains(rest, "adding inbound AH SA") {
			flush(s)
		}
	}
	return keys
}
