package ir

// cfg is the control-flow graph of a program, by block index, computed
// afresh by whoever needs it: passes change blocks, so it is never cached on
// the Program.
type cfg struct {
	prog  *Program
	index map[string]int // label → block index; the first block wins on duplicates
	succs [][]int        // per block, its successors in edge order (Then, Else), repeated when both edges go to one block
	preds [][]int        // per block, one entry per incoming edge
	rpo   []int          // reachable blocks in reverse postorder from the entry
	order []int          // block index → position in rpo, -1 when unreachable
	idom  []int          // immediate dominator; the entry's is itself, -1 when unreachable
	// backEdge reports whether some edge goes to a block that is on the
	// current depth-first path, that is whether the program loops.
	backEdge bool
}

// successors returns the labels t can go to, in edge order.
func (t *Term) successors() []string {
	switch t.Kind {
	case TermJump, TermTailCall:
		return []string{t.Then}
	case TermBranch, TermBounds, TermIfNull:
		return []string{t.Then, t.Else}
	}
	return nil
}

// operands returns the operands t reads, by kind; fields a kind does not
// use are ignored whatever they hold.
func (t *Term) operands() []Operand {
	switch t.Kind {
	case TermBranch, TermBounds:
		return []Operand{V(t.A), t.B}
	case TermIfNull, TermTailCall:
		return []Operand{V(t.A)}
	case TermReturn:
		if t.A != NoValue {
			return []Operand{V(t.A)}
		}
	}
	return nil
}

// buildCFG computes the graph of p. Edges to labels that do not exist are
// left out; Check reports them.
func buildCFG(p *Program) *cfg {
	n := len(p.Blocks)
	g := &cfg{
		prog:  p,
		index: make(map[string]int, n),
		succs: make([][]int, n),
		preds: make([][]int, n),
		order: make([]int, n),
		idom:  make([]int, n),
	}
	for i, b := range p.Blocks {
		if _, dup := g.index[b.Label]; !dup {
			g.index[b.Label] = i
		}
	}
	for i, b := range p.Blocks {
		for _, l := range b.Term.successors() {
			if j, ok := g.index[l]; ok {
				g.succs[i] = append(g.succs[i], j)
				g.preds[j] = append(g.preds[j], i)
			}
		}
	}
	for i := range g.order {
		g.order[i], g.idom[i] = -1, -1
	}
	if n == 0 {
		return g
	}
	// Depth-first search without recursion, so a long chain of blocks cannot
	// exhaust the stack.
	const (
		unseen = iota
		onPath
		done
	)
	state := make([]uint8, n)
	var post []int
	type frame struct{ b, next int }
	stack := []frame{{0, 0}}
	state[0] = onPath
	for len(stack) > 0 {
		f := &stack[len(stack)-1]
		if f.next < len(g.succs[f.b]) {
			s := g.succs[f.b][f.next]
			f.next++
			switch state[s] {
			case unseen:
				state[s] = onPath
				stack = append(stack, frame{s, 0})
			case onPath:
				g.backEdge = true
			}
			continue
		}
		state[f.b] = done
		post = append(post, f.b)
		stack = stack[:len(stack)-1]
	}
	for i := len(post) - 1; i >= 0; i-- {
		g.order[post[i]] = len(g.rpo)
		g.rpo = append(g.rpo, post[i])
	}
	g.computeDominators()
	return g
}

// computeDominators is the iterative algorithm of Cooper, Harvey and
// Kennedy, "A Simple, Fast Dominance Algorithm": small, and fast on the
// shallow graphs the lowering makes.
func (g *cfg) computeDominators() {
	g.idom[0] = 0
	for changed := true; changed; {
		changed = false
		for _, b := range g.rpo[1:] {
			newIdom := -1
			for _, p := range g.preds[b] {
				if g.idom[p] == -1 {
					continue
				}
				if newIdom == -1 {
					newIdom = p
				} else {
					newIdom = g.intersect(p, newIdom)
				}
			}
			if newIdom != g.idom[b] {
				g.idom[b] = newIdom
				changed = true
			}
		}
	}
}

func (g *cfg) intersect(a, b int) int {
	for a != b {
		for g.order[a] > g.order[b] {
			a = g.idom[a]
		}
		for g.order[b] > g.order[a] {
			b = g.idom[b]
		}
	}
	return a
}

func (g *cfg) reachable(b int) bool { return g.order[b] >= 0 }

// dominates reports whether every path from the entry to b passes through a.
func (g *cfg) dominates(a, b int) bool {
	if !g.reachable(a) || !g.reachable(b) {
		return false
	}
	for {
		if a == b {
			return true
		}
		if b == 0 {
			return false
		}
		b = g.idom[b]
	}
}
