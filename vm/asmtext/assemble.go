package asmtext

import (
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
	"github.com/cilium/ebpf/asm"

	"github.com/ebpfc/ebpfc/source"
)

// Assemble assembles src, naming file in errors. line is the line of file
// that src starts on (1 for a whole file), so that errors in a section of
// a larger file point at the right line. Every problem is reported, each
// at file:line:col, as a source.Errors.
func Assemble(file string, line int, src string) (asm.Instructions, error) {
	if line < 1 {
		line = 1
	}
	text := strings.Repeat("\n", line-1) + src
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	tree, err := parser.ParseString(file, text)
	if err != nil {
		var perr participle.Error
		if errors.As(err, &perr) {
			return nil, source.Errors{source.Errorf(pos(perr.Position()), "%s", perr.Message())}
		}
		return nil, source.Errors{source.Errorf(source.Pos{File: file, Line: line}, "%v", err)}
	}
	a := &assembler{labels: map[string]int{}}
	a.run(tree)
	a.errs.Sort()
	if err := a.errs.Err(); err != nil {
		return nil, err
	}
	if len(a.out) == 0 {
		return nil, source.Errors{source.Errorf(source.Pos{File: file, Line: line}, "no instructions")}
	}
	return a.out, nil
}

func pos(p lexer.Position) source.Pos {
	return source.Pos{File: p.Filename, Line: p.Line, Col: p.Column}
}

type fixup struct {
	insn  int    // index in out
	label string // target label
	at    lexer.Position
	call  bool // the target goes in Constant (calls, gotol), not Offset
}

type assembler struct {
	out    asm.Instructions
	raw    []int // raw offset of each instruction in out
	next   int   // raw offset of the next instruction
	labels map[string]int
	fixups []fixup
	errs   source.Errors
}

func (a *assembler) errorf(p lexer.Position, format string, args ...any) {
	a.errs.Add(pos(p), format, args...)
}

func (a *assembler) emit(ins asm.Instruction) {
	a.out = append(a.out, ins)
	a.raw = append(a.raw, a.next)
	a.next += int(ins.Width())
}

func (a *assembler) run(tree *program) {
	sawExit := false
	for _, l := range tree.Lines {
		if l.Label != nil {
			if _, dup := a.labels[*l.Label]; dup {
				a.errorf(l.Pos, "label %s is defined twice", *l.Label)
			}
			a.labels[*l.Label] = a.next
		}
		if l.Stmt == nil {
			continue
		}
		if l.Stmt.Mnemonic == "exit" && !sawExit {
			// The suite's syntax lets jumps name the first exit "exit".
			sawExit = true
			if _, ok := a.labels["exit"]; !ok {
				a.labels["exit"] = a.next
			}
		}
		a.statement(l.Stmt)
	}
	byRaw := map[int]int{}
	for i, r := range a.raw {
		byRaw[r] = i
	}
	for _, f := range a.fixups {
		t, ok := a.labels[f.label]
		if !ok {
			a.errorf(f.at, "unknown label %s", f.label)
			continue
		}
		rel := t - a.raw[f.insn] - 1
		ins := &a.out[f.insn]
		if f.call {
			ins.Constant = int64(rel)
		} else {
			if rel < math.MinInt16 || rel > math.MaxInt16 {
				a.errorf(f.at, "label %s is %d instructions away; a jump reaches at most 32767 (use ja32)", f.label, rel)
				continue
			}
			ins.Offset = int16(rel)
		}
	}
}

var sizes = map[string]asm.Size{"b": asm.Byte, "h": asm.Half, "w": asm.Word, "dw": asm.DWord}

var aluOps = map[string]asm.ALUOp{
	"add": asm.Add, "sub": asm.Sub, "mul": asm.Mul, "div": asm.Div, "sdiv": asm.SDiv,
	"or": asm.Or, "and": asm.And, "lsh": asm.LSh, "rsh": asm.RSh, "mod": asm.Mod,
	"smod": asm.SMod, "xor": asm.Xor, "mov": asm.Mov, "arsh": asm.ArSh,
}

var jumpOps = map[string]asm.JumpOp{
	"jeq": asm.JEq, "jgt": asm.JGT, "jge": asm.JGE, "jset": asm.JSet, "jne": asm.JNE,
	"jsgt": asm.JSGT, "jsge": asm.JSGE, "jlt": asm.JLT, "jle": asm.JLE, "jslt": asm.JSLT,
	"jsle": asm.JSLE,
}

