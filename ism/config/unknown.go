package config

import (
	"slices"
	"strings"
)

// unknown reports a line that matches no command of its block: the word
// that was not understood, what was expected there, and a hint when the
// line belongs to the block above it.
func (p *parser) unknown(b *block, ln line) {
	table := tables(b.kind)
	where := ""
	if b.kind != topLevel {
		where = " in " + b.title
	}
	if b.kind == topLevel && p.prev != nil && p.prev.kind != discardBlock {
		if cmd, _ := match(tables(p.prev.kind), ln.words); cmd != nil {
			p.errs.add(ln.num, "%q is not a top-level command: indent it under %s", cmd.path, p.prev.title)
			return
		}
	}
	// depth is how many words some command shares with the line.
	depth := 0
	for i := range table {
		depth = max(depth, prefixLen(table[i].words(), ln.words))
	}
	var next []string
	for i := range table {
		w := table[i].words()
		if len(w) > depth && prefixLen(w, ln.words) == depth && !slices.Contains(next, w[depth]) {
			next = append(next, w[depth])
		}
	}
	slices.Sort(next)
	head := firstWords(ln.words, depth)
	if depth == len(ln.words) {
		p.errs.add(ln.num, "incomplete command %q%s; after it expected one of: %s", head, where, strings.Join(next, ", "))
		return
	}
	bad := string(ln.words[depth])
	shown := firstWords(ln.words, depth+1)
	if s := closest(strings.ToLower(bad), next); s != "" {
		p.errs.add(ln.num, "unknown command %q%s; did you mean %q?", shown, where, strings.TrimSpace(head+" "+s))
		return
	}
	if depth == 0 {
		p.errs.add(ln.num, "unknown command %q%s; expected one of: %s", shown, where, strings.Join(next, ", "))
		return
	}
	p.errs.add(ln.num, "unknown command %q%s; after %q expected one of: %s", shown, where, head, strings.Join(next, ", "))
}

// closest returns the candidate within edit distance 2 of s (1 for short
// words), or "".
func closest(s string, candidates []string) string {
	best, bestD := "", 3
	if len(s) <= 4 {
		bestD = 2
	}
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance of a and b, in
// bytes: insertions, deletions, substitutions and swaps of two neighbours.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	pp, prev, cur := make([]int, len(b)+1), make([]int, len(b)+1), make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], pp[j-2]+1)
			}
		}
		pp, prev, cur = prev, cur, pp
	}
	return prev[len(b)]
}
