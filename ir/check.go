package ir

import (
	"fmt"
	"strings"
)

// Check reports every way m breaks the IR's invariants. Tests run it after
// each pass; the backend may assume them. The invariants:
//
// Module:
//   - Consts and Maps are sorted by name and names are unique; program names
//     are unique and not empty.
//   - Every map has a known type, MaxEntries > 0, and key and value fields of
//     1, 2, 4 or 8 bytes. A prog_array has a single u32 key and value field;
//     only a prog_array has Slots, at most MaxEntries of them, each empty or
//     the name of a program of the module.
//
// Program:
//   - It has a known type and at least one block; labels are unique and not
//     empty; the control flow has no cycles (there are no phi nodes, so a
//     loop could carry no state, and the kernel needs termination).
//   - The entry block starts with the program's single OpCtx.
//   - Every block ends with a terminator whose targets exist.
//   - Every value is defined exactly once, with the type its op produces
//     (see the Kind docs), and every use is dominated by its definition:
//     earlier in the same block, or in a block that dominates the use.
//     Ops that define nothing (stores, atomics, ctx stores) have Dst NoValue
//     and no type.
//   - Operands have the types their op needs; scalar operands may be
//     constants. Sizes are 1, 2, 4 or 8 (atomics 4 or 8, aligned); context
//     fields exist for the program type and stores go to writable ones;
//     node constants named by OpParam exist in Module.Consts; maps exist,
//     fit the op (no lookups in a prog_array or ringbuf, no deletes from
//     arrays) and get as many key (and value) operands as their structs
//     have fields.
//   - A packet load at base+off of size s is reached only through the ok
//     edge of a Bounds on the same base value with n >= off+s, on every path
//     ("facts" flow forward along edges and meet by intersection).
//   - A load, store or atomic through a lookup result is reached only
//     through the ok edge of an IfNull on that value, and stays inside the
//     map's value struct.
//   - A tail call goes through a prog_array with Index < MaxEntries and
//     Slots[Index] == Target; return codes are valid for the program type.
//
// Unreachable blocks are allowed (simplifyCFG removes them): their ops are
// checked on their own, but dominance and facts, which only make sense on a
// path from the entry, are not.
func Check(m *Module) error {
	c := &checker{m: m}
	c.module()
	if len(c.errs) == 0 {
		return nil
	}
	return c.errs
}

// CheckError is one broken invariant. It is an internal error (a bug in the
// compiler), not a source.Error, even though Pos points at the configuration
// the op came from.
type CheckError struct {
	Pos     Pos
	Program string // "" for module-level problems
	Block   string // "" for program- and module-level problems
	// Op is the index of the op in Block.Ops, len(Block.Ops) for the
	// terminator, and -1 when the problem is not about one op.
	Op   int
	What string // the op or terminator as printed, for the reader
	Msg  string
}

