// Package markers parses kubebuilder-style comment markers
// (`// +kubebuilder:validation:Minimum=1`, `// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=...`)
// with the argument grammar controller-gen accepts, so that existing API
// packages move to capstan without touching a marker.
//
// The grammar of an argument value:
//
//	string   "quoted" | `raw` | bare text up to , ; } (and : inside a map key)
//	int      -?[0-9]+
//	number   -?[0-9]+(.[0-9]*)?([eE]...)?
//	bool     true | false
//	slice    {a,b,c} | a;b;c
//	map      {key: value, key2: value2}
//	any      guessed from the text: quoted → string, { → slice or map,
//	         true/false → bool, a number followed by a delimiter → int or
//	         number, a top-level ; → slice, anything else → string
package markers

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Kind is the type of one marker argument.
type Kind int

// The argument kinds.
const (
	String Kind = iota + 1
	Int
	Number
	Bool
	StringSlice
	AnySlice
	Any
	// Raw keeps the text after '=' verbatim.
	Raw
	// JSON parses the text after '=' as a JSON document.
	JSON
)

// scanner walks one marker's argument text.
type scanner struct {
	src string
	pos int
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.src) {
		r, n := utf8.DecodeRuneInString(s.src[s.pos:])
		if !unicode.IsSpace(r) {
			return
		}
		s.pos += n
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.skipSpace()
	if s.pos >= len(s.src) {
		return 0
	}
	return s.src[s.pos]
}

func (s *scanner) eof() bool { return s.peek() == 0 }

func (s *scanner) expect(c byte, what string) error {
	if s.peek() != c {
		return s.errorf("expected %s, got %q", what, s.rest())
	}
	s.pos++
	return nil
}

func (s *scanner) rest() string {
	r := s.src[s.pos:]
	if len(r) > 40 {
		r = r[:40] + "..."
	}
	return r
}

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("at offset %d: %s", s.pos, fmt.Sprintf(format, args...))
}

// ident reads an argument name.
func (s *scanner) ident() (string, error) {
	s.skipSpace()
	start := s.pos
	for s.pos < len(s.src) {
		c := s.src[s.pos]
		if c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			s.pos++
			continue
		}
		break
	}
	if s.pos == start {
		return "", s.errorf("expected an argument name, got %q", s.rest())
	}
	return s.src[start:s.pos], nil
}

// quoted reads a "..." or `...` string at the current position.
func (s *scanner) quoted() (string, error) {
	s.skipSpace()
	q := s.src[s.pos]
	end := s.pos + 1
	for end < len(s.src) {
		c := s.src[end]
		if q == '"' && c == '\\' {
			end += 2
			continue
		}
		if c == q {
			break
		}
		end++
	}
	if end >= len(s.src) {
		return "", s.errorf("unterminated string %s", s.rest())
	}
	lit := s.src[s.pos : end+1]
	v, err := strconv.Unquote(lit)
	if err != nil {
		return "", s.errorf("bad string %s: %v", lit, err)
	}
	s.pos = end + 1
	return v, nil
}

// str reads a quoted or bare string. A bare string ends at , ; } or, in a
// map key, at ':'. Surrounding spaces are trimmed.
func (s *scanner) str(inMapKey bool) (string, error) {
	switch s.peek() {
	case '"', '`':
		return s.quoted()
	}
	start := s.pos
	depthQuote := byte(0)
	for s.pos < len(s.src) {
		c := s.src[s.pos]
		if depthQuote != 0 {
			if c == '\\' && depthQuote == '"' {
				s.pos += 2
				continue
			}
			if c == depthQuote {
				depthQuote = 0
			}
			s.pos++
			continue
		}
		if c == '"' || c == '`' {
			depthQuote = c
			s.pos++
			continue
		}
		if c == ',' || c == ';' || c == '}' || inMapKey && c == ':' {
			break
		}
		s.pos++
	}
	return strings.TrimSpace(s.src[start:s.pos]), nil
}

