package backend

import (
	"cmp"
	"math/bits"
	"slices"

	"github.com/cilium/ebpf/asm"

	"github.com/ebpfc/ebpfc/ir"
)

// Register allocation is linear scan over the blocks in layout order.
//
// Every op gets an even position p: it reads its operands at p and defines its
// result at p+1, so a value whose last use is at p and the op's result may
// share a register. A value's live interval is the hull of its definition,
// its uses and the blocks it is live into or out of (from liveness over the
// CFG); one interval per value, no holes, which is conservative but needs no
// moves at block boundaries: a value sits in one place for its whole life.
//
// The eBPF calling convention shapes the register file:
//
//   - r0 and r5 are never allocated: they are the scratch registers the
//     instruction selector uses for call results, bounds checks, spilled
//     operands and immediates that need a register (no helper ebpfc calls
//     takes five arguments, so r5 is never an argument).
//   - r1–r4 hold values that are not live across a helper call.
//   - r6–r9 survive calls, so values live across one go there first.
//   - r10 is the frame pointer.
//
// When no register is free, the interval that ends last is spilled for its
// whole life to an 8-byte, 8-aligned stack slot. The kernel keeps the full
// state of a 64-bit spill of a pointer or a scalar at such a slot, so a
// filled packet pointer keeps its range and a filled map value its null
// state.

var (
	callerSaved = []asm.Register{asm.R1, asm.R2, asm.R3, asm.R4}
	calleeSaved = []asm.Register{asm.R6, asm.R7, asm.R8, asm.R9}
	// The candidate orders of linearScan, built once.
	calleeFirst = slices.Concat(calleeSaved, callerSaved)
	callerFirst = slices.Concat(callerSaved, calleeSaved)
)

// Scratch registers, never holding an allocated value.
const (
	scratchA = asm.R0
	scratchB = asm.R5
)

// location is where a value lives for its whole life: a register, or a
// stack slot at r10+slot when spilled.
type location struct {
	reg     asm.Register
	slot    int16
	spilled bool
}

// interval is the live range of one value, in linear positions.
type interval struct {
	v          ir.Value
	start, end int
	crossCall  bool   // live across a helper call or tail call
	def        *ir.Op // the defining op
	// preferCallee is set when the value dies as the first operand of a
	// two-address op whose result lives across a call: allocating it to
	// r6–r9 lets the result take over its register without a move.
	preferCallee bool
}

// allocation is the result of register allocation for one program.
type allocation struct {
	order  []*ir.Block
	consts map[ir.Value]int64 // values that are constants: used as immediates, never allocated
	locs   map[ir.Value]location
	dead   map[ir.Value]bool // defined but never used
	spills int               // number of 8-byte spill slots
	// intervals are the live ranges of the allocated values, by start.
	intervals []*interval
	// opPos[b][k] is the position of op k of order[b]; termPos[b] that of
	// its terminator.
	opPos   [][]int
	termPos []int
}

// isCall reports whether op calls a helper, clobbering r0–r5.
func isCall(k ir.Kind) bool {
	switch k {
	case ir.OpMapLookup, ir.OpMapUpdate, ir.OpMapDelete, ir.OpKtimeNs, ir.OpRingbufOutput:
		return true
	}
	return false
}

// opUses appends the values op reads, excluding constants.
func opUses(dst []ir.Value, op *ir.Op, consts map[ir.Value]int64) []ir.Value {
	for _, a := range op.Args {
		if a.IsConst || a.Value == ir.NoValue {
			continue
		}
		if _, ok := consts[a.Value]; ok {
			continue
		}
		dst = append(dst, a.Value)
	}
	return dst
}

// termUses appends the values t reads, excluding constants.
func termUses(dst []ir.Value, t *ir.Term, consts map[ir.Value]int64) []ir.Value {
	add := func(v ir.Value) {
		if v == ir.NoValue {
			return
		}
		if _, ok := consts[v]; ok {
			return
		}
		dst = append(dst, v)
	}
	switch t.Kind {
	case ir.TermBranch:
		add(t.A)
		if !t.B.IsConst {
			add(t.B.Value)
		}
	case ir.TermBounds:
		add(t.A)
		add(t.B.Value)
	case ir.TermIfNull, ir.TermReturn, ir.TermTailCall:
		add(t.A)
	}
	return dst
}

