package backend

import (
	"fmt"
	"math"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/ebpfc/ebpfc/ir"
	"github.com/ebpfc/ebpfc/source"
)

// MaxStack is the size of an eBPF program's stack frame.
const MaxStack = 512

// blockSymbolPrefix marks the instruction symbols of blocks other than the
// entry. The leading dot, as in LLVM's ".LBB0_1", keeps them apart from
// program and map names, which are C identifiers, so a map reference can
// never be mistaken for a jump target.
const blockSymbolPrefix = ".L"

// Generate compiles every program of m to eBPF instructions.
//
// The IR must have passed ir.Check and the node constants must be folded.
// Each program's first instruction carries the program's name as its symbol;
// jumps reference block symbols (see Listing for how they print); map
// pointer loads reference map names. Every instruction carries the source
// position of the op or terminator it came from. Errors carry positions.
func Generate(m *ir.Module) (*Object, error) {
	maps := make(map[string]*ir.Map, len(m.Maps))
	for _, mp := range m.Maps {
		maps[mp.Name] = mp
	}
	obj := &Object{Maps: m.Maps, License: License}
	var errs source.Errors
	for _, p := range m.Programs {
		prog, err := generateProgram(p, maps)
		if err != nil {
			if l, ok := source.AsErrors(err); ok {
				errs = append(errs, l...)
				continue
			}
			return nil, fmt.Errorf("program %s: %w", p.Name, err)
		}
		obj.Programs = append(obj.Programs, prog)
	}
	if len(errs) > 0 {
		errs.Sort()
		return nil, errs
	}
	return obj, nil
}

// progTypes maps IR program types to the kernel's.
var progTypes = map[ir.ProgType]ebpf.ProgramType{
	ir.ProgXDP:      ebpf.XDP,
	ir.ProgSchedCLS: ebpf.SchedCLS,
	ir.ProgSockAddr: ebpf.CGroupSockAddr,
}

func errorf(pos ir.Pos, format string, args ...any) error {
	return source.Errorf(pos, format, args...)
}

// progGen holds the state of compiling one program.
type progGen struct {
	prog  *ir.Program
	maps  map[string]*ir.Map
	alloc *allocation

	// bufOff is the frame offset (from r10) of the buffer map helpers read
	// keys and values from. Every call consumes it before the next one
	// writes it, so one buffer serves all calls.
	bufOff int16

	blocks [][]asm.Instruction // emitted code per block in layout order
	cur    int                 // index of the block being emitted
	pos    ir.Pos              // position stamped on emitted instructions
}

func generateProgram(p *ir.Program, maps map[string]*ir.Map) (*Program, error) {
	typ, ok := progTypes[p.Type]
	if !ok {
		return nil, errorf(p.Pos, "program %s: program type %v is not supported by the backend", p.Name, p.Type)
	}
	order, err := layoutBlocks(p)
	if err != nil {
		return nil, err
	}
	alloc, err := allocate(p, order)
	if err != nil {
		return nil, err
	}
	g := &progGen{prog: p, maps: maps, alloc: alloc, blocks: make([][]asm.Instruction, len(order))}
	if err := g.layoutFrame(); err != nil {
		return nil, err
	}
	for i, b := range order {
		g.cur = i
		for _, op := range b.Ops {
			g.pos = op.Pos
			if err := g.op(op); err != nil {
				return nil, err
			}
		}
		g.pos = b.Term.Pos
		if err := g.term(&b.Term); err != nil {
			return nil, err
		}
	}
	return &Program{
		Name:    p.Name,
		Section: p.Section,
		Type:    typ,
		Insns:   g.link(),
		Pos:     p.Pos,
	}, nil
}

