package explain

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
)

// Flow is one packet, as written on the command line:
//
//	tcp 10.0.1.5:40000 -> 10.0.2.7:80 syn
//	udp from web/frontend-0 to 10.96.0.10:53
//	icmp 8.8.8.8 -> 10.244.1.10 type 8 code 0
//	icmpv6 [fd00::1] -> [fd00::2] type 128
//
// A peer is an address (a.b.c.d, an IPv6 address, or [IPv6] when a port
// follows) or an endpoint written NAMESPACE/NAME, with an optional :PORT.
type Flow struct {
	Text  string
	Proto string // tcp, udp, sctp, icmp or icmpv6
	Src   Peer
	Dst   Peer
	// Flags are the TCP flags set, in the order syn, ack, fin, rst, psh. A
	// TCP flow written without flags is a SYN.
	Flags []string
	// ICMP type and code; an echo request (8/0, or 128/0 for icmpv6) unless
	// the flow says otherwise.
	Type, Code uint8
}

// Peer is one end of a flow.
type Peer struct {
	// Addr is the address written, or the endpoint's address once resolved.
	Addr netip.Addr
	// Endpoint is NAMESPACE/NAME when the flow names an endpoint.
	Endpoint string
	Port     uint16
	HasPort  bool
	// Col is the 1-based column (in characters) where the peer starts in
	// Flow.Text.
	Col int
}

func (p Peer) String() string {
	what := p.Endpoint
	if p.Addr.IsValid() {
		what = p.Addr.String()
	}
	if !p.HasPort && p.Port == 0 {
		return what
	}
	if p.Addr.Is6() {
		return "[" + what + "]:" + strconv.Itoa(int(p.Port))
	}
	return what + ":" + strconv.Itoa(int(p.Port))
}

// String is the flow in canonical form, with resolved addresses.
func (f *Flow) String() string {
	s := f.Proto + " " + f.Src.String() + " -> " + f.Dst.String()
	if len(f.Flags) > 0 {
		s += " " + strings.Join(f.Flags, " ")
	}
	if f.isICMP() {
		s += fmt.Sprintf(" type %d code %d", f.Type, f.Code)
	}
	return s
}

func (f *Flow) isICMP() bool { return f.Proto == "icmp" || f.Proto == "icmpv6" }

// FlowError is a mistake in a flow's text, at a column.
type FlowError struct {
	Text string
	Col  int // 1-based, in characters
	Msg  string
}

func (e *FlowError) Error() string { return fmt.Sprintf("flow:1:%d: %s", e.Col, e.Msg) }

// Caret shows the flow with a caret under the column of the error.
func (e *FlowError) Caret() string {
	text := strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, e.Text)
	return "  " + text + "\n  " + strings.Repeat(" ", max(e.Col-1, 0)) + "^"
}

// What the parser expects, in words.
const (
	wantProto  = "a protocol (tcp, udp, sctp, icmp or icmpv6)"
	wantPeer   = "an address (a.b.c.d, an IPv6 address, or [IPv6] before a port) or an endpoint NAMESPACE/NAME"
	wantArrow  = `"->" or "to" between the source and the destination`
	wantOption = "an option (syn, ack, fin, rst, psh, type N, code N)"
	wantPort   = "a port number after ':'"
)

var tcpFlags = []string{"syn", "ack", "fin", "rst", "psh"}

// The lexer. Order matters: earlier rules win, so 10.0.1.5 is an address
// and not a number, and web/api-0 an endpoint and not a word.
var flowLexer = lexer.MustSimple([]lexer.SimpleRule{
	{Name: "Bracketed", Pattern: `\[[^\]\s]*\]`},
	{Name: "Endpoint", Pattern: `[A-Za-z0-9][-A-Za-z0-9_.]*/[A-Za-z0-9][-A-Za-z0-9_.]*`},
	{Name: "IPv4", Pattern: `[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+`},
	{Name: "IPv6", Pattern: `[0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f:.]*`},
	{Name: "Word", Pattern: `[A-Za-z][A-Za-z0-9_]*`},
	{Name: "Int", Pattern: `[0-9]+`},
	{Name: "Arrow", Pattern: `->|>`},
	{Name: "Colon", Pattern: `:`},
	{Name: "Whitespace", Pattern: `\s+`},
})

// The grammar. It checks the shape only; flowFrom checks the words, the
// numbers and the addresses, so that each mistake gets its own message at
// its column.
type astFlow struct {
	Proto  astWord    `parser:"@@"`
	From   bool       `parser:"@'from'?"`
	Src    astPeer    `parser:"@@"`
	Arrow  string     `parser:"@(Arrow | 'to')"`
	Dst    astPeer    `parser:"@@"`
	Opts   []*astWord `parser:"@@*"`
	EndPos lexer.Position
}

type astWord struct {
	Pos  lexer.Position
	Text string `parser:"@(Word | Int)"`
}

