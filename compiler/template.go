package compiler

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/cilium/ebpf/asm"

	"github.com/ebpfc/ebpfc/backend"
	"github.com/ebpfc/ebpfc/ir"
)

// Shape templates.
//
// A node's programs come in a few shapes: every endpoint's ingress entry
// program, say, is the same code with different constants in it — the
// program's name, the policy map it looks up, its tail-call slot, the
// endpoint index its events carry, its default-deny cookie, the CUE
// positions it points back to. Compile lowers every program, groups the
// programs by shape, runs the passes and code generation once per shape
// (the template) and stamps each other program of the shape from the
// template's results: a copy of the template's instructions and IR with
// the program's own constants, names and positions put in.
//
// Shape. A program's shape is its lowered IR with three kinds of things
// abstracted:
//
//   - names: the program's name, the maps its ops and tail calls name, the
//     tail-call target and the node constants it reads, numbered in order of
//     first use (so the shape keeps which of them are the same name); a map
//     is kept as its definition (type, key, value, size, flags), which is
//     what the passes and the backend read from it;
//   - positions, numbered in order of first use the same way;
//   - holes: integer constants whose value no pass and no backend decision
//     depends on beyond a few properties (their class, below). They are the
//     tail-call slot of a tail call; a constant operand the backend can only
//     copy into an instruction — the value of a context store or atomic add,
//     and a 4- or 8-byte field of a map key, map value or ring buffer record
//     (narrower fields stay in the shape); and a node constant (OpParam)
//     when every use of it is a branch against a literal (the shape then
//     holds each branch's outcome) or the right operand of a branch whose
//     left operand is loaded from memory (which the passes never know).
//
// Everything else — every other constant, every op, type, size, offset,
// label and context field — is in the shape as it is.
//
// Why stamping gives the bytes a compile of the program would. The passes
// fold only arithmetic ops and branches whose operands are all known; no
// hole is an operand of either (hole operands sit in ops fold never
// evaluates, node-constant holes are used only in branches whose outcome
// the shape fixes, or where the other operand is never known), so every
// decision the passes take is the same for two programs of one shape, and
// the holes come out of them unchanged, as constant operands or immediates.
// Register allocation looks at whether a value is constant, never at its
// value. The backend looks at a constant's value only to choose between a
// 32-bit immediate and a 64-bit load, and when it truncates a store
// immediate to 32 bits: the class of a hole records whether it fits 32
// bits, whether it and its low 32 bits are zero and its sign, so two
// programs of one shape get the same instructions with the holes'
// values (or their low 32 bits) in the same places. Names and positions
// are never read by a decision: they are carried into instruction
// metadata (symbols, map references, sources) and the IR.
//
// The places are found, not assumed: the template is compiled twice, once
// with its own values and once with a sentinel in every hole (same class,
// same branch outcomes, distinct from every other value), and the two
// results must be identical except in constants, each difference explained
// by exactly one hole. If anything does not line up, or the template does
// not compile, the programs of the shape are compiled one by one as
// before. Options.PerProgram compiles every program that way, and the
// tests compare the two on every golden input and on random
// configurations.

// hole is one abstracted integer of a lowered program.
type hole struct {
	at  *int64 // where the value lives: in an op, a terminator or a node constant
	val int64
	// slot is set for a tail call's slot: its sentinel must be a slot of
	// the program array, which holds the call's target there.
	slot   bool
	target string
	array  string
}

// holeClass is what the passes and the backend may tell apart about a
// hole's value.
func holeClass(v int64) byte {
	var c byte
	if v >= math.MinInt32 && v <= math.MaxInt32 {
		c |= 1
	}
	if v == 0 {
		c |= 2
	}
	if int32(v) == 0 {
		c |= 4
	}
	if v < 0 {
		c |= 8
	}
	return c
}

// shape is a lowered program's shape (key) and what was abstracted from it,
// in order of first use.
type shape struct {
	key   []byte
	names []string
	poss  []ir.Pos
	holes []hole
}

// shapeWalker computes a program's shape.
type shapeWalker struct {
	maps   map[string]*ir.Map
	consts []ir.Const // the module's, sorted by name; holes of node constants point into it
	s      shape
	params map[string]int // node constant name → hole index
	// paramUses lists the uses of each OpParam value, when the program has
	// any.
	paramDefs map[ir.Value]*ir.Op
	loaded    map[ir.Value]bool // values defined by loads, which fold never knows
	paramOK   map[ir.Value]bool // the param's every use is one a hole allows

	posIndex map[ir.Pos]int // once there are many positions
	lastPos  int
}

func (w *shapeWalker) int(v int64) { w.s.key = binary.AppendVarint(w.s.key, v) }

func (w *shapeWalker) str(s string) {
	w.s.key = binary.AppendUvarint(w.s.key, uint64(len(s)))
	w.s.key = append(w.s.key, s...)
}

// name records an abstracted name by its number in order of first use.
func (w *shapeWalker) name(s string) {
	for i, n := range w.s.names {
		if n == s {
			w.int(int64(i))
			return
		}
	}
	w.int(int64(len(w.s.names)))
	w.s.names = append(w.s.names, s)
}

