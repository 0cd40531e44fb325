package verifier

import (
	"fmt"
	"math"
	"math/bits"

	"github.com/cilium/ebpf/asm"
)

// bounds is what is known about a 64-bit value, as the kernel tracks it:
// known bits, signed and unsigned ranges, and the same two ranges for the
// low 32 bits (the subregister that 32-bit ALU and JMP32 instructions
// use). For a scalar it describes the value; for a pointer, the variable
// part of its offset. Every operation leaves it synced: each range as
// tight as the others allow.
type bounds struct {
	t              tnum
	smin, smax     int64
	umin, umax     uint64
	s32min, s32max int32
	u32min, u32max uint32
}

func unknownBounds() bounds {
	return bounds{
		t:    tnumUnknown,
		smin: math.MinInt64, smax: math.MaxInt64,
		umin: 0, umax: math.MaxUint64,
		s32min: math.MinInt32, s32max: math.MaxInt32,
		u32min: 0, u32max: math.MaxUint32,
	}
}

func constBounds(v uint64) bounds {
	return bounds{
		t:    tnumConst(v),
		smin: int64(v), smax: int64(v),
		umin: v, umax: v,
		s32min: int32(uint32(v)), s32max: int32(uint32(v)),
		u32min: uint32(v), u32max: uint32(v),
	}
}

// sizedUnknown is an unknown value of size bytes, zero-extended, as a load
// of that size gives.
func sizedUnknown(size int) bounds {
	b := unknownBounds()
	b.coerce(size)
	return b
}

func (b *bounds) isConst() bool { return b.t.isConst() }
func (b *bounds) val() uint64   { return b.t.value }

func (b *bounds) isZero() bool { return b.t.isConst() && b.t.value == 0 }

// empty reports whether no value satisfies b: the path that produced it
// cannot be taken.
func (b *bounds) empty() bool {
	return b.smin > b.smax || b.umin > b.umax || b.s32min > b.s32max || b.u32min > b.u32max
}

// sync tightens every range from the others and the known bits, as the
// kernel's reg_bounds_sync does.
func (b *bounds) sync() {
	b.fromTnum()
	b.deduce()
	b.deduce()
	b.toTnum()
	b.fromTnum()
}

func (b *bounds) fromTnum() {
	t32 := b.t.subreg()
	b.s32min = max(b.s32min, int32(uint32(t32.value|(t32.mask&0x80000000))))
	b.s32max = min(b.s32max, int32(uint32(t32.value|(t32.mask&0x7fffffff))))
	b.u32min = max(b.u32min, uint32(t32.value))
	b.u32max = min(b.u32max, uint32(t32.value|t32.mask))
	const sign = uint64(1) << 63
	b.smin = max(b.smin, int64(b.t.value|(b.t.mask&sign)))
	b.smax = min(b.smax, int64(b.t.value|(b.t.mask&^sign)))
	b.umin = max(b.umin, b.t.value)
	b.umax = min(b.umax, b.t.value|b.t.mask)
}

