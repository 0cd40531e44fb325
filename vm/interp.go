package vm

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
)

const (
	stackSize      = 512 // bytes per frame
	maxFrames      = 8   // MAX_CALL_FRAMES
	maxTailCalls   = 33  // MAX_TAIL_CALL_CNT
	packetHeadroom = 256 // XDP_PACKET_HEADROOM
)

type frame struct {
	prog  *program
	ret   int       // pc to return to
	saved [4]uint64 // r6-r9 of the caller
	fp    uint64    // r10 of the caller
}

// run is the state of one execution. A Machine keeps one and resets it for
// every Run, so that steady-state runs do not allocate much.
type run struct {
	mc           *Machine
	regs         [11]uint64
	regions      []region
	valueRegions map[*byte]int
	handles      map[*Map]uint64
	ctx          ctxState
	pkt          int    // packet region index (0 when there is none: a null region)
	pktData      uint32 // offsets in the packet region
	pktEnd       uint32
	pktMeta      uint32
	stacks       []int // stack region index per frame depth
	frames       []frame
	tailCalls    int
	res          *Result
	prog         *program
	pc           int
	ringRecs     map[uint64]*ringRec
	ctxSrc       Context
	call         HelperCall
	ctxBuf       [256]byte
	stackBufs    [maxFrames][stackSize]byte
	pktBuf       []byte
}

func newRun(mc *Machine) *run {
	return &run{mc: mc, valueRegions: map[*byte]int{}, handles: map[*Map]uint64{}, ringRecs: map[uint64]*ringRec{}}
}

// mapHandle returns the address programs hold for m: a region of its own
// that can be passed to helpers but not dereferenced.
func (r *run) mapHandle(m *Map) uint64 {
	if a, ok := r.handles[m]; ok {
		return a
	}
	a := r.addRegion(region{kind: regionMapHandle, m: m})
	r.handles[m] = a
	return a
}

func (r *run) start(p *program, ctx Context) (*Result, error) {
	r.regions = r.regions[:0]
	clear(r.valueRegions)
	clear(r.handles)
	clear(r.ringRecs)
	r.frames = r.frames[:0]
	r.stacks = r.stacks[:0]
	r.tailCalls = 0
	r.res = &Result{}
	r.regs = [11]uint64{}
	r.pkt = -1
	r.ctxSrc = ctx

	// Region 0 is reserved so that a zero-initialised index never names a
	// real region by accident.
	r.addRegion(region{kind: regionReserved})

	if mem, ok := ctx.(*Mem); ok {
		r.regs[1] = r.addRegion(region{data: mem.Data, hi: uint32(len(mem.Data)), writable: true, kind: regionMem})
		r.regs[2] = uint64(len(mem.Data))
	} else {
		lay := ctx.layout()
		r.ctx = ctxState{lay: lay, buf: r.ctxBuf[:lay.size]}
		clear(r.ctx.buf)
		ctx.encode(r.ctx.buf)
		r.regs[1] = r.addRegion(region{kind: regionCtx, hi: lay.size})
	}
	if pkt := ctx.packet(); pkt != nil {
		n := packetHeadroom + len(pkt)
		if cap(r.pktBuf) < n {
			r.pktBuf = make([]byte, n)
		}
		r.pktBuf = r.pktBuf[:n]
		clear(r.pktBuf[:packetHeadroom])
		copy(r.pktBuf[packetHeadroom:], pkt)
		r.pktData, r.pktMeta, r.pktEnd = packetHeadroom, packetHeadroom, uint32(n)
		r.addRegion(region{data: r.pktBuf, lo: r.pktMeta, hi: r.pktEnd, writable: true, kind: regionPacket})
		r.pkt = len(r.regions) - 1
	}
	r.regs[10] = r.pushStack()

	ret, err := r.exec(p)
	if err == nil && len(r.ringRecs) > 0 {
		err = &Fault{Program: p.name, Index: -1, Err: fmt.Errorf("%d ring buffer record(s) reserved and never submitted or discarded", len(r.ringRecs))}
	}
	r.res.Return = ret
	if err == nil {
		if lay := ctx.layout(); lay != nil {
			ctx.decode(r.ctx.buf)
		}
		if r.pkt >= 0 {
			r.res.Packet = slices.Clone(r.pktBuf[r.pktData:r.pktEnd])
		}
	}
	res := r.res
	r.res = nil
	return res, err
}