// findConsts returns the values defined by constants, directly or through a
// move, so the selector can use them as immediates instead of spending a
// register on each.
func findConsts(order []*ir.Block) map[ir.Value]int64 {
	consts := make(map[ir.Value]int64)
	for _, b := range order {
		for _, op := range b.Ops {
			switch op.Kind {
			case ir.OpConst:
				consts[op.Dst] = op.Imm
			case ir.OpMov:
				if len(op.Args) == 1 {
					if c, ok := constOperand(op.Args[0], consts); ok {
						consts[op.Dst] = c
					}
				}
			}
		}
	}
	return consts
}

// constOperand reports whether o is a constant, directly or through a value
// defined by a constant.
func constOperand(o ir.Operand, consts map[ir.Value]int64) (int64, bool) {
	if o.IsConst {
		return o.Const, true
	}
	c, ok := consts[o.Value]
	return c, ok
}

// bitset is a set of dense value numbers.
type bitset []uint64

func newBitset(n int) bitset       { return make(bitset, (n+63)/64) }
func (s bitset) add(i int)         { s[i/64] |= 1 << (i % 64) }
func (s bitset) remove(i int)      { s[i/64] &^= 1 << (i % 64) }
func (s bitset) has(i int) bool    { return s[i/64]&(1<<(i%64)) != 0 }
func (s bitset) copyFrom(o bitset) { copy(s, o) }

// each calls f for every member in increasing order.
func (s bitset) each(f func(int)) {
	for w, word := range s {
		for word != 0 {
			i := bits.TrailingZeros64(word)
			f(w*64 + i)
			word &^= 1 << i
		}
	}
}

