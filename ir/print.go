package ir

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The text form of the IR, as Print writes it and Parse reads it:
//
//	module node-a
//
//	const ep.web.ingress.enforced = 1
//
//	map ipcache lpm_trie key ipcache_key {prefixlen u32, addr u32} value ipcache_value {identity u32} max 16384 flags 1 @cluster.cue:3:1
//	map progs prog_array key u32_key {index u32} value u32_value {prog u32} max 4 slots [0: ep_web_ingress, 2: ep_web_egress] @-
//
//	program ep_web_ingress sched_cls section "tc" @policies.cue:10:3
//	entry:
//	  v0:ctx = ctx                          @policies.cue:10:3
//	  v1:pkt = ctx.load data v0             @policies.cue:10:3
//	  v2:pkt_end = ctx.load data_end v0     @policies.cue:10:3
//	  bounds v1 + 14 <= v2 -> eth, drop     @policies.cue:11:5
//	eth:
//	  v3 = load.u16 v1 + 12                 @policies.cue:11:5
//	  br v3 eq 8 -> ipv4, drop              @policies.cue:11:5
//	…
//
// Every op and terminator ends with the position it came from, aligned in a
// column per program; "@-" means none. A program array with empty slots
// lists its filled slots with their indexes; one without lists them in
// order. A value's type follows its name
// unless it is a scalar. Names that are not plain identifiers, or that are
// keywords, are quoted Go-style. Print then Parse then Print gives the same
// bytes for every module whose enums are in range and whose ops have the
// operand counts their kinds need (every module Check accepts, and more).

// Print writes m in the IR's text form.
func Print(w io.Writer, m *Module) error {
	bw := bufio.NewWriter(w)
	p := printer{w: bw}
	p.module(m)
	return bw.Flush()
}

// String returns m in the IR's text form.
func (m *Module) String() string {
	var b strings.Builder
	p := printer{w: &b}
	p.module(m)
	return b.String()
}

// FormatProgram returns p in the IR's text form, as it appears inside a
// module.
func FormatProgram(p *Program) string {
	var b strings.Builder
	pr := printer{w: &b}
	pr.program(p)
	return b.String()
}

// posColumnMax caps the alignment of the position column, so that one long
// line does not push every position of a program far to the right.
const posColumnMax = 56

type printer struct {
	w io.Writer

	// memo remembers the text of ops, terminators and positions already
	// formatted in this module: a node's programs repeat the same code
	// many times over. It is keyed by everything formatOp (formatTerm)
	// reads, so the text is the same as formatting again.
	memo    map[string]memoLine
	posMemo map[Pos]string
	key     []byte
}

// memoLine is a formatted op or terminator, indented, with its length in
// runes.
type memoLine struct {
	text  string
	runes int
}

// opLine returns op's line text (indented), from the memo when an op with
// the same fields was formatted before.
func (p *printer) opLine(op *Op) memoLine {
	k := append(p.key[:0], 'o', byte(op.Kind), byte(op.Type), byte(op.Size))
	k = binary.AppendVarint(k, int64(op.Dst))
	k = binary.AppendVarint(k, int64(op.Off))
	k = binary.AppendVarint(k, op.Imm)
	k = appendKeyString(k, op.Sym)
	k = binary.AppendUvarint(k, uint64(len(op.Args)))
	for _, a := range op.Args {
		k = appendKeyOperand(k, a)
	}
	p.key = k
	return p.line(k, func() string { return formatOp(op) })
}

// termLine is opLine for a terminator.
func (p *printer) termLine(t *Term) memoLine {
	k := append(p.key[:0], 't', byte(t.Kind), byte(t.Cond))
	k = binary.AppendVarint(k, int64(t.A))
	k = appendKeyOperand(k, t.B)
	k = binary.AppendVarint(k, t.Imm)
	k = appendKeyString(k, t.Sym)
	k = appendKeyString(k, t.Target)
	k = appendKeyString(k, t.Then)
	k = appendKeyString(k, t.Else)
	p.key = k
	return p.line(k, func() string { return formatTerm(t) })
}

func (p *printer) line(k []byte, format func() string) memoLine {
	if l, ok := p.memo[string(k)]; ok {
		return l
	}
	if p.memo == nil {
		p.memo = make(map[string]memoLine)
	}
	text := "  " + format()
	l := memoLine{text: text, runes: utf8.RuneCountInString(text)}
	p.memo[string(k)] = l
	return l
}

func appendKeyString(k []byte, s string) []byte {
	k = binary.AppendUvarint(k, uint64(len(s)))
	return append(k, s...)
}

