package ir

// eliminateDeadCode removes ops whose value nobody uses.
//
// Needs: nothing beyond Check's invariants.
//
// Guarantees: every op left either has a side effect (ctx, which the entry
// must keep, stores, atomics, ctx stores, map updates and deletes) or
// defines a value that an op or terminator uses. Loads, lookups and the
// clock have no side effect, so an unused one goes.
func eliminateDeadCode(m *Module) error {
	for _, p := range m.Programs {
		for {
			used := usedValues(p)
			removed := false
			for _, b := range p.Blocks {
				kept := b.Ops[:0]
				for _, op := range b.Ops {
					if hasSideEffect(op.Kind) || op.Dst != NoValue && used[op.Dst] {
						kept = append(kept, op)
					} else {
						removed = true
					}
				}
				clear(b.Ops[len(kept):])
				b.Ops = kept
			}
			if !removed {
				break
			}
		}
	}
	return nil
}

func hasSideEffect(k Kind) bool {
	switch k {
	case OpCtx, OpCtxStore, OpStore, OpAtomicAdd, OpMapUpdate, OpMapDelete, OpRingbufOutput:
		return true
	}
	return false
}

func usedValues(p *Program) map[Value]bool {
	used := map[Value]bool{}
	use := func(o Operand) {
		if !o.IsConst && o.Value != NoValue {
			used[o.Value] = true
		}
	}
	for _, b := range p.Blocks {
		for _, op := range b.Ops {
			for _, a := range op.Args {
				use(a)
			}
		}
		for _, o := range b.Term.operands() {
			use(o)
		}
	}
	return used
}