// numberText reads the text of a number at the current position, or returns
// "" (position unchanged) if there is none followed by a delimiter.
func (s *scanner) numberText() (text string, isInt bool) {
	s.skipSpace()
	i := s.pos
	if i < len(s.src) && (s.src[i] == '-' || s.src[i] == '+') {
		i++
	}
	digits := 0
	for i < len(s.src) && s.src[i] >= '0' && s.src[i] <= '9' {
		i++
		digits++
	}
	isInt = true
	if i < len(s.src) && s.src[i] == '.' {
		isInt = false
		i++
		for i < len(s.src) && s.src[i] >= '0' && s.src[i] <= '9' {
			i++
			digits++
		}
	}
	if digits == 0 {
		return "", false
	}
	if i < len(s.src) && (s.src[i] == 'e' || s.src[i] == 'E') {
		j := i + 1
		if j < len(s.src) && (s.src[j] == '-' || s.src[j] == '+') {
			j++
		}
		k := j
		for k < len(s.src) && s.src[k] >= '0' && s.src[k] <= '9' {
			k++
		}
		if k > j {
			isInt = false
			i = k
		}
	}
	// A number must be followed by a delimiter to be one.
	j := i
	for j < len(s.src) && unicode.IsSpace(rune(s.src[j])) {
		j++
	}
	if j < len(s.src) && !strings.ContainsRune(",;}", rune(s.src[j])) {
		return "", false
	}
	return s.src[s.pos:i], isInt
}

func (s *scanner) parseInt() (int64, error) {
	text, isInt := s.numberText()
	if text == "" || !isInt {
		return 0, s.errorf("expected an integer, got %q", s.rest())
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, s.errorf("bad integer %q: %v", text, err)
	}
	s.pos += len(text)
	return v, nil
}