// layoutFrame places the spill slots right below r10 and the helper buffer
// below them, and checks the frame fits.
func (g *progGen) layoutFrame() error {
	buf := 0
	for _, b := range g.alloc.order {
		for _, op := range b.Ops {
			if op.Kind != ir.OpMapLookup && op.Kind != ir.OpMapUpdate && op.Kind != ir.OpMapDelete && op.Kind != ir.OpRingbufOutput {
				continue
			}
			m := g.maps[op.Sym]
			if m == nil {
				return errorf(op.Pos, "unknown map %q", op.Sym)
			}
			if op.Kind == ir.OpRingbufOutput {
				buf = max(buf, align8(m.Value.Size()))
				continue
			}
			n := align8(m.Key.Size())
			if op.Kind == ir.OpMapUpdate {
				n += align8(m.Value.Size())
			}
			buf = max(buf, n)
		}
	}
	total := 8*g.alloc.spills + buf
	if total > MaxStack {
		return errorf(g.prog.Pos, "program %s needs %d bytes of stack (%d spill slots, %d-byte map buffer); the limit is %d",
			g.prog.Name, total, g.alloc.spills, buf, MaxStack)
	}
	g.bufOff = int16(-total)
	return nil
}

func align8(n int) int { return (n + 7) &^ 7 }

// link concatenates the blocks, names the first instruction after the program
// and the first instruction of every other block after its label, and points
// jumps at those names. A block that emitted nothing (a jump to the block
// after it) is an alias of the next block.
func (g *progGen) link() asm.Instructions {
	order := g.alloc.order
	syms := make([]string, len(order))
	for i := len(order) - 1; i >= 0; i-- {
		if len(g.blocks[i]) == 0 && i+1 < len(order) {
			syms[i] = syms[i+1]
		} else {
			syms[i] = blockSymbolPrefix + order[i].Label
		}
	}
	// The first instruction is named after the program, which the ELF
	// writer and the loader require; an empty entry aliases it too.
	first := syms[0]
	for i := range syms {
		if syms[i] == first {
			syms[i] = g.prog.Name
		}
	}
	rename := make(map[string]string, len(order))
	for i, b := range order {
		rename[blockSymbolPrefix+b.Label] = syms[i]
	}
	var insns asm.Instructions
	for i, code := range g.blocks {
		for k, ins := range code {
			if k == 0 {
				ins = ins.WithSymbol(syms[i])
			}
			if ins.OpCode.Class().IsJump() && ins.Reference() != "" {
				if s, ok := rename[ins.Reference()]; ok {
					ins = ins.WithReference(s)
				}
			}
			insns = append(insns, ins)
		}
	}
	return insns
}

// emit appends instructions to the current block, stamped with the current
// source position.
func (g *progGen) emit(insns ...asm.Instruction) {
	for _, ins := range insns {
		g.blocks[g.cur] = append(g.blocks[g.cur], ins.WithSource(g.pos))
	}
}

func fitsInt32(c int64) bool { return c >= math.MinInt32 && c <= math.MaxInt32 }

// movConst sets r to c, with one instruction when c fits the 32-bit
// immediate (sign-extended by the 64-bit mov) and a 16-byte ldimm64
// otherwise.
func (g *progGen) movConst(r asm.Register, c int64) {
	if fitsInt32(c) {
		g.emit(asm.Mov.Imm(r, int32(c)))
	} else {
		g.emit(asm.LoadImm(r, c, asm.DWord))
	}
}

// fill loads spilled v into r.
func (g *progGen) fill(r asm.Register, l location) {
	g.emit(asm.LoadMem(r, asm.RFP, l.slot, asm.DWord))
}

// spill stores r into v's slot.
func (g *progGen) spill(l location, r asm.Register) {
	g.emit(asm.StoreMem(asm.RFP, l.slot, r, asm.DWord))
}

// use returns a register holding v, filling it into scratch when v is
// spilled and materialising it there when it is a constant.
func (g *progGen) use(v ir.Value, scratch asm.Register) asm.Register {
	if c, ok := g.alloc.consts[v]; ok {
		g.movConst(scratch, c)
		return scratch
	}
	l := g.alloc.locs[v]
	if l.spilled {
		g.fill(scratch, l)
		return scratch
	}
	return l.reg
}