func (b *bounds) deduce() {
	// The low 32 bits from the 64-bit ranges, when all values share their
	// upper 32 bits.
	if b.umin>>32 == b.umax>>32 {
		b.u32min = max(b.u32min, uint32(b.umin))
		b.u32max = min(b.u32max, uint32(b.umax))
		if int32(uint32(b.umin)) <= int32(uint32(b.umax)) {
			b.s32min = max(b.s32min, int32(uint32(b.umin)))
			b.s32max = min(b.s32max, int32(uint32(b.umax)))
		}
	}
	if b.smin>>32 == b.smax>>32 {
		b.u32min = max(b.u32min, uint32(b.smin))
		b.u32max = min(b.u32max, uint32(b.smax))
		if int32(uint32(b.smin)) <= int32(uint32(b.smax)) {
			b.s32min = max(b.s32min, int32(uint32(b.smin)))
			b.s32max = min(b.s32max, int32(uint32(b.smax)))
		}
	}
	if int32(b.u32min) <= int32(b.u32max) {
		b.s32min = max(b.s32min, int32(b.u32min))
		b.s32max = min(b.s32max, int32(b.u32max))
	}
	if uint32(b.s32min) <= uint32(b.s32max) {
		b.u32min = max(b.u32min, uint32(b.s32min))
		b.u32max = min(b.u32max, uint32(b.s32max))
	}
	if int64(b.umin) <= int64(b.umax) {
		b.smin = max(b.smin, int64(b.umin))
		b.smax = min(b.smax, int64(b.umax))
	}
	if uint64(b.smin) <= uint64(b.smax) {
		b.umin = max(b.umin, uint64(b.smin))
		b.umax = min(b.umax, uint64(b.smax))
	}
	// The 64-bit ranges from the low 32 bits.
	nu := (b.umin &^ 0xffffffff) | uint64(b.u32min)
	xu := (b.umax &^ 0xffffffff) | uint64(b.u32max)
	b.umin = max(b.umin, nu)
	b.umax = min(b.umax, xu)
	ns := int64((uint64(b.smin) &^ 0xffffffff) | uint64(b.u32min))
	xs := int64((uint64(b.smax) &^ 0xffffffff) | uint64(b.u32max))
	b.smin = max(b.smin, ns)
	b.smax = min(b.smax, xs)
}

func (b *bounds) toTnum() {
	if b.umin <= b.umax {
		b.t = b.t.intersect(tnumRange(b.umin, b.umax))
	}
	if b.u32min <= b.u32max {
		b.t = b.t.withSubreg(b.t.subreg().intersect(tnumRange(uint64(b.u32min), uint64(b.u32max))))
	}
}

// coerce truncates b to its low size bytes, zero-extended.
func (b *bounds) coerce(size int) {
	if size >= 8 {
		return
	}
	mask := uint64(1)<<(8*uint(size)) - 1
	lo, hi := uint64(b.u32min), uint64(b.u32max)
	if size < 4 {
		if lo&^mask != hi&^mask {
			lo, hi = 0, mask
		} else {
			lo &= mask
			hi &= mask
		}
	}
	t := b.t.cast(size)
	*b = unknownBounds()
	b.t = t
	b.umin, b.umax = lo, hi
	b.smin, b.smax = int64(lo), int64(hi)
	b.u32min, b.u32max = uint32(lo), uint32(hi)
	b.sync()
}

// zext32 is b's low 32 bits as an unsigned 64-bit value.
func (b bounds) zext32() bounds {
	b.coerce(4)
	return b
}

// sext32 is b's low 32 bits sign-extended to 64.
func (b bounds) sext32() bounds {
	r := unknownBounds()
	t := b.t.subreg()
	switch {
	case t.mask&0x80000000 != 0:
		t.mask |= 0xffffffff00000000
	case t.value&0x80000000 != 0:
		t.value |= 0xffffffff00000000
	}
	r.t = t
	r.smin, r.smax = int64(b.s32min), int64(b.s32max)
	r.s32min, r.s32max = b.s32min, b.s32max
	r.u32min, r.u32max = b.u32min, b.u32max
	r.sync()
	return r
}

func addOverflows(a, b int64) bool {
	s := a + b
	return (a >= 0) == (b >= 0) && (s >= 0) != (a >= 0)
}

func subOverflows(a, b int64) bool {
	s := a - b
	return (a >= 0) != (b >= 0) && (s >= 0) != (a >= 0)
}

func mulOverflows(a, b int64) bool {
	if a == 0 || b == 0 {
		return false
	}
	p := a * b
	return p/b != a || (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64)
}