var atomicOps = map[string]asm.AtomicOp{
	"add": asm.AddAtomic, "or": asm.OrAtomic, "and": asm.AndAtomic, "xor": asm.XorAtomic,
	"xchg": asm.Xchg, "cmpxchg": asm.CmpXchg,
}

// width splits a 32 or 64 suffix off a mnemonic.
func width(m string) (base string, is32 bool) {
	if b, ok := strings.CutSuffix(m, "32"); ok {
		return b, true
	}
	if b, ok := strings.CutSuffix(m, "64"); ok {
		return b, false
	}
	return m, false
}

func (a *assembler) statement(s *statement) {
	m := s.Mnemonic
	want := func(words, ops int) bool {
		if len(s.Words) != words || len(s.Operands) != ops {
			a.errorf(s.Pos, "%s takes %d operand(s), got %d", m, words+ops, len(s.Words)+len(s.Operands))
			return false
		}
		return true
	}
	switch {
	case m == "exit":
		if want(0, 0) {
			a.emit(asm.Return())
		}
		return
	case m == "lddw":
		a.lddw(s)
		return
	case m == "call":
		a.call(s)
		return
	case m == "lock":
		a.lock(s)
		return
	case m == "ja" || m == "ja32":
		if len(s.Words)+len(s.Operands) != 1 {
			want(1, 0)
			return
		}
		ins := asm.Instruction{OpCode: asm.Ja.Op(asm.ImmSource)}
		if m == "ja32" {
			ins.OpCode = asm.OpCode(asm.Jump32Class).SetJumpOp(asm.Ja)
		}
		a.emit(ins)
		a.target(s, m == "ja32")
		return
	}
	if base, is32 := width(m); jumpOps[base] != 0 {
		if !want(0, 3) {
			return
		}
		op := jumpOps[base].Op(asm.ImmSource)
		if is32 {
			op = asm.OpCode(asm.Jump32Class).SetJumpOp(jumpOps[base])
		}
		dst, ok := a.reg(s.Operands[0])
		if !ok {
			return
		}
		ins := asm.Instruction{OpCode: op, Dst: dst}
		if !a.source(&ins, s.Operands[1]) {
			return
		}
		a.emit(ins)
		a.jumpTarget(s.Operands[2], false)
		return
	}
	if strings.HasPrefix(m, "movsx") {
		// movsx<from><to>: movsx832, movsx1664, movsx3264, ...
		var aop asm.ALUOp
		rest := strings.TrimPrefix(m, "movsx")
		switch rest {
		case "832", "864":
			aop = asm.MovSX8
		case "1632", "1664":
			aop = asm.MovSX16
		case "3264":
			aop = asm.MovSX32
		default:
			a.errorf(s.Pos, "unknown mnemonic %s (movsx832, movsx864, movsx1632, movsx1664, movsx3264)", m)
			return
		}
		if !want(0, 2) {
			return
		}
		dst, ok1 := a.reg(s.Operands[0])
		src, ok2 := a.reg(s.Operands[1])
		if !ok1 || !ok2 {
			return
		}
		if strings.HasSuffix(rest, "32") {
			a.emit(aop.Reg32(dst, src))
		} else {
			a.emit(aop.Reg(dst, src))
		}
		return
	}
	for _, e := range []struct {
		prefix string
		fn     func(dst asm.Register, size asm.Size) asm.Instruction
	}{
		{"le", func(d asm.Register, sz asm.Size) asm.Instruction { return asm.HostTo(asm.LE, d, sz) }},
		{"be", func(d asm.Register, sz asm.Size) asm.Instruction { return asm.HostTo(asm.BE, d, sz) }},
		{"swap", asm.BSwap},
		{"bswap", asm.BSwap},
	} {
		if bits, ok := strings.CutPrefix(m, e.prefix); ok {
			sz, ok := map[string]asm.Size{"16": asm.Half, "32": asm.Word, "64": asm.DWord}[bits]
			if !ok {
				continue
			}
			if !want(0, 1) {
				return
			}
			if dst, ok := a.reg(s.Operands[0]); ok {
				a.emit(e.fn(dst, sz))
			}
			return
		}
	}
	if base, is32 := width(m); base == "neg" {
		if !want(0, 1) {
			return
		}
		if dst, ok := a.reg(s.Operands[0]); ok {
			op := asm.Neg.Op(asm.ImmSource)
			if is32 {
				op = asm.Neg.Op32(asm.ImmSource)
			}
			a.emit(asm.Instruction{OpCode: op, Dst: dst})
		}
		return
	}
	if base, is32 := width(m); hasALU(base) {
		if !want(0, 2) {
			return
		}
		dst, ok := a.reg(s.Operands[0])
		if !ok {
			return
		}
		op := aluOps[base].Op(asm.ImmSource)
		if is32 {
			op = aluOps[base].Op32(asm.ImmSource)
		}
		ins := asm.Instruction{OpCode: op, Dst: dst}
		if a.source(&ins, s.Operands[1]) {
			a.emit(ins)
		}
		return
	}
	if sz, ok := sizes[strings.TrimPrefix(m, "ldxs")]; ok && strings.HasPrefix(m, "ldxs") && sz != asm.DWord {
		a.loadStore(s, asm.LoadMemSXOp(sz))
		return
	}
	if sz, ok := sizes[strings.TrimPrefix(m, "ldx")]; ok && strings.HasPrefix(m, "ldx") {
		a.loadStore(s, asm.LoadMemOp(sz))
		return
	}
	if sz, ok := sizes[strings.TrimPrefix(m, "stx")]; ok && strings.HasPrefix(m, "stx") {
		a.loadStore(s, asm.StoreMemOp(sz))
		return
	}
	if sz, ok := sizes[strings.TrimPrefix(m, "st")]; ok && strings.HasPrefix(m, "st") {
		a.loadStore(s, asm.StoreImmOp(sz))
		return
	}
	for _, mode := range []string{"ldabs", "ldind"} {
		if sz, ok := sizes[strings.TrimPrefix(m, mode)]; ok && strings.HasPrefix(m, mode) && sz != asm.DWord {
			a.legacy(s, mode == "ldind", sz)
			return
		}
	}
	a.errorf(s.Pos, "unknown mnemonic %s", m)
}