func (s *scanner) parseBool() (bool, error) {
	s.skipSpace()
	for _, w := range []string{"true", "false"} {
		if strings.HasPrefix(s.src[s.pos:], w) {
			end := s.pos + len(w)
			if end == len(s.src) || !isIdentByte(s.src[end]) {
				s.pos = end
				return w == "true", nil
			}
		}
	}
	return false, s.errorf("expected true or false, got %q", s.rest())
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// parseStringSlice reads {a,b} or a;b;c.
func (s *scanner) parseStringSlice() ([]string, error) {
	out := []string{}
	if s.peek() == '{' {
		s.pos++
		for s.peek() != '}' && !s.eof() {
			v, err := s.str(false)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			if s.peek() == '}' {
				break
			}
			if err := s.expect(',', "a comma"); err != nil {
				return nil, err
			}
		}
		return out, s.expect('}', "a closing brace")
	}
	for {
		c := s.peek()
		if c == ',' || c == '}' || c == 0 {
			return out, nil
		}
		v, err := s.str(false)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		if s.peek() != ';' {
			return out, nil
		}
		s.pos++
	}
}

// parseAny guesses the type of the value at the current position.
// allowSemicolonSlice is false inside slices (a;b is not nested there).
func (s *scanner) parseAny(allowSemicolonSlice bool) (any, error) {
	if allowSemicolonSlice && s.topLevelSemicolon() {
		var out []any
		for {
			v, err := s.parseAny(false)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			if s.peek() != ';' {
				return out, nil
			}
			s.pos++
		}
	}
	switch c := s.peek(); {
	case c == '"' || c == '`':
		return s.quoted()
	case c == '{':
		return s.parseBraced()
	case c == 't' || c == 'f':
		save := s.pos
		if b, err := s.parseBool(); err == nil {
			if n := s.peek(); n == 0 || n == ',' || n == ';' || n == '}' {
				return b, nil
			}
		}
		s.pos = save
	case c == '-' || c == '+' || c == '.' || c >= '0' && c <= '9':
		if text, isInt := s.numberText(); text != "" {
			s.pos += len(text)
			if isInt {
				v, err := strconv.ParseInt(text, 10, 64)
				if err == nil {
					return v, nil
				}
			}
			v, err := strconv.ParseFloat(text, 64)
			if err != nil {
				return nil, s.errorf("bad number %q: %v", text, err)
			}
			return v, nil
		}
	}
	return s.str(false)
}

// topLevelSemicolon reports whether a ';' occurs before the next top-level
// ',' (or the end), outside braces and quotes.
func (s *scanner) topLevelSemicolon() bool {
	depth := 0
	var quote byte
	for i := s.pos; i < len(s.src); i++ {
		c := s.src[i]
		if quote != 0 {
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
			continue
		}
		switch c {
		case '"', '`':
			quote = c
		case '{':
			depth++
		case '}':
			if depth == 0 {
				return false
			}
			depth--
		case ',':
			if depth == 0 {
				return false
			}
		case ';':
			if depth == 0 {
				return true
			}
		}
	}
	return false
}

// parseBraced reads {…}: a map when the first element is a key followed by
// ':' (or the braces are empty), else a slice.
func (s *scanner) parseBraced() (any, error) {
	save := s.pos
	s.pos++ // '{'
	if s.peek() == '}' {
		s.pos++
		return map[string]any{}, nil
	}
	isMap := false
	if c := s.peek(); c != '{' {
		if _, err := s.str(true); err == nil && s.peek() == ':' {
			isMap = true
		}
	}
	s.pos = save + 1
	if isMap {
		out := map[string]any{}
		for s.peek() != '}' && !s.eof() {
			k, err := s.str(true)
			if err != nil {
				return nil, err
			}
			if err := s.expect(':', "a colon"); err != nil {
				return nil, err
			}
			v, err := s.parseAny(true)
			if err != nil {
				return nil, err
			}
			out[k] = v
			if s.peek() == '}' {
				break
			}
			if err := s.expect(',', "a comma"); err != nil {
				return nil, err
			}
		}
		return out, s.expect('}', "a closing brace")
	}
	out := []any{}
	for s.peek() != '}' && !s.eof() {
		v, err := s.parseAny(false)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		if s.peek() == '}' {
			break
		}
		if err := s.expect(',', "a comma"); err != nil {
			return nil, err
		}
	}
	return out, s.expect('}', "a closing brace")
}

// parseAnySlice reads a slice whose items are guessed one by one.
func (s *scanner) parseAnySlice() ([]any, error) {
	out := []any{}
	if s.peek() == '{' {
		s.pos++
		for s.peek() != '}' && !s.eof() {
			v, err := s.parseAny(false)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			if s.peek() == '}' {
				break
			}
			if err := s.expect(',', "a comma"); err != nil {
				return nil, err
			}
		}
		return out, s.expect('}', "a closing brace")
	}
	for {
		c := s.peek()
		if c == ',' || c == '}' || c == 0 {
			return out, nil
		}
		v, err := s.parseAny(false)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		if s.peek() != ';' {
			return out, nil
		}
		s.pos++
	}
}

// parseValue reads one value of the given kind.
func (s *scanner) parseValue(k Kind) (any, error) {
	switch k {
	case String:
		return s.str(false)
	case Int:
		return s.parseInt()
	case Number:
		s.skipSpace()
		text, _ := s.numberText()
		if text == "" {
			return nil, s.errorf("expected a number, got %q", s.rest())
		}
		s.pos += len(text)
		return NumberLit(text), nil
	case Bool:
		return s.parseBool()
	case StringSlice:
		return s.parseStringSlice()
	case AnySlice:
		return s.parseAnySlice()
	case Any:
		return s.parseAny(true)
	case Raw:
		v := s.src[s.pos:]
		s.pos = len(s.src)
		return strings.TrimSpace(v), nil
	}
	return nil, fmt.Errorf("unknown argument kind %d", k)
}

// NumberLit is a number as written in the marker, kept as text so that
// integers beyond 2^53 are not silently rounded.
type NumberLit string