// useOperand is use for an operand.
func (g *progGen) useOperand(o ir.Operand, scratch asm.Register) asm.Register {
	if o.IsConst {
		g.movConst(scratch, o.Const)
		return scratch
	}
	return g.use(o.Value, scratch)
}

// dst returns the register op's result is computed into: its own, or
// scratchA when it is spilled (finish then stores it).
func (g *progGen) dst(v ir.Value) asm.Register {
	if l := g.alloc.locs[v]; !l.spilled {
		return l.reg
	}
	return scratchA
}

// finish stores the result computed in r into v's slot if v is spilled.
func (g *progGen) finish(v ir.Value, r asm.Register) {
	if l := g.alloc.locs[v]; l.spilled {
		g.spill(l, r)
	}
}

// mov copies src to dst unless they are the same register.
func (g *progGen) mov(dst, src asm.Register) {
	if dst != src {
		g.emit(asm.Mov.Reg(dst, src))
	}
}

var aluOps = map[ir.Kind]asm.ALUOp{
	ir.OpAdd:  asm.Add,
	ir.OpSub:  asm.Sub,
	ir.OpMul:  asm.Mul,
	ir.OpAnd:  asm.And,
	ir.OpOr:   asm.Or,
	ir.OpXor:  asm.Xor,
	ir.OpShl:  asm.LSh,
	ir.OpShr:  asm.RSh,
	ir.OpArsh: asm.ArSh,
}

func commutative(k ir.Kind) bool {
	switch k {
	case ir.OpAdd, ir.OpMul, ir.OpAnd, ir.OpOr, ir.OpXor:
		return true
	}
	return false
}

var sizes = map[int]asm.Size{1: asm.Byte, 2: asm.Half, 4: asm.Word, 8: asm.DWord}

