package backend

import (
	"github.com/ebpfc/ebpfc/ir"
)

// layoutBlocks orders the reachable blocks of p for emission.
//
// The entry comes first. From each placed block the layout follows its
// fall-through successor (the "ok" edge of Bounds and IfNull, the "else" edge
// of a Branch, the target of a Jump or the fall-through of a TailCall) while
// that successor is unplaced, so the common path through a program reads top
// to bottom without jumps. When a chain ends, the next chain starts at the
// first unplaced reachable block in program order, which keeps the side
// blocks (drops, errors) in the order the lowering wrote them.
//
// Unreachable blocks are dropped: the kernel rejects a program with
// instructions no path reaches.
func layoutBlocks(p *ir.Program) ([]*ir.Block, error) {
	byLabel := make(map[string]*ir.Block, len(p.Blocks))
	for _, b := range p.Blocks {
		byLabel[b.Label] = b
	}
	if len(p.Blocks) == 0 {
		return nil, errorf(p.Pos, "program %s has no blocks", p.Name)
	}
	// Reachability first, so chains never pull in dead blocks.
	reach := map[*ir.Block]bool{p.Blocks[0]: true}
	work := []*ir.Block{p.Blocks[0]}
	for len(work) > 0 {
		b := work[len(work)-1]
		work = work[:len(work)-1]
		for _, l := range successors(&b.Term) {
			s, ok := byLabel[l]
			if !ok {
				return nil, errorf(b.Term.Pos, "block %s: jump to unknown block %q", b.Label, l)
			}
			if !reach[s] {
				reach[s] = true
				work = append(work, s)
			}
		}
	}

	placed := make(map[*ir.Block]bool, len(reach))
	order := make([]*ir.Block, 0, len(reach))
	next := 0 // scan position in p.Blocks for the next chain head
	for b := p.Blocks[0]; b != nil; {
		for b != nil && !placed[b] {
			placed[b] = true
			order = append(order, b)
			b = chainSuccessor(b, byLabel, placed)
		}
		b = nil
		for ; next < len(p.Blocks); next++ {
			if c := p.Blocks[next]; reach[c] && !placed[c] {
				b = c
				break
			}
		}
	}
	return order, nil
}

// chainSuccessor returns the block b should fall through to, preferring the
// natural fall-through edge and taking the other edge of a two-way
// terminator when only that one is still free (the branch is then inverted).
func chainSuccessor(b *ir.Block, byLabel map[string]*ir.Block, placed map[*ir.Block]bool) *ir.Block {
	var first, second string
	t := &b.Term
	switch t.Kind {
	case ir.TermJump, ir.TermTailCall:
		first = t.Then
	case ir.TermBranch, ir.TermIfNull:
		first, second = t.Else, t.Then
	case ir.TermBounds:
		first, second = t.Then, t.Else
	}
	for _, l := range []string{first, second} {
		if s := byLabel[l]; l != "" && s != nil && !placed[s] {
			return s
		}
	}
	return nil
}

// successors lists the labels a terminator may go to.
func successors(t *ir.Term) []string {
	switch t.Kind {
	case ir.TermJump, ir.TermTailCall:
		return []string{t.Then}
	case ir.TermBranch, ir.TermBounds, ir.TermIfNull:
		return []string{t.Then, t.Else}
	}
	return nil
}
