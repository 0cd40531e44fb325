package ir

// simplifyCFG tidies the control flow, mostly after foldNodeConstants has
// turned branches into jumps.
//
// Needs: every branch target exists.
//
// Guarantees: every block is reachable from the entry; a conditional
// terminator (br, bounds, ifnull) whose edges both go to one block is a
// jump; no edge goes to an empty block that only jumps on (the edge goes to
// where that block jumps instead); a block reached only by a jump from its
// single predecessor is merged into it. The entry stays first and the other
// blocks keep their relative order, so the result depends only on the input.
//
// Facts (Bounds, IfNull) keep holding: threading skips a block that
// establishes nothing, merging keeps every path, and a conditional with both
// edges to one block established nothing there (the facts of its two edges
// meet).
func simplifyCFG(m *Module) error {
	for _, p := range m.Programs {
		if len(p.Blocks) == 0 {
			continue
		}
		for changed := true; changed; {
			changed = removeUnreachable(p)
			changed = collapseSameTarget(p) || changed
			changed = threadJumps(p) || changed
			changed = mergeBlocks(p) || changed
		}
	}
	return nil
}

func removeUnreachable(p *Program) bool {
	g := buildCFG(p)
	if len(g.rpo) == len(p.Blocks) {
		return false
	}
	kept := p.Blocks[:0]
	for i, b := range p.Blocks {
		if g.reachable(i) {
			kept = append(kept, b)
		}
	}
	clear(p.Blocks[len(kept):])
	p.Blocks = kept
	return true
}

func collapseSameTarget(p *Program) bool {
	changed := false
	for _, b := range p.Blocks {
		t := &b.Term
		switch t.Kind {
		case TermBranch, TermBounds, TermIfNull:
			if t.Then == t.Else {
				*t = Term{Kind: TermJump, A: NoValue, B: Operand{Value: NoValue}, Then: t.Then, Pos: t.Pos}
				changed = true
			}
		}
	}
	return changed
}

// threadJumps sends every edge to an empty jump-only block (other than the
// entry) straight to where that block jumps, following chains. A chain that
// loops back on itself is left alone.
func threadJumps(p *Program) bool {
	byLabel := map[string]*Block{}
	for _, b := range p.Blocks {
		if _, dup := byLabel[b.Label]; !dup {
			byLabel[b.Label] = b
		}
	}
	entry := p.Blocks[0].Label
	forward := func(l string) string {
		seen := map[string]bool{}
		for {
			b := byLabel[l]
			if b == nil || l == entry || len(b.Ops) > 0 || b.Term.Kind != TermJump || seen[l] {
				return l
			}
			seen[l] = true
			l = b.Term.Then
		}
	}
	changed := false
	for _, b := range p.Blocks {
		t := &b.Term
		for _, edge := range []*string{&t.Then, &t.Else} {
			if *edge == "" {
				continue
			}
			if to := forward(*edge); to != *edge && to != b.Label {
				*edge, changed = to, true
			}
		}
	}
	return changed
}

// mergeBlocks appends to a block ending in a jump the block it jumps to,
// when that block has no other incoming edge and is not the entry. Merging
// moves the merged block's out-edges to the block it joins, so the number of
// edges into every other block stays the same and one walk suffices.
func mergeBlocks(p *Program) bool {
	g := buildCFG(p)
	merged := make([]bool, len(p.Blocks))
	changed := false
	for i, a := range p.Blocks {
		for !merged[i] && a.Term.Kind == TermJump {
			j, ok := g.index[a.Term.Then]
			if !ok || j == 0 || j == i || merged[j] || len(g.preds[j]) != 1 {
				break
			}
			b := p.Blocks[j]
			a.Ops = append(a.Ops, b.Ops...)
			a.Term = b.Term
			merged[j], changed = true, true
		}
	}
	kept := p.Blocks[:0]
	for i, b := range p.Blocks {
		if !merged[i] {
			kept = append(kept, b)
		}
	}
	clear(p.Blocks[len(kept):])
	p.Blocks = kept
	return changed
}