// pushStack returns the frame pointer of a fresh, zeroed stack for the next
// frame depth.
func (r *run) pushStack() uint64 {
	depth := len(r.stacks)
	buf := r.stackBufs[depth][:]
	clear(buf)
	addr := r.addRegion(region{data: buf, hi: stackSize, writable: true, kind: regionStack, depth: depth})
	r.stacks = append(r.stacks, len(r.regions)-1)
	return addr + stackSize
}

func (r *run) fault(err error) error {
	p := r.prog
	idx := 0
	if r.pc >= 0 && r.pc < len(p.code) {
		idx = p.code[r.pc].orig
	}
	insn := ""
	if idx < len(p.insns) {
		insn = fmt.Sprint(p.insns[idx])
	}
	return &Fault{Program: p.name, Index: idx, Insn: insn, Err: err}
}

// exec runs p from its first instruction until the outermost exit.
func (r *run) exec(p *program) (uint64, error) {
	r.prog = p
	next := 0
	regs := &r.regs
	code := p.code
	tracer := r.mc.opts.Tracer
	limit := r.mc.opts.MaxInstructions
	steps := 0
	defer func() { r.res.Instructions = steps }()
	for {
		pc := next
		if uint(pc) >= uint(len(code)) {
			r.pc = len(code) - 1
			return 0, r.fault(fmt.Errorf("execution fell off the end of the program"))
		}
		in := &code[pc]
		steps++
		if steps > limit {
			return 0, r.fault(fmt.Errorf("more than %d instructions executed", limit))
		}
		if tracer != nil {
			tracer.Step(&Step{Program: r.prog.name, Index: in.orig, Insn: &r.prog.insns[in.orig], Regs: regs, Frame: len(r.frames)})
		}
		var s uint64
		if in.useImm {
			s = uint64(in.imm)
		} else {
			s = regs[in.src]
		}
		d := &regs[in.dst]
		next = pc + 1
		switch in.op {
		case opAdd64:
			*d += s
		case opSub64:
			*d -= s
		case opMul64:
			*d *= s
		case opDiv64:
			if s == 0 {
				*d = 0
			} else {
				*d /= s
			}
		case opSDiv64:
			if s == 0 {
				*d = 0
			} else {
				*d = uint64(int64(*d) / int64(s))
			}
		case opOr64:
			*d |= s
		case opAnd64:
			*d &= s
		case opLsh64:
			*d <<= s & 63
		case opRsh64:
			*d >>= s & 63
		case opNeg64:
			*d = -*d
		case opMod64:
			if s != 0 {
				*d %= s
			}
		case opSMod64:
			if s != 0 {
				*d = uint64(int64(*d) % int64(s))
			}
		case opXor64:
			*d ^= s
		case opMov64:
			*d = s
		case opMovSX8To64:
			*d = uint64(int64(int8(s)))
		case opMovSX16To64:
			*d = uint64(int64(int16(s)))
		case opMovSX32To64:
			*d = uint64(int64(int32(s)))
		case opArsh64:
			*d = uint64(int64(*d) >> (s & 63))

		case opAdd32:
			*d = uint64(uint32(*d) + uint32(s))
		case opSub32:
			*d = uint64(uint32(*d) - uint32(s))
		case opMul32:
			*d = uint64(uint32(*d) * uint32(s))
		case opDiv32:
			if uint32(s) == 0 {
				*d = 0
			} else {
				*d = uint64(uint32(*d) / uint32(s))
			}
		case opSDiv32:
			if uint32(s) == 0 {
				*d = 0
			} else {
				*d = uint64(uint32(int32(*d) / int32(s)))
			}
		case opOr32:
			*d = uint64(uint32(*d) | uint32(s))
		case opAnd32:
			*d = uint64(uint32(*d) & uint32(s))
		case opLsh32:
			*d = uint64(uint32(*d) << (s & 31))
		case opRsh32:
			*d = uint64(uint32(*d) >> (s & 31))
		case opNeg32:
			*d = uint64(-uint32(*d))
		case opMod32:
			if uint32(s) != 0 {
				*d = uint64(uint32(*d) % uint32(s))
			} else {
				*d = uint64(uint32(*d))
			}
		case opSMod32:
			if uint32(s) != 0 {
				*d = uint64(uint32(int32(*d) % int32(s)))
			} else {
				*d = uint64(uint32(*d))
			}
		case opXor32:
			*d = uint64(uint32(*d) ^ uint32(s))
		case opMov32:
			*d = uint64(uint32(s))
		case opMovSX8To32:
			*d = uint64(uint32(int32(int8(s))))
		case opMovSX16To32:
			*d = uint64(uint32(int32(int16(s))))
		case opArsh32:
			*d = uint64(uint32(int32(*d) >> (s & 31)))

		case opLE16:
			*d = uint64(uint16(*d))
		case opLE32:
			*d = uint64(uint32(*d))
		case opLE64:
		case opBE16:
			*d = uint64(bits.ReverseBytes16(uint16(*d)))
		case opBE32:
			*d = uint64(bits.ReverseBytes32(uint32(*d)))
		case opBE64:
			*d = bits.ReverseBytes64(*d)

		case opJa:
			next = int(in.target)
		case opJeq:
			if *d == s {
				next = int(in.target)
			}
		case opJgt:
			if *d > s {
				next = int(in.target)
			}
		case opJge:
			if *d >= s {
				next = int(in.target)
			}
		case opJset:
			if *d&s != 0 {
				next = int(in.target)
			}
		case opJne:
			if *d != s {
				next = int(in.target)
			}
		case opJsgt:
			if int64(*d) > int64(s) {
				next = int(in.target)
			}
		case opJsge:
			if int64(*d) >= int64(s) {
				next = int(in.target)
			}
		case opJlt:
			if *d < s {
				next = int(in.target)
			}
		case opJle:
			if *d <= s {
				next = int(in.target)
			}
		case opJslt:
			if int64(*d) < int64(s) {
				next = int(in.target)
			}
		case opJsle:
			if int64(*d) <= int64(s) {
				next = int(in.target)
			}
		case opJeq32:
			if uint32(*d) == uint32(s) {
				next = int(in.target)
			}
		case opJgt32:
			if uint32(*d) > uint32(s) {
				next = int(in.target)
			}
		case opJge32:
			if uint32(*d) >= uint32(s) {
				next = int(in.target)
			}
		case opJset32:
			if uint32(*d)&uint32(s) != 0 {
				next = int(in.target)
			}
		case opJne32:
			if uint32(*d) != uint32(s) {
				next = int(in.target)
			}
		case opJsgt32:
			if int32(*d) > int32(s) {
				next = int(in.target)
			}
		case opJsge32:
			if int32(*d) >= int32(s) {
				next = int(in.target)
			}
		case opJlt32:
			if uint32(*d) < uint32(s) {
				next = int(in.target)
			}
		case opJle32:
			if uint32(*d) <= uint32(s) {
				next = int(in.target)
			}
		case opJslt32:
			if int32(*d) < int32(s) {
				next = int(in.target)
			}
		case opJsle32:
			if int32(*d) <= int32(s) {
				next = int(in.target)
			}

		case opLdx:
			v, err := r.load(regs[in.src]+uint64(int64(in.off)), int(in.size))
			if err != nil {
				r.pc = pc
				return 0, r.fault(err)
			}
			*d = v
		case opLdxSX:
			v, err := r.load(regs[in.src]+uint64(int64(in.off)), int(in.size))
			if err != nil {
				r.pc = pc
				return 0, r.fault(err)
			}
			switch in.size {
			case 1:
				v = uint64(int64(int8(v)))
			case 2:
				v = uint64(int64(int16(v)))
			default:
				v = uint64(int64(int32(v)))
			}
			*d = v
		case opSt:
			if err := r.store(*d+uint64(int64(in.off)), int(in.size), uint64(in.imm)); err != nil {
				r.pc = pc
				return 0, r.fault(err)
			}
		case opStx:
			if err := r.store(*d+uint64(int64(in.off)), int(in.size), regs[in.src]); err != nil {
				r.pc = pc
				return 0, r.fault(err)
			}
		case opAtomicAdd, opAtomicOr, opAtomicAnd, opAtomicXor, opXchg, opCmpXchg:
			if err := r.atomic(in); err != nil {
				r.pc = pc
				return 0, r.fault(err)
			}
		case opLoadAcquire:
			v, err := r.load(regs[in.src]+uint64(int64(in.off)), int(in.size))
			if err != nil {
				r.pc = pc
				return 0, r.fault(err)
			}
			*d = v
		case opStoreRelease:
			if err := r.store(*d+uint64(int64(in.off)), int(in.size), regs[in.src]); err != nil {
				r.pc = pc
				return 0, r.fault(err)
			}

		case opLddw:
			*d = uint64(in.imm)
			next = pc + 2
		case opLdMap:
			*d = r.mapHandle(in.m)
			next = pc + 2
		case opLdMapValue:
			a, ok := in.m.impl.(*arrayMap)
			if !ok || in.m.ncpu != 1 {
				r.pc = pc
				return 0, r.fault(fmt.Errorf("direct value access needs an array map, %s is a %s", in.m.name, in.m.typ))
			}
			v := a.slot(0, 0)
			if in.imm >= int64(len(v)) {
				r.pc = pc
				return 0, r.fault(fmt.Errorf("offset %d is outside the %d-byte value of %s", in.imm, len(v), in.m.name))
			}
			*d = r.valueRegion(in.m, v) + uint64(in.imm)
			next = pc + 2
		case opLdAbs, opLdInd:
			off := in.imm
			if in.op == opLdInd {
				off += int64(int32(regs[in.src]))
			}
			v, ok := r.legacyLoad(off, int(in.size))
			if !ok {
				// The kernel ends the program with 0 when a legacy load
				// falls outside the packet.
				return 0, nil
			}
			regs[0] = v

		case opCall:
			if err := r.callHelper(in, in.helper); err != nil {
				r.pc = pc
				return 0, r.fault(err)
			}
		case opCallx:
			if err := r.callHelper(in, helperID(*d)); err != nil {
				r.pc = pc
				return 0, r.fault(err)
			}
		case opTailCall:
			np, err := r.tailCall(in)
			if err != nil {
				r.pc = pc
				return 0, r.fault(err)
			}
			if np != nil {
				code = np.code
				next = 0
			}
		case opCallLocal:
			if len(r.frames)+1 >= maxFrames {
				r.pc = pc
				return 0, r.fault(fmt.Errorf("call depth exceeds %d frames", maxFrames))
			}
			r.frames = append(r.frames, frame{prog: r.prog, ret: pc + 1, saved: [4]uint64{regs[6], regs[7], regs[8], regs[9]}, fp: regs[10]})
			regs[10] = r.pushStack()
			next = int(in.target)
		case opExit:
			if len(r.frames) == 0 {
				return regs[0], nil
			}
			f := r.frames[len(r.frames)-1]
			r.frames = r.frames[:len(r.frames)-1]
			r.stacks = r.stacks[:len(r.stacks)-1]
			regs[6], regs[7], regs[8], regs[9] = f.saved[0], f.saved[1], f.saved[2], f.saved[3]
			regs[10] = f.fp
			r.prog = f.prog
			code = f.prog.code
			next = f.ret
		default:
			r.pc = pc
			return 0, r.fault(fmt.Errorf("instruction cannot be executed (op %d)", in.op))
		}
	}
}

