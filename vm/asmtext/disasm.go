package asmtext

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cilium/ebpf/asm"
)

// Disassemble prints insns in the syntax Assemble reads, one instruction
// per line. Jump and call targets become labels L<n>, n being the target's
// raw instruction offset. Instructions the syntax cannot express (an
// invalid opcode, a map load by file descriptor) are errors naming their
// index.
func Disassemble(insns asm.Instructions) (string, error) {
	raw := make([]int, len(insns)+1)
	for i := range insns {
		raw[i+1] = raw[i] + int(insns[i].Width())
	}
	targets := map[int]bool{}
	for i := range insns {
		if t, ok := target(&insns[i], raw[i]); ok {
			targets[t] = true
		}
	}
	var b strings.Builder
	for i := range insns {
		if targets[raw[i]] {
			fmt.Fprintf(&b, "L%d:\n", raw[i])
		}
		s, err := format(&insns[i], raw[i])
		if err != nil {
			return "", fmt.Errorf("instruction %d (%v): %w", i, insns[i], err)
		}
		b.WriteString(s)
		b.WriteByte('\n')
	}
	// A target past the last instruction cannot be labelled.
	for t := range targets {
		if t >= raw[len(insns)] || t < 0 || !slices.Contains(raw[:len(insns)], t) {
			return "", fmt.Errorf("a jump targets raw offset %d, which is not the start of an instruction", t)
		}
	}
	return b.String(), nil
}

// target returns the raw offset a jump or local call goes to.
func target(ins *asm.Instruction, at int) (int, bool) {
	oc := ins.OpCode
	if !oc.Class().IsJump() {
		return 0, false
	}
	switch oc.JumpOp() {
	case asm.Exit:
		return 0, false
	case asm.Call:
		if ins.Src == asm.PseudoCall {
			return at + 1 + int(ins.Constant), true
		}
		return 0, false
	case asm.Ja:
		if oc.Class() == asm.Jump32Class {
			return at + 1 + int(ins.Constant), true
		}
	}
	return at + 1 + int(ins.Offset), true
}

var sizeSuffix = map[asm.Size]string{asm.Byte: "b", asm.Half: "h", asm.Word: "w", asm.DWord: "dw"}

func reg(r asm.Register) string { return fmt.Sprintf("%%r%d", r) }

func memOperand(r asm.Register, off int16) string {
	switch {
	case off == 0:
		return fmt.Sprintf("[%s]", reg(r))
	case off > 0:
		return fmt.Sprintf("[%s+%d]", reg(r), off)
	}
	return fmt.Sprintf("[%s%d]", reg(r), off)
}

var aluNames = map[asm.ALUOp]string{
	asm.Add: "add", asm.Sub: "sub", asm.Mul: "mul", asm.Div: "div", asm.SDiv: "sdiv",
	asm.Or: "or", asm.And: "and", asm.LSh: "lsh", asm.RSh: "rsh", asm.Neg: "neg",
	asm.Mod: "mod", asm.SMod: "smod", asm.Xor: "xor", asm.Mov: "mov", asm.ArSh: "arsh",
}

var jumpNames = map[asm.JumpOp]string{
	asm.JEq: "jeq", asm.JGT: "jgt", asm.JGE: "jge", asm.JSet: "jset", asm.JNE: "jne",
	asm.JSGT: "jsgt", asm.JSGE: "jsge", asm.JLT: "jlt", asm.JLE: "jle", asm.JSLT: "jslt",
	asm.JSLE: "jsle",
}

var atomicNames = map[asm.AtomicOp]string{
	asm.AddAtomic: "add", asm.OrAtomic: "or", asm.AndAtomic: "and", asm.XorAtomic: "xor",
	asm.FetchAdd: "fetch add", asm.FetchOr: "fetch or", asm.FetchAnd: "fetch and",
	asm.FetchXor: "fetch xor", asm.Xchg: "xchg", asm.CmpXchg: "cmpxchg",
}

