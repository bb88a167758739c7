package config

import (
	"bytes"
	"unicode/utf8"
)

// line is one command line: its number, whether it is indented (inside a
// block) and its words. Words are views into the file's bytes, or into
// scratch buffers for quoted words with escapes; both are zeroed when
// parsing ends, since words may be secrets.
type line struct {
	num    int
	indent bool
	words  [][]byte
}

// lexer splits a file into lines and words.
type lexer struct {
	errs    *errorList
	scratch [][]byte // buffers to zero when parsing ends
}

// lines returns the command lines of data, skipping blank lines and "!"
// comments. A line with a lexical error is reported and skipped.
func (lx *lexer) lines(data []byte) []line {
	var out []line
	for num := 1; len(data) > 0; num++ {
		var raw []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, data = data[:i], data[i+1:]
		} else {
			raw, data = data, nil
		}
		raw = bytes.TrimSuffix(raw, []byte{'\r'})
		body := bytes.TrimLeft(raw, " \t")
		if len(body) == 0 || body[0] == '!' {
			continue
		}
		if !utf8.Valid(body) {
			lx.errs.add(num, "line is not valid UTF-8")
			continue
		}
		if c, bad := controlChar(body); bad {
			lx.errs.add(num, "line contains control character 0x%02x", c)
			continue
		}
		words, ok := lx.words(num, body)
		if !ok {
			continue
		}
		out = append(out, line{num: num, indent: len(body) < len(raw), words: words})
	}
	return out
}

func controlChar(b []byte) (byte, bool) {
	for _, c := range b {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return c, true
		}
	}
	return 0, false
}

// words splits a line at spaces and tabs. A word that starts with a double
// quote runs to the next unescaped double quote and may hold spaces; a
// backslash in it takes the next character literally.
func (lx *lexer) words(num int, b []byte) ([][]byte, bool) {
	var words [][]byte
	for {
		b = bytes.TrimLeft(b, " \t")
		if len(b) == 0 {
			return words, true
		}
		if b[0] != '"' {
			end := bytes.IndexAny(b, " \t")
			if end < 0 {
				end = len(b)
			}
			words = append(words, b[:end])
			b = b[end:]
			continue
		}
		w, rest, ok := lx.quoted(b[1:])
		if !ok {
			lx.errs.add(num, "unterminated quoted string")
			return nil, false
		}
		if len(rest) > 0 && rest[0] != ' ' && rest[0] != '\t' {
			lx.errs.add(num, "a quoted string must be followed by a space or the end of the line")
			return nil, false
		}
		words = append(words, w)
		b = rest
	}
}

// quoted reads a quoted word after its opening quote.
func (lx *lexer) quoted(b []byte) (word, rest []byte, ok bool) {
	end := bytes.IndexAny(b, `"\`)
	if end < 0 {
		return nil, nil, false
	}
	if b[end] == '"' {
		return b[:end], b[end+1:], true
	}
	// Escapes: copy into a scratch buffer.
	w := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\\':
			if i+1 == len(b) {
				clear(w)
				return nil, nil, false
			}
			i++
			w = append(w, b[i])
		case '"':
			lx.scratch = append(lx.scratch, w)
			return w, b[i+1:], true
		default:
			w = append(w, b[i])
		}
	}
	clear(w)
	return nil, nil, false
}

// zero overwrites the scratch buffers.
func (lx *lexer) zero() {
	for _, b := range lx.scratch {
		clear(b[:cap(b)])
	}
	lx.scratch = nil
}
