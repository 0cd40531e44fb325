package verifier

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf/asm"
)

// tailEdge is a tail call with a constant index into a filled slot.
type tailEdge struct {
	site int // instruction index of the call in the caller
	to   int // callee's program index
}

// checkTailCalls follows the tail calls the exploration found with a
// constant index through the program arrays' slots, and reports chains
// longer than MaxTailCallChain and cycles (which are unbounded). Calls
// with an index that is not constant cannot be followed and are not
// counted. Each bad chain is reported once, at the call that starts it
// in a program no other program tail-calls (or, for a cycle nothing
// enters, in its first program).
func checkTailCalls(c *Collection, maps map[string]int, rep *Report) {
	idx := make(map[string]int, len(c.Programs))
	for i, p := range c.Programs {
		idx[p.Name] = i
	}
	n := len(c.Programs)
	edges := make([][]tailEdge, n)
	indeg := make([]int, n)
	for i, r := range rep.Programs {
		for _, tc := range r.tailCalls {
			if tc.index < 0 || tc.mapIdx < 0 {
				continue
			}
			m := c.Maps[tc.mapIdx]
			if tc.index >= int64(len(m.Slots)) || m.Slots[tc.index] == "" {
				continue // an empty slot: the call falls through
			}
			to, ok := idx[m.Slots[tc.index]]
			if !ok {
				r.Errors = append(r.Errors, errorIn(c.Programs[i], tc.insn,
					fmt.Sprintf("tail call into slot %d of %s, which names program %q: no such program in the collection", tc.index, m.Name, m.Slots[tc.index])))
				continue
			}
			edges[i] = append(edges[i], tailEdge{tc.insn, to})
			indeg[to]++
		}
	}
	const unbounded = 1 << 30
	depth := make([]int, n)
	color := make([]uint8, n)
	next := make([]int, n)
	site := make([]int, n)
	var visit func(p int) int
	visit = func(p int) int {
		switch color[p] {
		case 2:
			return depth[p]
		case 1:
			return unbounded
		}
		color[p] = 1
		next[p], site[p] = -1, -1
		best := 0
		for _, e := range edges[p] {
			d := visit(e.to)
			if d < unbounded {
				d++
			}
			if d > best {
				best, next[p], site[p] = d, e.to, e.site
			}
		}
		color[p] = 2
		depth[p] = best
		return best
	}
	for p := range n {
		visit(p)
	}
	bad := func(p int) bool { return depth[p] > MaxTailCallChain }
	reported := false
	for p := range n {
		if bad(p) && indeg[p] == 0 {
			reportChain(c, rep, p, next, site, depth[p] >= unbounded)
			reported = true
		}
	}
	if !reported {
		for p := range n {
			if bad(p) {
				reportChain(c, rep, p, next, site, depth[p] >= unbounded)
				break
			}
		}
	}
}

func reportChain(c *Collection, rep *Report, p int, next, site []int, cyclic bool) {
	var names []string
	seen := map[int]bool{}
	q := p
	for q >= 0 && len(names) <= MaxTailCallChain+1 {
		names = append(names, c.Programs[q].Name)
		if seen[q] {
			break
		}
		seen[q] = true
		q = next[q]
	}
	chain := strings.Join(names, " -> ")
	var msg string
	if cyclic {
		msg = fmt.Sprintf("tail calls form a cycle (%s): the chain is unbounded, and the kernel stops after %d tail calls", chain, MaxTailCallChain)
	} else {
		msg = fmt.Sprintf("a chain of %d tail calls starts here (%s); the kernel performs at most %d", len(names)-1, chain, MaxTailCallChain)
	}
	rep.Programs[p].Errors = append(rep.Programs[p].Errors, errorIn(c.Programs[p], site[p], msg))
}

// errorIn is an error at instruction index i of p.
func errorIn(p *Program, i int, msg string) *Error {
	pr := &program{p: p}
	slot := 0
	for _, in := range p.Insns {
		pr.insns = append(pr.insns, insn{ins: in, slot: slot})
		slot += int(in.Size() / asm.InstructionSize)
	}
	return pr.errorAt(i, "%s", msg)
}
