package ir

import (
	"fmt"
	"strconv"
)

// ProgramBuilder builds one Program. It numbers values from 0, records each
// value's type on the op that defines it, and keeps block labels unique.
//
// Misusing the builder (a duplicate label, an op appended after a block's
// terminator, a second terminator) is a bug in the lowering, not bad input, so
// it panics; everything else (types, bounds, null checks) is left to Check,
// which reports it with positions.
type ProgramBuilder struct {
	prog   *Program
	next   Value
	types  map[Value]Type
	labels map[string]bool
}

// BlockBuilder appends ops and one terminator to a block.
type BlockBuilder struct {
	pb  *ProgramBuilder
	blk *Block
}

// NewProgram starts a program. The first block created becomes its entry.
func NewProgram(name string, t ProgType, section string, pos Pos) *ProgramBuilder {
	return &ProgramBuilder{
		prog:   &Program{Name: name, Type: t, Section: section, Pos: pos},
		types:  make(map[Value]Type),
		labels: make(map[string]bool),
	}
}

// Program returns the program built so far. The builder keeps a reference, so
// later calls still change it.
func (pb *ProgramBuilder) Program() *Program { return pb.prog }

// Block appends a new block called label. Labels must be unique.
func (pb *ProgramBuilder) Block(label string) *BlockBuilder {
	if pb.labels[label] {
		panic(fmt.Sprintf("ir: program %s: duplicate block label %q", pb.prog.Name, label))
	}
	pb.labels[label] = true
	b := &Block{Label: label, Term: Term{A: NoValue, B: Operand{Value: NoValue}}}
	pb.prog.Blocks = append(pb.prog.Blocks, b)
	return &BlockBuilder{pb: pb, blk: b}
}

// NewBlock appends a new block whose label is prefix, or prefix.N for the
// smallest N ≥ 1 that makes it unique. Lowering code uses it for blocks it
// does not need to name exactly ("rule", "rule.1", "rule.2", …).
func (pb *ProgramBuilder) NewBlock(prefix string) *BlockBuilder {
	label := prefix
	for n := 1; pb.labels[label]; n++ {
		label = prefix + "." + strconv.Itoa(n)
	}
	return pb.Block(label)
}

// TypeOf returns the type recorded for v, or TypeInvalid if the builder did
// not define it.
func (pb *ProgramBuilder) TypeOf(v Value) Type { return pb.types[v] }

// Label returns the block's label, for use as a branch target.
func (bb *BlockBuilder) Label() string { return bb.blk.Label }

// Block returns the block being built.
func (bb *BlockBuilder) Block() *Block { return bb.blk }

// Terminated reports whether the block already has its terminator.
func (bb *BlockBuilder) Terminated() bool { return bb.blk.Term.Kind != TermInvalid }

func (bb *BlockBuilder) emit(op *Op) Value {
	if bb.Terminated() {
		panic(fmt.Sprintf("ir: program %s: op %v appended to terminated block %s", bb.pb.prog.Name, op.Kind, bb.blk.Label))
	}
	if op.Dst != NoValue {
		op.Dst = bb.pb.next
		bb.pb.next++
		bb.pb.types[op.Dst] = op.Type
	}
	bb.blk.Ops = append(bb.blk.Ops, op)
	return op.Dst
}

// def appends an op that defines a new value of type t.
func (bb *BlockBuilder) def(pos Pos, k Kind, t Type, args ...Operand) *Op {
	op := &Op{Kind: k, Dst: 0, Type: t, Args: args, Pos: pos}
	bb.emit(op)
	return op
}

// effect appends an op that defines nothing.
func (bb *BlockBuilder) effect(pos Pos, k Kind, args ...Operand) *Op {
	op := &Op{Kind: k, Dst: NoValue, Args: args, Pos: pos}
	bb.emit(op)
	return op
}

func (bb *BlockBuilder) operandType(o Operand) Type {
	if o.IsConst {
		return Scalar
	}
	return bb.pb.types[o.Value]
}

// Ctx defines the context pointer. It must be the first op of the entry block.
func (bb *BlockBuilder) Ctx(pos Pos) Value {
	return bb.def(pos, OpCtx, Ctx).Dst
}

// Const defines a scalar constant.
func (bb *BlockBuilder) Const(pos Pos, imm int64) Value {
	op := bb.def(pos, OpConst, Scalar)
	op.Imm = imm
	return op.Dst
}

