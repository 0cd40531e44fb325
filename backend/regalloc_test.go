package backend

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/ebpfc/ebpfc/ir"
)

func mustAllocate(t *testing.T, p *ir.Program) *allocation {
	t.Helper()
	order, err := layoutBlocks(p)
	if err != nil {
		t.Fatal(err)
	}
	a, err := allocate(p, order)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// checkAllocation checks the allocator's invariants: values live across a
// call are in r6–r9 or spilled, scratch registers are never allocated, and
// overlapping intervals never share a register or a slot.
func checkAllocation(t *testing.T, name string, a *allocation) {
	t.Helper()
	for _, iv := range a.intervals {
		l := a.locs[iv.v]
		if l.spilled {
			if l.slot >= 0 || l.slot%8 != 0 || int(-l.slot) > 8*a.spills {
				t.Errorf("%s: %v spilled to bad slot %d", name, iv.v, l.slot)
			}
			continue
		}
		if l.reg == scratchA || l.reg == scratchB || l.reg == asm.RFP {
			t.Errorf("%s: %v allocated to reserved %v", name, iv.v, l.reg)
		}
		if iv.crossCall && (l.reg < asm.R6 || l.reg > asm.R9) {
			t.Errorf("%s: %v is live across a call in caller-saved %v", name, iv.v, l.reg)
		}
	}
	for i, x := range a.intervals {
		for _, y := range a.intervals[i+1:] {
			if x.end < y.start || y.end < x.start {
				continue
			}
			if a.locs[x.v] == a.locs[y.v] {
				t.Errorf("%s: overlapping %v [%d,%d] and %v [%d,%d] share %+v", name, x.v, x.start, x.end, y.v, y.start, y.end, a.locs[x.v])
			}
		}
	}
}

func TestRegallocInvariants(t *testing.T) {
	for _, m := range []*ir.Module{genLPMModule(), genSpillModule(), genTailCallModule(), genCounterModule(), manyLiveModule(20)} {
		for _, p := range m.Programs {
			checkAllocation(t, p.Name, mustAllocate(t, p))
		}
	}
}

func TestRegallocAcrossCalls(t *testing.T) {
	// In lpm_policy the source address (v8) and the destination port are
	// live across the map lookup; there is room for both in r6–r9.
	a := mustAllocate(t, genLPMModule().Programs[0])
	crossing := 0
	for _, iv := range a.intervals {
		if iv.crossCall {
			crossing++
			if l := a.locs[iv.v]; l.spilled {
				t.Errorf("%v spilled with callee-saved registers free", iv.v)
			}
		}
	}
	if crossing != 1 {
		t.Errorf("%d values live across the lookup, want 1 (the port)", crossing)
	}

	// In spill_heavy fourteen words and the clock are live across calls:
	// four fit r6–r9, the rest must be spilled.
	a = mustAllocate(t, genSpillModule().Programs[0])
	inRegs, spilled := 0, 0
	for _, iv := range a.intervals {
		if !iv.crossCall {
			continue
		}
		if a.locs[iv.v].spilled {
			spilled++
		} else {
			inRegs++
		}
	}
	if inRegs != 4 || spilled < spillWords+1-4 {
		t.Errorf("across calls: %d in registers, %d spilled; want 4 and at least %d", inRegs, spilled, spillWords+1-4)
	}
}

// manyLiveModule loads n words and sums them, so n values are live at once
// with no call in sight.
func manyLiveModule(n int) *ir.Module {
	pb := ir.NewProgram("many_live", ir.ProgSchedCLS, "tc", genPos(1))
	e := pb.Block("entry")
	ctx := e.Ctx(genPos(2))
	data := e.CtxLoad(genPos(3), ctx, "data")
	end := e.CtxLoad(genPos(4), ctx, "data_end")
	e.Bounds(genPos(5), data, int64(14+2*n), end, "body", "short")
	body := pb.Block("body")
	ws := make([]ir.Value, n)
	for i := range ws {
		ws[i] = body.Load(genPos(6), data, int16(14+2*i), 2)
	}
	sum := ws[0]
	for _, w := range ws[1:] {
		sum = body.Add(genPos(7), ir.V(sum), ir.V(w))
	}
	body.ReturnValue(genPos(8), sum)
	pb.Block("short").Return(genPos(9), 0)
	return &ir.Module{Programs: []*ir.Program{pb.Program()}}
}

func TestRegallocSpillsWhenRegistersRunOut(t *testing.T) {
	for _, n := range []int{6, 20} {
		a := mustAllocate(t, manyLiveModule(n).Programs[0])
		// Eight registers are allocatable; data dies at the last load.
		if wantSpill := n > 8; (a.spills > 0) != wantSpill {
			t.Errorf("%d live values: %d spill slots, want spills: %v", n, a.spills, wantSpill)
		}
	}
}

// TestRegallocNoPointlessMoves checks the hints: a two-address op reuses
// its dying operand's register, and the context stays in r1 when it can.
func TestRegallocNoPointlessMoves(t *testing.T) {
	// Copies into r0 are needed (the bounds check's scratch, the return
	// value); copies between allocated registers are not.
	moves := regexp.MustCompile(`(?m)^r[1-9] = r[0-9]+$`)
	text := insnText(mustGenerate(t, manyLiveModule(4)).Programs[0])
	if m := moves.FindAllString(text, -1); len(m) > 0 {
		t.Errorf("register moves %q in\n%s", m, text)
	}
	// The swapped port lives across the lookup; the load feeding it goes
	// straight to the same callee-saved register.
	text = insnText(mustGenerate(t, genLPMModule()).Programs[0])
	if strings.Contains(text, "r7 = r1\n") || !strings.Contains(text, "r6 = be16 r6") && !strings.Contains(text, "r7 = be16 r7") {
		t.Errorf("byte-swapped port not computed in place:\n%s", text)
	}
}

func TestRegallocRegisterInit(t *testing.T) {
	// An independent check on the emitted code: no path reads a register
	// that is uninitialised or was clobbered by a helper call.
	for _, m := range []*ir.Module{genLPMModule(), genSpillModule(), genTailCallModule(), genCounterModule(), manyLiveModule(20)} {
		for _, p := range mustGenerate(t, m).Programs {
			if err := checkRegisterInit(p.Insns); err != nil {
				t.Errorf("%s: %v", p.Name, err)
			}
		}
	}
}

// checkRegisterInit walks every path of insns (which must be loop-free)
// tracking which registers hold a value: at entry r1 and r10; a helper call
// leaves r0 and clobbers r1–r5.
func checkRegisterInit(insns asm.Instructions) error {
	offsets := map[string]int{}
	for i, ins := range insns {
		if s := ins.Symbol(); s != "" {
			offsets[s] = i
		}
	}
	type state struct {
		pc   int
		init uint16
	}
	seen := map[state]bool{}
	var walk func(s state) error
	walk = func(s state) error {
		for {
			if seen[s] {
				return nil
			}
			seen[s] = true
			if s.pc >= len(insns) {
				return fmt.Errorf("fell off the end")
			}
			ins := insns[s.pc]
			read := func(r asm.Register) error {
				if s.init&(1<<r) == 0 {
					return fmt.Errorf("instruction %d (%s) reads uninitialised %s", s.pc, formatInsn(ins), reg(r))
				}
				return nil
			}
			var reads []asm.Register
			op := ins.OpCode
			cls := op.Class()
			switch {
			case cls.IsALU():
				if op.ALUOp() != asm.Mov {
					reads = append(reads, ins.Dst)
				}
				if op.Source() == asm.RegSource && op.ALUOp() != asm.Swap {
					reads = append(reads, ins.Src)
				}
			case cls == asm.LdXClass:
				reads = append(reads, ins.Src)
			case cls == asm.StClass:
				reads = append(reads, ins.Dst)
			case cls == asm.StXClass:
				reads = append(reads, ins.Dst, ins.Src)
			case cls.IsJump():
				switch op.JumpOp() {
				case asm.Exit:
					reads = append(reads, asm.R0)
				case asm.Call, asm.Ja:
				default:
					reads = append(reads, ins.Dst)
					if op.Source() == asm.RegSource {
						reads = append(reads, ins.Src)
					}
				}
			}
			for _, r := range reads {
				if err := read(r); err != nil {
					return err
				}
			}
			switch {
			case cls.IsALU() || cls == asm.LdXClass || cls == asm.LdClass:
				s.init |= 1 << ins.Dst
			case cls.IsJump() && op.JumpOp() == asm.Call:
				s.init = s.init&^0b111111 | 1
			}
			if cls.IsJump() {
				switch op.JumpOp() {
				case asm.Exit:
					return nil
				case asm.Call:
				case asm.Ja:
					s.pc = offsets[ins.Reference()]
					continue
				default:
					if err := walk(state{offsets[ins.Reference()], s.init}); err != nil {
						return err
					}
				}
			}
			s.pc++
		}
	}
	return walk(state{pc: 0, init: 1<<asm.R1 | 1<<asm.R10})
}

func TestStackLimit(t *testing.T) {
	var fields []ir.Field
	var key []ir.Operand
	for i := range 65 {
		fields = append(fields, ir.Field{Name: fmt.Sprintf("f%d", i), Size: 8})
		key = append(key, ir.C(int64(i)))
	}
	big := &ir.Map{Name: "big", Type: ir.MapHash, Key: ir.Struct{Name: "big_key", Fields: fields},
		Value: ir.Struct{Name: "v", Fields: []ir.Field{{Name: "x", Size: 4}}}, MaxEntries: 1}
	pb := ir.NewProgram("big_key", ir.ProgSchedCLS, "tc", genPos(1))
	e := pb.Block("entry")
	e.MapLookup(genPos(2), "big", key...)
	e.Return(genPos(3), 0)
	_, err := Generate(&ir.Module{Maps: []*ir.Map{big}, Programs: []*ir.Program{pb.Program()}})
	if err == nil || !strings.Contains(err.Error(), "codegen.cue:1:3: program big_key needs 520 bytes of stack") {
		t.Errorf("got %v, want a stack limit error at the program", err)
	}
}