func (e *CheckError) Error() string {
	var b strings.Builder
	b.WriteString(e.Pos.String())
	b.WriteString(": ir: ")
	if e.Program != "" {
		fmt.Fprintf(&b, "program %s: ", e.Program)
	}
	if e.Block != "" {
		fmt.Fprintf(&b, "block %s: ", e.Block)
	}
	if e.Op >= 0 {
		fmt.Fprintf(&b, "op %d (%s): ", e.Op, e.What)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// CheckErrors is every problem Check found, in program, block and op order.
type CheckErrors []*CheckError

func (l CheckErrors) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

type checker struct {
	m      *Module
	errs   CheckErrors
	maps   map[string]*Map
	consts map[string]bool // by name, so unsorted consts are reported once

	// Per program.
	prog  *Program
	g     *cfg
	defs  map[Value]defSite
	facts []*facts // per block, at its entry; nil when unreachable

	// Per op: where errors go. The op or terminator is formatted for the
	// message only when there is an error: formatting every op up front
	// costs more than the checks themselves.
	blk     *Block
	bi      int
	oi      int
	curOp   *Op   // the op being checked, or nil
	curTerm *Term // the terminator being checked, or nil
	pos     Pos
}

type defSite struct {
	block, op int
	typ       Type
	mp        *Map // for lookup results (and copies of them), the map
}

func (c *checker) add(pos Pos, prog, block string, op int, what, format string, args ...any) {
	c.errs = append(c.errs, &CheckError{Pos: pos, Program: prog, Block: block, Op: op, What: what, Msg: fmt.Sprintf(format, args...)})
}

// errorf reports a problem with the current op or terminator.
func (c *checker) errorf(format string, args ...any) {
	c.add(c.pos, c.prog.Name, c.blk.Label, c.oi, c.what(), format, args...)
}

// what is the current op or terminator as printed, for an error message.
func (c *checker) what() string {
	switch {
	case c.curOp != nil:
		return formatOp(c.curOp)
	case c.curTerm != nil:
		return formatTerm(c.curTerm)
	case c.oi >= 0:
		return "?" // a nil op
	}
	return ""
}

// at makes op (or, when op is nil, the terminator t) the subject of the
// errors that follow.
func (c *checker) at(oi int, op *Op, t *Term) {
	c.oi, c.curOp, c.curTerm, c.pos = oi, op, t, Pos{}
	switch {
	case op != nil:
		c.pos = op.Pos
	case t != nil:
		c.pos = t.Pos
	}
}

// operandNames avoids formatting a name for every operand checked.
var operandNames = [...]string{"operand 0", "operand 1", "operand 2", "operand 3", "operand 4", "operand 5", "operand 6", "operand 7", "operand 8", "operand 9"}

func operandName(i int) string {
	if i < len(operandNames) {
		return operandNames[i]
	}
	return fmt.Sprintf("operand %d", i)
}

func validSize(n int) bool { return n == 1 || n == 2 || n == 4 || n == 8 }

func (c *checker) module() {
	c.declarations()
	c.programNames(func(p *Program) { c.program(p) })
}

// declarations checks m's consts and maps.
func (c *checker) declarations() {
	m := c.m
	c.consts = map[string]bool{}
	for i, k := range m.Consts {
		c.consts[k.Name] = true
		if k.Name == "" {
			c.add(Pos{}, "", "", -1, "", "const %d has no name", i)
		}
		if i > 0 && m.Consts[i-1].Name >= k.Name {
			c.add(Pos{}, "", "", -1, "", "consts not sorted by name or not unique: %q after %q", k.Name, m.Consts[i-1].Name)
		}
	}
	progs := map[string]bool{}
	for _, p := range m.Programs {
		if p != nil {
			progs[p.Name] = true
		}
	}
	c.maps = map[string]*Map{}
	for i, mp := range m.Maps {
		if mp == nil {
			c.add(Pos{}, "", "", -1, "", "map %d is nil", i)
			continue
		}
		if i > 0 && m.Maps[i-1] != nil && m.Maps[i-1].Name >= mp.Name {
			c.add(mp.Pos, "", "", -1, "", "maps not sorted by name or not unique: %q after %q", mp.Name, m.Maps[i-1].Name)
		}
		c.maps[mp.Name] = mp
		c.mapDecl(mp, progs)
	}
}

// programNames checks that m's programs have unique names, calling each
// for every program.
func (c *checker) programNames(each func(*Program)) {
	seen := map[string]bool{}
	for i, p := range c.m.Programs {
		if p == nil {
			c.add(Pos{}, "", "", -1, "", "program %d is nil", i)
			continue
		}
		if p.Name == "" {
			c.add(p.Pos, "", "", -1, "", "program %d has no name", i)
		} else if seen[p.Name] {
			c.add(p.Pos, "", "", -1, "", "duplicate program name %q", p.Name)
		}
		seen[p.Name] = true
		each(p)
	}
}

// ProgramChecker checks the programs of a module one at a time, for a
// compiler that transforms them one at a time: NewProgramChecker checks the
// module's declarations and program names as Check does, and Check checks
// one program against them. A program that is in the module, checked
// after each transformation, gets exactly the errors Check would report
// for it.
type ProgramChecker struct {
	m      *Module
	maps   map[string]*Map
	consts map[string]bool
}

// NewProgramChecker checks m's consts, maps and program names, and returns
// a checker for programs with m's declarations.
func NewProgramChecker(m *Module) (*ProgramChecker, error) {
	c := &checker{m: m}
	c.declarations()
	c.programNames(func(*Program) {})
	if len(c.errs) > 0 {
		return nil, c.errs
	}
	return &ProgramChecker{m: m, maps: c.maps, consts: c.consts}, nil
}

// Check reports every way p breaks the IR's invariants for a program of
// the module.
func (pc *ProgramChecker) Check(p *Program) error {
	c := &checker{m: pc.m, maps: pc.maps, consts: pc.consts}
	c.program(p)
	if len(c.errs) == 0 {
		return nil
	}
	return c.errs
}

func (c *checker) mapDecl(mp *Map, progs map[string]bool) {
	bad := func(format string, args ...any) {
		c.add(mp.Pos, "", "", -1, "", "map %s: "+format, append([]any{mp.Name}, args...)...)
	}
	if mp.Name == "" {
		bad("no name")
	}
	if mp.Type == MapInvalid || int(mp.Type) >= len(mapTypeNames) {
		bad("unknown type %v", mp.Type)
	}
	if mp.MaxEntries == 0 {
		bad("max entries is 0")
	}
	for _, s := range []Struct{mp.Key, mp.Value} {
		for _, f := range s.Fields {
			if !validSize(f.Size) {
				bad("field %s.%s has size %d, want 1, 2, 4 or 8", s.Name, f.Name, f.Size)
			}
		}
	}
	if mp.Type != MapProgArray {
		if len(mp.Slots) > 0 {
			bad("only a prog_array has slots")
		}
		return
	}
	u32 := func(s Struct) bool { return len(s.Fields) == 1 && s.Fields[0].Size == 4 }
	if !u32(mp.Key) || !u32(mp.Value) {
		bad("a prog_array needs a single u32 key and value field")
	}
	if uint64(len(mp.Slots)) > uint64(mp.MaxEntries) {
		bad("%d slots, more than max entries %d", len(mp.Slots), mp.MaxEntries)
	}
	for i, s := range mp.Slots {
		if s != "" && !progs[s] {
			bad("slot %d names %q, which is not a program of the module", i, s)
		}
	}
}

func (c *checker) program(p *Program) {
	c.prog = p
	c.blk = &Block{}
	c.at(-1, nil, nil)
	bad := func(format string, args ...any) { c.add(p.Pos, p.Name, "", -1, "", format, args...) }
	if _, ok := CtxFields[p.Type]; !ok {
		bad("unknown program type %v", p.Type)
	}
	if len(p.Blocks) == 0 {
		bad("no blocks")
		return
	}
	for i, b := range p.Blocks {
		if b == nil {
			bad("block %d is nil", i)
			return
		}
	}
	c.g = buildCFG(p)
	labels := map[string]bool{}
	for _, b := range p.Blocks {
		if b.Label == "" {
			c.add(p.Pos, p.Name, "", -1, "", "a block has no label")
		} else if labels[b.Label] {
			c.add(p.Pos, p.Name, b.Label, -1, "", "duplicate label")
		}
		labels[b.Label] = true
	}
	if c.g.backEdge {
		bad("control flow has a cycle")
	}
	c.collectDefs()
	c.computeFacts()
	for bi, b := range p.Blocks {
		c.blk, c.bi = b, bi
		for oi, op := range b.Ops {
			c.at(oi, op, nil)
			if op == nil {
				c.errorf("nil op")
				continue
			}
			c.op(op)
		}
		c.at(len(b.Ops), nil, &b.Term)
		c.term(&b.Term)
	}
}

// collectDefs records where each value is defined, reporting values defined
// twice and ops whose Dst does not fit their kind.
func (c *checker) collectDefs() {
	c.defs = map[Value]defSite{}
	entry := c.prog.Blocks[0]
	if len(entry.Ops) == 0 || entry.Ops[0] == nil || entry.Ops[0].Kind != OpCtx {
		c.add(c.prog.Pos, c.prog.Name, entry.Label, -1, "", "the entry block does not start with ctx")
	}
	for bi, b := range c.prog.Blocks {
		c.blk, c.bi = b, bi
		for oi, op := range b.Ops {
			if op == nil {
				continue
			}
			c.at(oi, op, nil)
			if op.Kind == OpCtx && (bi != 0 || oi != 0) {
				c.errorf("ctx is defined only as the first op of the entry block")
			}
			switch op.Kind {
			case OpStore, OpAtomicAdd, OpCtxStore:
				if op.Dst != NoValue || op.Type != TypeInvalid {
					c.errorf("%v defines no value", op.Kind)
				}
				continue
			case OpMapUpdate, OpMapDelete, OpRingbufOutput:
				if op.Dst == NoValue {
					continue // the helper's result may be ignored
				}
			}
			if op.Dst < 0 {
				c.errorf("op defines no value")
				continue
			}
			if d, dup := c.defs[op.Dst]; dup {
				c.errorf("%v already defined in block %s", op.Dst, c.prog.Blocks[d.block].Label)
				continue
			}
			c.defs[op.Dst] = defSite{block: bi, op: oi, typ: op.Type}
		}
	}
	// Remember which map each lookup result points into, following copies,
	// so accesses can be checked against the value struct. Definitions come
	// before uses in dominance order, so one pass in reverse postorder sees
	// a copy's source first.
	for _, bi := range c.g.rpo {
		for _, op := range c.prog.Blocks[bi].Ops {
			if op == nil || op.Dst < 0 {
				continue
			}
			d, ok := c.defs[op.Dst]
			if !ok || d.block != bi {
				continue
			}
			switch {
			case op.Kind == OpMapLookup:
				d.mp = c.maps[op.Sym]
			case op.Kind == OpMov && len(op.Args) == 1 && !op.Args[0].IsConst:
				d.mp = c.defs[op.Args[0].Value].mp
			}
			c.defs[op.Dst] = d
		}
	}
}

// use checks that the value operand v is defined and that its definition
// dominates the current op, and returns its definition.
func (c *checker) use(v Value) (defSite, bool) {
	d, ok := c.defs[v]
	if !ok {
		c.errorf("%v is not defined", v)
		return defSite{}, false
	}
	if !c.g.reachable(c.bi) {
		return d, true
	}
	if d.block == c.bi && d.op >= c.oi || d.block != c.bi && !c.g.dominates(d.block, c.bi) {
		c.errorf("%v is used where its definition (block %s) does not dominate", v, c.prog.Blocks[d.block].Label)
		return d, false
	}
	return d, true
}

// want checks that operand o is a value of type t, or, for a Scalar, a
// constant, and returns its definition.
func (c *checker) want(o Operand, t Type, what string) (defSite, bool) {
	if o.IsConst {
		if t != Scalar {
			c.errorf("%s is the constant %d, want a %v", what, o.Const, t)
			return defSite{}, false
		}
		return defSite{typ: Scalar}, true
	}
	d, ok := c.use(o.Value)
	if ok && d.typ != t {
		c.errorf("%s %v is a %v, want a %v", what, o.Value, d.typ, t)
		return d, false
	}
	return d, ok
}

func (c *checker) args(op *Op, n int) bool {
	if len(op.Args) != n {
		c.errorf("%v has %d operands, want %d", op.Kind, len(op.Args), n)
		return false
	}
	return true
}

// result checks the type recorded for the op's value.
func (c *checker) result(op *Op, t Type) {
	if op.Dst != NoValue && op.Type != t {
		c.errorf("%v is recorded as a %v, but %v gives a %v", op.Dst, op.Type, op.Kind, t)
	}
}

func (c *checker) mapFor(op *Op) *Map {
	mp := c.maps[op.Sym]
	if mp == nil {
		c.errorf("no map called %q", op.Sym)
	}
	return mp
}

func (c *checker) op(op *Op) {
	switch k := op.Kind; {
	case k == OpCtx:
		c.args(op, 0)
		c.result(op, Ctx)
	case k == OpConst, k == OpKtimeNs:
		c.args(op, 0)
		c.result(op, Scalar)
	case k == OpParam:
		c.args(op, 0)
		c.result(op, Scalar)
		if !c.consts[op.Sym] {
			c.errorf("no node constant called %q", op.Sym)
		}
	case k == OpCtxLoad, k == OpCtxStore:
		n := 1
		if k == OpCtxStore {
			n = 2
		}
		if !c.args(op, n) {
			return
		}
		c.want(op.Args[0], Ctx, "context")
		f, ok := LookupCtxField(c.prog.Type, op.Sym)
		switch {
		case !ok:
			c.errorf("%v programs have no context field %q", c.prog.Type, op.Sym)
		case k == OpCtxLoad:
			c.result(op, f.Type)
		case !f.Writable:
			c.errorf("context field %q is read-only", op.Sym)
		}
		if k == OpCtxStore {
			c.want(op.Args[1], Scalar, "stored value")
		}
	case k == OpLoad, k == OpStore, k == OpAtomicAdd:
		c.memory(op)
	case k == OpMov:
		if c.args(op, 1) {
			if op.Args[0].IsConst {
				c.result(op, Scalar)
			} else if d, ok := c.use(op.Args[0].Value); ok {
				c.result(op, d.typ)
			}
		}
	case k.IsBinary():
		c.result(op, Scalar)
		if !c.args(op, 2) {
			return
		}
		c.want(op.Args[0], Scalar, "operand")
		c.want(op.Args[1], Scalar, "operand")
		if (k == OpShl || k == OpShr || k == OpArsh) && op.Args[1].IsConst && (op.Args[1].Const < 0 || op.Args[1].Const > 63) {
			c.errorf("shift by %d, want 0 to 63", op.Args[1].Const)
		}
	case k == OpSwap16, k == OpSwap32:
		c.result(op, Scalar)
		if c.args(op, 1) {
			c.want(op.Args[0], Scalar, "operand")
		}
	case k == OpPacketAdd:
		c.result(op, PacketPtr)
		if c.args(op, 2) {
			c.want(op.Args[0], PacketPtr, "base")
			c.want(op.Args[1], Scalar, "offset")
		}
		if op.Imm < 0 || op.Imm > 0xffff {
			c.errorf("offset bound %d, want 0 to 65535", op.Imm)
		}
	case k == OpMapLookup, k == OpMapUpdate, k == OpMapDelete, k == OpRingbufOutput:
		c.mapCall(op)
	default:
		c.errorf("unknown op kind %v", k)
	}
}

// memory checks a load, store or atomic: its base, its size and that the
// access is proven safe on every path.
func (c *checker) memory(op *Op) {
	n := 1
	if op.Kind != OpLoad {
		n = 2
	}
	if op.Kind == OpLoad {
		c.result(op, Scalar)
	}
	switch {
	case op.Kind == OpAtomicAdd && op.Size != 4 && op.Size != 8:
		c.errorf("atomic size %d, want 4 or 8", op.Size)
	case op.Kind == OpAtomicAdd && int(op.Off)%op.Size != 0:
		c.errorf("atomic at offset %d is not aligned to %d", op.Off, op.Size)
	case !validSize(op.Size):
		c.errorf("size %d, want 1, 2, 4 or 8", op.Size)
	}
	if !c.args(op, n) {
		return
	}
	if n == 2 {
		c.want(op.Args[1], Scalar, "stored value")
	}
	base := op.Args[0]
	if base.IsConst {
		c.errorf("base is the constant %d, want a pointer", base.Const)
		return
	}
	d, ok := c.use(base.Value)
	if !ok {
		return
	}
	if op.Off < 0 {
		c.errorf("negative offset %d", op.Off)
		return
	}
	end := int64(op.Off) + int64(op.Size)
	f := c.facts[c.bi]
	switch d.typ {
	case PacketPtr:
		if op.Kind != OpLoad {
			c.errorf("packet data is read-only in the IR")
			return
		}
		if f != nil && f.bounds[base.Value] < end {
			if n, ok := f.bounds[base.Value]; ok {
				c.errorf("packet load of bytes [%d, %d) of %v, but only %d bytes are proven on every path here", op.Off, end, base.Value, n)
			} else {
				c.errorf("packet load through %v with no bounds check on every path here", base.Value)
			}
		}
	case MapValueOrNull, MapValue:
		if d.typ == MapValueOrNull && f != nil && !f.nonNull[base.Value] {
			c.errorf("%v may be null here: no ifnull on every path", base.Value)
		}
		if d.mp != nil && end > int64(d.mp.Value.Size()) {
			c.errorf("access to bytes [%d, %d) of a %d-byte value of map %s", op.Off, end, d.mp.Value.Size(), d.mp.Name)
		}
	default:
		c.errorf("base %v is a %v, want a pkt or a map value", base.Value, d.typ)
	}
}

func (c *checker) mapCall(op *Op) {
	if op.Kind == OpMapLookup {
		c.result(op, MapValueOrNull)
	} else {
		c.result(op, Scalar)
	}
	mp := c.mapFor(op)
	for i, a := range op.Args {
		c.want(a, Scalar, operandName(i))
	}
	if mp == nil {
		return
	}
	if op.Kind == OpRingbufOutput {
		if mp.Type != MapRingBuf {
			c.errorf("output to %v map %s, want a ring buffer", mp.Type, mp.Name)
		} else if len(mp.Value.Fields) == 0 {
			c.errorf("ring buffer %s has no record layout (value struct)", mp.Name)
		} else if len(op.Args) != len(mp.Value.Fields) {
			c.errorf("ring buffer %s takes %d record fields, got %d", mp.Name, len(mp.Value.Fields), len(op.Args))
		}
		return
	}
	switch mp.Type {
	case MapProgArray, MapRingBuf:
		c.errorf("%v on a %v map", op.Kind, mp.Type)
		return
	case MapArray, MapPerCPUArray:
		if op.Kind == OpMapDelete {
			c.errorf("delete from %v map %s", mp.Type, mp.Name)
		}
	}
	want := len(mp.Key.Fields)
	if op.Kind == OpMapUpdate {
		want += len(mp.Value.Fields)
		if op.Imm < 0 || op.Imm > 2 {
			c.errorf("update flags %d, want 0 (any), 1 (noexist) or 2 (exist)", op.Imm)
		}
	}
	if len(op.Args) != want {
		c.errorf("map %s takes %d operands, got %d", mp.Name, want, len(op.Args))
	}
}

// returnCodes bounds the constant return codes per program type.
var returnCodes = map[ProgType][2]int64{
	ProgXDP:      {0, 4},  // XDP_ABORTED … XDP_REDIRECT
	ProgSchedCLS: {-1, 8}, // TC_ACT_UNSPEC … TC_ACT_TRAP
	ProgSockAddr: {0, 1},  // reject, allow
}

func (c *checker) term(t *Term) {
	for _, l := range t.successors() {
		if _, ok := c.g.index[l]; !ok {
			c.errorf("no block called %q", l)
		}
	}
	value := func(v Value, typ Type, what string) {
		c.want(V(v), typ, what)
	}
	switch t.Kind {
	case TermJump:
	case TermBranch:
		if t.Cond == CondInvalid || int(t.Cond) >= len(condNames) {
			c.errorf("unknown condition %v", t.Cond)
		}
		value(t.A, Scalar, "compared value")
		c.want(t.B, Scalar, "compared operand")
	case TermBounds:
		value(t.A, PacketPtr, "checked pointer")
		c.want(t.B, PacketEnd, "end")
		if t.Imm <= 0 || t.Imm > 0xffff {
			c.errorf("bounds of %d bytes, want 1 to 65535", t.Imm)
		}
	case TermIfNull:
		value(t.A, MapValueOrNull, "checked value")
	case TermReturn:
		if t.A != NoValue {
			value(t.A, Scalar, "returned value")
		} else if r, ok := returnCodes[c.prog.Type]; ok && (t.Imm < r[0] || t.Imm > r[1]) {
			c.errorf("return code %d, want %d to %d for %v", t.Imm, r[0], r[1], c.prog.Type)
		}
	case TermTailCall:
		value(t.A, Ctx, "context")
		mp := c.maps[t.Sym]
		switch {
		case mp == nil:
			c.errorf("no map called %q", t.Sym)
		case mp.Type != MapProgArray:
			c.errorf("tail call through %s, a %v, want a prog_array", mp.Name, mp.Type)
		case t.Imm < 0 || t.Imm >= int64(mp.MaxEntries):
			c.errorf("slot %d out of range for %s (max entries %d)", t.Imm, mp.Name, mp.MaxEntries)
		case t.Imm >= int64(len(mp.Slots)) || mp.Slots[t.Imm] != t.Target:
			c.errorf("slot %d of %s does not hold %q", t.Imm, mp.Name, t.Target)
		}
		if t.Target == "" {
			c.errorf("tail call names no target program")
		}
	default:
		c.errorf("missing or unknown terminator")
	}
}