func appendKeyOperand(k []byte, o Operand) []byte {
	if o.IsConst {
		return binary.AppendVarint(append(k, 'c'), o.Const)
	}
	return binary.AppendVarint(append(k, 'v'), int64(o.Value))
}

// pos formats pos, from the memo when it was formatted before.
func (p *printer) pos(pos Pos) string {
	if s, ok := p.posMemo[pos]; ok {
		return s
	}
	if p.posMemo == nil {
		p.posMemo = make(map[Pos]string)
	}
	s := formatPos(pos)
	p.posMemo[pos] = s
	return s
}

// write writes strings without formatting them.
func (p *printer) write(ss ...string) {
	for _, s := range ss {
		io.WriteString(p.w, s)
	}
}

func (p *printer) printf(format string, args ...any) {
	// Write errors surface through bufio.Writer.Flush in Print; strings.Builder
	// never fails.
	fmt.Fprintf(p.w, format, args...)
}

func (p *printer) module(m *Module) {
	p.printf("module %s\n", quoteName(m.Name))
	if len(m.Consts) > 0 {
		p.printf("\n")
		for _, c := range m.Consts {
			p.printf("const %s = %d\n", quoteName(c.Name), c.Value)
		}
	}
	if len(m.Maps) > 0 {
		p.printf("\n")
		for _, mp := range m.Maps {
			p.printf("%s\n", formatMap(mp))
		}
	}
	for _, prog := range m.Programs {
		p.printf("\n")
		p.program(prog)
	}
}

func formatMap(m *Map) string {
	var b strings.Builder
	fmt.Fprintf(&b, "map %s %s key %s value %s max %d", quoteName(m.Name), m.Type, formatStruct(m.Key), formatStruct(m.Value), m.MaxEntries)
	if m.Flags != 0 {
		fmt.Fprintf(&b, " flags %d", m.Flags)
	}
	if len(m.Slots) > 0 {
		// A sparse array lists its filled slots with their indexes.
		sparse := slices.Contains(m.Slots, "")
		b.WriteString(" slots [")
		sep := ""
		for i, s := range m.Slots {
			if sparse && s == "" {
				continue
			}
			b.WriteString(sep)
			sep = ", "
			if sparse {
				fmt.Fprintf(&b, "%d: ", i)
			}
			b.WriteString(quoteName(s))
		}
		b.WriteString("]")
	}
	b.WriteString(" ")
	b.WriteString(formatPos(m.Pos))
	return b.String()
}

func formatStruct(s Struct) string {
	var b strings.Builder
	b.WriteString(quoteName(s.Name))
	b.WriteString(" {")
	for i, f := range s.Fields {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s u%d", quoteName(f.Name), f.Size*8)
		if f.BigEndian {
			b.WriteString("be")
		}
	}
	b.WriteString("}")
	return b.String()
}

func (p *printer) program(prog *Program) {
	p.printf("program %s %s section %s %s\n", quoteName(prog.Name), prog.Type, strconv.Quote(prog.Section), formatPos(prog.Pos))
	// Format every line first so the position column can be aligned.
	type line struct {
		label string // a block label line when set
		text  memoLine
		pos   Pos
	}
	var lines []line
	width := 0
	add := func(text memoLine, pos Pos) {
		lines = append(lines, line{text: text, pos: pos})
		if n := text.runes; n <= posColumnMax {
			width = max(width, n)
		}
	}
	for _, b := range prog.Blocks {
		lines = append(lines, line{label: quoteName(b.Label) + ":"})
		for _, op := range b.Ops {
			add(p.opLine(op), op.Pos)
		}
		add(p.termLine(&b.Term), b.Term.Pos)
	}
	spaces := strings.Repeat(" ", posColumnMax+2)
	for _, l := range lines {
		if l.label != "" {
			p.write(l.label, "\n")
			continue
		}
		pad := max(width-l.text.runes, 0) + 2
		if pad <= len(spaces) {
			p.write(l.text.text, spaces[:pad], p.pos(l.pos), "\n")
		} else {
			p.write(l.text.text, strings.Repeat(" ", pad), p.pos(l.pos), "\n")
		}
	}
}