type astPeer struct {
	Pos    lexer.Position
	Addr   string   `parser:"@(IPv4 | IPv6 | Bracketed | Endpoint)"`
	Port   *astPort `parser:"( Colon @@ )?"`
	EndPos lexer.Position
}

// astPort is a word too, so that "10.0.1.5:http" is told that it needs
// a number rather than a syntax error.
type astPort struct {
	Pos  lexer.Position
	Text string `parser:"@(Word | Int)"`
}

var flowParser = participle.MustBuild[astFlow](
	participle.Lexer(flowLexer),
	participle.Elide("Whitespace"),
)

// expectWords names, for the grammar's parts as participle prints them,
// what a person should write there.
var expectWords = []struct{ grammar, words string }{
	{"AstPeer", wantPeer},
	{"AstPort", wantPort},
	{"<arrow>", wantArrow},
	{`"from"`, wantPeer},
	{"AstWord", wantOption},
}

// ParseFlow parses a flow. Errors are *FlowError, at the column of the
// mistake, saying what was expected there. It never panics.
func ParseFlow(text string) (*Flow, error) {
	if strings.TrimSpace(text) == "" {
		return nil, &FlowError{Text: text, Col: 1, Msg: "empty flow: expected " + wantProto}
	}
	ast, err := flowParser.ParseString("", text)
	if err != nil {
		return nil, parseError(text, err)
	}
	return flowFrom(text, ast)
}

// parseError turns participle's errors into a FlowError in words.
func parseError(text string, err error) *FlowError {
	var ute *participle.UnexpectedTokenError
	if errors.As(err, &ute) {
		col := column(text, ute.Unexpected.Pos)
		got := fmt.Sprintf("%q", ute.Unexpected.Value)
		if ute.Unexpected.EOF() {
			got = "the end of the flow"
		}
		msg := ute.Message()
		want := ""
		if _, exp, ok := strings.Cut(msg, "(expected "); ok {
			want = strings.TrimSuffix(exp, ")")
		}
		return &FlowError{Text: text, Col: col, Msg: "expected " + expectation(text, ute, want) + ", found " + got}
	}
	var perr participle.Error
	if errors.As(err, &perr) {
		col := column(text, perr.Position())
		off := offset(text, perr.Position())
		found := "the end of the flow"
		if off < len(text) {
			r, _ := utf8.DecodeRuneInString(text[off:])
			found = fmt.Sprintf("%q", r)
		}
		return &FlowError{Text: text, Col: col, Msg: "unexpected character " + found + " (addresses, ports, NAMESPACE/NAME, words and \"->\" are allowed)"}
	}
	return &FlowError{Text: text, Col: 1, Msg: err.Error()}
}

// expectation says in words what the grammar wanted: the first part of
// participle's expected sequence.
func expectation(text string, ute *participle.UnexpectedTokenError, want string) string {
	first := want
	if strings.HasPrefix(first, "(") {
		depth := 0
		for i, r := range first {
			if r == '(' {
				depth++
			} else if r == ')' {
				depth--
				if depth == 0 {
					first = first[1:i]
					break
				}
			}
		}
	} else if i := strings.IndexByte(first, ' '); i >= 0 {
		first = first[:i]
	}
	for _, e := range expectWords {
		if strings.Contains(first, e.grammar) {
			return e.words
		}
	}
	if ute.Unexpected.Pos.Offset == 0 {
		return wantProto
	}
	if want == "" {
		// Participle has no expectation for a token after a complete
		// flow: only options may follow.
		return wantOption
	}
	return want
}

// offset is the byte offset of pos in text, clamped to text.
func offset(text string, pos lexer.Position) int {
	return min(max(pos.Offset, 0), len(text))
}

// column is pos as a 1-based character column of text.
func column(text string, pos lexer.Position) int {
	off := offset(text, pos)
	for off > 0 && off < len(text) && !utf8.RuneStart(text[off]) {
		off--
	}
	return utf8.RuneCountInString(text[:off]) + 1
}