func (r *run) atomic(in *insn) error {
	addr := r.regs[in.dst] + uint64(int64(in.off))
	size := int(in.size)
	reg, off, err := r.resolve(addr, size, true)
	if err != nil {
		return err
	}
	if reg.kind == regionCtx {
		return faultf("atomic operations on the context are not allowed")
	}
	b := reg.data[off:]
	old := getLE(b, size)
	src := r.regs[in.src]
	var nv uint64
	switch in.op {
	case opAtomicAdd:
		nv = old + src
	case opAtomicOr:
		nv = old | src
	case opAtomicAnd:
		nv = old & src
	case opAtomicXor:
		nv = old ^ src
	case opXchg:
		nv = src
	case opCmpXchg:
		nv = old
		want := r.regs[0]
		if size == 4 {
			want = uint64(uint32(want))
		}
		if old == want {
			nv = src
		}
		putLE(b, size, nv)
		r.regs[0] = old
		return nil
	}
	putLE(b, size, nv)
	if in.fetch {
		r.regs[in.src] = old
	}
	return nil
}

// legacyLoad reads size bytes at off from the packet's data in network byte
// order, as BPF_LD_ABS and BPF_LD_IND do.
func (r *run) legacyLoad(off int64, size int) (uint64, bool) {
	if r.pkt < 0 || off < 0 || off+int64(size) > int64(r.pktEnd-r.pktData) {
		return 0, false
	}
	b := r.pktBuf[int64(r.pktData)+off:]
	switch size {
	case 1:
		return uint64(b[0]), true
	case 2:
		return uint64(binary.BigEndian.Uint16(b)), true
	}
	return uint64(binary.BigEndian.Uint32(b)), true
}