func (g *progGen) op(op *ir.Op) error {
	// Pure ops whose result nobody reads are dropped; calls still run.
	if op.Dst != ir.NoValue && g.alloc.dead[op.Dst] && !isCall(op.Kind) {
		return nil
	}
	if _, ok := g.alloc.consts[op.Dst]; ok && op.Dst != ir.NoValue {
		return nil // used as an immediate where it is read
	}
	if err := checkArgs(op); err != nil {
		return err
	}
	switch op.Kind {
	case ir.OpCtx:
		l := g.alloc.locs[op.Dst]
		if l.spilled {
			g.spill(l, asm.R1)
		} else {
			g.mov(l.reg, asm.R1)
		}

	case ir.OpParam:
		return errorf(op.Pos, "node constant %s was not folded before code generation", op.Sym)

	case ir.OpCtxLoad:
		f, ok := ir.LookupCtxField(g.prog.Type, op.Sym)
		if !ok {
			return errorf(op.Pos, "%v programs have no context field %q", g.prog.Type, op.Sym)
		}
		ctx := g.use(op.Args[0].Value, scratchA)
		d := g.dst(op.Dst)
		g.emit(asm.LoadMem(d, ctx, f.Off, sizes[f.Size]))
		g.finish(op.Dst, d)

	case ir.OpCtxStore:
		f, ok := ir.LookupCtxField(g.prog.Type, op.Sym)
		if !ok || !f.Writable {
			return errorf(op.Pos, "context field %q of %v programs is not writable", op.Sym, g.prog.Type)
		}
		ctx := g.use(op.Args[0].Value, scratchA)
		// The verifier refuses BPF_ST (store immediate) into the context,
		// so even a constant goes through a register.
		val := g.useOperand(op.Args[1], scratchB)
		g.emit(asm.StoreMem(ctx, f.Off, val, sizes[f.Size]))

	case ir.OpLoad:
		sz, ok := sizes[op.Size]
		if !ok {
			return errorf(op.Pos, "load of %d bytes", op.Size)
		}
		base := g.use(op.Args[0].Value, scratchA)
		d := g.dst(op.Dst)
		g.emit(asm.LoadMem(d, base, op.Off, sz))
		g.finish(op.Dst, d)

	case ir.OpStore:
		sz, ok := sizes[op.Size]
		if !ok {
			return errorf(op.Pos, "store of %d bytes", op.Size)
		}
		base := g.use(op.Args[0].Value, scratchA)
		g.storeOperand(base, op.Off, op.Args[1], sz)

	case ir.OpAtomicAdd:
		if op.Size != 4 && op.Size != 8 {
			return errorf(op.Pos, "atomic add of %d bytes; only 4 and 8 are supported", op.Size)
		}
		base := g.use(op.Args[0].Value, scratchA)
		val := g.useOperand(op.Args[1], scratchB)
		g.emit(asm.AddAtomic.Mem(base, val, sizes[op.Size], op.Off))

	case ir.OpMov:
		l := g.alloc.locs[op.Dst]
		if l.spilled {
			g.spill(l, g.use(op.Args[0].Value, scratchA))
		} else {
			// Fill straight into the destination when the source is spilled.
			src := g.use(op.Args[0].Value, l.reg)
			g.mov(l.reg, src)
		}

	case ir.OpAdd, ir.OpSub, ir.OpMul, ir.OpAnd, ir.OpOr, ir.OpXor, ir.OpShl, ir.OpShr, ir.OpArsh:
		g.binary(op, aluOps[op.Kind], commutative(op.Kind))

	case ir.OpPacketAdd:
		// Treated as non-commutative: "scalar += pointer" is legal but
		// reads oddly, and the verifier's messages are clearer on the
		// pointer register.
		g.binary(op, asm.Add, false)

	case ir.OpSwap16, ir.OpSwap32:
		d := g.dst(op.Dst)
		g.mov(d, g.useOperand(op.Args[0], d))
		size := asm.Half
		if op.Kind == ir.OpSwap32 {
			size = asm.Word
		}
		// "to big endian" is a byte swap on little-endian hosts and a
		// truncation on big-endian ones; either way the low 16 or 32 bits
		// are kept, which is the op's meaning.
		g.emit(asm.HostTo(asm.BE, d, size))
		g.finish(op.Dst, d)

	case ir.OpMapLookup, ir.OpMapDelete:
		m := g.maps[op.Sym]
		if len(op.Args) != len(m.Key.Fields) {
			return errorf(op.Pos, "map %s: %d key fields given, the key has %d", m.Name, len(op.Args), len(m.Key.Fields))
		}
		g.writeStruct(m.Key, op.Args, g.bufOff)
		g.emit(
			asm.LoadMapPtr(asm.R1, 0).WithReference(m.Name),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, int32(g.bufOff)),
		)
		fn := asm.FnMapLookupElem
		if op.Kind == ir.OpMapDelete {
			fn = asm.FnMapDeleteElem
		}
		g.emit(fn.Call())
		g.callResult(op.Dst)

	case ir.OpMapUpdate:
		m := g.maps[op.Sym]
		nk := len(m.Key.Fields)
		if len(op.Args) != nk+len(m.Value.Fields) {
			return errorf(op.Pos, "map %s: %d key and value fields given, key and value have %d", m.Name, len(op.Args), nk+len(m.Value.Fields))
		}
		valOff := g.bufOff + int16(align8(m.Key.Size()))
		g.writeStruct(m.Key, op.Args[:nk], g.bufOff)
		g.writeStruct(m.Value, op.Args[nk:], valOff)
		g.emit(
			asm.LoadMapPtr(asm.R1, 0).WithReference(m.Name),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, int32(g.bufOff)),
			asm.Mov.Reg(asm.R3, asm.RFP),
			asm.Add.Imm(asm.R3, int32(valOff)),
		)
		g.movConst(asm.R4, op.Imm)
		g.emit(asm.FnMapUpdateElem.Call())
		g.callResult(op.Dst)

	case ir.OpKtimeNs:
		g.emit(asm.FnKtimeGetNs.Call())
		g.callResult(op.Dst)

	case ir.OpRingbufOutput:
		m := g.maps[op.Sym]
		if len(op.Args) != len(m.Value.Fields) {
			return errorf(op.Pos, "ring buffer %s: %d record fields given, the record has %d", m.Name, len(op.Args), len(m.Value.Fields))
		}
		g.writeStruct(m.Value, op.Args, g.bufOff)
		g.emit(
			asm.LoadMapPtr(asm.R1, 0).WithReference(m.Name),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, int32(g.bufOff)),
			asm.Mov.Imm(asm.R3, int32(m.Value.Size())),
			asm.Mov.Imm(asm.R4, 0),
			asm.FnRingbufOutput.Call(),
		)
		g.callResult(op.Dst)

	default:
		return errorf(op.Pos, "op %v is not supported by the backend", op.Kind)
	}
	return nil
}