// Param defines the node constant called name; foldNodeConstants replaces it.
func (bb *BlockBuilder) Param(pos Pos, name string) Value {
	op := bb.def(pos, OpParam, Scalar)
	op.Sym = name
	return op.Dst
}

// CtxLoad reads context field field of ctx. The field fixes the result type
// (see CtxFields); an unknown field gives TypeInvalid, which Check reports.
func (bb *BlockBuilder) CtxLoad(pos Pos, ctx Value, field string) Value {
	t := TypeInvalid
	if f, ok := LookupCtxField(bb.pb.prog.Type, field); ok {
		t = f.Type
	}
	op := bb.def(pos, OpCtxLoad, t, V(ctx))
	op.Sym = field
	return op.Dst
}

// CtxStore writes val into the writable context field field of ctx.
func (bb *BlockBuilder) CtxStore(pos Pos, ctx Value, field string, val Operand) {
	bb.effect(pos, OpCtxStore, V(ctx), val).Sym = field
}

// Load reads the size-byte unsigned integer at base+off.
func (bb *BlockBuilder) Load(pos Pos, base Value, off int16, size int) Value {
	op := bb.def(pos, OpLoad, Scalar, V(base))
	op.Off, op.Size = off, size
	return op.Dst
}

// Store writes the low size bytes of val at base+off.
func (bb *BlockBuilder) Store(pos Pos, base Value, off int16, size int, val Operand) {
	op := bb.effect(pos, OpStore, V(base), val)
	op.Off, op.Size = off, size
}

// AtomicAdd atomically adds val to the size-byte integer at base+off.
func (bb *BlockBuilder) AtomicAdd(pos Pos, base Value, off int16, size int, val Operand) {
	op := bb.effect(pos, OpAtomicAdd, V(base), val)
	op.Off, op.Size = off, size
}

// Mov copies a, keeping its type.
func (bb *BlockBuilder) Mov(pos Pos, a Operand) Value {
	return bb.def(pos, OpMov, bb.operandType(a), a).Dst
}

// Binary defines a kind b, where kind is one of OpAdd … OpArsh.
func (bb *BlockBuilder) Binary(pos Pos, kind Kind, a, b Operand) Value {
	return bb.def(pos, kind, Scalar, a, b).Dst
}

// Add defines a + b.
func (bb *BlockBuilder) Add(pos Pos, a, b Operand) Value { return bb.Binary(pos, OpAdd, a, b) }

// Sub defines a - b.
func (bb *BlockBuilder) Sub(pos Pos, a, b Operand) Value { return bb.Binary(pos, OpSub, a, b) }

// Mul defines a * b.
func (bb *BlockBuilder) Mul(pos Pos, a, b Operand) Value { return bb.Binary(pos, OpMul, a, b) }

// And defines a & b.
func (bb *BlockBuilder) And(pos Pos, a, b Operand) Value { return bb.Binary(pos, OpAnd, a, b) }

// Or defines a | b.
func (bb *BlockBuilder) Or(pos Pos, a, b Operand) Value { return bb.Binary(pos, OpOr, a, b) }

// Xor defines a ^ b.
func (bb *BlockBuilder) Xor(pos Pos, a, b Operand) Value { return bb.Binary(pos, OpXor, a, b) }

// Shl defines a << b.
func (bb *BlockBuilder) Shl(pos Pos, a, b Operand) Value { return bb.Binary(pos, OpShl, a, b) }

// Shr defines a >> b, shifting in zeros.
func (bb *BlockBuilder) Shr(pos Pos, a, b Operand) Value { return bb.Binary(pos, OpShr, a, b) }

// Arsh defines a >> b, shifting in the sign bit.
func (bb *BlockBuilder) Arsh(pos Pos, a, b Operand) Value { return bb.Binary(pos, OpArsh, a, b) }

// Swap16 converts the low 16 bits of a between network and host order.
func (bb *BlockBuilder) Swap16(pos Pos, a Operand) Value { return bb.def(pos, OpSwap16, Scalar, a).Dst }

// Swap32 converts the low 32 bits of a between network and host order.
func (bb *BlockBuilder) Swap32(pos Pos, a Operand) Value { return bb.def(pos, OpSwap32, Scalar, a).Dst }

// PacketAdd defines the packet pointer base+off, where off is a scalar the
// lowering has bounded to at most max.
func (bb *BlockBuilder) PacketAdd(pos Pos, base, off Value, max int64) Value {
	op := bb.def(pos, OpPacketAdd, PacketPtr, V(base), V(off))
	op.Imm = max
	return op.Dst
}