// allocate assigns every live value of the program a register or a spill
// slot.
func allocate(p *ir.Program, order []*ir.Block) (*allocation, error) {
	a := &allocation{
		order:  order,
		consts: findConsts(order),
		locs:   make(map[ir.Value]location),
		dead:   make(map[ir.Value]bool),
	}

	// Dense value numbering bound and the defining op of each value.
	// defPos[v] is 0 for a value that is never defined (definitions are at
	// odd positions).
	nvals := 0
	index := make(map[string]int, len(order))
	for i, b := range order {
		index[b.Label] = i
		for _, op := range b.Ops {
			if op.Dst != ir.NoValue {
				if op.Dst < 0 {
					return nil, errorf(op.Pos, "negative value number %d", op.Dst)
				}
				nvals = max(nvals, int(op.Dst)+1)
			}
		}
	}
	defPos := make([]int, nvals)
	defOp := make([]*ir.Op, nvals)

	// Linear positions.
	pos := 0
	blockStart := make([]int, len(order))
	blockEnd := make([]int, len(order))
	a.opPos = make([][]int, len(order))
	a.termPos = make([]int, len(order))
	var calls []int
	for i, b := range order {
		blockStart[i] = pos
		pos += 2
		a.opPos[i] = make([]int, len(b.Ops))
		for k, op := range b.Ops {
			a.opPos[i][k] = pos
			if op.Dst != ir.NoValue {
				if defPos[op.Dst] != 0 {
					return nil, errorf(op.Pos, "value %%%d defined twice", op.Dst)
				}
				defPos[op.Dst] = pos + 1
				defOp[op.Dst] = op
			}
			if isCall(op.Kind) {
				calls = append(calls, pos)
			}
			pos += 2
		}
		a.termPos[i] = pos
		if b.Term.Kind == ir.TermTailCall {
			calls = append(calls, pos)
		}
		pos += 2
		blockEnd[i] = pos
		pos += 2
	}

	// Per-block uses (before any def in the block) and defs.
	var scratch []ir.Value
	use := make([]bitset, len(order))
	def := make([]bitset, len(order))
	for i, b := range order {
		use[i], def[i] = newBitset(nvals), newBitset(nvals)
		read := func(vs []ir.Value, at ir.Pos) error {
			for _, v := range vs {
				if v < 0 || int(v) >= nvals || defPos[v] == 0 {
					return errorf(at, "use of undefined value %%%d", v)
				}
				if !def[i].has(int(v)) {
					use[i].add(int(v))
				}
			}
			return nil
		}
		for _, op := range b.Ops {
			if err := read(opUses(scratch[:0], op, a.consts), op.Pos); err != nil {
				return nil, err
			}
			if op.Dst != ir.NoValue {
				def[i].add(int(op.Dst))
			}
		}
		if err := read(termUses(scratch[:0], &b.Term, a.consts), b.Term.Pos); err != nil {
			return nil, err
		}
	}

	// Liveness: iterate to a fixed point, in reverse layout order so an
	// acyclic program converges in one sweep plus a confirming one.
	liveIn := make([]bitset, len(order))
	liveOut := make([]bitset, len(order))
	for i := range order {
		liveIn[i], liveOut[i] = newBitset(nvals), newBitset(nvals)
	}
	tmp := newBitset(nvals)
	for changed := true; changed; {
		changed = false
		for i := len(order) - 1; i >= 0; i-- {
			out := liveOut[i]
			for _, l := range successors(&order[i].Term) {
				for w, word := range liveIn[index[l]] {
					out[w] |= word
				}
			}
			for w := range tmp {
				tmp[w] = use[i][w] | (out[w] &^ def[i][w])
			}
			if !slices.Equal(tmp, liveIn[i]) {
				liveIn[i].copyFrom(tmp)
				changed = true
			}
		}
	}

	// Intervals, by value.
	store := make([]interval, nvals)
	ivs := make([]*interval, nvals)
	get := func(v ir.Value) *interval {
		iv := ivs[v]
		if iv == nil {
			d := defPos[v]
			iv = &store[v]
			*iv = interval{v: v, start: d, end: d}
			ivs[v] = iv
		}
		return iv
	}
	used := newBitset(nvals)
	for i, b := range order {
		for k, op := range b.Ops {
			for _, v := range opUses(scratch[:0], op, a.consts) {
				iv := get(v)
				iv.end = max(iv.end, a.opPos[i][k])
				used.add(int(v))
			}
		}
		for _, v := range termUses(scratch[:0], &b.Term, a.consts) {
			iv := get(v)
			iv.end = max(iv.end, a.termPos[i])
			used.add(int(v))
		}
		liveIn[i].each(func(v int) {
			iv := get(ir.Value(v))
			iv.start = min(iv.start, blockStart[i])
		})
		liveOut[i].each(func(v int) {
			iv := get(ir.Value(v))
			iv.end = max(iv.end, blockEnd[i])
		})
	}
	for v, d := range defPos {
		if d == 0 {
			continue
		}
		if _, c := a.consts[ir.Value(v)]; !c && !used.has(v) {
			a.dead[ir.Value(v)] = true
		}
	}

	var list []*interval
	for _, iv := range ivs {
		if iv != nil {
			list = append(list, iv)
		}
	}
	slices.SortFunc(list, func(x, y *interval) int {
		if c := cmp.Compare(x.start, y.start); c != 0 {
			return c
		}
		return cmp.Compare(x.v, y.v)
	})
	for _, iv := range list {
		// A call at c clobbers the interval if the value is defined before
		// c and still needed after it. The call's own arguments end at c
		// and its result starts at c+1, so neither counts.
		j, _ := slices.BinarySearch(calls, iv.start+1)
		iv.crossCall = j < len(calls) && calls[j] < iv.end
		iv.def = defOp[iv.v]
	}
	for i, b := range order {
		for k, op := range b.Ops {
			if op.Dst == ir.NoValue || len(op.Args) == 0 || op.Args[0].IsConst || !twoAddress(op.Kind) {
				continue
			}
			src, dst := intervalOf(ivs, op.Args[0].Value), ivs[op.Dst]
			if src != nil && dst != nil && dst.crossCall && src.end == a.opPos[i][k] {
				src.preferCallee = true
			}
		}
	}

	a.intervals = list
	a.linearScan(list)
	a.assignSlots(list)
	return a, nil
}