// checkArgs checks the operand count, so selection can index Args freely.
func checkArgs(op *ir.Op) error {
	want := -1
	switch op.Kind {
	case ir.OpCtx, ir.OpConst, ir.OpParam, ir.OpKtimeNs:
		want = 0
	case ir.OpCtxLoad, ir.OpLoad, ir.OpMov, ir.OpSwap16, ir.OpSwap32:
		want = 1
	case ir.OpCtxStore, ir.OpStore, ir.OpAtomicAdd, ir.OpPacketAdd,
		ir.OpAdd, ir.OpSub, ir.OpMul, ir.OpAnd, ir.OpOr, ir.OpXor, ir.OpShl, ir.OpShr, ir.OpArsh:
		want = 2
	}
	if want >= 0 && len(op.Args) != want {
		return errorf(op.Pos, "op %v has %d operands, want %d", op.Kind, len(op.Args), want)
	}
	switch op.Kind {
	case ir.OpCtxLoad, ir.OpCtxStore, ir.OpLoad, ir.OpStore, ir.OpAtomicAdd, ir.OpPacketAdd:
		if op.Args[0].IsConst {
			return errorf(op.Pos, "op %v needs a pointer operand, not a constant", op.Kind)
		}
	}
	if (op.Kind == ir.OpMapLookup || op.Kind == ir.OpMapUpdate || op.Kind == ir.OpMapDelete || op.Kind == ir.OpRingbufOutput) && op.Sym == "" {
		return errorf(op.Pos, "op %v names no map", op.Kind)
	}
	return nil
}

// callResult moves a helper's result from r0 to where v lives.
func (g *progGen) callResult(v ir.Value) {
	if v == ir.NoValue || g.alloc.dead[v] {
		return
	}
	l := g.alloc.locs[v]
	if l.spilled {
		g.spill(l, asm.R0)
		return
	}
	g.mov(l.reg, asm.R0)
}

// binary emits Dst = Args[0] op Args[1] in eBPF's two-address form.
func (g *progGen) binary(op *ir.Op, alu asm.ALUOp, comm bool) {
	a, b := op.Args[0], op.Args[1]
	d := g.dst(op.Dst)

	// The right operand: an immediate when it fits, else a register.
	bImm, bIsImm := constOperand(b, g.alloc.consts)
	bIsImm = bIsImm && fitsInt32(bImm)
	var rb asm.Register
	if !bIsImm {
		rb = g.useOperand(b, scratchB)
	}
	apply := func(r asm.Register) {
		if bIsImm {
			g.emit(alu.Imm(r, int32(bImm)))
		} else {
			g.emit(alu.Reg(r, rb))
		}
	}

	// d = a, then d op= b; unless d is b's register, where copying a into
	// d would destroy b.
	aConst, aIsConst := constOperand(a, g.alloc.consts)
	var ra asm.Register
	aInReg := false
	if !aIsConst {
		if l := g.alloc.locs[a.Value]; !l.spilled {
			ra, aInReg = l.reg, true
		}
	}
	switch {
	case aInReg && ra == d:
		apply(d)
	case !bIsImm && rb == d:
		if aInReg && comm {
			g.emit(alu.Reg(d, ra))
			break
		}
		// scratchA is free: d is not spilled here, since rb is an
		// allocated register or scratchB.
		if aIsConst {
			g.movConst(scratchA, aConst)
		} else {
			g.mov(scratchA, g.use(a.Value, scratchA))
		}
		apply(scratchA)
		g.mov(d, scratchA)
	default:
		if aIsConst {
			g.movConst(d, aConst)
		} else {
			g.mov(d, g.use(a.Value, d))
		}
		apply(d)
	}
	g.finish(op.Dst, d)
}

