package ir

import (
	"maps"
	"slices"
	"strings"
)

// facts are what the verifier will know on entry to a block, on every path
// that reaches it: how many bytes past each packet pointer a Bounds has
// proven, and which lookup results an IfNull has proven non-null. They are
// established only on edges (the ok edge of a Bounds or an IfNull) and never
// killed, since values never change.
type facts struct {
	bounds  map[Value]int64
	nonNull map[Value]bool
}

func (f *facts) clone() *facts {
	return &facts{bounds: maps.Clone(f.bounds), nonNull: maps.Clone(f.nonNull)}
}

// meet keeps what holds on both f and g.
func (f *facts) meet(g *facts) {
	for v, n := range f.bounds {
		if m, ok := g.bounds[v]; !ok {
			delete(f.bounds, v)
		} else if m < n {
			f.bounds[v] = m
		}
	}
	for v := range f.nonNull {
		if !g.nonNull[v] {
			delete(f.nonNull, v)
		}
	}
}

// edgeFacts returns the facts on the edge from block b (with entry facts in)
// to its successor number i in edge order.
func edgeFacts(in *facts, t *Term, i int) *facts {
	out := in.clone()
	switch {
	case t.Kind == TermBounds && i == 0:
		out.bounds[t.A] = max(out.bounds[t.A], t.Imm)
	case t.Kind == TermIfNull && i == 1:
		out.nonNull[t.A] = true
	}
	return out
}

// computeFacts fills c.facts with the facts at the entry of each reachable
// block. The graph is acyclic (Check reports it otherwise), so one visit in
// reverse postorder sees every predecessor first; were there a cycle, an
// unvisited predecessor is skipped, which only loosens the check of a
// program that is already reported.
func (c *checker) computeFacts() {
	g := c.g
	c.facts = make([]*facts, len(c.prog.Blocks))
	c.facts[0] = &facts{bounds: map[Value]int64{}, nonNull: map[Value]bool{}}
	for _, b := range g.rpo {
		if b == 0 {
			continue
		}
		var in *facts
		for _, p := range uniq(g.preds[b]) {
			if c.facts[p] == nil {
				continue
			}
			t := &c.prog.Blocks[p].Term
			for i, l := range t.successors() {
				if j, ok := g.index[l]; !ok || j != b {
					continue
				}
				e := edgeFacts(c.facts[p], t, i)
				if in == nil {
					in = e
				} else {
					in.meet(e)
				}
			}
		}
		if in == nil {
			in = &facts{bounds: map[Value]int64{}, nonNull: map[Value]bool{}}
		}
		c.facts[b] = in
	}
}

// uniq returns the distinct elements of s, sorted.
func uniq(s []int) []int {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// lookupConst finds the node constant called name in consts, which are
// sorted by name.
func lookupConst(consts []Const, name string) (Const, bool) {
	i, ok := slices.BinarySearchFunc(consts, name, func(k Const, name string) int { return strings.Compare(k.Name, name) })
	if !ok {
		return Const{}, false
	}
	return consts[i], true
}