// evalConst computes op exactly on known operands, with eBPF's semantics
// (division by zero gives 0, modulo by zero leaves dst).
func evalConst(op asm.ALUOp, a, b uint64, is32 bool, swap asm.Endianness, swapSize int64, cls asm.Class) uint64 {
	if is32 {
		a, b = uint64(uint32(a)), uint64(uint32(b))
	}
	var r uint64
	switch op {
	case asm.Add:
		r = a + b
	case asm.Sub:
		r = a - b
	case asm.Mul:
		r = a * b
	case asm.Div:
		if b != 0 {
			r = a / b
		}
	case asm.SDiv:
		switch {
		case b == 0:
		case is32:
			if int32(b) == -1 {
				r = uint64(uint32(-int32(a)))
			} else {
				r = uint64(uint32(int32(a) / int32(b)))
			}
		case int64(b) == -1:
			r = uint64(-int64(a))
		default:
			r = uint64(int64(a) / int64(b))
		}
	case asm.Mod:
		r = a
		if b != 0 {
			r = a % b
		}
	case asm.SMod:
		r = a
		switch {
		case b == 0:
		case is32:
			if int32(b) == -1 {
				r = 0
			} else {
				r = uint64(uint32(int32(a) % int32(b)))
			}
		case int64(b) == -1:
			r = 0
		default:
			r = uint64(int64(a) % int64(b))
		}
	case asm.Or:
		r = a | b
	case asm.And:
		r = a & b
	case asm.Xor:
		r = a ^ b
	case asm.LSh:
		if is32 {
			r = a << (b & 31)
		} else {
			r = a << (b & 63)
		}
	case asm.RSh:
		if is32 {
			r = a >> (b & 31)
		} else {
			r = a >> (b & 63)
		}
	case asm.ArSh:
		if is32 {
			r = uint64(uint32(int32(uint32(a)) >> (b & 31)))
		} else {
			r = uint64(int64(a) >> (b & 63))
		}
	case asm.Neg:
		r = -a
	case asm.Mov:
		r = b
	case asm.MovSX8:
		r = uint64(int64(int8(b)))
	case asm.MovSX16:
		r = uint64(int64(int16(b)))
	case asm.MovSX32:
		r = uint64(int64(int32(b)))
	case asm.Swap:
		r = swapConst(a, swap, swapSize, cls)
	}
	if is32 {
		r = uint64(uint32(r))
	}
	return r
}

// swapConst applies an endianness conversion on a little-endian host.
func swapConst(a uint64, e asm.Endianness, size int64, cls asm.Class) uint64 {
	if cls == asm.ALUClass && e == asm.LE {
		// "to little endian" on a little-endian host truncates.
		if size >= 64 {
			return a
		}
		return a & (1<<uint(size) - 1)
	}
	switch size {
	case 16:
		return uint64(bits.ReverseBytes16(uint16(a)))
	case 32:
		return uint64(bits.ReverseBytes32(uint32(a)))
	default:
		return bits.ReverseBytes64(a)
	}
}

// aluScalar computes dst op src on scalars. 32-bit operations work on
// the low halves and zero-extend the result, as the hardware does.
func aluScalar(ins asm.Instruction, dst, src bounds) bounds {
	op := ins.OpCode.ALUOp()
	cls := ins.OpCode.Class()
	is32 := cls == asm.ALUClass
	if op == asm.Swap {
		return swapBounds(dst, ins.OpCode.Endianness(), ins.Constant, cls)
	}
	if (dst.isConst() || op == asm.Mov || op == asm.MovSX8 || op == asm.MovSX16 || op == asm.MovSX32) && src.isConst() {
		return constBounds(evalConst(op, dst.val(), src.val(), is32, 0, 0, cls))
	}
	if op == asm.Neg && dst.isConst() {
		return constBounds(evalConst(op, dst.val(), 0, is32, 0, 0, cls))
	}
	a, b := dst, src
	if is32 {
		if op == asm.ArSh {
			a = a.sext32()
		} else {
			a = a.zext32()
		}
		b = b.zext32()
	}
	r := alu64(op, a, b, is32)
	if is32 {
		r.coerce(4)
	}
	return r
}

func swapBounds(dst bounds, e asm.Endianness, size int64, cls asm.Class) bounds {
	if dst.isConst() {
		return constBounds(swapConst(dst.val(), e, size, cls))
	}
	if size >= 64 {
		if cls == asm.ALUClass && e == asm.LE {
			return dst
		}
		return unknownBounds()
	}
	if cls == asm.ALUClass && e == asm.LE {
		dst.coerce(int(size / 8))
		return dst
	}
	return sizedUnknown(int(size / 8))
}