func format(ins *asm.Instruction, at int) (string, error) {
	oc := ins.OpCode
	label := func() string {
		t, _ := target(ins, at)
		return fmt.Sprintf("L%d", t)
	}
	switch cls := oc.Class(); {
	case cls.IsALU():
		w := ""
		if cls == asm.ALUClass {
			w = "32"
		}
		aop := oc.ALUOp()
		switch aop {
		case asm.Swap:
			prefix := "swap"
			if cls == asm.ALUClass {
				prefix = "le"
				if oc.Endianness() == asm.BE {
					prefix = "be"
				}
			}
			return fmt.Sprintf("%s%d %s", prefix, ins.Constant, reg(ins.Dst)), nil
		case asm.MovSX8, asm.MovSX16, asm.MovSX32:
			from := map[asm.ALUOp]int{asm.MovSX8: 8, asm.MovSX16: 16, asm.MovSX32: 32}[aop]
			to := 64
			if cls == asm.ALUClass {
				to = 32
			}
			return fmt.Sprintf("movsx%d%d %s, %s", from, to, reg(ins.Dst), reg(ins.Src)), nil
		case asm.Neg:
			return fmt.Sprintf("neg%s %s", w, reg(ins.Dst)), nil
		}
		name, ok := aluNames[aop]
		if !ok {
			return "", fmt.Errorf("unknown ALU operation")
		}
		if oc.Source() == asm.RegSource {
			return fmt.Sprintf("%s%s %s, %s", name, w, reg(ins.Dst), reg(ins.Src)), nil
		}
		return fmt.Sprintf("%s%s %s, %d", name, w, reg(ins.Dst), int32(ins.Constant)), nil

	case cls.IsJump():
		switch oc.JumpOp() {
		case asm.Exit:
			return "exit", nil
		case asm.Call:
			switch {
			case oc.Source() == asm.RegSource:
				return fmt.Sprintf("call %s", reg(ins.Dst)), nil
			case ins.Src == asm.PseudoCall:
				return "call local " + label(), nil
			case ins.Src == asm.PseudoKfuncCall:
				return fmt.Sprintf("call runtime %d", int32(ins.Constant)), nil
			}
			return fmt.Sprintf("call %d", uint32(ins.Constant)), nil
		case asm.Ja:
			if cls == asm.Jump32Class {
				return "ja32 " + label(), nil
			}
			return "ja " + label(), nil
		}
		name, ok := jumpNames[oc.JumpOp()]
		if !ok {
			return "", fmt.Errorf("unknown jump operation")
		}
		if cls == asm.Jump32Class {
			name += "32"
		}
		if oc.Source() == asm.RegSource {
			return fmt.Sprintf("%s %s, %s, %s", name, reg(ins.Dst), reg(ins.Src), label()), nil
		}
		return fmt.Sprintf("%s %s, %d, %s", name, reg(ins.Dst), int32(ins.Constant), label()), nil

	case cls == asm.LdClass:
		switch oc.Mode() {
		case asm.ImmMode:
			if oc.Size() != asm.DWord {
				break
			}
			switch ins.Src {
			case 0:
				return fmt.Sprintf("lddw %s, %#x", reg(ins.Dst), uint64(ins.Constant)), nil
			case asm.PseudoMapFD, asm.PseudoMapValue:
				ref := ins.Reference()
				if ref == "" {
					return "", fmt.Errorf("a map load without a map name cannot be written as text")
				}
				if ins.Src == asm.PseudoMapValue {
					return fmt.Sprintf("lddw %s, %s+%d", reg(ins.Dst), ref, uint64(ins.Constant)>>32), nil
				}
				return fmt.Sprintf("lddw %s, %s", reg(ins.Dst), ref), nil
			}
		case asm.AbsMode:
			return fmt.Sprintf("ldabs%s %d", sizeSuffix[oc.Size()], int32(ins.Constant)), nil
		case asm.IndMode:
			return fmt.Sprintf("ldind%s %s, %d", sizeSuffix[oc.Size()], reg(ins.Src), int32(ins.Constant)), nil
		}
	case cls == asm.LdXClass:
		switch oc.Mode() {
		case asm.MemMode:
			return fmt.Sprintf("ldx%s %s, %s", sizeSuffix[oc.Size()], reg(ins.Dst), memOperand(ins.Src, ins.Offset)), nil
		case asm.MemSXMode:
			return fmt.Sprintf("ldxs%s %s, %s", sizeSuffix[oc.Size()], reg(ins.Dst), memOperand(ins.Src, ins.Offset)), nil
		}
	case cls == asm.StClass:
		if oc.Mode() == asm.MemMode {
			return fmt.Sprintf("st%s %s, %d", sizeSuffix[oc.Size()], memOperand(ins.Dst, ins.Offset), int32(ins.Constant)), nil
		}
	case cls == asm.StXClass:
		switch oc.Mode() {
		case asm.MemMode:
			return fmt.Sprintf("stx%s %s, %s", sizeSuffix[oc.Size()], memOperand(ins.Dst, ins.Offset), reg(ins.Src)), nil
		case asm.AtomicMode:
			name, ok := atomicNames[oc.AtomicOp()]
			if !ok {
				break
			}
			w := ""
			switch oc.Size() {
			case asm.Word:
				w = "32"
			case asm.DWord:
			default:
				return "", fmt.Errorf("atomic operations are 4 or 8 bytes")
			}
			return fmt.Sprintf("lock %s%s %s, %s", name, w, memOperand(ins.Dst, ins.Offset), reg(ins.Src)), nil
		}
	}
	return "", fmt.Errorf("opcode %#x has no text form", uint8(oc))
}
