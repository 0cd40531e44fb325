package explain

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteJSON writes r as one indented JSON document.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes r for people: the flow and its ends, then per stage the
// programs entered with the blocks they ran grouped by CUE position, the
// tail calls and map lookups in order, the verdict, the rule that decided
// and the maps changed.
func WriteText(w io.Writer, r *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "flow: %s\n", r.Flow)
	fmt.Fprintf(&b, "  source:      %s\n", r.Source.describe())
	fmt.Fprintf(&b, "  destination: %s\n", r.Destination.describe())
	for _, st := range r.Stages {
		b.WriteByte('\n')
		writeStage(&b, st)
	}
	for _, p := range r.NotReached {
		fmt.Fprintf(&b, "\nnot reached: %s: %s (dropped before)\n", p.Node, p.Role)
	}
	fmt.Fprintf(&b, "\nverdict: %s\n", r.Verdict)
	_, err := io.WriteString(w, b.String())
	return err
}

func (p PeerInfo) describe() string {
	s := p.Address
	if p.Port != 0 {
		if strings.Contains(s, ":") {
			s = "[" + s + "]"
		}
		s += fmt.Sprintf(":%d", p.Port)
	}
	if p.Endpoint != "" {
		return fmt.Sprintf("%s, endpoint %s on %s (%s)", s, p.Endpoint, p.Node, p.Position)
	}
	return s + ", " + p.What
}

func writeStage(b *strings.Builder, st *Stage) {
	fmt.Fprintf(b, "%s: %s\n", st.Node, st.Role)
	for i, p := range st.Programs {
		where := ""
		switch {
		case i == 0:
			a := st.Attach
			where = fmt.Sprintf("%s %s on %s", a.Hook, a.Direction, a.Device)
			if a.Direction == "" {
				where = fmt.Sprintf("%s on %s", a.Hook, a.Device)
			}
		case p.TailCallSlot != nil:
			where = fmt.Sprintf("tail call slot %d", *p.TailCallSlot)
		default:
			where = "tail call"
		}
		fmt.Fprintf(b, "  %s: %s (%s)\n", p.Name, where, p.Position)
		writeProgram(b, p)
	}
	fmt.Fprintf(b, "  verdict: %s (%s), %d instructions\n", st.Verdict, st.Action, st.Insns)
	if st.Drop != "" {
		fmt.Fprintf(b, "  drop reason: %s\n", st.Drop)
	}
	switch {
	case st.Rule != nil:
		fmt.Fprintf(b, "  decided by: cookie %d, %s at %s\n", st.Rule.Cookie, st.Rule.summary(), st.Rule.Position)
		if st.Verdict == "pass" && st.Rule.Kind != "allow" {
			fmt.Fprintf(b, "    audited: the %s is counted but not enforced\n", st.Rule.Kind)
		}
	case st.Verdict == "pass" && st.Attach.Endpoint != "":
		fmt.Fprintf(b, "  decided by: no rule; no policy enforces this direction for %s, so it is open\n", st.Attach.Endpoint)
	}
	for _, c := range st.Changes {
		fmt.Fprintf(b, "  map change: %s %s: %s -> %s\n", c.Map, c.Key, values(c.Before), values(c.After))
	}
	for _, l := range st.Printk {
		fmt.Fprintf(b, "  trace_printk: %s\n", l)
	}
}

// writeProgram writes a program's blocks, grouped while their position
// stays the same, interleaved with its events; with instructions recorded
// it writes those instead of the blocks.
func writeProgram(b *strings.Builder, p *ProgramRun) {
	var group []string
	groupPos := ""
	flush := func() {
		if len(group) > 0 {
			fmt.Fprintf(b, "    at %s: %s\n", groupPos, strings.Join(group, " "))
		}
		group = group[:0]
	}
	bi, ei, ii := 0, 0, 0
	for bi < len(p.Path) || ei < len(p.Events) || ii < len(p.Insns) {
		// At one step the block comes first, then the instruction, then
		// the events it caused (recorded after the step).
		nextBlock, nextEvent, nextInsn := maxStep, maxStep, maxStep
		if bi < len(p.Path) {
			nextBlock = p.Path[bi].Step
		}
		if ei < len(p.Events) {
			nextEvent = p.Events[ei].Step
		}
		if ii < len(p.Insns) {
			nextInsn = p.Insns[ii].Step
		}
		switch {
		case bi < len(p.Path) && nextBlock <= nextInsn && nextBlock < nextEvent:
			blk := p.Path[bi]
			bi++
			if len(p.Insns) > 0 {
				fmt.Fprintf(b, "    %s:\n", blk.Label)
				continue
			}
			if blk.Position != groupPos {
				flush()
				groupPos = blk.Position
			}
			group = append(group, blk.Label)
		case ii < len(p.Insns) && nextInsn < nextEvent:
			in := p.Insns[ii]
			ii++
			fmt.Fprintf(b, "      %5d: %-40s ; %s\n", in.Index, in.Text, in.Position)
		default:
			flush()
			writeEvent(b, p.Events[ei])
			ei++
		}
	}
	flush()
}

const maxStep = int(^uint(0) >> 1)

func writeEvent(b *strings.Builder, e Event) {
	switch e.Kind {
	case "lookup":
		res := "miss"
		if e.Value != nil {
			res = e.Value.String()
		}
		fmt.Fprintf(b, "    lookup %s %s -> %s\n", e.Map, e.Key, res)
	case "tail-call":
		target := e.Target
		if target == "" {
			target = "(failed: empty slot)"
		}
		fmt.Fprintf(b, "    tail call %s[%d] -> %s\n", e.Map, *e.Slot, target)
	default:
		fmt.Fprintf(b, "    call %s -> %d (at %s)\n", e.Helper, *e.Ret, e.Position)
	}
}

func values(vs []Decoded) string {
	if vs == nil {
		return "absent"
	}
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.String()
	}
	return strings.Join(parts, " | ")
}