// alu64 is the 64-bit abstract operation on non-constant operands.
func alu64(op asm.ALUOp, a, b bounds, is32 bool) bounds {
	r := unknownBounds()
	width := uint64(64)
	if is32 {
		width = 32
	}
	shiftOK := b.isConst() && b.val() < width
	switch op {
	case asm.Mov:
		return b
	case asm.MovSX8, asm.MovSX16, asm.MovSX32:
		n := map[asm.ALUOp]uint{asm.MovSX8: 8, asm.MovSX16: 16, asm.MovSX32: 32}[op]
		if b.umax < 1<<(n-1) {
			return b
		}
		return r
	case asm.Add:
		r.t = a.t.add(b.t)
		if !addOverflows(a.smin, b.smin) && !addOverflows(a.smax, b.smax) {
			r.smin, r.smax = a.smin+b.smin, a.smax+b.smax
		}
		lo, c1 := bits.Add64(a.umin, b.umin, 0)
		hi, c2 := bits.Add64(a.umax, b.umax, 0)
		if c1 == 0 && c2 == 0 {
			r.umin, r.umax = lo, hi
		}
	case asm.Sub:
		r.t = a.t.sub(b.t)
		if !subOverflows(a.smin, b.smax) && !subOverflows(a.smax, b.smin) {
			r.smin, r.smax = a.smin-b.smax, a.smax-b.smin
		}
		if a.umin >= b.umax {
			r.umin, r.umax = a.umin-b.umax, a.umax-b.umin
		}
	case asm.Mul:
		r.t = a.t.mul(b.t)
		hi, lo := bits.Mul64(a.umax, b.umax)
		if hi == 0 {
			r.umin, r.umax = a.umin*b.umin, lo
		}
		if !mulOverflows(a.smin, b.smin) && !mulOverflows(a.smin, b.smax) &&
			!mulOverflows(a.smax, b.smin) && !mulOverflows(a.smax, b.smax) {
			p := []int64{a.smin * b.smin, a.smin * b.smax, a.smax * b.smin, a.smax * b.smax}
			r.smin, r.smax = p[0], p[0]
			for _, v := range p[1:] {
				r.smin, r.smax = min(r.smin, v), max(r.smax, v)
			}
		}
	case asm.And:
		r.t = a.t.and(b.t)
		r.umin = r.t.value
		r.umax = min(a.umax, b.umax)
	case asm.Or:
		r.t = a.t.or(b.t)
		r.umin = max(a.umin, b.umin)
		r.umax = r.t.value | r.t.mask
	case asm.Xor:
		r.t = a.t.xor(b.t)
		r.umin = r.t.value
		r.umax = r.t.value | r.t.mask
	case asm.LSh:
		if !shiftOK {
			return r
		}
		s := uint(b.val())
		r.t = a.t.lsh(s)
		if s == 0 || a.umax <= uint64(1)<<(63-s) {
			r.umin, r.umax = a.umin<<s, a.umax<<s
		}
	case asm.RSh:
		if !shiftOK {
			return r
		}
		s := uint(b.val())
		r.t = a.t.rsh(s)
		r.umin, r.umax = a.umin>>s, a.umax>>s
	case asm.ArSh:
		if !shiftOK {
			return r
		}
		s := uint(b.val())
		r.t = a.t.arsh(s, 64)
		r.smin, r.smax = a.smin>>s, a.smax>>s
	case asm.Mod:
		if b.isConst() && b.val() != 0 {
			r.umin, r.umax = 0, min(a.umax, b.val()-1)
		}
	case asm.Div:
		if b.isConst() && b.val() != 0 {
			r.umin, r.umax = a.umin/b.val(), a.umax/b.val()
		}
	}
	r.sync()
	return r
}

// rangeView is a 32- or 64-bit view of bounds, for comparisons.
type rangeView struct {
	umin, umax uint64
	smin, smax int64
	t          tnum
}