// pos records a position by its number in order of first use.
func (w *shapeWalker) pos(p ir.Pos) {
	if w.lastPos >= 0 && w.s.poss[w.lastPos] == p {
		w.int(int64(w.lastPos))
		return
	}
	i, ok := -1, false
	if w.posIndex != nil {
		i, ok = w.posIndex[p]
	} else {
		for k, q := range w.s.poss {
			if q == p {
				i, ok = k, true
				break
			}
		}
	}
	if !ok {
		i = len(w.s.poss)
		w.s.poss = append(w.s.poss, p)
		if w.posIndex != nil {
			w.posIndex[p] = i
		} else if len(w.s.poss) > 8 {
			w.posIndex = make(map[ir.Pos]int, 16)
			for k, q := range w.s.poss {
				w.posIndex[q] = k
			}
		}
	}
	w.lastPos = i
	w.int(int64(i))
}

// hole records an abstracted integer: its class goes into the key.
func (w *shapeWalker) hole(at *int64) {
	w.s.key = append(w.s.key, 'h', holeClass(*at))
	w.s.holes = append(w.s.holes, hole{at: at, val: *at})
}

// mapName records a map by name and definition.
func (w *shapeWalker) mapName(name string) {
	w.name(name)
	m := w.maps[name]
	if m == nil {
		w.int(-1)
		return
	}
	w.int(int64(m.Type))
	w.structDef(m.Key)
	w.structDef(m.Value)
	w.int(int64(m.MaxEntries))
	w.int(int64(m.Flags))
}

func (w *shapeWalker) structDef(s ir.Struct) {
	w.str(s.Name)
	w.int(int64(len(s.Fields)))
	for _, f := range s.Fields {
		w.str(f.Name)
		w.int(int64(f.Size))
		if f.BigEndian {
			w.int(1)
		} else {
			w.int(0)
		}
	}
}

func (w *shapeWalker) value(v ir.Value) { w.int(int64(v)) }

// operand records o, as a hole when sink allows one there.
func (w *shapeWalker) operand(o *ir.Operand, sink bool) {
	switch {
	case !o.IsConst:
		w.s.key = append(w.s.key, 'v')
		w.value(o.Value)
	case sink:
		w.hole(&o.Const)
	default:
		w.s.key = append(w.s.key, 'c')
		w.int(o.Const)
	}
}

// fieldSink reports whether a constant in a field of size bytes is a hole:
// the backend stores 4- and 8-byte fields from the whole constant or its
// low 32 bits; narrower fields stay in the shape.
func fieldSink(s ir.Struct, i int) bool {
	return i < len(s.Fields) && s.Fields[i].Size >= 4
}

// shapeOf computes p's shape. The holes point into p and into consts.
func shapeOf(p *ir.Program, maps map[string]*ir.Map, consts []ir.Const) *shape {
	w := &shapeWalker{maps: maps, consts: consts, lastPos: -1}
	w.s.key = make([]byte, 0, 4096)
	w.findParams(p)
	w.name(p.Name)
	w.int(int64(p.Type))
	w.str(p.Section)
	w.pos(p.Pos)
	w.int(int64(len(p.Blocks)))
	for _, b := range p.Blocks {
		w.str(b.Label)
		w.int(int64(len(b.Ops)))
		for _, op := range b.Ops {
			w.op(op)
		}
		w.term(&b.Term)
	}
	return &w.s
}

func (w *shapeWalker) op(op *ir.Op) {
	w.int(int64(op.Kind))
	w.value(op.Dst)
	w.int(int64(op.Type))
	w.int(int64(op.Size))
	w.int(int64(op.Off))
	w.int(op.Imm)
	w.pos(op.Pos)
	w.int(int64(len(op.Args)))
	switch op.Kind {
	case ir.OpMapLookup, ir.OpMapDelete, ir.OpMapUpdate, ir.OpRingbufOutput:
		w.mapName(op.Sym)
		m := w.maps[op.Sym]
		for i := range op.Args {
			sink := false
			if m != nil {
				switch {
				case op.Kind == ir.OpRingbufOutput:
					sink = fieldSink(m.Value, i)
				case i < len(m.Key.Fields):
					sink = fieldSink(m.Key, i)
				default:
					sink = fieldSink(m.Value, i-len(m.Key.Fields))
				}
			}
			w.operand(&op.Args[i], sink)
		}
		return
	case ir.OpParam:
		w.name(op.Sym)
		w.param(op)
	default:
		w.str(op.Sym)
	}
	for i := range op.Args {
		// The value of a context store or atomic add is only ever
		// copied into a register.
		sink := i == 1 && (op.Kind == ir.OpCtxStore || op.Kind == ir.OpAtomicAdd)
		w.operand(&op.Args[i], sink)
	}
}