func (r *run) tailCall(in *insn) (*program, error) {
	m, err := r.mapArg(r.regs[2])
	if err != nil {
		return nil, err
	}
	pa, ok := m.impl.(*progArray)
	if !ok {
		return nil, faultf("bpf_tail_call needs a program array, %s is a %s", m.name, m.typ)
	}
	if r.regs[1] != regionAddr(1, 0) {
		return nil, faultf("bpf_tail_call's first argument must be the context, got %s", r.describe(r.regs[1]))
	}
	idx := uint32(r.regs[3])
	target := ""
	if idx < uint32(len(pa.slots)) && r.tailCalls < maxTailCalls {
		target = pa.slots[idx]
	}
	if t := r.mc.opts.Tracer; t != nil {
		t.TailCall(&TailCall{Program: r.prog.name, Index: in.orig, Map: m.name, Slot: idx, Target: target})
	}
	if target == "" {
		// A failed tail call falls through to the next instruction.
		r.regs[0] = ENOENT.ret()
		return nil, nil
	}
	np := r.mc.progs[target]
	if np == nil {
		return nil, faultf("program array %s slot %d names program %s, which does not exist", m.name, idx, target)
	}
	r.tailCalls++
	r.res.TailCalls = append(r.res.TailCalls, target)
	// The target reuses the frame: a fresh stack, the same caller.
	clear(r.regions[r.stacks[len(r.stacks)-1]].data)
	r.prog = np
	return np, nil
}

func (r *run) mapArg(addr uint64) (*Map, error) {
	idx, off := splitAddr(addr)
	if off != 0 || idx < 1 || idx >= len(r.regions) || r.regions[idx].kind != regionMapHandle {
		return nil, faultf("expected a map pointer, got %s", r.describe(addr))
	}
	return r.regions[idx].m, nil
}
