package verifier

import "fmt"

// regType is the abstract type of a register or spilled stack slot.
type regType uint8

const (
	notInit             regType = iota
	scalarValue                 // a number
	ptrToCtx                    // the program's context
	ptrToPacket                 // into the packet, from ctx data
	ptrToPacketEnd              // ctx data_end
	ptrToPacketMeta             // ctx data_meta
	constPtrToMap               // a map, from a map load
	ptrToMapValue               // into a map value
	ptrToMapValueOrNull         // a map lookup's result before its null check
	ptrToStack                  // the frame pointer plus an offset
	ptrToMem                    // helper-returned memory of a known size (ring buffer records)
	ptrToMemOrNull              // the same before its null check
	ptrToSocket                 // a socket, from ctx fields such as sk
	ptrToSocketOrNull
)

// names as the kernel's verifier log prints them, so messages read alike.
var regTypeNames = [...]string{
	notInit:             "not initialised",
	scalarValue:         "scalar",
	ptrToCtx:            "ctx",
	ptrToPacket:         "pkt",
	ptrToPacketEnd:      "pkt_end",
	ptrToPacketMeta:     "pkt_meta",
	constPtrToMap:       "map_ptr",
	ptrToMapValue:       "map_value",
	ptrToMapValueOrNull: "map_value_or_null",
	ptrToStack:          "fp",
	ptrToMem:            "mem",
	ptrToMemOrNull:      "mem_or_null",
	ptrToSocket:         "sock",
	ptrToSocketOrNull:   "sock_or_null",
}

func (t regType) String() string { return regTypeNames[t] }

func (t regType) isPointer() bool { return t != notInit && t != scalarValue }

func (t regType) maybeNull() bool {
	return t == ptrToMapValueOrNull || t == ptrToMemOrNull || t == ptrToSocketOrNull
}

func (t regType) isPacket() bool {
	return t == ptrToPacket || t == ptrToPacketMeta || t == ptrToPacketEnd
}

// reg is the abstract value of a register.
type reg struct {
	typ regType
	// b describes a scalar's value, or the variable part of a pointer's
	// offset.
	b bounds
	// off is a pointer's fixed offset.
	off int32
	// id links copies: registers holding the same lookup result (so one
	// null check covers all), packet pointers that share a checked range,
	// scalars copied from one another (so a comparison narrows all).
	id uint32
	// refID is the reference a pointer holds (a ring buffer record) that
	// must be released before the program exits.
	refID uint32
	// rng is, for a packet pointer, how many bytes past it are known to be
	// in the packet; for memory, its size.
	rng int32
	// mapIdx is the map of a map pointer or map value.
	mapIdx int32
}

func scalarReg(b bounds) reg { return reg{typ: scalarValue, b: b, mapIdx: -1} }
func unknownScalar() reg     { return scalarReg(unknownBounds()) }
func constScalar(v uint64) reg {
	return scalarReg(constBounds(v))
}

// pointerReg is a pointer of type t at fixed offset 0.
func pointerReg(t regType) reg { return reg{typ: t, b: constBounds(0), mapIdx: -1} }

func (r *reg) isConstZero() bool { return r.typ == scalarValue && r.b.isZero() }

func (r reg) String() string {
	switch r.typ {
	case notInit:
		return "not initialised"
	case scalarValue:
		if s := r.b.String(); s != "" {
			return "scalar(" + s + ")"
		}
		return "scalar"
	}
	s := fmt.Sprintf("%s(off=%d", r.typ, r.off)
	if !r.b.isZero() {
		s += ",var_off=" + r.b.String()
	}
	if r.typ == ptrToPacket || r.typ == ptrToPacketMeta {
		s += fmt.Sprintf(",r=%d", r.rng)
	}
	return s + ")"
}

// Kinds of stack bytes.
const (
	stackInvalid byte = iota // never written
	stackMisc                // written with data of unknown type
	stackZero                // written with zero
	stackSpill               // part of a spilled register
)

// stackSlot is 8 bytes of stack. Slot i covers r10-8*(i+1) to
// r10-8*i-1; kind[j] describes the byte at r10-8*i-j-1, so kind[7] is the
// slot's lowest address, as in the kernel's slot_type. spilled holds the
// register stored by an aligned spill, whose bytes are kind[7] downwards.
type stackSlot struct {
	kind    [8]byte
	spilled reg
}

// maxStack is the size of an eBPF stack frame.
const maxStack = 512

// state is the abstract machine state at one point of one path.
type state struct {
	regs  [11]reg
	stack []stackSlot // slot i covers [r10-8*(i+1), r10-8*i)
	refs  []uint32    // references held (acquired and not released)

	// Checkpoint bookkeeping, as the kernel's: parent is the last
	// checkpoint on this path. written marks registers and slots written
	// since parent (so reads stop propagating there); read, on a
	// checkpoint, marks those its continuation read before writing.
	parent       *state
	writtenRegs  uint16
	writtenStack uint64
	readRegs     uint16
	readStack    uint64
	// branches counts the paths still being explored below a checkpoint;
	// only checkpoints whose exploration is complete prune.
	branches int
	// failed marks a checkpoint below which an error was found; it never
	// prunes, since its continuation was not proven safe.
	failed bool
	// history counts jump targets and spills/fills since the last
	// checkpoint, as the kernel's jump history does.
	history int
}

func (s *state) clone() *state {
	c := *s
	c.stack = append([]stackSlot(nil), s.stack...)
	c.refs = append([]uint32(nil), s.refs...)
	return &c
}