// param records a node constant read by op: a hole when every use allows
// one, else its value.
func (w *shapeWalker) param(op *ir.Op) {
	i, ok := slicesIndexConst(w.consts, op.Sym)
	if !ok {
		w.s.key = append(w.s.key, 'u') // fold reports the missing constant
		return
	}
	if !w.paramOK[op.Dst] {
		w.s.key = append(w.s.key, 'c')
		w.int(w.consts[i].Value)
		return
	}
	if j, seen := w.params[op.Sym]; seen {
		w.s.key = append(w.s.key, 'p')
		w.int(int64(j))
		return
	}
	if w.params == nil {
		w.params = map[string]int{}
	}
	w.params[op.Sym] = len(w.s.holes)
	w.s.key = append(w.s.key, 'n')
	w.hole(&w.consts[i].Value)
}

func slicesIndexConst(consts []ir.Const, name string) (int, bool) {
	lo, hi := 0, len(consts)
	for lo < hi {
		m := (lo + hi) / 2
		if consts[m].Name < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(consts) && consts[lo].Name == name
}

// findParams decides which node constants of p can be holes: those whose
// every use is a branch against a literal or the right operand of a
// branch on a loaded value.
func (w *shapeWalker) findParams(p *ir.Program) {
	for _, b := range p.Blocks {
		for _, op := range b.Ops {
			if op.Kind == ir.OpParam {
				if w.paramDefs == nil {
					w.paramDefs = map[ir.Value]*ir.Op{}
				}
				w.paramDefs[op.Dst] = op
			}
		}
	}
	if w.paramDefs == nil {
		return
	}
	w.loaded = map[ir.Value]bool{}
	w.paramOK = map[ir.Value]bool{}
	for v := range w.paramDefs {
		w.paramOK[v] = true
	}
	for _, b := range p.Blocks {
		for _, op := range b.Ops {
			if op.Kind == ir.OpLoad || op.Kind == ir.OpCtxLoad {
				w.loaded[op.Dst] = true
			}
			for _, a := range op.Args {
				if !a.IsConst {
					delete(w.paramOK, a.Value) // any use by an op
				}
			}
		}
	}
	for _, b := range p.Blocks {
		t := &b.Term
		if t.A != ir.NoValue && w.paramDefs[t.A] != nil {
			if t.Kind != ir.TermBranch || !t.B.IsConst {
				delete(w.paramOK, t.A)
			}
		}
		if !t.B.IsConst && t.B.Value != ir.NoValue && w.paramDefs[t.B.Value] != nil {
			if t.Kind != ir.TermBranch || !w.loaded[t.A] {
				delete(w.paramOK, t.B.Value)
			}
		}
	}
}

func (w *shapeWalker) term(t *ir.Term) {
	w.int(int64(t.Kind))
	w.int(int64(t.Cond))
	w.value(t.A)
	w.pos(t.Pos)
	w.str(t.Then)
	w.str(t.Else)
	switch t.Kind {
	case ir.TermTailCall:
		w.mapName(t.Sym)
		w.name(t.Target)
		w.hole(&t.Imm)
		h := &w.s.holes[len(w.s.holes)-1]
		h.slot, h.target, h.array = true, t.Target, t.Sym
		w.operand(&t.B, false)
		return
	case ir.TermBranch:
		if def := w.paramDefs[t.A]; def != nil && w.paramOK[t.A] && t.B.IsConst {
			// The branch folds: the shape keeps its outcome.
			v := w.consts[mustIndexConst(w.consts, def.Sym)].Value
			if ir.EvalCond(t.Cond, v, t.B.Const) {
				w.s.key = append(w.s.key, 'T')
			} else {
				w.s.key = append(w.s.key, 'F')
			}
		}
	}
	w.int(t.Imm)
	w.str(t.Sym)
	w.str(t.Target)
	w.operand(&t.B, false)
}

func mustIndexConst(consts []ir.Const, name string) int {
	i, _ := slicesIndexConst(consts, name)
	return i
}

// template is a shape compiled once: the template program after the passes
// and its instructions, and where in them each hole, name and position
// lands.
type template struct {
	src   *ir.Program // the template program as lowered
	shape *shape      // its shape, once a second program has it
	ir    *ir.Program
	prog  *backend.Program
	// insnNames lists the instructions whose symbol or map reference is
	// one of the shape's names; insnPos the shape position of each
	// instruction's source (-1: none).
	insnNames []insnName
	insnPos   []int32
	posIdx    map[ir.Pos]int32
	// irSites and insnSites are the constants that come from holes.
	irSites   []irSite
	insnSites []insnSite
}

// irSite is an integer of the IR after the passes that holds hole's value.
type irSite struct {
	block, op int // op == -1: the terminator
	arg       int // -1: Imm; else the operand (the terminator's B)
	hole      int
}

// insnSite is an instruction constant that holds hole's value, whole
// (encWhole) or its low 32 bits sign-extended (encLow32); enc is the set of
// encodings that agree with both compilations of the template.
type insnSite struct {
	insn int
	hole int
	enc  byte
	// unverified is set when the static verifier's verdict may depend on
	// the constant (verifiedBySite): a program whose constant there
	// differs from the template's is verified on its own.
	unverified bool
}

const (
	encWhole = 1 << iota
	encLow32
)

func encode(v int64, enc byte) (int64, bool) {
	var out int64
	have := false
	for _, e := range []byte{encWhole, encLow32} {
		if enc&e == 0 {
			continue
		}
		c := v
		if e == encLow32 {
			c = int64(int32(v))
		}
		if have && c != out {
			return 0, false
		}
		out, have = c, true
	}
	return out, have
}

// sentinel is a value of the same class as v that no other hole's
// sentinel equals, in whole or in its low 32 bits, and that differs from v
// in both: n numbers the hole, round the attempt.
func sentinel(v int64, n, round int) int64 {
	c := holeClass(v)
	if c&2 != 0 {
		return 0 // zero stays zero; nothing to find
	}
	base := int64(0x3c000000 + round*0x01000000)
	s := base + int64(n+1)*0x1001
	switch {
	case c&1 == 0 && c&4 != 0:
		s = int64(n+2+round) << 32
	case c&1 == 0:
		s += 0x7 << 32
	}
	if c&8 != 0 {
		s = -s
	}
	if s == v || int32(s) == int32(v) {
		s += 0x100
		if c&8 != 0 {
			s -= 0x200
		}
	}
	return s
}

// slotSentinel is a sentinel for the tail-call slot v: a slot below v's
// (slots are small), distinct from every hole's value and from the other
// sentinels.
func slotSentinel(v int64, n, round int, holes []hole) int64 {
	if v <= 0 {
		return v // zero stays zero
	}
	for s := v - 1 - int64(n) - int64(round)*int64(len(holes)); s > 0; s -= int64(len(holes) + 1) {
		if !slices.ContainsFunc(holes, func(h hole) bool { return h.val == s || int64(int32(h.val)) == s }) {
			return s
		}
	}
	return v // no room below: the compilations agree there, and diffing finds no site
}

// sentinelArrays returns m's maps with each program array that a slot
// hole names copied, holding the hole's target at its sentinel slot (yh;
// xh are the template's own values), or nil when no slot changed.
func sentinelArrays(m *ir.Module, xh, yh []hole) []*ir.Map {
	var out []*ir.Map
	for j, h := range yh {
		if !h.slot || h.val == xh[j].val {
			continue
		}
		if out == nil {
			out = append([]*ir.Map(nil), m.Maps...)
		}
		for i, mp := range out {
			if mp.Name != h.array {
				continue
			}
			c := *mp
			c.Slots = append([]string(nil), mp.Slots...)
			for int64(len(c.Slots)) <= h.val {
				c.Slots = append(c.Slots, "")
			}
			c.Slots[h.val] = h.target
			out[i] = &c
		}
	}
	return out
}

// cloneProgram copies p deeply, in a few allocations.
func cloneProgram(p *ir.Program) *ir.Program {
	q := *p
	nops, nargs := 0, 0
	for _, b := range p.Blocks {
		nops += len(b.Ops)
		for _, op := range b.Ops {
			nargs += len(op.Args)
		}
	}
	blocks := make([]ir.Block, len(p.Blocks))
	ops := make([]ir.Op, nops)
	opPtrs := make([]*ir.Op, nops)
	args := make([]ir.Operand, nargs)
	q.Blocks = make([]*ir.Block, len(p.Blocks))
	for i, b := range p.Blocks {
		nb := &blocks[i]
		*nb = *b
		nb.Ops = opPtrs[:len(b.Ops):len(b.Ops)]
		opPtrs = opPtrs[len(b.Ops):]
		for k, op := range b.Ops {
			no := &ops[0]
			ops = ops[1:]
			*no = *op
			if op.Args != nil {
				no.Args = args[:len(op.Args):len(op.Args)]
				args = args[len(op.Args):]
				copy(no.Args, op.Args)
			}
			nb.Ops[k] = no
		}
		q.Blocks[i] = nb
	}
	return &q
}

// shareProgram copies p's program and blocks but shares its ops: stamping
// copies an op before changing it (ownOp). Programs stamped from one
// template share the ops they have in common, so the module after the
// passes is for reading only.
func shareProgram(p *ir.Program) *ir.Program {
	q := *p
	blocks := make([]ir.Block, len(p.Blocks))
	q.Blocks = make([]*ir.Block, len(p.Blocks))
	n := 0
	for _, b := range p.Blocks {
		n += len(b.Ops)
	}
	ops := make([]*ir.Op, n)
	for i, b := range p.Blocks {
		nb := &blocks[i]
		*nb = *b
		nb.Ops = ops[:len(b.Ops):len(b.Ops)]
		ops = ops[len(b.Ops):]
		copy(nb.Ops, b.Ops)
		q.Blocks[i] = nb
	}
	return &q
}

// ownOp replaces op k of b, shared with the template, by a copy, and
// returns it. A copy of a copy is harmless.
func ownOp(b *ir.Block, k int) *ir.Op {
	op := *b.Ops[k]
	op.Args = append([]ir.Operand(nil), op.Args...)
	b.Ops[k] = &op
	return &op
}

// errNoTemplate says a shape's programs must be compiled one by one.
type errNoTemplate struct{ why string }

func (e *errNoTemplate) Error() string { return "no template: " + e.why }

func noTemplate(format string, args ...any) error {
	return &errNoTemplate{why: fmt.Sprintf(format, args...)}
}

// compileOne runs the passes, the checker and code generation on p alone,
// in a module with m's maps and the given consts (m's, or a copy with
// sentinels).
func compileOne(m *ir.Module, pc *ir.ProgramChecker, p *ir.Program, consts []ir.Const, opts Options) (*ir.Program, *backend.Program, error) {
	one := &ir.Module{Name: m.Name, Consts: consts, Maps: m.Maps, Programs: []*ir.Program{p}}
	if opts.CheckEveryPass {
		if err := pc.Check(p); err != nil {
			return nil, nil, fmt.Errorf("lowering produced invalid IR: %w", err)
		}
	}
	for _, pass := range ir.Passes {
		if err := pass.Run(one); err != nil {
			return nil, nil, fmt.Errorf("ir: pass %s: %w", pass.Name, err)
		}
		if opts.CheckEveryPass {
			if err := pc.Check(p); err != nil {
				return nil, nil, fmt.Errorf("ir: after pass %s:\n%w", pass.Name, err)
			}
		}
	}
	if !opts.CheckEveryPass {
		if err := pc.Check(p); err != nil {
			return nil, nil, fmt.Errorf("passes produced invalid IR: %w", err)
		}
	}
	obj, err := backend.Generate(one)
	if err != nil {
		return nil, nil, err
	}
	return p, obj.Programs[0], nil
}

// firstOfShape compiles p, the first program of its shape, as the
// template's own compilation; completeTemplate makes it a template when a
// second program of the shape turns up.
func firstOfShape(m *ir.Module, pc *ir.ProgramChecker, p *ir.Program, opts Options) (*template, error) {
	x := cloneProgram(p)
	xir, xprog, err := compileOne(m, pc, x, m.Consts, opts)
	if err != nil {
		return nil, err
	}
	return &template{src: p, ir: xir, prog: xprog}, nil
}

// completeTemplate compiles t's program again with a sentinel in every
// hole and finds where the holes land.
func completeTemplate(m *ir.Module, pc *ir.ProgramChecker, maps map[string]*ir.Map, t *template, opts Options) error {
	p := t.src
	xs := shapeOf(p, maps, m.Consts)
	var ys *shape
	var y *ir.Program
	var yconsts []ir.Const
	for round := 0; ; round++ {
		if round == 3 {
			return noTemplate("no sentinels keep the shape of %s", p.Name)
		}
		y = cloneProgram(p)
		yconsts = append([]ir.Const(nil), m.Consts...)
		ys = shapeOf(y, maps, yconsts)
		for j, h := range ys.holes {
			if h.slot {
				*h.at = slotSentinel(h.val, j, round, xs.holes)
			} else {
				*h.at = sentinel(h.val, j, round)
			}
		}
		// The sentinels must keep the shape: the same classes and branch
		// outcomes.
		if string(shapeOf(y, maps, yconsts).key) == string(xs.key) {
			for j := range ys.holes {
				ys.holes[j].val = *ys.holes[j].at
			}
			break
		}
	}
	// The sentinel slots hold the calls' targets in a copy of the program
	// arrays, so the checker accepts the calls.
	ym, ypc := m, pc
	if arrays := sentinelArrays(m, xs.holes, ys.holes); arrays != nil {
		ym = &ir.Module{Name: m.Name, Consts: m.Consts, Maps: arrays, Programs: m.Programs}
		var err error
		if ypc, err = ir.NewProgramChecker(ym); err != nil {
			return noTemplate("%s: sentinel slots: %v", p.Name, err)
		}
	}
	yir, yprog, err := compileOne(ym, ypc, y, yconsts, opts)
	if err != nil {
		return noTemplate("%s: the sentinel compilation failed: %v", p.Name, err)
	}
	irSites, err := diffIR(t.ir, yir, xs.holes, ys.holes)
	if err != nil {
		return err
	}
	insnSites, err := diffInsns(t.prog.Insns, yprog.Insns, xs.holes, ys.holes)
	if err != nil {
		return err
	}
	for i := range insnSites {
		insnSites[i].unverified = !verifiedBySite(t.prog.Insns, insnSites[i].insn)
	}
	t.shape, t.irSites, t.insnSites = xs, irSites, insnSites
	t.indexNames()
	return nil
}

// whichHole finds the hole whose values in the two compilations are x and
// y under encoding enc.
func whichHole(x, y int64, xh, yh []hole) (int, byte) {
	found, enc := -1, byte(0)
	for j := range xh {
		var e byte
		if xh[j].val == x && yh[j].val == y {
			e |= encWhole
		}
		if int64(int32(xh[j].val)) == x && int64(int32(yh[j].val)) == y {
			e |= encLow32
		}
		if e == 0 {
			continue
		}
		if found >= 0 {
			return -1, 0
		}
		found, enc = j, e
	}
	return found, enc
}

// diffIR compares the template's IR after the passes in its two
// compilations: they must be the same but for constants that holes
// explain.
func diffIR(x, y *ir.Program, xh, yh []hole) ([]irSite, error) {
	if len(x.Blocks) != len(y.Blocks) {
		return nil, noTemplate("%s: the passes decided differently on sentinels", x.Name)
	}
	var sites []irSite
	site := func(bi, oi, ai int, a, b int64) error {
		if a == b {
			return nil
		}
		j, enc := whichHole(a, b, xh, yh)
		if j < 0 || enc&encWhole == 0 {
			return noTemplate("%s: block %d: a constant no hole explains", x.Name, bi)
		}
		sites = append(sites, irSite{block: bi, op: oi, arg: ai, hole: j})
		return nil
	}
	for bi := range x.Blocks {
		bx, by := x.Blocks[bi], y.Blocks[bi]
		if bx.Label != by.Label || len(bx.Ops) != len(by.Ops) {
			return nil, noTemplate("%s: the passes decided differently on sentinels", x.Name)
		}
		for oi := range bx.Ops {
			ox, oy := bx.Ops[oi], by.Ops[oi]
			if ox.Kind != oy.Kind || ox.Dst != oy.Dst || ox.Type != oy.Type || ox.Size != oy.Size || ox.Off != oy.Off ||
				ox.Sym != oy.Sym || ox.Pos != oy.Pos || len(ox.Args) != len(oy.Args) {
				return nil, noTemplate("%s: block %s: ops differ on sentinels", x.Name, bx.Label)
			}
			if err := site(bi, oi, -1, ox.Imm, oy.Imm); err != nil {
				return nil, err
			}
			for ai := range ox.Args {
				a, b := ox.Args[ai], oy.Args[ai]
				if a.IsConst != b.IsConst || a.Value != b.Value {
					return nil, noTemplate("%s: block %s: operands differ on sentinels", x.Name, bx.Label)
				}
				if err := site(bi, oi, ai, a.Const, b.Const); err != nil {
					return nil, err
				}
			}
		}
		tx, ty := bx.Term, by.Term
		if tx.Kind != ty.Kind || tx.Cond != ty.Cond || tx.A != ty.A || tx.B.IsConst != ty.B.IsConst || tx.B.Value != ty.B.Value ||
			tx.Sym != ty.Sym || tx.Target != ty.Target || tx.Then != ty.Then || tx.Else != ty.Else || tx.Pos != ty.Pos {
			return nil, noTemplate("%s: block %s: terminators differ on sentinels", x.Name, bx.Label)
		}
		if err := site(bi, -1, -1, tx.Imm, ty.Imm); err != nil {
			return nil, err
		}
		if err := site(bi, -1, 0, tx.B.Const, ty.B.Const); err != nil {
			return nil, err
		}
	}
	return sites, nil
}

// diffInsns compares the template's instructions in its two compilations.
func diffInsns(x, y asm.Instructions, xh, yh []hole) ([]insnSite, error) {
	if len(x) != len(y) {
		return nil, noTemplate("code generation differs on sentinels (%d and %d instructions)", len(x), len(y))
	}
	var sites []insnSite
	for i := range x {
		a, b := x[i], y[i]
		if a.OpCode != b.OpCode || a.Dst != b.Dst || a.Src != b.Src || a.Offset != b.Offset ||
			a.Symbol() != b.Symbol() || a.Reference() != b.Reference() || !sameSource(a.Source(), b.Source()) {
			return nil, noTemplate("instruction %d differs on sentinels", i)
		}
		if a.Constant == b.Constant {
			continue
		}
		j, enc := whichHole(a.Constant, b.Constant, xh, yh)
		if j < 0 {
			return nil, noTemplate("instruction %d: a constant no hole explains", i)
		}
		sites = append(sites, insnSite{insn: i, hole: j, enc: enc})
	}
	return sites, nil
}

func sameSource(a, b fmt.Stringer) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	pa, oka := a.(ir.Pos)
	pb, okb := b.(ir.Pos)
	if oka && okb {
		return pa == pb
	}
	return a.String() == b.String()
}

