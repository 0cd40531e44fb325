package verifier

import (
	"fmt"

	"github.com/cilium/ebpf/asm"
)

// insn is one decoded instruction.
type insn struct {
	ins  asm.Instruction
	slot int // index in 8-byte slots, as the listing numbers it
	// target is the instruction index a jump goes to, -1 otherwise.
	target int
	// mapIdx is the map a map load references, -1 otherwise.
	mapIdx int
}

// program is a program decoded for analysis.
type program struct {
	p     *Program
	insns []insn
	slots int
	// prunePoint and jmpPoint mark instructions where the kernel compares
	// states (conditional jumps, jump targets, instructions after calls)
	// and where it records jump history (jump targets, after calls).
	prunePoint []bool
	jmpPoint   []bool
}

func (pr *program) errorAt(i int, format string, args ...any) *Error {
	e := &Error{Program: pr.p.Name, Msg: fmt.Sprintf(format, args...)}
	if i >= 0 && i < len(pr.insns) {
		in := pr.insns[i].ins
		e.Insn = pr.insns[i].slot
		e.Text = fmt.Sprint(in)
		// A line-info record (BTF, as an ELF object carries positions)
		// holds until the next one.
		for j := i; j >= 0; j-- {
			if src := pr.insns[j].ins.Source(); src != nil {
				e.Source = src.String()
				break
			}
		}
	}
	return e
}

func isJump(in *asm.Instruction) bool {
	c := in.OpCode.Class()
	return c == asm.JumpClass || c == asm.Jump32Class
}

// isBranch reports whether in transfers control within the program
// (unconditional or conditional jump; not call or exit).
func isBranch(in *asm.Instruction) bool {
	if !isJump(in) {
		return false
	}
	op := in.OpCode.JumpOp()
	return op != asm.Call && op != asm.Exit
}

// decode checks the program's structure: every instruction known, jumps
// in range and onto instruction boundaries, maps resolved, no fall-through
// off the end, no unreachable instruction, no back edge. It returns the
// decoded program, or the structural errors (in which case the program is
// not interpreted).
func decode(p *Program, maps map[string]int) (*program, []*Error) {
	pr := &program{p: p, insns: make([]insn, 0, len(p.Insns))}
	var errs []*Error
	symbols := map[string]int{}
	slot := 0
	for i, in := range p.Insns {
		pr.insns = append(pr.insns, insn{ins: in, slot: slot, target: -1, mapIdx: -1})
		if s := in.Symbol(); s != "" {
			symbols[s] = i
		}
		slot += int(in.Size() / asm.InstructionSize)
	}
	pr.slots = slot
	// slotIdx maps a slot to its instruction, -1 for the second half of
	// an ldimm64.
	slotIdx := make([]int, slot)
	for i := range slotIdx {
		slotIdx[i] = -1
	}
	for i, d := range pr.insns {
		slotIdx[d.slot] = i
	}
	n := len(pr.insns)
	if n == 0 {
		return nil, []*Error{{Program: p.Name, Msg: "the program has no instructions"}}
	}
	for i := range pr.insns {
		d := &pr.insns[i]
		in := &d.ins
		if msg := unsupported(in); msg != "" {
			errs = append(errs, pr.errorAt(i, "%s", msg))
			continue
		}
		if in.IsLoadFromMap() {
			ref := in.Reference()
			mi, ok := maps[ref]
			if !ok {
				if ref == "" {
					errs = append(errs, pr.errorAt(i, "map load names no map (it must reference a map of the collection by name)"))
				} else {
					errs = append(errs, pr.errorAt(i, "map load references %q, which is not a map of the collection", ref))
				}
				continue
			}
			d.mapIdx = mi
		}
		if !isBranch(in) {
			continue
		}
		target := -1
		gotol := in.OpCode.Class() == asm.Jump32Class && in.OpCode.JumpOp() == asm.Ja
		// As cilium/ebpf encodes them: a jump resolves its reference only
		// while its offset is unset (-1); otherwise the offset counts.
		unresolved := in.Offset == -1 || (gotol && in.Constant == -1)
		if ref := in.Reference(); ref != "" && unresolved {
			t, ok := symbols[ref]
			if !ok {
				errs = append(errs, pr.errorAt(i, "jump to %q, which is not a label of this program", ref))
				continue
			}
			target = t
		} else {
			off := int(in.Offset)
			if gotol {
				off = int(in.Constant) // gotol
			}
			ts := d.slot + 1 + off
			if ts < 0 || ts >= pr.slots {
				errs = append(errs, pr.errorAt(i, "jump out of range: target slot %d is outside the program's %d slots", ts, pr.slots))
				continue
			}
			t := slotIdx[ts]
			if t < 0 {
				errs = append(errs, pr.errorAt(i, "jump into the middle of the ldimm64 at slot %d", ts-1))
				continue
			}
			target = t
		}
		d.target = target
	}
	if len(errs) > 0 {
		return nil, errs
	}
	last := &pr.insns[n-1].ins
	if !(isJump(last) && (last.OpCode.JumpOp() == asm.Exit || last.OpCode.JumpOp() == asm.Ja)) {
		return nil, []*Error{pr.errorAt(n-1, "the last instruction is neither exit nor a jump: execution would fall off the end of the program")}
	}
	if errs := pr.checkGraph(); len(errs) > 0 {
		return nil, errs
	}
	return pr, nil
}