// storeOperand stores the low size bytes of o at base+off, as an immediate
// store when the constant's bytes fit the 32-bit immediate.
func (g *progGen) storeOperand(base asm.Register, off int16, o ir.Operand, size asm.Size) {
	if c, ok := constOperand(o, g.alloc.consts); ok {
		// BPF_ST sign-extends its 32-bit immediate to the store size, so a
		// narrow store can take the truncated constant as is.
		var imm int64
		switch size {
		case asm.Byte:
			imm = int64(int8(c))
		case asm.Half:
			imm = int64(int16(c))
		case asm.Word:
			imm = int64(int32(c))
		default:
			imm = c
		}
		if fitsInt32(imm) {
			g.emit(storeImm(base, off, imm, size))
			return
		}
	}
	g.emit(asm.StoreMem(base, off, g.useOperand(o, scratchB), size))
}

// storeImm is asm.StoreImm without its refusal of 8-byte stores, which the
// kernel accepts (BPF_ST | BPF_DW stores the sign-extended immediate).
func storeImm(dst asm.Register, off int16, imm int64, size asm.Size) asm.Instruction {
	return asm.Instruction{OpCode: asm.StoreImmOp(size), Dst: dst, Offset: off, Constant: imm}
}

// writeStruct writes fields args of s into the stack at r10+at, zeroing the
// padding first: hash and LPM maps compare whole keys, so padding bytes must
// be deterministic, and the verifier wants every byte a helper reads to be
// initialised.
func (g *progGen) writeStruct(s ir.Struct, args []ir.Operand, at int16) {
	offs, size := s.Offsets()
	covered := make([]bool, size)
	for i, f := range s.Fields {
		for k := range f.Size {
			covered[offs[i]+k] = true
		}
	}
	// Zero each 8-byte word holding padding. The buffer is 8-aligned and
	// rounded up to 8 bytes; bytes past size are never read, so they need
	// no zeroing.
	for w := 0; w < size; w += 8 {
		if slices.Contains(covered[w:min(w+8, size)], false) {
			g.emit(storeImm(asm.RFP, at+int16(w), 0, asm.DWord))
		}
	}
	for i, f := range s.Fields {
		g.storeOperand(asm.RFP, at+int16(offs[i]), args[i], sizes[f.Size])
	}
}