// insnName is an instruction whose symbol (sym) or map or jump reference
// (ref) is the shape name with that number, or -1.
type insnName struct {
	insn     int
	sym, ref int
}

// indexNames finds the instructions that carry the shape's names and
// positions.
func (t *template) indexNames() {
	nameIdx := make(map[string]int, len(t.shape.names))
	for i, n := range t.shape.names {
		nameIdx[n] = i
	}
	posIdx := make(map[ir.Pos]int32, len(t.shape.poss))
	for i, p := range t.shape.poss {
		posIdx[p] = int32(i)
	}
	t.posIdx = posIdx
	t.insnPos = make([]int32, len(t.prog.Insns))
	// Symbols are the program's name or block labels; references are map
	// names (map pointer loads) or jump targets (block labels or the
	// program's name, which the shape numbers first).
	progName := t.shape.names[0]
	for i, ins := range t.prog.Insns {
		sym, ref := -1, -1
		if ins.Symbol() == progName {
			sym = 0
		}
		if r := ins.Reference(); r != "" {
			switch {
			case ins.IsLoadFromMap():
				if k, ok := nameIdx[r]; ok {
					ref = k
				}
			case r == progName:
				ref = 0
			}
		}
		if sym >= 0 || ref >= 0 {
			t.insnNames = append(t.insnNames, insnName{insn: i, sym: sym, ref: ref})
		}
		t.insnPos[i] = -1
		if src := ins.Source(); src != nil {
			p, ok := src.(ir.Pos)
			k, found := posIdx[p]
			if !ok || !found {
				t.insnPos[i] = -2 // a source the shape does not know: stamping refuses
				continue
			}
			t.insnPos[i] = k
		}
	}
}