// unsupported explains why an instruction is outside what this verifier
// analyses, or returns "".
func unsupported(in *asm.Instruction) string {
	op := in.OpCode
	if in.Dst > asm.R10 || in.Src > asm.R10 {
		return fmt.Sprintf("invalid register r%d", max(in.Dst, in.Src))
	}
	switch cls := op.Class(); cls {
	case asm.LdClass:
		if op.IsDWordLoad() {
			switch in.Src {
			case 0, asm.PseudoMapFD, asm.PseudoMapValue:
				return ""
			case asm.PseudoFunc:
				return "loading a function pointer (callbacks) is not supported by ebpfc's verifier"
			}
			return fmt.Sprintf("ldimm64 with source %d (a BTF or map-index pseudo load) is not supported by ebpfc's verifier", in.Src)
		}
		return "legacy packet loads (LD_ABS, LD_IND) are not supported by ebpfc's verifier; read the packet through ctx data and data_end"
	case asm.LdXClass:
		if op.Mode() == asm.MemMode || op.Mode() == asm.MemSXMode {
			return ""
		}
	case asm.StClass:
		if op.Mode() == asm.MemMode {
			return ""
		}
	case asm.StXClass:
		if op.Mode() == asm.MemMode || op.Mode() == asm.AtomicMode {
			return ""
		}
	case asm.ALUClass, asm.ALU64Class:
		switch op.ALUOp() {
		case asm.Add, asm.Sub, asm.Mul, asm.Div, asm.SDiv, asm.Or, asm.And, asm.LSh, asm.RSh, asm.Neg,
			asm.Mod, asm.SMod, asm.Xor, asm.Mov, asm.MovSX8, asm.MovSX16, asm.MovSX32, asm.ArSh, asm.Swap:
			return ""
		}
	case asm.JumpClass, asm.Jump32Class:
		jop := op.JumpOp()
		if jop == asm.Call {
			switch {
			case in.Src == asm.PseudoCall:
				return "bpf-to-bpf calls are not supported by ebpfc's verifier (ebpfc does not emit them); inline the function or use a tail call"
			case in.Src == asm.PseudoKfuncCall:
				return "kfunc calls are not supported by ebpfc's verifier"
			case cls == asm.Jump32Class:
				return "invalid call encoding (JMP32 class)"
			}
			return ""
		}
		if jop == asm.Exit && cls == asm.JumpClass {
			return ""
		}
		if _, ok := negatedJump[jop]; ok || jop == asm.Ja {
			return ""
		}
	}
	return fmt.Sprintf("unknown or unsupported opcode %#x", uint16(op))
}

// checkGraph finds unreachable instructions and back edges with a
// depth-first walk from the entry, and marks the prune and jump points.
func (pr *program) checkGraph() []*Error {
	n := len(pr.insns)
	pr.prunePoint = make([]bool, n)
	pr.jmpPoint = make([]bool, n)
	const (
		white = iota
		grey
		black
	)
	color := make([]uint8, n)
	var errs []*Error
	type frame struct {
		i    int
		succ []int
		next int
	}
	succs := func(i int) []int {
		in := &pr.insns[i].ins
		if !isJump(in) {
			return []int{i + 1}
		}
		switch op := in.OpCode.JumpOp(); op {
		case asm.Exit:
			return nil
		case asm.Call:
			if i+1 < n {
				pr.prunePoint[i+1] = true
				pr.jmpPoint[i+1] = true
			}
			return []int{i + 1}
		case asm.Ja:
			t := pr.insns[i].target
			pr.prunePoint[t] = true
			pr.jmpPoint[t] = true
			return []int{t}
		default:
			t := pr.insns[i].target
			pr.prunePoint[i] = true
			pr.prunePoint[t] = true
			pr.jmpPoint[t] = true
			return []int{i + 1, t}
		}
	}
	stack := []frame{{i: 0, succ: succs(0)}}
	color[0] = grey
	for len(stack) > 0 {
		f := &stack[len(stack)-1]
		if f.next == len(f.succ) {
			color[f.i] = black
			stack = stack[:len(stack)-1]
			continue
		}
		s := f.succ[f.next]
		f.next++
		if s >= n {
			errs = append(errs, pr.errorAt(f.i, "execution falls off the end of the program after this instruction"))
			continue
		}
		switch color[s] {
		case grey:
			errs = append(errs, pr.errorAt(f.i, "back edge to instruction %d: loops are not allowed (ebpfc's verifier refuses every loop, even bounded ones the kernel accepts)", pr.insns[s].slot))
		case white:
			color[s] = grey
			stack = append(stack, frame{i: s, succ: succs(s)})
		}
	}
	for i := range color {
		if color[i] == white {
			errs = append(errs, pr.errorAt(i, "unreachable instruction: no path from the program's entry leads here"))
			break // the kernel, too, reports the first one
		}
	}
	return errs
}