// flowFrom checks what the grammar cannot: the protocol, addresses, port
// ranges, which options go with which protocol.
func flowFrom(text string, ast *astFlow) (*Flow, error) {
	errAt := func(pos lexer.Position, format string, args ...any) error {
		return &FlowError{Text: text, Col: column(text, pos), Msg: fmt.Sprintf(format, args...)}
	}
	f := &Flow{Text: text, Proto: strings.ToLower(ast.Proto.Text)}
	switch f.Proto {
	case "tcp", "udp", "sctp", "icmp", "icmpv6":
	default:
		return nil, errAt(ast.Proto.Pos, "unknown protocol %q: expected %s", ast.Proto.Text, wantProto)
	}
	var err error
	if f.Src, err = peerFrom(text, &ast.Src, errAt); err != nil {
		return nil, err
	}
	if f.Dst, err = peerFrom(text, &ast.Dst, errAt); err != nil {
		return nil, err
	}
	for _, p := range []struct {
		ast  *astPeer
		peer Peer
		what string
	}{{&ast.Src, f.Src, "source"}, {&ast.Dst, f.Dst, "destination"}} {
		if f.isICMP() && p.peer.HasPort {
			return nil, errAt(p.ast.Port.Pos, "%s has no ports: remove ':%s' (write 'type N code N' for the ICMP type)", f.Proto, p.ast.Port.Text)
		}
		a := p.peer.Addr
		switch {
		case !a.IsValid():
		case f.Proto == "icmpv6" && !a.Is6():
			return nil, errAt(p.ast.Pos, "icmpv6 needs IPv6 addresses, the %s is %s", p.what, a)
		case f.Proto == "icmp" && a.Is6():
			return nil, errAt(p.ast.Pos, "the %s %s is IPv6: write icmpv6 for ICMP over IPv6", p.what, a)
		}
	}
	if s, d := f.Src.Addr, f.Dst.Addr; s.IsValid() && d.IsValid() && s.Is4() != d.Is4() {
		return nil, errAt(ast.Dst.Pos, "the source %s and the destination %s are of different IP families", s, d)
	}
	if !f.isICMP() && !f.Dst.HasPort {
		return nil, errAt(ast.Dst.EndPos, "expected ':PORT' after the destination: %s needs a destination port", f.Proto)
	}
	if !f.isICMP() && !f.Src.HasPort {
		// The source port does not change a policy verdict; pick a fixed
		// ephemeral one so the output stays the same from run to run.
		f.Src.Port = 40000
	}
	if f.Proto == "icmp" {
		f.Type = 8
	} else if f.Proto == "icmpv6" {
		f.Type = 128
	}
	flags := map[string]bool{}
	seen := map[string]bool{}
	for i := 0; i < len(ast.Opts); i++ {
		o := ast.Opts[i]
		name := strings.ToLower(o.Text)
		if seen[name] {
			return nil, errAt(o.Pos, "%s is given twice", name)
		}
		seen[name] = true
		switch name {
		case "syn", "ack", "fin", "rst", "psh":
			if f.Proto != "tcp" {
				return nil, errAt(o.Pos, "%s is a TCP flag, and the flow is %s", name, f.Proto)
			}
			flags[name] = true
		case "type", "code":
			if !f.isICMP() {
				return nil, errAt(o.Pos, "%s is for icmp and icmpv6 flows, and the flow is %s", name, f.Proto)
			}
			if i+1 >= len(ast.Opts) {
				return nil, errAt(ast.EndPos, "expected a number (0-255) after %s, found the end of the flow", name)
			}
			i++
			v := ast.Opts[i]
			n, err := strconv.ParseUint(v.Text, 10, 8)
			if err != nil {
				return nil, errAt(v.Pos, "expected a number (0-255) after %s, found %q", name, v.Text)
			}
			if name == "type" {
				f.Type = uint8(n)
			} else {
				f.Code = uint8(n)
			}
		default:
			if _, err := strconv.Atoi(o.Text); err == nil {
				return nil, errAt(o.Pos, "unexpected number %s: only type and code take a number", o.Text)
			}
			return nil, errAt(o.Pos, "unknown option %q: expected %s", o.Text, wantOption)
		}
	}
	if f.Proto == "tcp" {
		if len(flags) == 0 {
			flags["syn"] = true
		}
		for _, fl := range tcpFlags {
			if flags[fl] {
				f.Flags = append(f.Flags, fl)
			}
		}
	}
	return f, nil
}

func peerFrom(text string, ast *astPeer, errAt func(lexer.Position, string, ...any) error) (Peer, error) {
	p := Peer{Col: column(text, ast.Pos)}
	s := ast.Addr
	switch {
	case strings.Contains(s, "/"):
		p.Endpoint = s
	case strings.HasPrefix(s, "["):
		a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
		if err != nil || !a.Is6() || a.Zone() != "" {
			return p, errAt(ast.Pos, "bad IPv6 address %s: write [fd00::1] or [fd00::1]:80", s)
		}
		p.Addr = a
	default:
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return p, errAt(ast.Pos, "bad address %q: write a.b.c.d with each part 0-255, or an IPv6 address", s)
		}
		if a.Is6() && ast.Port != nil {
			return p, errAt(ast.Pos, "write an IPv6 address with a port as [%s]:%s", s, ast.Port.Text)
		}
		p.Addr = a
	}
	if ast.Port != nil {
		n, err := strconv.ParseUint(ast.Port.Text, 10, 16)
		if err != nil {
			return p, errAt(ast.Port.Pos, "expected a port number (0-65535), found %q", ast.Port.Text)
		}
		p.Port, p.HasPort = uint16(n), true
	}
	return p, nil
}