// stamp makes the program whose shape is s (equal to t's) from t: its IR
// after the passes and its instructions. It reports false when a hole's
// value cannot be encoded as the template's sites need; the program is
// then compiled on its own. verify is set when the template's static
// verification does not cover the program (verifiedBySite).
func (t *template) stamp(s *shape) (q *ir.Program, prog *backend.Program, verify, ok bool) {
	ts := t.shape
	if len(s.names) != len(ts.names) || len(s.poss) != len(ts.poss) || len(s.holes) != len(ts.holes) {
		return nil, nil, false, false
	}
	var rename map[string]string
	for i, n := range ts.names {
		if s.names[i] != n {
			if rename == nil {
				rename = make(map[string]string)
			}
			rename[n] = s.names[i]
		}
	}
	var repos map[ir.Pos]ir.Pos
	for i, p := range ts.poss {
		if s.poss[i] != p {
			if repos == nil {
				repos = make(map[ir.Pos]ir.Pos)
			}
			repos[p] = s.poss[i]
		}
	}

	// The instructions.
	insns := make(asm.Instructions, len(t.prog.Insns))
	copy(insns, t.prog.Insns)
	for _, st := range t.insnSites {
		c, ok := encode(s.holes[st.hole].val, st.enc)
		if !ok {
			return nil, nil, false, false
		}
		if st.unverified && c != insns[st.insn].Constant {
			verify = true
		}
		insns[st.insn].Constant = c
	}
	if rename != nil {
		for _, n := range t.insnNames {
			if n.sym >= 0 && s.names[n.sym] != ts.names[n.sym] {
				insns[n.insn] = insns[n.insn].WithSymbol(s.names[n.sym])
			}
			if n.ref >= 0 && s.names[n.ref] != ts.names[n.ref] {
				insns[n.insn] = insns[n.insn].WithReference(s.names[n.ref])
			}
		}
	}
	if repos != nil {
		for i, k := range t.insnPos {
			if k == -2 {
				return nil, nil, false, false
			}
			if k >= 0 && s.poss[k] != ts.poss[k] {
				insns[i] = insns[i].WithSource(s.poss[k])
			}
		}
	}
	name := func(n string) string {
		if r, ok := rename[n]; ok {
			return r
		}
		return n
	}
	known := true
	pos := func(p ir.Pos) ir.Pos {
		if r, ok := repos[p]; ok {
			return r
		}
		if _, ok := t.posIdx[p]; !ok {
			known = false
		}
		return p
	}
	prog = &backend.Program{Name: name(t.prog.Name), Section: t.prog.Section, Type: t.prog.Type, Insns: insns, Pos: pos(t.prog.Pos)}

	// The IR: the template's, sharing the ops that do not change.
	q = shareProgram(t.ir)
	for _, st := range t.irSites {
		v := s.holes[st.hole].val
		b := q.Blocks[st.block]
		if st.op >= 0 {
			ownOp(b, st.op)
		}
		switch {
		case st.op < 0 && st.arg < 0:
			b.Term.Imm = v
		case st.op < 0:
			b.Term.B.Const = v
		case st.arg < 0:
			b.Ops[st.op].Imm = v
		default:
			b.Ops[st.op].Args[st.arg].Const = v
		}
	}
	if rename != nil || repos != nil {
		q.Name = name(q.Name)
		q.Pos = pos(q.Pos)
		for _, b := range q.Blocks {
			for k, op := range b.Ops {
				p, sym := pos(op.Pos), op.Sym
				switch op.Kind {
				case ir.OpMapLookup, ir.OpMapDelete, ir.OpMapUpdate, ir.OpRingbufOutput:
					sym = name(op.Sym)
				}
				if p != op.Pos || sym != op.Sym {
					op = ownOp(b, k)
					op.Pos, op.Sym = p, sym
				}
			}
			b.Term.Pos = pos(b.Term.Pos)
			if b.Term.Kind == ir.TermTailCall {
				b.Term.Sym = name(b.Term.Sym)
				b.Term.Target = name(b.Term.Target)
			}
		}
	}
	if !known {
		return nil, nil, false, false // a position the shape does not know
	}
	return q, prog, verify, true
}

