package config

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/ismgw/ism/transform"
)

const docsPath = "../../docs/config.md"

// docBlock is a fenced example of docs/config.md.
type docBlock struct {
	line int    // line of the opening fence
	kind string // "ism": commands; "ism-file": a complete file
	text string
}

func docBlocks(t *testing.T) ([]docBlock, string) {
	t.Helper()
	b, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []docBlock
	var cur *docBlock
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case cur == nil && (l == "```ism" || l == "```ism-file"):
			cur = &docBlock{line: n, kind: strings.TrimPrefix(l, "```")}
		case cur != nil && l == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += l + "\n"
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: unclosed example", docsPath, cur.line)
	}
	return blocks, string(b)
}

// TestDocsExamplesParse: every complete file in docs/config.md parses and
// validates; every command example is free of syntax errors (it may refer
// to things declared elsewhere).
func TestDocsExamplesParse(t *testing.T) {
	blocks, _ := docBlocks(t)
	files := 0
	for _, b := range blocks {
		name := fmt.Sprintf("%s:%d", docsPath, b.line)
		if b.kind == "ism-file" {
			files++
			if _, err := Parse(name, strings.NewReader(b.text)); err != nil {
				t.Errorf("complete example at %s:\n%v", name, err)
			}
			continue
		}
		p := newParser(name)
		p.parse([]byte(b.text))
		if err := p.errs.err(); err != nil {
			t.Errorf("example at %s:\n%v", name, err)
		}
	}
	if files < 3 || len(blocks) < 20 {
		t.Errorf("found %d examples, %d complete files: the fences changed?", len(blocks), files)
	}
}

// TestDocsCoverEveryCommand: each command has a heading and its syntax line
// in docs/config.md, and each transform is in its table.
func TestDocsCoverEveryCommand(t *testing.T) {
	_, doc := docBlocks(t)
	for _, k := range []blockKind{topLevel, transformSetBlock, policyBlock, interfaceBlock, clusterGroupBlock} {
		for _, cmd := range tables(k) {
			if !strings.Contains(doc, "\n### `"+cmd.path+"`") {
				t.Errorf("no heading for %q", cmd.path)
			}
			if syntax := "Syntax: `" + cmd.path + " " + cmd.usage + "`"; !strings.Contains(doc, syntax) {
				t.Errorf("no %q", syntax)
			}
		}
	}
	for _, name := range transform.Names() {
		if !strings.Contains(doc, "| `"+name+"` |") {
			t.Errorf("transform %s is not in the table", name)
		}
	}
}
