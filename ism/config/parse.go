package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// MaxFileSize is the largest configuration file Parse reads: 50,000
// tunnels with a key each take some 17 MB.
const MaxFileSize = 64 << 20

// ParseFile parses and validates the configuration file at path.
func ParseFile(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	return Parse(path, f)
}

// Parse parses and validates a configuration read from r; name is the file
// name used in errors and to resolve relative certificate paths. On error
// it returns every problem of the file as Error values joined with
// errors.Join, sorted by line, and no Config.
func Parse(name string, r io.Reader) (*Config, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	defer clear(data)
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", name, err)
	}
	if len(data) > MaxFileSize {
		return nil, Error{File: name, Msg: fmt.Sprintf("file is larger than %d bytes", MaxFileSize)}
	}
	c, _, err := parseBytes(name, data)
	return c, err
}

// parseBytes parses and validates data. On error it zeroes every key it
// parsed and returns the parser, for tests to check that.
func parseBytes(name string, data []byte) (*Config, *parser, error) {
	p := newParser(name)
	defer p.lx.zero()
	p.parse(data)
	c := p.resolve()
	if err := p.errs.err(); err != nil {
		c.Zero()
		p.d.zero()
		return nil, p, err
	}
	return c, p, nil
}

// blockKind is the kind of block a line is in.
type blockKind uint8

const (
	topLevel blockKind = iota
	transformSetBlock
	policyBlock
	interfaceBlock
	clusterGroupBlock
	discardBlock // the lines under a block command that failed
)

// block is the block being parsed.
type block struct {
	kind  blockKind
	title string         // e.g. "interface tunnel ipsec:branch1"
	seen  map[string]int // line of each once-only command
	iface *ifaceDraft
	tset  *tsetDraft
	rule  *policyDraft
	group *groupDraft
}

// command is one command of a block's table.
type command struct {
	path  string // the command words, space separated
	usage string // the arguments, for messages and docs
	min   int    // fewest arguments
	max   int    // most arguments; -1 is no limit
	once  bool   // at most once per block (or file, at top level)
	run   func(*parser, *cmdCtx)
}

func (cmd *command) words() []string { return strings.Fields(cmd.path) }

// tables returns the commands of a block kind.
func tables(k blockKind) []command {
	switch k {
	case topLevel:
		return topTable
	case transformSetBlock:
		return transformSetCommands
	case policyBlock:
		return policyCommands
	case interfaceBlock:
		return interfaceCommands
	case clusterGroupBlock:
		return groupCommands
	}
	return nil
}

// parser holds the state of one Parse.
type parser struct {
	file string
	dir  string
	errs errorList
	lx   lexer

	top  *block // the top level's once-only commands
	cur  *block // the open block, or nil
	prev *block // the block open before the current top-level line

	d drafts
}

func newParser(name string) *parser {
	p := &parser{file: name, dir: filepath.Dir(name)}
	p.errs.file = name
	p.lx.errs = &p.errs
	p.top = &block{kind: topLevel, seen: map[string]int{}}
	return p
}

func (p *parser) parse(data []byte) {
	for _, ln := range p.lx.lines(data) {
		p.dispatch(ln)
	}
}

// dispatch runs one line in the block it belongs to.
func (p *parser) dispatch(ln line) {
	b := p.top
	if ln.indent {
		if p.cur == nil {
			p.errs.add(ln.num, "indented line %q is not inside a block (blocks are opened by interface tunnel, ipsec transform-set, ipsec isakmp-policy-rule and cluster group)", firstWords(ln.words, 2))
			return
		}
		if p.cur.kind == discardBlock {
			return
		}
		b = p.cur
	} else {
		p.prev, p.cur = p.cur, nil
	}
	cmd, n := match(tables(b.kind), ln.words)
	if cmd == nil {
		p.unknown(b, ln)
		return
	}
	if b.kind == topLevel && isOpener(cmd.path) {
		// Until the command succeeds, its block's lines are skipped.
		p.cur = &block{kind: discardBlock}
	}
	c := &cmdCtx{p: p, line: ln.num, path: cmd.path, args: ln.words[n:]}
	// Record the commands of an interface that failed, except the SA
	// lines once they run: cmdTunnelSA records which direction failed.
	errs, ran := len(p.errs.errs), false
	defer func() {
		if b.iface != nil && len(p.errs.errs) > errs && !(ran && cmd.path == "tunnel sa") {
			b.iface.failed[cmd.path] = true
		}
	}()
	if len(c.args) < cmd.min || (cmd.max >= 0 && len(c.args) > cmd.max) {
		c.errf("%s; usage: %s %s", argCount(cmd.min, cmd.max, len(c.args)), cmd.path, cmd.usage)
		return
	}
	if cmd.once {
		if first, dup := b.seen[cmd.path]; dup {
			p.errs.add(ln.num, "duplicate %q (first on line %d)", cmd.path, first)
			return
		}
		b.seen[cmd.path] = ln.num
	}
	ran = true
	cmd.run(p, c)
}

// isOpener reports whether a top-level command opens a block.
func isOpener(path string) bool {
	return path == "interface tunnel" || path == "ipsec transform-set" || path == "ipsec isakmp-policy-rule" || path == "cluster group"
}

// open starts a block; the lines indented under it go to its table.
func (p *parser) open(kind blockKind, title string) *block {
	p.cur = &block{kind: kind, title: title, seen: map[string]int{}}
	return p.cur
}

func argCount(lo, hi, got int) string {
	plural := func(n int) string {
		if n == 1 {
			return "1 argument"
		}
		return fmt.Sprintf("%d arguments", n)
	}
	switch {
	case lo == hi:
		return fmt.Sprintf("takes %s, got %d", plural(lo), got)
	case hi < 0:
		return fmt.Sprintf("takes at least %s, got %d", plural(lo), got)
	}
	return fmt.Sprintf("takes %d to %s, got %d", lo, plural(hi), got)
}

// match finds the command whose words are the longest prefix of words,
// compared case-insensitively, and returns it with the number of words it
// used.
func match(table []command, words [][]byte) (*command, int) {
	var best *command
	n := 0
	for i := range table {
		w := table[i].words()
		if len(w) > len(words) || len(w) <= n {
			continue
		}
		if prefixLen(w, words) == len(w) {
			best, n = &table[i], len(w)
		}
	}
	return best, n
}

// prefixLen returns how many of the command words cw equal the first line
// words.
func prefixLen(cw []string, words [][]byte) int {
	i := 0
	for i < len(cw) && i < len(words) && strings.EqualFold(cw[i], string(words[i])) {
		i++
	}
	return i
}

func firstWords(words [][]byte, n int) string {
	var s []string
	for i := 0; i < len(words) && i < n; i++ {
		s = append(s, string(words[i]))
	}
	return strings.Join(s, " ")
}