// verifiedBySite reports whether the static verifier's verdict on a
// program is the same whatever constant instruction k holds, so that
// verifying the template covers every program stamped from it. It holds
// for the three places the backend puts a per-endpoint constant where the
// verifier only carries it:
//
//   - the slot of a tail call ("r3 = slot; call bpf_tail_call"): the
//     verifier records the constant index and checks nothing else of it;
//     the chain of tail calls it starts is checked over the whole node
//     (verifyShapes);
//   - a value stored through the scratch register r5 ("r5 = c;
//     *(u32 *)(r1 + cb3) = r5", or an atomic add): a context or map value
//     store checks the field, not the value, and the backend never reads
//     a scratch register it did not just write, so the constant is dead
//     after the store;
//   - an immediate stored into the stack buffer of a ring buffer record
//     ("*(u32 *)(r10 - 80) = c" before "call bpf_ringbuf_output" with no
//     jump between): the helper checks that the bytes are initialised,
//     and the buffer is read by nothing else before it is written again.
//     A store of zero marks bytes as zero rather than initialised, so
//     zero is a class of its own in the shape (holeClass).
//
// Any other constant — a branch immediate such as the endpoint's source
// address, a map key — may decide which paths the verifier explores, so a
// program whose constant there differs from the template's is verified
// itself.
func verifiedBySite(insns asm.Instructions, k int) bool {
	ins := insns[k]
	op := ins.OpCode
	isMovImm := op.Class() == asm.ALU64Class && op.ALUOp() == asm.Mov && op.Source() == asm.ImmSource
	if isMovImm && k+1 < len(insns) {
		next := insns[k+1]
		nop := next.OpCode
		if ins.Dst == asm.R3 && nop.JumpOp() == asm.Call && nop.Class().IsJump() && next.Constant == int64(asm.FnTailCall) {
			return true
		}
		if ins.Dst == asm.R5 && nop.Class() == asm.StXClass && next.Src == asm.R5 && next.Dst != asm.R5 {
			return true
		}
		return false
	}
	if op.Class() == asm.StClass && op.Mode() == asm.MemMode && ins.Dst == asm.RFP && (op.Size() == asm.Word || op.Size() == asm.DWord) {
		for _, n := range insns[k+1:] {
			nop := n.OpCode
			if !nop.Class().IsJump() {
				continue
			}
			return nop.JumpOp() == asm.Call && n.Constant == int64(asm.FnRingbufOutput)
		}
	}
	return false
}