// slot returns the stack slot holding the byte at r10+off (off < 0),
// growing the stack as needed.
func (s *state) slot(off int) *stackSlot {
	i := (-off - 1) / 8
	for len(s.stack) <= i {
		s.stack = append(s.stack, stackSlot{spilled: reg{mapIdx: -1}})
	}
	return &s.stack[i]
}

// byteKind returns the kind of the byte at r10+off, with off < 0.
func (s *state) byteKind(off int) byte {
	i := (-off - 1) / 8
	if i >= len(s.stack) {
		return stackInvalid
	}
	return s.stack[i].kind[(-off-1)%8]
}

func (s *state) setByte(off int, k byte) {
	s.slot(off).kind[(-off-1)%8] = k
}

// markRegRead records that r's value at this point is used, in every
// checkpoint up the path until one where r was written.
func (s *state) markRegRead(r int) {
	bit := uint16(1) << r
	if s.writtenRegs&bit != 0 {
		return
	}
	for p := s.parent; p != nil; p = p.parent {
		p.readRegs |= bit
		if p.writtenRegs&bit != 0 {
			return
		}
	}
}

func (s *state) markSlotRead(i int) {
	if i < 0 || i >= 64 {
		return
	}
	bit := uint64(1) << i
	if s.writtenStack&bit != 0 {
		return
	}
	for p := s.parent; p != nil; p = p.parent {
		p.readStack |= bit
		if p.writtenStack&bit != 0 {
			return
		}
	}
}

func (s *state) markRegWritten(r int) { s.writtenRegs |= 1 << r }

func (s *state) markSlotWritten(i int) {
	if i >= 0 && i < 64 {
		s.writtenStack |= 1 << i
	}
}

// forEachReg calls f on every register and spilled register of s.
func (s *state) forEachReg(f func(r *reg)) {
	for i := range s.regs {
		f(&s.regs[i])
	}
	for i := range s.stack {
		if s.stack[i].kind[7] == stackSpill {
			f(&s.stack[i].spilled)
		}
	}
}

func (s *state) hasRef(id uint32) bool {
	for _, r := range s.refs {
		if r == id {
			return true
		}
	}
	return false
}

func (s *state) releaseRef(id uint32) {
	for i, r := range s.refs {
		if r == id {
			s.refs = append(s.refs[:i], s.refs[i+1:]...)
			return
		}
	}
}

// idMap pairs the ids of an old state with those of a new one, so that
// two states are equal only if their registers are linked alike.
type idMap map[uint32]uint32

func (m idMap) check(old, cur uint32) bool {
	if old == 0 && cur == 0 {
		return true
	}
	if old == 0 || cur == 0 {
		return false
	}
	if v, ok := m[old]; ok {
		return v == cur
	}
	m[old] = cur
	return true
}

// scalarIDsOK is check for scalar links: an old scalar without a link
// accepts any.
func (m idMap) scalarIDsOK(old, cur uint32) bool {
	if old == 0 {
		return true
	}
	if cur == 0 {
		return false
	}
	return m.check(old, cur)
}

// regSafe reports whether every continuation that was safe from old is
// safe from cur: the kernel's regsafe, comparing scalars by range
// inclusion (ebpfc does not track precision, so every scalar counts as
// precise).
func regSafe(old, cur *reg, ids idMap) bool {
	if old.typ == notInit {
		return true
	}
	if cur.typ != old.typ {
		return false
	}
	switch old.typ {
	case scalarValue:
		return ids.scalarIDsOK(old.id, cur.id) && old.b.contains(&cur.b)
	case ptrToMapValue, ptrToMapValueOrNull, ptrToMem, ptrToMemOrNull:
		return old.off == cur.off && old.mapIdx == cur.mapIdx && old.rng == cur.rng &&
			old.b.contains(&cur.b) && ids.check(old.id, cur.id) && ids.check(old.refID, cur.refID)
	case ptrToPacket, ptrToPacketMeta:
		return old.rng <= cur.rng && old.off == cur.off && ids.check(old.id, cur.id) && old.b.contains(&cur.b)
	default:
		return old.off == cur.off && old.mapIdx == cur.mapIdx && old.b == cur.b &&
			ids.check(old.id, cur.id) && ids.check(old.refID, cur.refID)
	}
}

// statesEqual reports whether cur is covered by the completed checkpoint
// old, comparing only what old's continuation read.
func statesEqual(old, cur *state) bool {
	ids := idMap{}
	for i := range old.regs {
		if old.readRegs&(1<<i) == 0 {
			continue
		}
		if !regSafe(&old.regs[i], &cur.regs[i], ids) {
			return false
		}
	}
	for i := range old.stack {
		if i < 64 && old.readStack&(1<<i) == 0 {
			continue
		}
		o := &old.stack[i]
		var c *stackSlot
		if i < len(cur.stack) {
			c = &cur.stack[i]
		}
		for k := 0; k < 8; k++ {
			ok := o.kind[k]
			ck := stackInvalid
			if c != nil {
				ck = c.kind[k]
			}
			switch {
			case ok == stackInvalid:
			case ok == stackMisc && (ck == stackMisc || ck == stackZero || (ck == stackSpill && c.spilled.typ == scalarValue)):
			case ok == stackZero && ck == stackZero:
			case ok == ck:
			default:
				return false
			}
		}
		if o.kind[7] == stackSpill {
			if !regSafe(&o.spilled, &c.spilled, ids) {
				return false
			}
		}
	}
	if len(old.refs) != len(cur.refs) {
		return false
	}
	for i := range old.refs {
		if !ids.check(old.refs[i], cur.refs[i]) {
			return false
		}
	}
	return true
}