// intervalOf returns the interval of v, or nil when v has none (a
// constant, or a value that is not defined).
func intervalOf(ivs []*interval, v ir.Value) *interval {
	if v < 0 || int(v) >= len(ivs) {
		return nil
	}
	return ivs[v]
}

// hint returns the register that makes the defining op cheapest: the
// context's incoming r1, or the register of the first operand of a
// two-address ALU op (which often dies there), saving a move.
func (a *allocation) hint(op *ir.Op) (asm.Register, bool) {
	if op == nil {
		return 0, false
	}
	switch op.Kind {
	case ir.OpCtx:
		return asm.R1, true
	}
	if twoAddress(op.Kind) && len(op.Args) > 0 && !op.Args[0].IsConst {
		if l, ok := a.locs[op.Args[0].Value]; ok && !l.spilled {
			return l.reg, true
		}
	}
	return 0, false
}

// twoAddress reports whether the selector computes op's result in place of
// its first operand (d = a; d op= b), so sharing their register saves the
// copy.
func twoAddress(k ir.Kind) bool {
	switch k {
	case ir.OpAdd, ir.OpSub, ir.OpMul, ir.OpAnd, ir.OpOr, ir.OpXor, ir.OpShl, ir.OpShr, ir.OpArsh,
		ir.OpSwap16, ir.OpSwap32, ir.OpPacketAdd, ir.OpMov:
		return true
	}
	return false
}

// linearScan assigns registers to the intervals, sorted by start.
func (a *allocation) linearScan(list []*interval) {
	var active []*interval // sorted by end
	var owner [asm.R10 + 1]*interval
	for _, iv := range list {
		// Expire intervals that ended before this one starts.
		n := 0
		for _, o := range active {
			if o.end < iv.start {
				owner[a.locs[o.v].reg] = nil
				continue
			}
			active[n] = o
			n++
		}
		active = active[:n]

		var cands []asm.Register
		switch {
		case iv.crossCall:
			cands = calleeSaved
		case iv.preferCallee:
			cands = calleeFirst
		default:
			cands = callerFirst
		}
		reg, ok := asm.Register(0), false
		if h, hok := a.hint(iv.def); hok && slices.Contains(cands, h) && owner[h] == nil {
			reg, ok = h, true
		}
		for _, r := range cands {
			if ok {
				break
			}
			if owner[r] == nil {
				reg, ok = r, true
			}
		}
		if !ok {
			// Spill whichever of the current interval and the active ones
			// holding a candidate register lives longest.
			var victim *interval
			for _, o := range active {
				r := a.locs[o.v].reg
				if !slices.Contains(cands, r) {
					continue
				}
				if victim == nil || o.end > victim.end || (o.end == victim.end && o.v > victim.v) {
					victim = o
				}
			}
			if victim == nil || victim.end <= iv.end {
				a.locs[iv.v] = location{spilled: true}
				continue
			}
			reg = a.locs[victim.v].reg
			a.locs[victim.v] = location{spilled: true}
			active = slices.DeleteFunc(active, func(o *interval) bool { return o == victim })
		}
		a.locs[iv.v] = location{reg: reg}
		owner[reg] = iv
		active = append(active, iv)
	}
}

// assignSlots gives every spilled value a stack slot, reusing the slot of a
// value whose interval has ended.
func (a *allocation) assignSlots(list []*interval) {
	type slotUse struct{ end int }
	var slots []slotUse // by slot index
	for _, iv := range list {
		l, ok := a.locs[iv.v]
		if !ok || !l.spilled {
			continue
		}
		idx := -1
		for i, s := range slots {
			if s.end < iv.start {
				idx = i
				break
			}
		}
		if idx < 0 {
			idx = len(slots)
			slots = append(slots, slotUse{})
		}
		slots[idx].end = iv.end
		l.slot = int16(-8 * (idx + 1))
		a.locs[iv.v] = l
	}
	a.spills = len(slots)
}