func view(b *bounds, is32 bool) rangeView {
	if is32 {
		return rangeView{uint64(b.u32min), uint64(b.u32max), int64(b.s32min), int64(b.s32max), b.t.subreg()}
	}
	return rangeView{b.umin, b.umax, b.smin, b.smax, b.t}
}

func (v rangeView) isConst() bool { return v.t.isConst() }

// branchTaken decides a comparison from the bounds: 1 when it always
// holds, 0 when it never does, -1 when it depends on the values.
func branchTaken(op asm.JumpOp, a, b *bounds, is32 bool) int {
	x, y := view(a, is32), view(b, is32)
	res := func(always, never bool) int {
		switch {
		case always:
			return 1
		case never:
			return 0
		}
		return -1
	}
	switch op {
	case asm.JEq, asm.JNE:
		eq := -1
		switch {
		case x.isConst() && y.isConst():
			eq = b2i(x.t.value == y.t.value)
		case x.umin > y.umax || x.umax < y.umin || x.smin > y.smax || x.smax < y.smin:
			eq = 0
		case (x.t.value^y.t.value)&^(x.t.mask|y.t.mask) != 0:
			eq = 0
		}
		if op == asm.JNE && eq >= 0 {
			eq = 1 - eq
		}
		return eq
	case asm.JSet:
		return res(x.t.value&y.t.value != 0 && y.isConst(), (x.t.value|x.t.mask)&(y.t.value|y.t.mask) == 0)
	case asm.JGT:
		return res(x.umin > y.umax, x.umax <= y.umin)
	case asm.JGE:
		return res(x.umin >= y.umax, x.umax < y.umin)
	case asm.JLT:
		return res(x.umax < y.umin, x.umin >= y.umax)
	case asm.JLE:
		return res(x.umax <= y.umin, x.umin > y.umax)
	case asm.JSGT:
		return res(x.smin > y.smax, x.smax <= y.smin)
	case asm.JSGE:
		return res(x.smin >= y.smax, x.smax < y.smin)
	case asm.JSLT:
		return res(x.smax < y.smin, x.smin >= y.smax)
	case asm.JSLE:
		return res(x.smax <= y.smin, x.smin > y.smax)
	}
	return -1
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// jsetNot is the negation of JSet, for the branch where no tested bit is set.
const jsetNot asm.JumpOp = 0xfe

var negatedJump = map[asm.JumpOp]asm.JumpOp{
	asm.JEq: asm.JNE, asm.JNE: asm.JEq,
	asm.JGT: asm.JLE, asm.JLE: asm.JGT,
	asm.JGE: asm.JLT, asm.JLT: asm.JGE,
	asm.JSGT: asm.JSLE, asm.JSLE: asm.JSGT,
	asm.JSGE: asm.JSLT, asm.JSLT: asm.JSGE,
	asm.JSet: jsetNot, jsetNot: asm.JSet,
}

var swappedJump = map[asm.JumpOp]asm.JumpOp{
	asm.JEq: asm.JEq, asm.JNE: asm.JNE,
	asm.JGT: asm.JLT, asm.JLT: asm.JGT,
	asm.JGE: asm.JLE, asm.JLE: asm.JGE,
	asm.JSGT: asm.JSLT, asm.JSLT: asm.JSGT,
	asm.JSGE: asm.JSLE, asm.JSLE: asm.JSGE,
}

// refine narrows a and b to the values for which "a op b" holds. It
// reports false when no values do.
func refine(op asm.JumpOp, a, b *bounds, is32 bool) bool {
	x, y := view(a, is32), view(b, is32)
	ok := true
	switch op {
	case asm.JEq:
		x.umin, x.umax = max(x.umin, y.umin), min(x.umax, y.umax)
		x.smin, x.smax = max(x.smin, y.smin), min(x.smax, y.smax)
		if (x.t.value^y.t.value)&^(x.t.mask|y.t.mask) != 0 {
			ok = false
		}
		x.t = x.t.intersect(y.t)
		y.umin, y.umax, y.smin, y.smax, y.t = x.umin, x.umax, x.smin, x.smax, x.t
	case asm.JNE:
		if y.isConst() {
			ok = x.exclude(y.t.value, is32)
		} else if x.isConst() {
			ok = y.exclude(x.t.value, is32)
		}
	case asm.JSet:
		if y.isConst() && bits.OnesCount64(y.t.value) == 1 {
			x.t = x.t.or(y.t)
		}
	case jsetNot:
		if y.isConst() {
			x.t = x.t.and(tnum{^y.t.value, 0})
			if is32 {
				x.t = x.t.subreg()
			}
		}
	case asm.JLE:
		x.umax = min(x.umax, y.umax)
		y.umin = max(y.umin, x.umin)
	case asm.JLT:
		if y.umax == 0 || x.umin == math.MaxUint64 {
			return false
		}
		x.umax = min(x.umax, y.umax-1)
		y.umin = max(y.umin, x.umin+1)
	case asm.JSLE:
		x.smax = min(x.smax, y.smax)
		y.smin = max(y.smin, x.smin)
	case asm.JSLT:
		if y.smax == math.MinInt64 || x.smin == math.MaxInt64 {
			return false
		}
		x.smax = min(x.smax, y.smax-1)
		y.smin = max(y.smin, x.smin+1)
	case asm.JGE, asm.JGT, asm.JSGE, asm.JSGT:
		return refine(swappedJump[op], b, a, is32)
	}
	if !ok {
		return false
	}
	a.set(x, is32)
	b.set(y, is32)
	return !a.empty() && !b.empty()
}

// exclude removes v from the ends of the range.
func (x *rangeView) exclude(v uint64, is32 bool) bool {
	if x.isConst() && x.t.value == v {
		return false
	}
	if x.umin == v {
		x.umin++
	}
	if x.umax == v {
		x.umax--
	}
	sv := int64(v)
	if is32 {
		sv = int64(int32(uint32(v)))
	}
	if x.smin == sv {
		x.smin++
	}
	if x.smax == sv {
		x.smax--
	}
	return true
}

func (b *bounds) set(v rangeView, is32 bool) {
	if is32 {
		if v.umin > math.MaxUint32 || v.umax > math.MaxUint32 || v.smin < math.MinInt32 || v.smax > math.MaxInt32 ||
			v.umin > v.umax || v.smin > v.smax {
			b.u32min, b.u32max = 1, 0 // empty
			return
		}
		b.u32min, b.u32max = uint32(v.umin), uint32(v.umax)
		b.s32min, b.s32max = int32(v.smin), int32(v.smax)
		b.t = b.t.withSubreg(v.t)
	} else {
		b.umin, b.umax, b.smin, b.smax, b.t = v.umin, v.umax, v.smin, v.smax, v.t
	}
	if b.empty() {
		return
	}
	b.sync()
}

// contains reports whether every value b can hold, a can hold too: the
// kernel's range_within and tnum_in.
func (a *bounds) contains(b *bounds) bool {
	return a.smin <= b.smin && b.smax <= a.smax && a.umin <= b.umin && b.umax <= a.umax &&
		a.s32min <= b.s32min && b.s32max <= a.s32max && a.u32min <= b.u32min && b.u32max <= a.u32max &&
		a.t.contains(b.t)
}

func (b bounds) String() string {
	if b.isConst() {
		return fmt.Sprint(int64(b.val()))
	}
	s := ""
	add := func(f string, args ...any) {
		if s != "" {
			s += ","
		}
		s += fmt.Sprintf(f, args...)
	}
	if b.smin != math.MinInt64 {
		add("smin=%d", b.smin)
	}
	if b.smax != math.MaxInt64 {
		add("smax=%d", b.smax)
	}
	if b.umin != 0 {
		add("umin=%d", b.umin)
	}
	if b.umax != math.MaxUint64 {
		add("umax=%d", b.umax)
	}
	if b.t != tnumUnknown {
		add("var_off=(%#x; %#x)", b.t.value, b.t.mask)
	}
	return s
}