// MapLookup looks key up in map mapName; key lists the key struct's fields in
// order. The result must pass an IfNull before it is read through.
func (bb *BlockBuilder) MapLookup(pos Pos, mapName string, key ...Operand) Value {
	op := bb.def(pos, OpMapLookup, MapValueOrNull, key...)
	op.Sym = mapName
	return op.Dst
}

// MapUpdate writes the key fields followed by the value fields into map
// mapName with the given flags (0 any, 1 noexist, 2 exist) and defines the
// helper's return value.
func (bb *BlockBuilder) MapUpdate(pos Pos, mapName string, flags int64, keyAndValue ...Operand) Value {
	op := bb.def(pos, OpMapUpdate, Scalar, keyAndValue...)
	op.Sym, op.Imm = mapName, flags
	return op.Dst
}

// MapDelete deletes key from map mapName and defines the helper's return value.
func (bb *BlockBuilder) MapDelete(pos Pos, mapName string, key ...Operand) Value {
	op := bb.def(pos, OpMapDelete, Scalar, key...)
	op.Sym = mapName
	return op.Dst
}

// RingbufOutput writes a record with the given fields (those of the ring
// buffer's value struct, in order) into ring buffer map mapName and defines
// the helper's return value.
func (bb *BlockBuilder) RingbufOutput(pos Pos, mapName string, fields ...Operand) Value {
	op := bb.def(pos, OpRingbufOutput, Scalar, fields...)
	op.Sym = mapName
	return op.Dst
}

// KtimeNs defines the monotonic clock in nanoseconds.
func (bb *BlockBuilder) KtimeNs(pos Pos) Value { return bb.def(pos, OpKtimeNs, Scalar).Dst }

func (bb *BlockBuilder) terminate(t Term) {
	if bb.Terminated() {
		panic(fmt.Sprintf("ir: program %s: block %s terminated twice", bb.pb.prog.Name, bb.blk.Label))
	}
	bb.blk.Term = t
}

// Jump ends the block with a jump to the block labelled to.
func (bb *BlockBuilder) Jump(pos Pos, to string) {
	bb.terminate(Term{Kind: TermJump, A: NoValue, B: Operand{Value: NoValue}, Then: to, Pos: pos})
}

// Branch ends the block: if a cond b go to then, else to els.
func (bb *BlockBuilder) Branch(pos Pos, cond Cond, a Value, b Operand, then, els string) {
	bb.terminate(Term{Kind: TermBranch, Cond: cond, A: a, B: b, Then: then, Else: els, Pos: pos})
}

// Bounds ends the block: if ptr+n <= end go to ok, else to fail. In ok and
// the blocks it alone leads to, ptr may be read at offsets up to n.
func (bb *BlockBuilder) Bounds(pos Pos, ptr Value, n int64, end Value, ok, fail string) {
	bb.terminate(Term{Kind: TermBounds, A: ptr, B: V(end), Imm: n, Then: ok, Else: fail, Pos: pos})
}

// IfNull ends the block: if v is null go to isNull, else to ok, where v is a
// map value that may be read and written.
func (bb *BlockBuilder) IfNull(pos Pos, v Value, isNull, ok string) {
	bb.terminate(Term{Kind: TermIfNull, A: v, B: Operand{Value: NoValue}, Then: isNull, Else: ok, Pos: pos})
}

// Return ends the program with the constant imm.
func (bb *BlockBuilder) Return(pos Pos, imm int64) {
	bb.terminate(Term{Kind: TermReturn, A: NoValue, B: Operand{Value: NoValue}, Imm: imm, Pos: pos})
}

// ReturnValue ends the program with the scalar v.
func (bb *BlockBuilder) ReturnValue(pos Pos, v Value) {
	bb.terminate(Term{Kind: TermReturn, A: v, B: Operand{Value: NoValue}, Pos: pos})
}

// TailCall ends the block with a tail call to slot index of program array
// progArray, where the compiler placed target; if the slot is empty execution
// continues at the block labelled next.
func (bb *BlockBuilder) TailCall(pos Pos, ctx Value, progArray string, index int64, target, next string) {
	bb.terminate(Term{Kind: TermTailCall, A: ctx, B: Operand{Value: NoValue}, Imm: index, Sym: progArray, Target: target, Then: next, Pos: pos})
}
