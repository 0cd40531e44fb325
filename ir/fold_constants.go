package ir

import (
	"fmt"
	"math/bits"
)

// foldNodeConstants specialises the module to its node.
//
// Needs: every OpParam names a constant in Module.Consts (an unknown name is
// an error).
//
// Guarantees: no OpParam is left; an op whose operands are all known is an
// OpConst; known values are used as constant operands wherever an Operand
// allows it, so their OpConst becomes dead for eliminateDeadCode; a
// TermBranch comparing two known values is a TermJump, and a TermReturn of a
// known value returns the immediate. Blocks the folded branches no longer
// reach stay for simplifyCFG.
func foldNodeConstants(m *Module) error {
	for _, p := range m.Programs {
		if err := foldProgram(m, p); err != nil {
			return err
		}
	}
	return nil
}

func foldProgram(m *Module, p *Program) error {
	known := map[Value]int64{}
	operand := func(o Operand) (int64, bool) {
		if o.IsConst {
			return o.Const, true
		}
		k, ok := known[o.Value]
		return k, ok
	}
	// Values are defined before their uses in dominance order, so one walk in
	// reverse postorder knows every operand it can know. Ops in unreachable
	// blocks are folded too, in block order, for a deterministic result.
	g := buildCFG(p)
	order := append([]int(nil), g.rpo...)
	for i := range p.Blocks {
		if !g.reachable(i) {
			order = append(order, i)
		}
	}
	for _, bi := range order {
		b := p.Blocks[bi]
		for _, op := range b.Ops {
			if op.Kind == OpParam {
				k, ok := lookupConst(m.Consts, op.Sym)
				if !ok {
					return fmt.Errorf("%v: program %s: no node constant called %q", op.Pos, p.Name, op.Sym)
				}
				*op = Op{Kind: OpConst, Dst: op.Dst, Type: Scalar, Imm: k.Value, Pos: op.Pos}
			}
			for i, a := range op.Args {
				if k, ok := operand(a); ok && !a.IsConst {
					op.Args[i] = C(k)
				}
			}
			if v, ok := evalOp(op, operand); ok && op.Dst != NoValue {
				*op = Op{Kind: OpConst, Dst: op.Dst, Type: Scalar, Imm: v, Pos: op.Pos}
			}
			if op.Kind == OpConst && op.Dst != NoValue {
				known[op.Dst] = op.Imm
			}
		}
		t := &b.Term
		if k, ok := operand(t.B); ok && t.Kind == TermBranch && !t.B.IsConst {
			t.B = C(k)
		}
		switch a, aok := known[t.A]; {
		case t.Kind == TermBranch && aok && t.B.IsConst:
			to := t.Else
			if evalCond(t.Cond, a, t.B.Const) {
				to = t.Then
			}
			*t = Term{Kind: TermJump, A: NoValue, B: Operand{Value: NoValue}, Then: to, Pos: t.Pos}
		case t.Kind == TermReturn && aok:
			*t = Term{Kind: TermReturn, A: NoValue, B: Operand{Value: NoValue}, Imm: a, Pos: t.Pos}
		}
	}
	return nil
}

// evalOp computes op's result when every operand is known and the op is
// pure arithmetic. Shifts by more than 63 are left alone: the kernel rejects
// them and folding would hide it.
func evalOp(op *Op, operand func(Operand) (int64, bool)) (int64, bool) {
	var x [2]int64
	if len(op.Args) > len(x) {
		return 0, false
	}
	for i, a := range op.Args {
		k, ok := operand(a)
		if !ok {
			return 0, false
		}
		x[i] = k
	}
	a, b := x[0], x[1]
	switch n := len(op.Args); {
	case n == 1 && op.Kind == OpMov:
		return a, true
	case n == 1 && op.Kind == OpSwap16:
		return int64(bits.ReverseBytes16(uint16(a))), true
	case n == 1 && op.Kind == OpSwap32:
		return int64(bits.ReverseBytes32(uint32(a))), true
	case n != 2:
		return 0, false
	}
	switch op.Kind {
	case OpAdd:
		return a + b, true
	case OpSub:
		return a - b, true
	case OpMul:
		return a * b, true
	case OpAnd:
		return a & b, true
	case OpOr:
		return a | b, true
	case OpXor:
		return a ^ b, true
	}
	if b < 0 || b > 63 {
		return 0, false
	}
	switch op.Kind {
	case OpShl:
		return a << b, true
	case OpShr:
		return int64(uint64(a) >> b), true
	case OpArsh:
		return a >> b, true
	}
	return 0, false
}

// EvalCond reports whether a TermBranch with condition c goes to Then when
// its operands are a and b, as foldNodeConstants decides it.
func EvalCond(c Cond, a, b int64) bool { return evalCond(c, a, b) }

// evalCond evaluates a TermBranch comparison on known operands.
func evalCond(c Cond, a, b int64) bool {
	ua, ub := uint64(a), uint64(b)
	switch c {
	case Eq:
		return a == b
	case Ne:
		return a != b
	case Lt:
		return ua < ub
	case Le:
		return ua <= ub
	case Gt:
		return ua > ub
	case Ge:
		return ua >= ub
	case SLt:
		return a < b
	case SLe:
		return a <= b
	case SGt:
		return a > b
	case SGe:
		return a >= b
	case Set:
		return a&b != 0
	}
	return false
}
