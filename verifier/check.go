package verifier

import (
	"fmt"
	"math"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// maxVarOff is the kernel's BPF_MAX_VAR_OFF: the largest offset a pointer
// may be moved by.
const maxVarOff = 1 << 29

// maxPacketOff is the kernel's MAX_PACKET_OFF.
const maxPacketOff = 0xffff

// tailCall is a tail call the exploration reached.
type tailCall struct {
	insn   int   // instruction index
	mapIdx int   // the program array
	index  int64 // the slot, or -1 when not a constant
}

// checker explores one program's paths.
type checker struct {
	c    *Collection
	pr   *program
	typ  ebpf.ProgramType
	res  *Result
	seen map[[2]any]bool // errors already reported, by (insn, message)

	processed, jmps     int
	prevJmps, prevInsns int
	idGen               uint32
	explored            map[int][]*state
	pending             []pendingPath
	tooComplex          bool
	refSites            map[uint32]int // reference id -> instruction that acquired it
	tailSeen            map[tailCall]bool
}

type pendingPath struct {
	st  *state
	idx int
}

// pathError is a check that failed on the current path.
type pathError struct{ msg string }

func (e *pathError) Error() string { return e.msg }

func fail(format string, args ...any) error { return &pathError{fmt.Sprintf(format, args...)} }

func verifyProgram(c *Collection, maps map[string]int, p *Program) *Result {
	res := &Result{Name: p.Name, Type: p.Type}
	for _, in := range p.Insns {
		res.Insns += int(in.Size() / asm.InstructionSize)
	}
	if _, ok := ctxLayouts[p.Type]; !ok {
		res.Errors = append(res.Errors, &Error{Program: p.Name,
			Msg: fmt.Sprintf("program type %v is not supported by ebpfc's verifier (it checks XDP, SchedCLS, SchedACT and CGroupSockAddr)", p.Type)})
		return res
	}
	pr, errs := decode(p, maps)
	if len(errs) > 0 {
		res.Errors = errs
		return res
	}
	ck := &checker{c: c, pr: pr, typ: p.Type, res: res, seen: map[[2]any]bool{},
		explored: map[int][]*state{}, refSites: map[uint32]int{}, tailSeen: map[tailCall]bool{}}
	ck.run()
	res.Processed = ck.processed
	return res
}

func (ck *checker) report(idx int, msg string) {
	key := [2]any{idx, msg}
	if ck.seen[key] {
		return
	}
	ck.seen[key] = true
	ck.res.Errors = append(ck.res.Errors, ck.pr.errorAt(idx, "%s", msg))
}

func (ck *checker) run() {
	st := &state{}
	for i := range st.regs {
		st.regs[i] = reg{mapIdx: -1}
	}
	st.regs[asm.R1] = pointerReg(ptrToCtx)
	st.regs[asm.R10] = pointerReg(ptrToStack)
	ck.pending = append(ck.pending, pendingPath{st, 0})
	for len(ck.pending) > 0 && !ck.tooComplex {
		p := ck.pending[len(ck.pending)-1]
		ck.pending = ck.pending[:len(ck.pending)-1]
		ck.explore(p.st, p.idx)
	}
}

// pathDone ends a path: the checkpoints above it have one path fewer to
// wait for.
func pathDone(st *state) {
	for p := st.parent; p != nil; p = p.parent {
		p.branches--
		if p.branches > 0 {
			break
		}
	}
}

func pathFailed(st *state) {
	for p := st.parent; p != nil; p = p.parent {
		p.failed = true
	}
}

// explore follows one path from idx until it exits, is pruned or fails,
// queueing the other side of every undecided branch.
func (ck *checker) explore(st *state, idx int) {
	for {
		ck.processed++
		if ck.processed > complexityLimit {
			ck.report(idx, fmt.Sprintf("the program is too large: more than %d instructions processed (the kernel's limit)", complexityLimit))
			ck.tooComplex = true
			return
		}
		if ck.pr.prunePoint[idx] && ck.visit(st, idx) {
			pathDone(st)
			return
		}
		if ck.pr.jmpPoint[idx] {
			st.history++
		}
		next, err := ck.step(st, idx)
		if err != nil {
			ck.report(idx, err.Error())
			pathFailed(st)
			pathDone(st)
			return
		}
		if next < 0 {
			pathDone(st)
			return
		}
		idx = next
	}
}

// visit prunes the path when a completed checkpoint at idx covers st, and
// otherwise may store st as a new checkpoint, with the kernel's heuristic
// (at least two jumps and eight instructions since the last one, or a long
// history).
func (ck *checker) visit(st *state, idx int) bool {
	for _, old := range ck.explored[idx] {
		if old.branches > 0 || old.failed {
			continue
		}
		if statesEqual(old, st) {
			for r := 0; r < 11; r++ {
				if old.readRegs&(1<<r) != 0 {
					st.markRegRead(r)
				}
			}
			for s := 0; s < 64; s++ {
				if old.readStack&(1<<s) != 0 {
					st.markSlotRead(s)
				}
			}
			return true
		}
	}
	add := st.history > 40 || (ck.jmps-ck.prevJmps >= 2 && ck.processed-ck.prevInsns >= 8)
	if !add {
		return false
	}
	ck.prevJmps, ck.prevInsns = ck.jmps, ck.processed
	cp := st.clone()
	cp.branches = 1
	cp.readRegs, cp.readStack = 0, 0
	st.parent = cp
	st.writtenRegs, st.writtenStack = 0, 0
	st.history = 0
	ck.explored[idx] = append(ck.explored[idx], cp)
	ck.res.States++
	return false
}

// fork queues a copy of st to continue at idx.
func (ck *checker) fork(st *state, idx int) *state {
	o := st.clone()
	if st.parent != nil {
		st.parent.branches++
	}
	ck.pending = append(ck.pending, pendingPath{o, idx})
	return o
}

func regName(r asm.Register) string { return fmt.Sprintf("r%d", uint8(r)) }

// readReg returns register r for reading.
func (ck *checker) readReg(st *state, r asm.Register) (*reg, error) {
	if st.regs[r].typ == notInit {
		if r >= asm.R1 && r <= asm.R5 {
			return nil, fail("%s is read but not initialised on this path (r1-r5 are clobbered by every helper call; set it after the last call)", regName(r))
		}
		return nil, fail("%s is read but not initialised on this path", regName(r))
	}
	st.markRegRead(int(r))
	return &st.regs[r], nil
}

// writeReg sets register r.
func writeReg(st *state, r asm.Register, v reg) error {
	if r == asm.R10 {
		return fail("r10 (the frame pointer) is read-only; copy it to another register first")
	}
	st.regs[r] = v
	st.markRegWritten(int(r))
	return nil
}

func sizeBytes(s asm.Size) int {
	switch s {
	case asm.Byte:
		return 1
	case asm.Half:
		return 2
	case asm.Word:
		return 4
	case asm.DWord:
		return 8
	}
	return 0
}

// step executes instruction idx on st and returns the next instruction,
// or -1 when the path ends.
func (ck *checker) step(st *state, idx int) (int, error) {
	d := &ck.pr.insns[idx]
	in := &d.ins
	op := in.OpCode
	switch cls := op.Class(); cls {
	case asm.ALUClass, asm.ALU64Class:
		return idx + 1, ck.alu(st, in)
	case asm.LdClass:
		return idx + 1, ck.ldImm64(st, d)
	case asm.LdXClass:
		return idx + 1, ck.load(st, in)
	case asm.StClass, asm.StXClass:
		if op.Mode() == asm.AtomicMode {
			return idx + 1, ck.atomic(st, in)
		}
		return idx + 1, ck.store(st, in)
	case asm.JumpClass, asm.Jump32Class:
		ck.jmps++
		switch op.JumpOp() {
		case asm.Exit:
			return -1, ck.exit(st)
		case asm.Call:
			return idx + 1, ck.call(st, idx)
		case asm.Ja:
			return d.target, nil
		}
		return ck.branch(st, idx)
	}
	return 0, fail("unsupported instruction")
}

func (ck *checker) ldImm64(st *state, d *insn) error {
	in := &d.ins
	var v reg
	switch {
	case in.Src == asm.PseudoMapFD:
		v = pointerReg(constPtrToMap)
		v.mapIdx = int32(d.mapIdx)
	case in.Src == asm.PseudoMapValue:
		m := ck.c.Maps[d.mapIdx]
		off := uint32(uint64(in.Constant) >> 32)
		if off >= m.ValueSize {
			return fail("map value load at offset %d is past the value of map %s (%d bytes)", off, m.Name, m.ValueSize)
		}
		v = pointerReg(ptrToMapValue)
		v.mapIdx = int32(d.mapIdx)
		v.off = int32(off)
	default:
		v = constScalar(uint64(in.Constant))
	}
	return writeReg(st, in.Dst, v)
}

func (ck *checker) alu(st *state, in *asm.Instruction) error {
	op := in.OpCode
	alu := op.ALUOp()
	is32 := op.Class() == asm.ALUClass
	if in.Dst == asm.R10 {
		return fail("r10 (the frame pointer) is read-only; copy it to another register first")
	}
	var src reg
	if op.Source() == asm.ImmSource || alu == asm.Neg || alu == asm.Swap {
		imm := uint64(in.Constant)
		if is32 {
			imm = uint64(uint32(in.Constant))
		} else {
			imm = uint64(int64(int32(in.Constant)))
		}
		src = constScalar(imm)
		switch alu {
		case asm.Div, asm.Mod, asm.SDiv, asm.SMod:
			if in.Constant == 0 {
				return fail("division by zero: the immediate divisor is 0")
			}
		case asm.LSh, asm.RSh, asm.ArSh:
			width := int64(64)
			if is32 {
				width = 32
			}
			if in.Constant < 0 || in.Constant >= width {
				return fail("invalid shift by %d: a %d-bit shift must be in [0, %d]", in.Constant, width, width-1)
			}
		case asm.Swap:
			if in.Constant != 16 && in.Constant != 32 && in.Constant != 64 {
				return fail("invalid byte swap width %d (16, 32 or 64)", in.Constant)
			}
		}
	} else {
		r, err := ck.readReg(st, in.Src)
		if err != nil {
			return err
		}
		src = *r
	}
	if alu == asm.Mov || alu == asm.MovSX8 || alu == asm.MovSX16 || alu == asm.MovSX32 {
		return ck.mov(st, in, src, is32)
	}
	dstp, err := ck.readReg(st, in.Dst)
	if err != nil {
		return err
	}
	dst := *dstp
	if dst.typ == scalarValue && src.typ == scalarValue {
		out := scalarReg(aluScalar(*in, dst.b, src.b))
		return writeReg(st, in.Dst, out)
	}
	out, err := ck.pointerArith(in, dst, src, is32)
	if err != nil {
		return err
	}
	return writeReg(st, in.Dst, out)
}

func (ck *checker) mov(st *state, in *asm.Instruction, src reg, is32 bool) error {
	alu := in.OpCode.ALUOp()
	if alu != asm.Mov {
		if src.typ != scalarValue {
			return fail("sign-extending move of a pointer (%s) is not allowed", src)
		}
		return writeReg(st, in.Dst, scalarReg(aluScalar(*in, constBounds(0), src.b)))
	}
	if in.OpCode.Source() == asm.ImmSource {
		return writeReg(st, in.Dst, src)
	}
	if is32 {
		if src.typ != scalarValue {
			// As the kernel allows a privileged loader: the low half of a
			// pointer is an unknown number.
			return writeReg(st, in.Dst, scalarReg(sizedUnknown(4)))
		}
		return writeReg(st, in.Dst, scalarReg(src.b.zext32()))
	}
	if src.typ == scalarValue && src.id == 0 && !src.b.isConst() {
		// Link the copies, so that a comparison of one narrows both.
		ck.idGen++
		st.regs[in.Src].id = ck.idGen
		src.id = ck.idGen
	}
	return writeReg(st, in.Dst, src)
}

var aluOpNames = map[asm.ALUOp]string{
	asm.Add: "+=", asm.Sub: "-=", asm.Mul: "*=", asm.Div: "/=", asm.SDiv: "s/=", asm.Or: "|=",
	asm.And: "&=", asm.LSh: "<<=", asm.RSh: ">>=", asm.Neg: "neg", asm.Mod: "%=", asm.SMod: "s%=",
	asm.Xor: "^=", asm.ArSh: "s>>=", asm.Swap: "byte swap",
}

// pointerArith is the kernel's adjust_ptr_min_max_vals, for a privileged
// loader.
func (ck *checker) pointerArith(in *asm.Instruction, dst, src reg, is32 bool) (reg, error) {
	alu := in.OpCode.ALUOp()
	r := regName(in.Dst)
	if is32 {
		return reg{}, fail("32-bit arithmetic on pointer %s is not allowed; use 64-bit instructions for pointers", r)
	}
	if dst.typ.isPointer() && src.typ.isPointer() {
		if alu == asm.Sub {
			return unknownScalar(), nil
		}
		return reg{}, fail("%s %s between two pointers (%s and %s) is not allowed", r, aluOpNames[alu], dst.typ, src.typ)
	}
	ptr, off := dst, src
	if src.typ.isPointer() {
		if alu != asm.Add {
			return reg{}, fail("%s: scalar %s pointer (%s) is not allowed", r, aluOpNames[alu], src.typ)
		}
		ptr, off = src, dst
	}
	switch alu {
	case asm.Add, asm.Sub:
	case asm.And, asm.Or, asm.Xor:
		return reg{}, fail("bitwise operator %s on pointer %s (%s) is not allowed", aluOpNames[alu], r, ptr.typ)
	default:
		return reg{}, fail("pointer arithmetic with operator %s on %s (%s) is not allowed", aluOpNames[alu], r, ptr.typ)
	}
	if ptr.typ.maybeNull() {
		return reg{}, fail("pointer arithmetic on %s (%s) before its null check: compare it with 0 first", r, ptr.typ)
	}
	switch ptr.typ {
	case ptrToCtx, ptrToMapValue, ptrToStack, ptrToPacket, ptrToPacketMeta, ptrToMem:
	case constPtrToMap:
		if !(off.b.isConst() && off.b.val() == 0 && alu == asm.Add) {
			return reg{}, fail("pointer arithmetic on a map pointer (%s) is not allowed", r)
		}
		return ptr, nil
	default:
		return reg{}, fail("pointer arithmetic on %s (%s) is not allowed", r, ptr.typ)
	}
	if off.b.empty() {
		return unknownScalar(), nil
	}
	if off.b.isConst() {
		c := int64(off.b.val())
		if c >= maxVarOff || c <= -maxVarOff {
			return reg{}, fail("adding %d to %s pointer %s is not allowed: offsets are limited to ±%d", c, ptr.typ, r, maxVarOff)
		}
		if alu == asm.Sub {
			c = -c
		}
		n := int64(ptr.off) + c
		if n >= maxVarOff || n <= -maxVarOff {
			return reg{}, fail("%s pointer offset %d is not allowed", ptr.typ, n)
		}
		ptr.off = int32(n)
		return ptr, nil
	}
	if off.b.smin == math.MinInt64 {
		return reg{}, fail("math between %s pointer %s and a register with unbounded minimum value is not allowed: bound it first (if r < N, or r &= MASK)", ptr.typ, r)
	}
	if off.b.smin >= maxVarOff || off.b.smin <= -maxVarOff {
		return reg{}, fail("value %d makes %s pointer %s out of bounds", off.b.smin, ptr.typ, r)
	}
	var b bounds
	if alu == asm.Add {
		b = alu64(asm.Add, ptr.b, off.b, false)
	} else {
		b = alu64(asm.Sub, ptr.b, off.b, false)
	}
	ptr.b = b
	if ptr.typ == ptrToPacket || ptr.typ == ptrToPacketMeta {
		// Something unknown was added: a new pointer whose range must be
		// checked again.
		ck.idGen++
		ptr.id = ck.idGen
		ptr.rng = 0
	}
	return ptr, nil
}

// memAccess describes one load, store or atomic.
type memAccess struct {
	base    asm.Register
	off     int
	size    int
	write   bool
	atomic  bool
	imm     bool // a store of an immediate (BPF_ST)
	val     *reg // the stored register, for BPF_STX
	valReg  asm.Register
	storeIm int64
}

func (ck *checker) load(st *state, in *asm.Instruction) error {
	if in.Dst == asm.R10 {
		return fail("r10 (the frame pointer) is read-only; copy it to another register first")
	}
	base, err := ck.readReg(st, in.Src)
	if err != nil {
		return err
	}
	a := memAccess{base: in.Src, off: int(in.Offset), size: sizeBytes(in.OpCode.Size())}
	v, err := ck.access(st, base, &a)
	if err != nil {
		return err
	}
	if in.OpCode.Mode() == asm.MemSXMode {
		if v.typ != scalarValue {
			return fail("sign-extending load of a pointer field is not allowed")
		}
		n := uint(8 * a.size)
		if v.b.isConst() {
			v = constScalar(uint64(int64(v.b.val()<<(64-n)) >> (64 - n)))
		} else {
			b := unknownBounds()
			b.smin, b.smax = -(1 << (n - 1)), 1<<(n-1)-1
			b.sync()
			v = scalarReg(b)
		}
	}
	return writeReg(st, in.Dst, v)
}

func (ck *checker) store(st *state, in *asm.Instruction) error {
	base, err := ck.readReg(st, in.Dst)
	if err != nil {
		return err
	}
	a := memAccess{base: in.Dst, off: int(in.Offset), size: sizeBytes(in.OpCode.Size()), write: true}
	if in.OpCode.Class() == asm.StClass {
		a.imm = true
		a.storeIm = in.Constant
	} else {
		v, err := ck.readReg(st, in.Src)
		if err != nil {
			return err
		}
		a.val = v
		a.valReg = in.Src
	}
	_, err = ck.access(st, base, &a)
	return err
}

func (ck *checker) atomic(st *state, in *asm.Instruction) error {
	aop := in.OpCode.AtomicOp()
	size := sizeBytes(in.OpCode.Size())
	if size != 4 && size != 8 {
		return fail("atomic operations work on 4 or 8 bytes, not %d", size)
	}
	switch aop {
	case asm.AddAtomic, asm.AndAtomic, asm.OrAtomic, asm.XorAtomic,
		asm.FetchAdd, asm.FetchAnd, asm.FetchOr, asm.FetchXor, asm.Xchg, asm.CmpXchg:
	default:
		return fail("atomic operation %v is not supported by ebpfc's verifier", aop)
	}
	base, err := ck.readReg(st, in.Dst)
	if err != nil {
		return err
	}
	v, err := ck.readReg(st, in.Src)
	if err != nil {
		return err
	}
	if v.typ != scalarValue && aop != asm.Xchg && aop != asm.CmpXchg {
		return fail("atomic %v with a pointer operand (%s is %s) is not allowed", aop, regName(in.Src), v.typ)
	}
	if aop == asm.CmpXchg {
		if _, err := ck.readReg(st, asm.R0); err != nil {
			return err
		}
	}
	if base.typ == ptrToCtx || base.typ.isPacket() {
		return fail("atomic operations on %s (%s) are not allowed", regName(in.Dst), base.typ)
	}
	a := memAccess{base: in.Dst, off: int(in.Offset), size: size, atomic: true}
	if _, err := ck.access(st, base, &a); err != nil {
		return err
	}
	a.write = true
	a.val = v
	a.valReg = in.Src
	if base.typ == ptrToStack {
		a.val = nil // the stack now holds a number of unknown value
		a.imm = false
	}
	if _, err := ck.access(st, base, &a); err != nil {
		return err
	}
	switch aop {
	case asm.FetchAdd, asm.FetchAnd, asm.FetchOr, asm.FetchXor, asm.Xchg, asm.CmpXchg:
		dst := in.Src
		if aop == asm.CmpXchg {
			dst = asm.R0
		}
		return writeReg(st, dst, scalarReg(sizedUnknown(size)))
	}
	return nil
}

// access checks a memory access through base and, for a load, returns the
// loaded value.
func (ck *checker) access(st *state, base *reg, a *memAccess) (reg, error) {
	r := regName(a.base)
	verb := "read"
	if a.write {
		verb = "write"
	}
	switch base.typ {
	case ptrToCtx:
		if base.off != 0 || !base.b.isZero() {
			return reg{}, fail("access through a modified context pointer (%s is ctx%+d): context fields must be read from the unmodified pointer the program received in r1, with the field offset in the instruction", r, base.off)
		}
		t, err := ctxAccess(ck.typ, ck.pr.p.AttachType, a.off, a.size, a.write)
		if err != nil {
			return reg{}, fail("%s", err)
		}
		if a.write {
			return reg{}, nil
		}
		if t == scalarValue {
			return scalarReg(sizedUnknown(a.size)), nil
		}
		return pointerReg(t), nil

	case ptrToStack:
		return ck.stackAccess(st, base, a)

	case ptrToPacket, ptrToPacketMeta:
		if a.write && ck.typ == ebpf.CGroupSockAddr {
			return reg{}, fail("cannot write into the packet from %v programs", ck.typ)
		}
		if base.b.smin < 0 {
			return reg{}, fail("%s min value is negative: the offset added to the packet pointer must be unsigned (bound it with if r >= 0 or a mask)", r)
		}
		off := a.off + int(base.off)
		if off < 0 || off+a.size > int(base.rng) {
			return reg{}, fail("packet %s of %d bytes at %s%+d is outside the checked range (%s is %s): compare %s+%d with data_end first and access only on the branch where it is not past the end",
				verb, a.size, r, a.off, r, base, r, off+a.size-int(base.off))
		}
		if a.write {
			return reg{}, nil
		}
		return scalarReg(sizedUnknown(a.size)), nil

	case ptrToMapValue, ptrToMem:
		limit, what := int64(base.rng), "memory"
		if base.typ == ptrToMapValue {
			m := ck.c.Maps[base.mapIdx]
			limit, what = int64(m.ValueSize), fmt.Sprintf("the value of map %s", m.Name)
			if a.write && m.Flags&(1<<7) != 0 { // BPF_F_RDONLY_PROG
				return reg{}, fail("map %s is read-only for programs", m.Name)
			}
		}
		if err := ck.regionCheck(base, r, a.off, int64(a.size), limit, what, a.atomic); err != nil {
			return reg{}, err
		}
		if a.write {
			return reg{}, nil
		}
		return scalarReg(sizedUnknown(a.size)), nil

	case ptrToMapValueOrNull, ptrToMemOrNull, ptrToSocketOrNull:
		return reg{}, fail("%s may be NULL (%s): compare it with 0 and access it only on the non-NULL branch", r, base.typ)
	case scalarValue:
		return reg{}, fail("%s is a scalar (%s), not a pointer: it cannot be dereferenced", r, base)
	}
	return reg{}, fail("%s (%s) cannot be dereferenced by ebpfc's verifier", r, base.typ)
}

// regionCheck checks [off, off+size) of a region of limit bytes through
// a pointer with a possibly variable offset.
func (ck *checker) regionCheck(base *reg, r string, off int, size, limit int64, what string, aligned bool) error {
	lo := int64(off) + int64(base.off)
	if !base.b.isConst() {
		if base.b.smin < 0 {
			return fail("%s min value is negative (%s): bound the index with an unsigned check before using it as an offset into %s", r, base.b, what)
		}
		if base.b.umax >= maxVarOff {
			return fail("unbounded access through %s into %s (%s): bound the offset first (if r < N, or r &= MASK)", r, what, base.b)
		}
	}
	min := lo + base.b.smin
	if base.b.isConst() {
		min = lo + int64(base.b.val())
	}
	maxEnd := lo + int64(base.b.umax) + size
	if min < 0 || maxEnd > limit {
		return fail("invalid access to %s: %d bytes at offset %d..%d, but it is %d bytes", what, size, min, maxEnd-size, limit)
	}
	if aligned && base.b.isConst() && (lo+int64(base.b.val()))%size != 0 {
		return fail("misaligned atomic access at offset %d of %s", lo+int64(base.b.val()), what)
	}
	return nil
}

// stackOffset resolves a stack access to its offset from r10.
func stackOffset(base *reg, r string, off, size int, verb string, aligned bool) (int, error) {
	if !base.b.isConst() {
		return 0, fail("variable-offset stack %s through %s (%s) is not supported by ebpfc's verifier: use a constant offset from r10", verb, r, base)
	}
	o := int(base.off) + int(int64(base.b.val())) + off
	if o < -maxStack || o+size > 0 {
		return 0, fail("invalid %s of %d bytes at r10%+d: the stack is the %d bytes below r10 (r10-%d .. r10-1)", verb, size, o, maxStack, maxStack)
	}
	if aligned && size > 0 && o%size != 0 {
		return 0, fail("misaligned stack %s of %d bytes at r10%+d: stack accesses must be aligned to their size", verb, size, o)
	}
	return o, nil
}

func (ck *checker) stackAccess(st *state, base *reg, a *memAccess) (reg, error) {
	r := regName(a.base)
	verb := "read"
	if a.write {
		verb = "write"
	}
	off, err := stackOffset(base, r, a.off, a.size, verb, true)
	if err != nil {
		return reg{}, err
	}
	slotIdx := (-off - 1) / 8
	if !a.write {
		return ck.stackRead(st, off, a.size, slotIdx)
	}
	s := st.slot(off)
	aligned8 := off%8 == 0
	switch {
	case a.val != nil && a.val.typ == scalarValue && aligned8:
		v := *a.val
		fits := v.b.umax < 1<<(8*uint(a.size)) || a.size == 8
		if fits && v.id == 0 && !v.b.isConst() {
			ck.idGen++
			st.regs[a.valReg].id = ck.idGen
			v.id = ck.idGen
		}
		if !fits {
			v.id = 0
		}
		saveSpill(s, v, a.size)
		st.history++
	case a.val == nil && a.imm && aligned8:
		saveSpill(s, constScalar(uint64(a.storeIm)), a.size)
		st.history++
	case a.val != nil && a.val.typ.isPointer():
		if a.size != 8 {
			return reg{}, fail("invalid size of register spill: %s holds a pointer (%s), which must be stored with an 8-byte store", regName(a.valReg), a.val.typ)
		}
		saveSpill(s, *a.val, 8)
		st.history++
	default:
		if s.kind[7] == stackSpill {
			for j := range s.kind {
				if s.kind[j] == stackSpill {
					s.kind[j] = stackMisc
				}
			}
			s.spilled = reg{mapIdx: -1}
		}
		k := stackMisc
		if (a.val != nil && a.val.isConstZero()) || (a.imm && a.storeIm == 0) {
			k = stackZero
		}
		for b := off; b < off+a.size; b++ {
			st.setByte(b, k)
		}
	}
	if a.size == 8 {
		st.markSlotWritten(slotIdx)
	}
	return reg{}, nil
}

// saveSpill stores v in the slot's lowest size bytes, as the kernel's
// save_register_state.
func saveSpill(s *stackSlot, v reg, size int) {
	s.spilled = v
	j := 7
	for ; j > 7-size; j-- {
		s.kind[j] = stackSpill
	}
	for ; j >= 0; j-- {
		if s.kind[j] == stackSpill {
			s.kind[j] = stackMisc
		}
	}
}

func (ck *checker) stackRead(st *state, off, size, slotIdx int) (reg, error) {
	st.markSlotRead(slotIdx)
	if slotIdx < len(st.stack) && st.stack[slotIdx].kind[7] == stackSpill {
		s := &st.stack[slotIdx]
		spill := 0
		for j := 7; j >= 0 && s.kind[j] == stackSpill; j-- {
			spill++
		}
		if size == 8 && spill == 8 {
			st.history++
			return s.spilled, nil
		}
		if s.spilled.typ != scalarValue {
			return reg{}, fail("invalid size of register fill: r10%+d holds a spilled pointer (%s); load it with an 8-byte load", off, s.spilled.typ)
		}
		if size <= spill && off%8 == 0 {
			v := s.spilled
			if v.b.umax >= 1<<(8*uint(size)) && size < 8 {
				v.id = 0
			}
			v.b.coerce(size)
			st.history++
			return v, nil
		}
	}
	zero := true
	for b := off; b < off+size; b++ {
		switch st.byteKind(b) {
		case stackInvalid:
			return reg{}, fail("read of %d bytes at r10%+d reads uninitialised stack (r10%+d was never written on this path)", size, off, b)
		case stackZero:
		case stackSpill:
			s := &st.stack[(-b-1)/8]
			if !s.spilled.isConstZero() {
				zero = false
			}
		default:
			zero = false
		}
	}
	if zero {
		return constScalar(0), nil
	}
	return scalarReg(sizedUnknown(size)), nil
}

// helperMem checks that a helper may read (or write) size bytes through
// pointer argument regno.
// argLabel names a helper argument in messages; it is formatted only when
// a message is.
type argLabel struct {
	helper string
	n      int
	reg    string
}

func (a argLabel) String() string { return fmt.Sprintf("%s argument %d (%s)", a.helper, a.n, a.reg) }

func (ck *checker) helperMem(st *state, regno asm.Register, p *reg, size int64, write, read bool, what argLabel) error {
	r := regName(regno)
	switch p.typ {
	case ptrToStack:
		verb := "read"
		if write && !read {
			verb = "write"
		}
		if size == 0 {
			return nil
		}
		off, err := stackOffset(p, r, 0, int(size), verb, false)
		if err != nil {
			return fail("%s: %s", what, err)
		}
		for b := off; b < off+int(size); b++ {
			i := (-b - 1) / 8
			if read {
				st.markSlotRead(i)
				if st.byteKind(b) == stackInvalid {
					return fail("%s: %d bytes at r10%+d through %s, but r10%+d is not initialised on this path (write every byte first, padding too)", what, size, off, r, b)
				}
			}
		}
		if write {
			for b := off; b < off+int(size); b++ {
				s := st.slot(b)
				if s.kind[7] == stackSpill {
					for j := range s.kind {
						if s.kind[j] == stackSpill {
							s.kind[j] = stackMisc
						}
					}
					s.spilled = reg{mapIdx: -1}
				}
				st.setByte(b, stackMisc)
			}
		}
		return nil
	case ptrToPacket, ptrToPacketMeta:
		if p.b.smin < 0 {
			return fail("%s: %s min value is negative", what, r)
		}
		end := int64(p.off) + size
		if p.off < 0 || end > int64(p.rng) {
			return fail("%s: %d bytes at %s (%s) are outside the checked packet range: bounds-check them against data_end first", what, size, r, p)
		}
		return nil
	case ptrToMapValue:
		m := ck.c.Maps[p.mapIdx]
		return ck.regionCheck(p, r, 0, size, int64(m.ValueSize), "the value of map "+m.Name+" ("+what.String()+")", false)
	case ptrToMem:
		return ck.regionCheck(p, r, 0, size, int64(p.rng), what.String(), false)
	}
	return fail("%s: %s is %s, not a pointer to stack, packet, map value or helper memory", what, r, p)
}

// callMeta collects what the arguments of one call tell about it.
type callMeta struct {
	mapIdx    int32
	constKey  int64
	allocSize int64
	release   uint32
	memArg    asm.Register
	memKind   argKind
}

func (ck *checker) call(st *state, idx int) error {
	in := &ck.pr.insns[idx].ins
	id := int32(in.Constant)
	h := helpers[id]
	if h == nil {
		return fail("call to %v (helper #%d): not in ebpfc's verifier's helper table", asm.BuiltinFunc(id), id)
	}
	name := helperName(id)
	if h.progs&progSets[ck.typ] == 0 {
		return fail("program type %v cannot call %s: the kernel does not offer it to this program type", ck.typ, name)
	}
	meta := callMeta{mapIdx: -1, constKey: -1}
	for i, kind := range h.args {
		regno := asm.Register(i + 1)
		r := regName(regno)
		if st.regs[regno].typ == notInit {
			return fail("%s argument %d (%s, %s) is not initialised", name, i+1, r, argKindNames[kind])
		}
		p, _ := ck.readReg(st, regno)
		what := argLabel{name, i + 1, r}
		switch kind {
		case argAnything:
		case argConstMapPtr:
			if p.typ != constPtrToMap {
				return fail("%s must be a map (load it with a map load), not %s", what, p)
			}
			meta.mapIdx = p.mapIdx
			m := ck.c.Maps[p.mapIdx]
			if !mapFuncCompatible(id, h, m.Type) {
				return fail("%s: map %s is a %v, which %s does not take", what, m.Name, m.Type, name)
			}
		case argMapKey, argMapValue, argMapValueWrite:
			m := ck.c.Maps[meta.mapIdx]
			size, label := int64(m.KeySize), "key"
			if kind != argMapKey {
				size, label = int64(m.ValueSize), "value"
			}
			switch p.typ {
			case ptrToStack, ptrToPacket, ptrToPacketMeta, ptrToMapValue:
			default:
				return fail("%s must point to the %d-byte %s of map %s (on the stack, in the packet or in a map value), not %s", what, size, label, m.Name, p)
			}
			if err := ck.helperMem(st, regno, p, size, kind == argMapValueWrite, kind != argMapValueWrite, argLabel{name, i + 1, r + ", the " + label + " of map " + m.Name}); err != nil {
				return err
			}
			if kind == argMapKey && id == fnMapLookupElem && canElideNull(m.Type) {
				meta.constKey = constKey(st, p, int(size))
			}
		case argCtx, argCtxOrNull:
			if kind == argCtxOrNull && p.isConstZero() {
				break
			}
			if p.typ != ptrToCtx {
				return fail("%s must be the context pointer (r1 at entry), not %s", what, p)
			}
			if p.off != 0 || !p.b.isZero() {
				return fail("%s is a modified context pointer (ctx%+d); pass the unmodified one", what, p.off)
			}
		case argMemRead, argMemReadOrNull, argMemWrite, argMemReadWrite:
			meta.memArg, meta.memKind = regno, kind
		case argConstSize, argConstSizeOrZero:
			if p.typ != scalarValue {
				return fail("%s must be a size, not %s", what, p)
			}
			if p.b.smin < 0 {
				return fail("%s: the size may be negative (%s); bound it first", what, p.b)
			}
			if p.b.umin == 0 && kind == argConstSize {
				return fail("%s: the size may be zero (%s), which %s does not allow", what, p.b, name)
			}
			if p.b.umax >= maxVarOff {
				return fail("%s: the size is unbounded (%s); bound it (if r < N, or r &= MASK)", what, p.b)
			}
			mp := &st.regs[meta.memArg]
			mk := meta.memKind
			if mk == argMemReadOrNull && mp.isConstZero() {
				if p.b.umax != 0 {
					return fail("%s: a NULL buffer (%s) needs size 0", what, regName(meta.memArg))
				}
				break
			}
			write := mk == argMemWrite || mk == argMemReadWrite
			read := mk != argMemWrite
			if err := ck.helperMem(st, meta.memArg, mp, int64(p.b.umax), write, read,
				argLabel{name, int(meta.memArg), regName(meta.memArg)}); err != nil {
				return err
			}
		case argConstAllocSize:
			if p.typ != scalarValue || !p.b.isConst() {
				return fail("%s must be a known constant size, not %s", what, p)
			}
			meta.allocSize = int64(p.b.val())
		case argRingbufRelease:
			if p.typ != ptrToMem || p.refID == 0 {
				return fail("%s must be a ring buffer record from bpf_ringbuf_reserve, null-checked, not %s", what, p)
			}
			if p.off != 0 || !p.b.isZero() {
				return fail("%s must point to the start of the record, not %+d bytes into it", what, p.off)
			}
			meta.release = p.refID
		}
	}
	if id == fnTailCall {
		if len(st.refs) > 0 {
			return fail("tail call while holding a ring buffer record (reserved at instruction %d): submit or discard it first", ck.pr.insns[ck.refSites[st.refs[0]]].slot)
		}
		ck.recordTailCall(idx, int(meta.mapIdx), &st.regs[asm.R3])
	}
	if meta.release != 0 {
		st.releaseRef(meta.release)
		st.forEachReg(func(r *reg) {
			if r.refID == meta.release {
				*r = unknownScalar()
			}
		})
	}
	for r := asm.R1; r <= asm.R5; r++ {
		st.regs[r] = reg{mapIdx: -1}
		st.markRegWritten(int(r))
	}
	var r0 reg
	switch h.ret {
	case retInteger:
		r0 = unknownScalar()
	case retVoid:
		r0 = reg{mapIdx: -1}
	case retMapValueOrNull:
		m := ck.c.Maps[meta.mapIdx]
		r0 = pointerReg(ptrToMapValueOrNull)
		r0.mapIdx = meta.mapIdx
		if meta.constKey >= 0 && meta.constKey < int64(m.MaxEntries) {
			r0.typ = ptrToMapValue
		} else {
			ck.idGen++
			r0.id = ck.idGen
		}
	case retRingbufMemOrNull:
		r0 = pointerReg(ptrToMemOrNull)
		ck.idGen++
		r0.id = ck.idGen
		r0.refID = ck.idGen
		r0.rng = int32(meta.allocSize)
		st.refs = append(st.refs, r0.refID)
		ck.refSites[r0.refID] = idx
	}
	st.regs[asm.R0] = r0
	st.markRegWritten(0)
	if h.changesPkt {
		st.forEachReg(func(r *reg) {
			if r.typ.isPacket() {
				*r = unknownScalar()
			}
		})
	}
	return nil
}

// constKey returns the constant a map key on the stack holds, or -1: the
// kernel's get_constant_map_key.
func constKey(st *state, p *reg, size int) int64 {
	if p.typ != ptrToStack || !p.b.isConst() {
		return -1
	}
	off := int(p.off) + int(int64(p.b.val()))
	if off >= 0 || off < -maxStack {
		return -1
	}
	i := (-off - 1) / 8
	if i >= len(st.stack) {
		return -1
	}
	s := &st.stack[i]
	j := (-off - 1) % 8
	zeros := 0
	for k := j; k >= 0 && s.kind[k] == stackZero; k-- {
		zeros++
	}
	if zeros >= size {
		return 0
	}
	if s.kind[7] != stackSpill || s.spilled.typ != scalarValue {
		return -1
	}
	spill := 0
	for k := j; k >= 0 && s.kind[k] == stackSpill; k-- {
		spill++
	}
	if spill != size || !s.spilled.b.isConst() {
		return -1
	}
	return int64(s.spilled.b.val())
}

func (ck *checker) recordTailCall(idx, mapIdx int, index *reg) {
	tc := tailCall{insn: idx, mapIdx: mapIdx, index: -1}
	if index.typ == scalarValue && index.b.isConst() {
		tc.index = int64(index.b.val())
	}
	if !ck.tailSeen[tc] {
		ck.tailSeen[tc] = true
		ck.res.tailCalls = append(ck.res.tailCalls, tc)
	}
}

func (ck *checker) exit(st *state) error {
	r0 := &st.regs[asm.R0]
	if r0.typ == notInit {
		return fail("r0 is not set at exit: the program must put its return value in r0 (helper calls clobber it)")
	}
	st.markRegRead(0)
	if r0.typ != scalarValue {
		return fail("the program returns a pointer (%s) in r0; %v programs must return a number", r0, ck.typ)
	}
	if len(st.refs) > 0 {
		return fail("the ring buffer record reserved at instruction %d is neither submitted nor discarded on this path", ck.pr.insns[ck.refSites[st.refs[0]]].slot)
	}
	if ck.typ == ebpf.CGroupSockAddr {
		lo, hi := uint64(0), uint64(1)
		switch ck.pr.p.AttachType {
		case ebpf.AttachCGroupUDP4Recvmsg, ebpf.AttachCGroupUDP6Recvmsg, ebpf.AttachCgroupInet4GetPeername,
			ebpf.AttachCgroupInet6GetPeername, ebpf.AttachCgroupInet4GetSockname, ebpf.AttachCgroupInet6GetSockname:
			lo = 1
		case ebpf.AttachCGroupInet4Bind, ebpf.AttachCGroupInet6Bind:
			hi = 3
		}
		if r0.b.umin < lo || r0.b.umax > hi {
			return fail("the return value %s is outside [%d, %d], the range %v programs attached as %v may return", r0, lo, hi, ck.typ, ck.pr.p.AttachType)
		}
	}
	return nil
}

// branch executes a conditional jump.
func (ck *checker) branch(st *state, idx int) (int, error) {
	d := &ck.pr.insns[idx]
	in := &d.ins
	jop := in.OpCode.JumpOp()
	is32 := in.OpCode.Class() == asm.Jump32Class
	dst, err := ck.readReg(st, in.Dst)
	if err != nil {
		return 0, err
	}
	var src reg
	srcIsImm := in.OpCode.Source() == asm.ImmSource
	if srcIsImm {
		if is32 {
			src = constScalar(uint64(uint32(in.Constant)))
		} else {
			src = constScalar(uint64(int64(int32(in.Constant))))
		}
	} else {
		p, err := ck.readReg(st, in.Src)
		if err != nil {
			return 0, err
		}
		src = *p
	}
	next, target := idx+1, d.target

	if dst.typ.isPointer() || src.typ.isPointer() {
		// A non-NULL pointer compared with 0.
		if src.isConstZero() && (jop == asm.JEq || jop == asm.JNE) && notNull(dst.typ) {
			if jop == asm.JEq {
				return next, nil
			}
			return target, nil
		}
		if !is32 && srcIsImm && in.Constant == 0 && (jop == asm.JEq || jop == asm.JNE) && dst.typ.maybeNull() {
			other := ck.fork(st, target)
			id := dst.id
			// On the jump edge of "== 0" the pointer is NULL.
			markNull(other, id, jop == asm.JEq)
			markNull(st, id, jop != asm.JEq)
			return next, nil
		}
		other := ck.fork(st, target)
		if !is32 && !srcIsImm {
			ck.packetCompare(st, other, in, jop)
		}
		return next, nil
	}

	pred := branchTaken(jop, &dst.b, &src.b, is32)
	switch pred {
	case 1:
		return target, nil
	case 0:
		return next, nil
	}
	// Both ways are possible: narrow the operands on each.
	other := st.clone()
	okT := ck.narrow(other, in, jop, src, srcIsImm, is32)
	okF := ck.narrow(st, in, negatedJump[jop], src, srcIsImm, is32)
	switch {
	case okT && okF:
		if st.parent != nil {
			st.parent.branches++
		}
		ck.pending = append(ck.pending, pendingPath{other, target})
		return next, nil
	case okT:
		*st = *other
		return target, nil
	case okF:
		return next, nil
	}
	return -1, nil
}

// narrow refines the registers of a comparison on one outcome and spreads
// the result to linked copies.
func (ck *checker) narrow(st *state, in *asm.Instruction, jop asm.JumpOp, src reg, srcIsImm, is32 bool) bool {
	a := st.regs[in.Dst]
	b := src
	if !srcIsImm {
		b = st.regs[in.Src]
	}
	if !refine(jop, &a.b, &b.b, is32) {
		return false
	}
	st.regs[in.Dst] = a
	syncLinked(st, &a)
	if !srcIsImm {
		st.regs[in.Src] = b
		syncLinked(st, &b)
	}
	return true
}

// syncLinked gives every copy of a linked scalar the bounds just learnt.
func syncLinked(st *state, r *reg) {
	if r.typ != scalarValue || r.id == 0 {
		return
	}
	v := *r
	st.forEachReg(func(o *reg) {
		if o.typ == scalarValue && o.id == v.id {
			o.b = v.b
		}
	})
}

// notNull lists pointer types that are never NULL, so that comparing them
// with 0 decides the branch (the kernel's reg_not_null).
func notNull(t regType) bool {
	return t == ptrToMapValue || t == ptrToMem || t == ptrToSocket
}

// markNull turns the lookup results linked by id into NULL (a scalar 0)
// or into non-NULL pointers.
func markNull(st *state, id uint32, isNull bool) {
	if id == 0 {
		return
	}
	var release uint32
	st.forEachReg(func(r *reg) {
		if !r.typ.maybeNull() || r.id != id {
			return
		}
		if isNull {
			release = r.refID
			*r = constScalar(0)
			return
		}
		switch r.typ {
		case ptrToMapValueOrNull:
			r.typ = ptrToMapValue
		case ptrToMemOrNull:
			r.typ = ptrToMem
		case ptrToSocketOrNull:
			r.typ = ptrToSocket
		}
		r.id = 0
	})
	if release != 0 {
		st.releaseRef(release)
	}
}

// packetCompare learns packet ranges from comparisons of packet pointers
// with data_end (or of metadata pointers with data): st continues on the
// fall-through edge, other on the jump edge.
func (ck *checker) packetCompare(st, other *state, in *asm.Instruction, jop asm.JumpOp) {
	dst, src := st.regs[in.Dst], st.regs[in.Src]
	pktVsEnd := func(p, e reg) bool {
		return (p.typ == ptrToPacket && e.typ == ptrToPacketEnd) ||
			(p.typ == ptrToPacketMeta && e.typ == ptrToPacket && e.off == 0 && e.b.isZero())
	}
	var good *state
	var p reg
	rightOpen := false
	switch {
	case pktVsEnd(dst, src):
		p = dst
		switch jop {
		case asm.JGT: // p > end: in range when not taken
			good = st
		case asm.JLT: // p < end: in range when taken
			good, rightOpen = other, true
		case asm.JGE:
			good, rightOpen = st, true
		case asm.JLE:
			good = other
		}
	case pktVsEnd(src, dst):
		p = src
		switch jop {
		case asm.JGT: // end > p
			good, rightOpen = other, true
		case asm.JLT: // end < p
			good = st
		case asm.JGE: // end >= p
			good = other
		case asm.JLE: // end <= p
			good, rightOpen = st, true
		}
	}
	if good == nil {
		return
	}
	if p.off < 0 || (p.off == 0 && rightOpen) {
		return
	}
	if p.b.umax > maxPacketOff || p.b.umax+uint64(p.off) > maxPacketOff {
		return
	}
	n := p.off
	if rightOpen {
		n++
	}
	good.forEachReg(func(r *reg) {
		if r.typ == p.typ && r.id == p.id {
			r.rng = max(r.rng, n)
		}
	})
}