// compileShapes runs the passes, the IR checker and code generation on
// every program of the lowered module m, once per shape, and returns the
// module after the passes and the generated object. m is left as it was.
// Any error means the caller should compile m as a whole instead, which
// reports it as it always has.
func compileShapes(m *ir.Module, opts Options) (*ir.Module, *backend.Object, *shapeStats, error) {
	pc, err := ir.NewProgramChecker(m)
	if err != nil {
		return nil, nil, nil, err
	}
	st := &shapeStats{covered: make([]bool, len(m.Programs))}
	maps := make(map[string]*ir.Map, len(m.Maps))
	for _, mp := range m.Maps {
		maps[mp.Name] = mp
	}
	out := &ir.Module{Name: m.Name, Consts: m.Consts, Maps: m.Maps, Programs: make([]*ir.Program, len(m.Programs))}
	obj := &backend.Object{Maps: m.Maps, License: backend.License, Programs: make([]*backend.Program, len(m.Programs))}
	type group struct {
		t       *template
		members int
		alone   bool // compile every program of the shape on its own
	}
	groups := make(map[string]*group)
	for i, p := range m.Programs {
		s := shapeOf(p, maps, m.Consts)
		g := groups[string(s.key)]
		if g == nil {
			t, err := firstOfShape(m, pc, p, opts)
			if err != nil {
				return nil, nil, nil, err
			}
			st.shapes++
			groups[string(s.key)] = &group{t: t, members: 1}
			out.Programs[i], obj.Programs[i] = t.ir, t.prog
			continue
		}
		g.members++
		if g.t.shape == nil && !g.alone {
			if err := completeTemplate(m, pc, maps, g.t, opts); err != nil {
				if _, ok := err.(*errNoTemplate); !ok {
					return nil, nil, nil, err
				}
				g.alone = true
				st.noTemplate = append(st.noTemplate, err.Error())
			}
		}
		if !g.alone {
			if q, prog, verify, ok := g.t.stamp(s); ok && tailCallsHold(q, maps) {
				out.Programs[i], obj.Programs[i] = q, prog
				st.stamped++
				if !verify {
					st.covered[i] = true
				}
				continue
			}
		}
		q, prog, err := compileOne(m, pc, cloneProgram(p), m.Consts, opts)
		if err != nil {
			return nil, nil, nil, err
		}
		out.Programs[i], obj.Programs[i] = q, prog
		st.alone++
	}
	return out, obj, st, nil
}

// shapeStats counts what compileShapes did: shapes (each compiled as its
// first program), programs stamped from a template, and programs of a
// shape with a template compiled on their own; noTemplate says why a shape
// got none.
type shapeStats struct {
	shapes, stamped, alone int
	noTemplate             []string
	// covered[i] is set when program i was stamped from a template whose
	// static verification covers it.
	covered []bool
}

// tailCallsHold checks what ir.Check checks of a stamped program's tail
// calls, which depend on its slot and target: the slot is in the program
// array and holds the target.
func tailCallsHold(p *ir.Program, maps map[string]*ir.Map) bool {
	for _, b := range p.Blocks {
		t := &b.Term
		if t.Kind != ir.TermTailCall {
			continue
		}
		mp := maps[t.Sym]
		if mp == nil || t.Imm < 0 || t.Imm >= int64(mp.MaxEntries) || t.Imm >= int64(len(mp.Slots)) || mp.Slots[t.Imm] != t.Target || t.Target == "" {
			return false
		}
	}
	return true
}