// term emits a block's terminator. next is the block laid out after it, the
// one it can fall through to.
func (g *progGen) term(t *ir.Term) error {
	var next string
	if g.cur+1 < len(g.alloc.order) {
		next = g.alloc.order[g.cur+1].Label
	}
	jumpTo := func(label string) {
		if label != next {
			g.emit(asm.Ja.Label(blockSymbolPrefix + label))
		}
	}
	switch t.Kind {
	case ir.TermJump:
		jumpTo(t.Then)

	case ir.TermBranch:
		jop, ok := condJumps[t.Cond]
		if !ok {
			return errorf(t.Pos, "branch with invalid condition %v", t.Cond)
		}
		if t.Then == t.Else {
			jumpTo(t.Then)
			return nil
		}
		ra := g.use(t.A, scratchA)
		then, els := t.Then, t.Else
		if then == next {
			if inv, ok := invertedJumps[jop]; ok {
				jop, then, els = inv, els, then
			}
		}
		if c, ok := constOperand(t.B, g.alloc.consts); ok && fitsInt32(c) {
			g.emit(jop.Imm(ra, int32(c), blockSymbolPrefix+then))
		} else {
			g.emit(jop.Reg(ra, g.useOperand(t.B, scratchB), blockSymbolPrefix+then))
		}
		jumpTo(els)

	case ir.TermBounds:
		// rX = ptr; rX += n; if rX > end goto fail: the verifier learns the
		// range of every copy of ptr from this comparison.
		ptr := g.use(t.A, scratchA)
		g.mov(scratchA, ptr)
		if t.Imm != 0 {
			if !fitsInt32(t.Imm) {
				return errorf(t.Pos, "bounds check of %d bytes", t.Imm)
			}
			g.emit(asm.Add.Imm(scratchA, int32(t.Imm)))
		}
		end := g.use(t.B.Value, scratchB)
		if t.Then == next {
			g.emit(asm.JGT.Reg(scratchA, end, blockSymbolPrefix+t.Else))
		} else {
			g.emit(asm.JLE.Reg(scratchA, end, blockSymbolPrefix+t.Then))
			jumpTo(t.Else)
		}

	case ir.TermIfNull:
		r := g.use(t.A, scratchA)
		if t.Then == next {
			g.emit(asm.JNE.Imm(r, 0, blockSymbolPrefix+t.Else))
		} else {
			g.emit(asm.JEq.Imm(r, 0, blockSymbolPrefix+t.Then))
			jumpTo(t.Else)
		}

	case ir.TermReturn:
		if t.A == ir.NoValue {
			g.movConst(asm.R0, t.Imm)
		} else {
			g.mov(asm.R0, g.use(t.A, asm.R0))
		}
		g.emit(asm.Return())

	case ir.TermTailCall:
		if _, ok := g.maps[t.Sym]; !ok {
			return errorf(t.Pos, "tail call through unknown map %q", t.Sym)
		}
		if !fitsInt32(t.Imm) || t.Imm < 0 {
			return errorf(t.Pos, "tail call slot %d out of range", t.Imm)
		}
		g.mov(asm.R1, g.use(t.A, asm.R1))
		g.emit(
			asm.LoadMapPtr(asm.R2, 0).WithReference(t.Sym),
			asm.Mov.Imm(asm.R3, int32(t.Imm)),
			asm.FnTailCall.Call(),
		)
		jumpTo(t.Then)

	default:
		return errorf(t.Pos, "terminator %v is not supported by the backend", t.Kind)
	}
	return nil
}

var condJumps = map[ir.Cond]asm.JumpOp{
	ir.Eq:  asm.JEq,
	ir.Ne:  asm.JNE,
	ir.Lt:  asm.JLT,
	ir.Le:  asm.JLE,
	ir.Gt:  asm.JGT,
	ir.Ge:  asm.JGE,
	ir.SLt: asm.JSLT,
	ir.SLe: asm.JSLE,
	ir.SGt: asm.JSGT,
	ir.SGe: asm.JSGE,
	ir.Set: asm.JSet,
}

// invertedJumps gives the negation of each comparison. JSet has none, so a
// "set" branch whose then-edge falls through still needs a jump after it.
var invertedJumps = map[asm.JumpOp]asm.JumpOp{
	asm.JEq:  asm.JNE,
	asm.JNE:  asm.JEq,
	asm.JLT:  asm.JGE,
	asm.JGE:  asm.JLT,
	asm.JLE:  asm.JGT,
	asm.JGT:  asm.JLE,
	asm.JSLT: asm.JSGE,
	asm.JSGE: asm.JSLT,
	asm.JSLE: asm.JSGT,
	asm.JSGT: asm.JSLE,
}