// reg reads a register operand.
func (a *assembler) reg(o *operand) (asm.Register, bool) {
	if o.Reg == nil {
		a.errorf(o.Pos, "want a register (%%r0-%%r10)")
		return 0, false
	}
	return a.regName(o.Pos, *o.Reg)
}

func (a *assembler) regName(p lexer.Position, name string) (asm.Register, bool) {
	n, err := strconv.Atoi(strings.TrimPrefix(name, "%r"))
	if !strings.HasPrefix(name, "%r") || err != nil || n < 0 || n > 10 || strconv.Itoa(n) != strings.TrimPrefix(name, "%r") {
		a.errorf(p, "invalid register %s (%%r0-%%r10)", name)
		return 0, false
	}
	return asm.Register(n), true
}

// parseInt reads a decimal or 0x hex literal with an optional sign.
func parseInt(s string) (neg bool, mag uint64, hex bool, err error) {
	t := s
	if strings.HasPrefix(t, "+") || strings.HasPrefix(t, "-") {
		neg = t[0] == '-'
		t = t[1:]
	}
	if strings.HasPrefix(t, "0x") || strings.HasPrefix(t, "0X") {
		hex = true
		mag, err = strconv.ParseUint(t[2:], 16, 64)
	} else {
		mag, err = strconv.ParseUint(t, 10, 64)
	}
	return
}

// imm32 reads a 32-bit immediate: decimal in the int32 range, or hex up to
// 0xffffffff (taken as the 32 bits it spells).
func (a *assembler) imm32(p lexer.Position, s string) (int32, bool) {
	neg, mag, hex, err := parseInt(s)
	switch {
	case err != nil:
		a.errorf(p, "invalid number %s", s)
		return 0, false
	case hex && !neg && mag <= math.MaxUint32:
		return int32(uint32(mag)), true
	case neg && mag <= 1<<31:
		return int32(-int64(mag)), true
	case !neg && !hex && mag <= math.MaxInt32:
		return int32(mag), true
	}
	a.errorf(p, "immediate %s does not fit in 32 bits (decimal -2147483648..2147483647, hex up to 0xffffffff)", s)
	return 0, false
}

// off16 reads a memory or jump offset.
func (a *assembler) off16(p lexer.Position, s string) (int16, bool) {
	neg, mag, _, err := parseInt(s)
	if err != nil {
		a.errorf(p, "invalid offset %s", s)
		return 0, false
	}
	v := int64(mag)
	if neg {
		v = -v
	}
	if mag > 1<<16 || v < math.MinInt16 || v > math.MaxInt16 {
		a.errorf(p, "offset %s does not fit in 16 bits (-32768..32767)", s)
		return 0, false
	}
	return int16(v), true
}

