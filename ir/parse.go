package ir

import (
	"errors"
	"strconv"
	"strings"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"

	"github.com/ebpfc/ebpfc/source"
)

// Parse reads a module in the text form Print writes. Errors are
// source.Errors at file:line:col of the text; Parse checks syntax only, and
// Check the IR's invariants.
func Parse(filename string, src []byte) (*Module, error) {
	ast, err := irParser.ParseBytes(filename, src)
	if err != nil {
		var perr participle.Error
		if errors.As(err, &perr) {
			return nil, source.Errors{source.Errorf(textPos(perr.Position()), "%s", perr.Message())}
		}
		return nil, source.Errors{source.Errorf(source.Pos{File: filename, Line: 1, Col: 1}, "%v", err)}
	}
	c := converter{}
	m := c.module(ast)
	if err := c.errs.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

func textPos(p lexer.Position) source.Pos {
	return source.Pos{File: p.Filename, Line: p.Line, Col: p.Column}
}

// The lexer. Order matters: earlier rules win, so a value (v3) is not read
// as a name and "->" is not read as a minus.
var irLexer = lexer.MustSimple([]lexer.SimpleRule{
	{Name: "Comment", Pattern: `//[^\n]*`},
	{Name: "At", Pattern: `@"(?:\\.|[^"\\\n])*":[0-9]+:[0-9]+|@[^\s"]*:[0-9]+:[0-9]+|@-`},
	{Name: "String", Pattern: `"(?:\\.|[^"\\\n])*"`},
	{Name: "Value", Pattern: `v[0-9]+`},
	{Name: "Ident", Pattern: `[A-Za-z_][A-Za-z0-9_.\-]*`},
	{Name: "Arrow", Pattern: `->`},
	{Name: "Int", Pattern: `-?(?:0[xX][0-9a-fA-F]+|[0-9]+)`},
	{Name: "Punct", Pattern: `<=|[=:,(){}\[\]+\-]`},
	{Name: "Whitespace", Pattern: `\s+`},
})

var irParser = participle.MustBuild[astModule](
	participle.Lexer(irLexer),
	participle.Elide("Whitespace", "Comment"),
	participle.UseLookahead(4),
)

// The grammar. Names are captured raw (identifier or quoted string) and
// unquoted by the converter, which also turns numbers into their Go types
// and reports range errors at the token.

type astModule struct {
	Name     string        `parser:"'module' @(Ident | String)"`
	Consts   []*astConst   `parser:"@@*"`
	Maps     []*astMap     `parser:"@@*"`
	Programs []*astProgram `parser:"@@*"`
}

type astConst struct {
	Pos   lexer.Position
	Name  string `parser:"'const' @(Ident | String) '='"`
	Value string `parser:"@Int"`
}

type astMap struct {
	Pos   lexer.Position
	Name  string     `parser:"'map' @(Ident | String)"`
	Type  string     `parser:"@Ident"`
	Key   *astStruct `parser:"'key' @@"`
	Value *astStruct `parser:"'value' @@"`
	Max   string     `parser:"'max' @Int"`
	Flags string     `parser:"( 'flags' @Int )?"`
	Slots []*astSlot `parser:"( 'slots' '[' ( @@ ( ',' @@ )* )? ']' )?"`
	At    string     `parser:"@At"`
}

// astSlot is one program array slot: a program, optionally preceded by its
// index ("5: prog"); without one it follows the slot before it.
type astSlot struct {
	Index string `parser:"( @Int ':' )?"`
	Prog  string `parser:"@(Ident | String)"`
}

type astStruct struct {
	Name   string      `parser:"@(Ident | String) '{'"`
	Fields []*astField `parser:"( @@ ( ',' @@ )* )? '}'"`
}

type astField struct {
	Pos  lexer.Position
	Name string `parser:"@(Ident | String)"`
	Type string `parser:"@Ident"`
}

type astProgram struct {
	Pos     lexer.Position
	Name    string      `parser:"'program' @(Ident | String)"`
	Type    string      `parser:"@Ident"`
	Section string      `parser:"'section' @String"`
	At      string      `parser:"@At"`
	Blocks  []*astBlock `parser:"@@*"`
}

type astBlock struct {
	Pos   lexer.Position
	Label string   `parser:"@(Ident | String) ':'"`
	Ops   []*astOp `parser:"@@*"`
	Term  *astTerm `parser:"@@"`
}

type astOp struct {
	Pos     lexer.Position
	Dst     string `parser:"( @Value"`
	DstType string `parser:"  ( ':' @Ident )? '=' )?"`

	Nullary   string        `parser:"(  @('ctx' | 'ktime_ns')"`
	Const     *string       `parser:" | 'const' @Int"`
	Param     *string       `parser:" | 'param' @(Ident | String)"`
	CtxLoad   *astCtxLoad   `parser:" | @@"`
	CtxStore  *astCtxStore  `parser:" | @@"`
	Mem       *astMem       `parser:" | @@"`
	Unary     *astUnary     `parser:" | @@"`
	Binary    *astBinary    `parser:" | @@"`
	PacketAdd *astPacketAdd `parser:" | @@"`
	Call      *astCall      `parser:" | @@ )"`
	At        string        `parser:"@At"`
}

type astOperand struct {
	Pos lexer.Position
	Tok string `parser:"@(Value | Int)"`
}

type astCtxLoad struct {
	Field string      `parser:"'ctx.load' @(Ident | String)"`
	Ctx   *astOperand `parser:"@@"`
}

type astCtxStore struct {
	Field string      `parser:"'ctx.store' @(Ident | String)"`
	Ctx   *astOperand `parser:"@@ ','"`
	Val   *astOperand `parser:"@@"`
}

type astMem struct {
	Pos  lexer.Position
	Mnem string      `parser:"@('load.u8' | 'load.u16' | 'load.u32' | 'load.u64' | 'store.u8' | 'store.u16' | 'store.u32' | 'store.u64' | 'atomic.add.u8' | 'atomic.add.u16' | 'atomic.add.u32' | 'atomic.add.u64')"`
	Base *astOperand `parser:"@@"`
	Sign string      `parser:"( @('+' | '-')"`
	Off  string      `parser:"  @Int )?"`
	Val  *astOperand `parser:"( ',' @@ )?"`
}

type astUnary struct {
	Mnem string      `parser:"@('mov' | 'swap16' | 'swap32')"`
	A    *astOperand `parser:"@@"`
}

type astBinary struct {
	Mnem string      `parser:"@('add' | 'sub' | 'mul' | 'and' | 'or' | 'xor' | 'shl' | 'shr' | 'arsh')"`
	A    *astOperand `parser:"@@ ','"`
	B    *astOperand `parser:"@@"`
}

type astPacketAdd struct {
	A   *astOperand `parser:"'packet.add' @@ ','"`
	B   *astOperand `parser:"@@"`
	Max string      `parser:"'max' @Int"`
}

type astCall struct {
	Pos   lexer.Position
	Mnem  string        `parser:"@('lookup' | 'update' | 'delete' | 'output')"`
	Map   string        `parser:"@(Ident | String) '('"`
	Args  []*astOperand `parser:"( @@ ( ',' @@ )* )? ')'"`
	Flags *string       `parser:"( 'flags' @Int )?"`
}

type astTerm struct {
	Pos      lexer.Position
	Jump     *string      `parser:"(  'jump' @(Ident | String)"`
	Br       *astBr       `parser:" | @@"`
	Bounds   *astBounds   `parser:" | @@"`
	IfNull   *astIfNull   `parser:" | @@"`
	Ret      *astOperand  `parser:" | 'ret' @@"`
	TailCall *astTailCall `parser:" | @@ )"`
	At       string       `parser:"@At"`
}

type astBr struct {
	A    *astOperand `parser:"'br' @@"`
	Cond string      `parser:"@Ident"`
	B    *astOperand `parser:"@@ '->'"`
	Then string      `parser:"@(Ident | String) ','"`
	Else string      `parser:"@(Ident | String)"`
}

type astBounds struct {
	A    *astOperand `parser:"'bounds' @@ '+'"`
	N    string      `parser:"@Int '<='"`
	B    *astOperand `parser:"@@ '->'"`
	Then string      `parser:"@(Ident | String) ','"`
	Else string      `parser:"@(Ident | String)"`
}

type astIfNull struct {
	A    *astOperand `parser:"'ifnull' @@ '->'"`
	Then string      `parser:"@(Ident | String) ','"`
	Else string      `parser:"@(Ident | String)"`
}

type astTailCall struct {
	Map    string      `parser:"'tailcall' @(Ident | String) '['"`
	Index  string      `parser:"@Int ']'"`
	Ctx    *astOperand `parser:"@@"`
	Target string      `parser:"'(' @(Ident | String) ')' '->'"`
	Then   string      `parser:"@(Ident | String)"`
}

// converter turns the syntax tree into a Module, collecting every error.
type converter struct {
	errs source.Errors
}

func (c *converter) errorf(pos lexer.Position, format string, args ...any) {
	c.errs.Add(textPos(pos), format, args...)
}

// name unquotes a name captured as an identifier or a string literal.
func (c *converter) name(pos lexer.Position, s string) string {
	if !strings.HasPrefix(s, `"`) {
		return s
	}
	u, err := strconv.Unquote(s)
	if err != nil {
		c.errorf(pos, "bad string %s", s)
	}
	return u
}

// integer parses a decimal or 0x-prefixed integer of the given bit size.
func (c *converter) integer(pos lexer.Position, s string, bits int) int64 {
	neg := strings.HasPrefix(s, "-")
	digits := strings.TrimPrefix(s, "-")
	base := 10
	if strings.HasPrefix(digits, "0x") || strings.HasPrefix(digits, "0X") {
		base, digits = 16, digits[2:]
	}
	if neg {
		digits = "-" + digits
	}
	n, err := strconv.ParseInt(digits, base, bits)
	if err != nil {
		c.errorf(pos, "integer %s out of range for %d bits", s, bits)
	}
	return n
}

// uint32 parses a non-negative integer that fits in 32 bits.
func (c *converter) uint32(pos lexer.Position, s string) uint32 {
	n := c.integer(pos, s, 64)
	if n < 0 || n > 1<<32-1 {
		c.errorf(pos, "integer %s out of range for u32", s)
		return 0
	}
	return uint32(n)
}

func (c *converter) pos(at lexer.Position, s string) Pos {
	if s == "@-" {
		return Pos{}
	}
	s = strings.TrimPrefix(s, "@")
	// The lexer guarantees file:line:col with numeric line and column, so the
	// last two colons split it even when the file name has colons.
	i := strings.LastIndexByte(s, ':')
	j := strings.LastIndexByte(s[:i], ':')
	file, line, col := s[:j], s[j+1:i], s[i+1:]
	p := Pos{File: c.name(at, file)}
	var err1, err2 error
	p.Line, err1 = strconv.Atoi(line)
	p.Col, err2 = strconv.Atoi(col)
	if err1 != nil || err2 != nil {
		c.errorf(at, "bad position %s", s)
	}
	return p
}

func (c *converter) module(a *astModule) *Module {
	m := &Module{Name: c.name(lexer.Position{}, a.Name)}
	for _, k := range a.Consts {
		m.Consts = append(m.Consts, Const{Name: c.name(k.Pos, k.Name), Value: c.integer(k.Pos, k.Value, 64)})
	}
	for _, am := range a.Maps {
		m.Maps = append(m.Maps, c.mapDecl(am))
	}
	for _, ap := range a.Programs {
		m.Programs = append(m.Programs, c.program(ap))
	}
	return m
}

func (c *converter) mapDecl(a *astMap) *Map {
	m := &Map{
		Name:       c.name(a.Pos, a.Name),
		Key:        c.structDecl(a.Pos, a.Key),
		Value:      c.structDecl(a.Pos, a.Value),
		MaxEntries: c.uint32(a.Pos, a.Max),
		Pos:        c.pos(a.Pos, a.At),
	}
	t, ok := enumByName[MapType](mapTypeNames[:], a.Type)
	if !ok {
		c.errorf(a.Pos, "unknown map type %q", a.Type)
	}
	m.Type = t
	if a.Flags != "" {
		m.Flags = c.uint32(a.Pos, a.Flags)
	}
	for _, s := range a.Slots {
		if s.Index != "" {
			i := c.uint32(a.Pos, s.Index)
			if uint64(i) < uint64(len(m.Slots)) || uint64(i) >= uint64(m.MaxEntries) {
				c.errorf(a.Pos, "slot %d: slots must be in increasing order and below max %d", i, m.MaxEntries)
				break
			}
			for uint64(len(m.Slots)) < uint64(i) {
				m.Slots = append(m.Slots, "")
			}
		}
		m.Slots = append(m.Slots, c.name(a.Pos, s.Prog))
	}
	return m
}

func (c *converter) structDecl(pos lexer.Position, a *astStruct) Struct {
	s := Struct{Name: c.name(pos, a.Name)}
	for _, f := range a.Fields {
		// A field's type is u<bits>, with a "be" suffix for a big-endian one.
		size := 0
		digits, bigEndian := strings.CutSuffix(f.Type, "be")
		bits, err := strconv.Atoi(strings.TrimPrefix(digits, "u"))
		if !strings.HasPrefix(digits, "u") || err != nil || bits%8 != 0 {
			c.errorf(f.Pos, "bad field type %q, want u8, u16, u32 or u64, optionally with a be suffix", f.Type)
		} else {
			size = bits / 8
		}
		s.Fields = append(s.Fields, Field{Name: c.name(f.Pos, f.Name), Size: size, BigEndian: bigEndian})
	}
	return s
}

func (c *converter) program(a *astProgram) *Program {
	p := &Program{
		Name:    c.name(a.Pos, a.Name),
		Section: c.name(a.Pos, a.Section),
		Pos:     c.pos(a.Pos, a.At),
	}
	t, ok := enumByName[ProgType](progTypeNames[:], a.Type)
	if !ok {
		c.errorf(a.Pos, "unknown program type %q", a.Type)
	}
	p.Type = t
	for _, ab := range a.Blocks {
		b := &Block{Label: c.name(ab.Pos, ab.Label)}
		for _, ao := range ab.Ops {
			b.Ops = append(b.Ops, c.op(ao))
		}
		b.Term = c.term(ab.Term)
		p.Blocks = append(p.Blocks, b)
	}
	return p
}

func (c *converter) value(pos lexer.Position, s string) Value {
	n, err := strconv.Atoi(strings.TrimPrefix(s, "v"))
	if err != nil || !strings.HasPrefix(s, "v") {
		c.errorf(pos, "bad value %q", s)
		return NoValue
	}
	return Value(n)
}

func (c *converter) operand(a *astOperand) Operand {
	if strings.HasPrefix(a.Tok, "v") {
		return V(c.value(a.Pos, a.Tok))
	}
	return C(c.integer(a.Pos, a.Tok, 64))
}

// valueOperand reads an operand that must be a value (a terminator's A).
func (c *converter) valueOperand(a *astOperand) Value {
	o := c.operand(a)
	if o.IsConst {
		c.errorf(a.Pos, "want a value, not the constant %d", o.Const)
		return NoValue
	}
	return o.Value
}

func (c *converter) operands(as ...*astOperand) []Operand {
	out := make([]Operand, len(as))
	for i, a := range as {
		out[i] = c.operand(a)
	}
	return out
}

func (c *converter) op(a *astOp) *Op {
	op := &Op{Dst: NoValue, Pos: c.pos(a.Pos, a.At)}
	if a.Dst != "" {
		op.Dst = c.value(a.Pos, a.Dst)
		op.Type = Scalar
		if a.DstType != "" {
			t, ok := enumByName[Type](typeNames[:], a.DstType)
			if !ok {
				c.errorf(a.Pos, "unknown type %q", a.DstType)
			}
			op.Type = t
		}
	}
	switch {
	case a.Nullary != "":
		op.Kind, _ = enumByName[Kind](kindNames[:], a.Nullary)
	case a.Const != nil:
		op.Kind, op.Imm = OpConst, c.integer(a.Pos, *a.Const, 64)
	case a.Param != nil:
		op.Kind, op.Sym = OpParam, c.name(a.Pos, *a.Param)
	case a.CtxLoad != nil:
		op.Kind, op.Sym = OpCtxLoad, c.name(a.Pos, a.CtxLoad.Field)
		op.Args = c.operands(a.CtxLoad.Ctx)
	case a.CtxStore != nil:
		op.Kind, op.Sym = OpCtxStore, c.name(a.Pos, a.CtxStore.Field)
		op.Args = c.operands(a.CtxStore.Ctx, a.CtxStore.Val)
	case a.Mem != nil:
		c.memOp(op, a.Mem)
	case a.Unary != nil:
		op.Kind, _ = enumByName[Kind](kindNames[:], a.Unary.Mnem)
		op.Args = c.operands(a.Unary.A)
	case a.Binary != nil:
		op.Kind, _ = enumByName[Kind](kindNames[:], a.Binary.Mnem)
		op.Args = c.operands(a.Binary.A, a.Binary.B)
	case a.PacketAdd != nil:
		op.Kind = OpPacketAdd
		op.Args = c.operands(a.PacketAdd.A, a.PacketAdd.B)
		op.Imm = c.integer(a.Pos, a.PacketAdd.Max, 64)
	case a.Call != nil:
		op.Kind, _ = enumByName[Kind](kindNames[:], a.Call.Mnem)
		op.Sym = c.name(a.Call.Pos, a.Call.Map)
		op.Args = c.operands(a.Call.Args...)
		switch {
		case op.Kind == OpMapUpdate && a.Call.Flags != nil:
			op.Imm = c.integer(a.Call.Pos, *a.Call.Flags, 64)
		case op.Kind == OpMapUpdate:
			c.errorf(a.Call.Pos, "update needs flags")
		case a.Call.Flags != nil:
			c.errorf(a.Call.Pos, "%s takes no flags", a.Call.Mnem)
		}
	}
	return op
}

func (c *converter) memOp(op *Op, a *astMem) {
	mnem, size, _ := strings.Cut(a.Mnem, ".u")
	if mnem == "atomic.add" {
		// "atomic.add.u32" cuts at the first ".u", which is inside the size.
		mnem, size, _ = strings.Cut(strings.TrimPrefix(a.Mnem, "atomic."), ".u")
		mnem = "atomic." + mnem
	}
	op.Kind, _ = enumByName[Kind](kindNames[:], mnem)
	bits, _ := strconv.Atoi(size)
	op.Size = bits / 8
	op.Args = c.operands(a.Base)
	if a.Off != "" {
		off := c.integer(a.Pos, a.Off, 64)
		if a.Sign == "-" {
			off = -off
		}
		if off < -1<<15 || off >= 1<<15 {
			c.errorf(a.Pos, "offset %s%s out of range for int16", a.Sign, a.Off)
		}
		op.Off = int16(off)
	}
	switch {
	case op.Kind == OpLoad && a.Val != nil:
		c.errorf(a.Pos, "load takes no value to store")
	case op.Kind != OpLoad && a.Val == nil:
		c.errorf(a.Pos, "%s needs a value", a.Mnem)
	case a.Val != nil:
		op.Args = append(op.Args, c.operand(a.Val))
	}
}

func (c *converter) term(a *astTerm) Term {
	t := Term{A: NoValue, B: Operand{Value: NoValue}, Pos: c.pos(a.Pos, a.At)}
	switch {
	case a.Jump != nil:
		t.Kind, t.Then = TermJump, c.name(a.Pos, *a.Jump)
	case a.Br != nil:
		t.Kind = TermBranch
		t.A, t.B = c.valueOperand(a.Br.A), c.operand(a.Br.B)
		cond, ok := enumByName[Cond](condNames[:], a.Br.Cond)
		if !ok || cond == CondInvalid {
			c.errorf(a.Pos, "unknown condition %q", a.Br.Cond)
		}
		t.Cond = cond
		t.Then, t.Else = c.name(a.Pos, a.Br.Then), c.name(a.Pos, a.Br.Else)
	case a.Bounds != nil:
		t.Kind = TermBounds
		t.A, t.B = c.valueOperand(a.Bounds.A), c.operand(a.Bounds.B)
		t.Imm = c.integer(a.Pos, a.Bounds.N, 64)
		t.Then, t.Else = c.name(a.Pos, a.Bounds.Then), c.name(a.Pos, a.Bounds.Else)
	case a.IfNull != nil:
		t.Kind = TermIfNull
		t.A = c.valueOperand(a.IfNull.A)
		t.Then, t.Else = c.name(a.Pos, a.IfNull.Then), c.name(a.Pos, a.IfNull.Else)
	case a.Ret != nil:
		t.Kind = TermReturn
		if o := c.operand(a.Ret); o.IsConst {
			t.Imm = o.Const
		} else {
			t.A = o.Value
		}
	case a.TailCall != nil:
		t.Kind = TermTailCall
		t.Sym = c.name(a.Pos, a.TailCall.Map)
		t.Imm = c.integer(a.Pos, a.TailCall.Index, 64)
		t.A = c.valueOperand(a.TailCall.Ctx)
		t.Target = c.name(a.Pos, a.TailCall.Target)
		t.Then = c.name(a.Pos, a.TailCall.Then)
	}
	return t
}