// formatOp formats op without its position. It never panics, whatever the
// op holds, so a dump of a broken module still shows what is there.
func formatOp(op *Op) string {
	var b strings.Builder
	if op.Dst != NoValue {
		b.WriteString(op.Dst.String())
		if op.Type != Scalar {
			b.WriteString(":" + op.Type.String())
		}
		b.WriteString(" = ")
	}
	arg := func(i int) string {
		if i < len(op.Args) {
			return op.Args[i].String()
		}
		return "?"
	}
	addr := func() string {
		switch {
		case op.Off > 0:
			return fmt.Sprintf("%s + %d", arg(0), op.Off)
		case op.Off < 0:
			return fmt.Sprintf("%s - %d", arg(0), -int(op.Off))
		}
		return arg(0)
	}
	list := func() string {
		s := make([]string, len(op.Args))
		for i, a := range op.Args {
			s[i] = a.String()
		}
		return "(" + strings.Join(s, ", ") + ")"
	}
	k := op.Kind
	switch {
	case k == OpCtx, k == OpKtimeNs:
		b.WriteString(k.String())
	case k == OpConst:
		fmt.Fprintf(&b, "const %d", op.Imm)
	case k == OpParam:
		fmt.Fprintf(&b, "param %s", quoteName(op.Sym))
	case k == OpCtxLoad:
		fmt.Fprintf(&b, "ctx.load %s %s", quoteName(op.Sym), arg(0))
	case k == OpCtxStore:
		fmt.Fprintf(&b, "ctx.store %s %s, %s", quoteName(op.Sym), arg(0), arg(1))
	case k == OpLoad:
		fmt.Fprintf(&b, "load.u%d %s", op.Size*8, addr())
	case k == OpStore, k == OpAtomicAdd:
		fmt.Fprintf(&b, "%s.u%d %s, %s", k, op.Size*8, addr(), arg(1))
	case k == OpMov, k == OpSwap16, k == OpSwap32:
		fmt.Fprintf(&b, "%s %s", k, arg(0))
	case k.IsBinary():
		fmt.Fprintf(&b, "%s %s, %s", k, arg(0), arg(1))
	case k == OpPacketAdd:
		fmt.Fprintf(&b, "packet.add %s, %s max %d", arg(0), arg(1), op.Imm)
	case k == OpMapLookup, k == OpMapDelete, k == OpRingbufOutput:
		fmt.Fprintf(&b, "%s %s %s", k, quoteName(op.Sym), list())
	case k == OpMapUpdate:
		fmt.Fprintf(&b, "update %s %s flags %d", quoteName(op.Sym), list(), op.Imm)
	default:
		fmt.Fprintf(&b, "%s %s", k, list())
	}
	return b.String()
}

// formatTerm formats t without its position.
func formatTerm(t *Term) string {
	switch t.Kind {
	case TermJump:
		return "jump " + quoteName(t.Then)
	case TermBranch:
		return fmt.Sprintf("br %s %s %s -> %s, %s", t.A, t.Cond, t.B, quoteName(t.Then), quoteName(t.Else))
	case TermBounds:
		return fmt.Sprintf("bounds %s + %d <= %s -> %s, %s", t.A, t.Imm, t.B, quoteName(t.Then), quoteName(t.Else))
	case TermIfNull:
		return fmt.Sprintf("ifnull %s -> %s, %s", t.A, quoteName(t.Then), quoteName(t.Else))
	case TermReturn:
		if t.A != NoValue {
			return "ret " + t.A.String()
		}
		return fmt.Sprintf("ret %d", t.Imm)
	case TermTailCall:
		return fmt.Sprintf("tailcall %s[%d] %s (%s) -> %s", quoteName(t.Sym), t.Imm, t.A, quoteName(t.Target), quoteName(t.Then))
	case TermInvalid:
		return "<missing terminator>"
	}
	return t.Kind.String()
}

// keywords are the words the grammar matches literally. Names equal to one
// are quoted so that a label called "ret" cannot be read as a terminator.
var keywords = func() map[string]bool {
	k := map[string]bool{}
	for _, w := range []string{"module", "const", "map", "program", "section", "key", "value", "max", "flags", "slots"} {
		k[w] = true
	}
	for _, n := range kindNames {
		k[n] = true
	}
	for _, n := range termNames {
		k[n] = true
	}
	for _, n := range condNames {
		k[n] = true
	}
	for _, mnem := range []string{"load", "store", "atomic.add"} {
		for _, s := range []string{"u8", "u16", "u32", "u64"} {
			k[mnem+"."+s] = true
		}
	}
	return k
}()

// quoteName returns s as a bare identifier when that reads back unchanged,
// else as a Go string literal.
func quoteName(s string) string {
	if isBareName(s) {
		return s
	}
	return strconv.Quote(s)
}

// formatPos formats pos as @file:line:col, or @- when it names no place. The
// column is always present (0 when unknown) so that a file name containing
// ":" still parses back unambiguously.
func formatPos(pos Pos) string {
	if !pos.IsValid() {
		return "@-"
	}
	file := pos.File
	if strconv.Quote(file) != `"`+file+`"` || strings.ContainsFunc(file, unicode.IsSpace) {
		file = strconv.Quote(file)
	}
	return fmt.Sprintf("@%s:%d:%d", file, pos.Line, max(pos.Col, 0))
}