// source sets an instruction's second operand: a register or an imm.
func (a *assembler) source(ins *asm.Instruction, o *operand) bool {
	switch {
	case o.Reg != nil:
		r, ok := a.regName(o.Pos, *o.Reg)
		ins.OpCode = ins.OpCode.SetSource(asm.RegSource)
		ins.Src = r
		return ok
	case o.Int != nil:
		v, ok := a.imm32(o.Pos, *o.Int)
		ins.Constant = int64(v)
		return ok
	}
	a.errorf(o.Pos, "want a register or an immediate")
	return false
}

// target reads the single target of ja/ja32 (a word or an operand).
func (a *assembler) target(s *statement, wide bool) {
	if len(s.Words) == 1 {
		a.fixups = append(a.fixups, fixup{insn: len(a.out) - 1, label: s.Words[0].Text, at: s.Words[0].Pos, call: wide})
		return
	}
	a.jumpTarget(s.Operands[0], wide)
}

func (a *assembler) jumpTarget(o *operand, wide bool) {
	ins := &a.out[len(a.out)-1]
	switch {
	case o.Ident != nil && o.Ident.Off == nil:
		a.fixups = append(a.fixups, fixup{insn: len(a.out) - 1, label: o.Ident.Name, at: o.Pos, call: wide})
	case o.Int != nil && (strings.HasPrefix(*o.Int, "+") || strings.HasPrefix(*o.Int, "-")):
		if wide {
			v, ok := a.imm32(o.Pos, *o.Int)
			if ok {
				ins.Constant = int64(v)
			}
			return
		}
		if v, ok := a.off16(o.Pos, *o.Int); ok {
			ins.Offset = v
		}
	default:
		a.errorf(o.Pos, "want a label or a relative offset (+N, -N)")
	}
}

func (a *assembler) mem(o *operand) (asm.Register, int16, bool) {
	if o.Mem == nil {
		a.errorf(o.Pos, "want a memory operand [%%rN+OFFSET]")
		return 0, 0, false
	}
	r, ok := a.regName(o.Mem.Pos, o.Mem.Base)
	if !ok {
		return 0, 0, false
	}
	if o.Mem.Off == nil {
		return r, 0, true
	}
	off, ok := a.off16(o.Mem.Pos, *o.Mem.Off)
	return r, off, ok
}

func (a *assembler) loadStore(s *statement, op asm.OpCode) {
	if len(s.Words) != 0 || len(s.Operands) != 2 {
		a.errorf(s.Pos, "%s takes 2 operands, got %d", s.Mnemonic, len(s.Words)+len(s.Operands))
		return
	}
	ins := asm.Instruction{OpCode: op}
	switch op.Class() {
	case asm.LdXClass:
		dst, ok1 := a.reg(s.Operands[0])
		src, off, ok2 := a.mem(s.Operands[1])
		if !ok1 || !ok2 {
			return
		}
		ins.Dst, ins.Src, ins.Offset = dst, src, off
	case asm.StXClass:
		dst, off, ok1 := a.mem(s.Operands[0])
		src, ok2 := a.reg(s.Operands[1])
		if !ok1 || !ok2 {
			return
		}
		ins.Dst, ins.Src, ins.Offset = dst, src, off
	default: // st: [dst+off], imm
		dst, off, ok1 := a.mem(s.Operands[0])
		o := s.Operands[1]
		if o.Int == nil {
			a.errorf(o.Pos, "want an immediate")
			return
		}
		v, ok2 := a.imm32(o.Pos, *o.Int)
		if !ok1 || !ok2 {
			return
		}
		ins.Dst, ins.Offset, ins.Constant = dst, off, int64(v)
	}
	a.emit(ins)
}

func (a *assembler) legacy(s *statement, ind bool, sz asm.Size) {
	n := 1
	if ind {
		n = 2
	}
	if len(s.Words) != 0 || len(s.Operands) != n {
		a.errorf(s.Pos, "%s takes %d operand(s), got %d", s.Mnemonic, n, len(s.Words)+len(s.Operands))
		return
	}
	o := s.Operands[n-1]
	if o.Int == nil {
		a.errorf(o.Pos, "want an immediate offset")
		return
	}
	v, ok := a.imm32(o.Pos, *o.Int)
	if !ok {
		return
	}
	if !ind {
		a.emit(asm.LoadAbs(v, sz))
		return
	}
	if src, ok := a.reg(s.Operands[0]); ok {
		a.emit(asm.LoadInd(0, src, v, sz))
	}
}

func (a *assembler) lddw(s *statement) {
	if len(s.Words) != 0 || len(s.Operands) != 2 {
		a.errorf(s.Pos, "lddw takes 2 operands, got %d", len(s.Words)+len(s.Operands))
		return
	}
	dst, ok := a.reg(s.Operands[0])
	if !ok {
		return
	}
	o := s.Operands[1]
	switch {
	case o.Int != nil:
		neg, mag, _, err := parseInt(*o.Int)
		if err != nil || (neg && mag > 1<<63) {
			a.errorf(o.Pos, "immediate %s does not fit in 64 bits", *o.Int)
			return
		}
		v := mag
		if neg {
			v = -mag
		}
		a.emit(asm.LoadImm(dst, int64(v), asm.DWord))
	case o.Ident != nil && o.Ident.Off == nil:
		a.emit(asm.LoadMapPtr(dst, 0).WithReference(o.Ident.Name))
	case o.Ident != nil:
		neg, mag, _, err := parseInt(*o.Ident.Off)
		if err != nil || neg || mag > math.MaxUint32 {
			a.errorf(o.Pos, "map value offset %s must be 0..4294967295", *o.Ident.Off)
			return
		}
		a.emit(asm.LoadMapValue(dst, 0, uint32(mag)).WithReference(o.Ident.Name))
	default:
		a.errorf(o.Pos, "want a 64-bit immediate or a map name")
	}
}

func (a *assembler) call(s *statement) {
	callOp := asm.Call.Op(asm.ImmSource)
	mode := "helper"
	words := s.Words
	if len(words) > 0 && (words[0].Text == "local" || words[0].Text == "helper" || words[0].Text == "runtime") {
		mode = words[0].Text
		words = words[1:]
	}
	if len(words)+len(s.Operands) != 1 {
		a.errorf(s.Pos, "call takes one target, got %d", len(words)+len(s.Operands))
		return
	}
	switch mode {
	case "local":
		a.emit(asm.Instruction{OpCode: callOp, Src: asm.PseudoCall})
		if len(words) == 1 {
			a.fixups = append(a.fixups, fixup{insn: len(a.out) - 1, label: words[0].Text, at: words[0].Pos, call: true})
		} else {
			a.jumpTarget(s.Operands[0], true)
		}
		return
	}
	if len(words) == 1 {
		a.errorf(words[0].Pos, "call %s: want a helper number, a register or 'local LABEL'", words[0].Text)
		return
	}
	o := s.Operands[0]
	switch {
	case o.Reg != nil && mode == "helper":
		r, ok := a.regName(o.Pos, *o.Reg)
		if ok {
			a.emit(asm.Instruction{OpCode: asm.Call.Op(asm.RegSource), Dst: r})
		}
	case o.Int != nil:
		v, ok := a.imm32(o.Pos, *o.Int)
		if !ok {
			return
		}
		ins := asm.Instruction{OpCode: callOp, Constant: int64(v)}
		if mode == "runtime" {
			ins.Src = asm.PseudoKfuncCall
		}
		a.emit(ins)
	default:
		a.errorf(o.Pos, "want a helper number or a register")
	}
}

func (a *assembler) lock(s *statement) {
	words := s.Words
	fetch := false
	if len(words) > 0 && words[0].Text == "fetch" {
		fetch = true
		words = words[1:]
	}
	if len(words) != 1 || len(s.Operands) != 2 {
		a.errorf(s.Pos, "invalid number of operands for lock: want lock [fetch] OP [%%rN+OFF], %%rM")
		return
	}
	base, is32 := width(words[0].Text)
	aop, ok := atomicOps[base]
	if !ok {
		a.errorf(words[0].Pos, "unknown atomic operation %s (add, or, and, xor, xchg, cmpxchg, optionally with 32)", words[0].Text)
		return
	}
	if fetch {
		switch aop {
		case asm.AddAtomic:
			aop = asm.FetchAdd
		case asm.OrAtomic:
			aop = asm.FetchOr
		case asm.AndAtomic:
			aop = asm.FetchAnd
		case asm.XorAtomic:
			aop = asm.FetchXor
		}
	}
	dst, off, ok1 := a.mem(s.Operands[0])
	src, ok2 := a.reg(s.Operands[1])
	if !ok1 || !ok2 {
		return
	}
	sz := asm.DWord
	if is32 {
		sz = asm.Word
	}
	a.emit(aop.Mem(dst, src, sz, off))
}

func hasALU(m string) bool {
	_, ok := aluOps[m]
	return ok
}
