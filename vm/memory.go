package vm

import (
	"encoding/binary"
	"fmt"
)

// Memory is a set of regions: the stack of each frame, the context, the
// packet, each map value a program has looked up, ring buffer records, the
// conformance suite's memory buffer. A pointer is a 64-bit value whose
// upper 32 bits name the region (1-based, so that 0 stays the null pointer)
// and whose lower 32 bits are the offset in it, biased by 2^31 so that a
// pointer moved before the start of its region (r10 - 520) still names
// its region. Pointer arithmetic and
// comparisons are plain integer operations, so packet pointers compare
// correctly against data_end, and a pointer spilled to the stack and loaded
// back is the same pointer. An access is checked against the region its
// address names; anything else is a fault.

type regionKind uint8

const (
	regionReserved regionKind = iota
	regionMem
	regionStack
	regionCtx
	regionPacket
	regionMapValue
	regionMapHandle
	regionRingbufRecord
)

// region is one addressable block. Only [lo, hi) of data may be accessed.
type region struct {
	data     []byte
	lo, hi   uint32
	kind     regionKind
	writable bool
	depth    int      // stacks: the frame depth
	m        *Map     // map values and handles, ring buffer records
	rec      *ringRec // ring buffer records
}

const offsetBias = 1 << 31

// name names the region in messages; it is computed only when needed, so
// that runs do not format names they never print.
func (reg *region) name() string {
	switch reg.kind {
	case regionMem:
		return "mem"
	case regionStack:
		return fmt.Sprintf("stack%d", reg.depth)
	case regionCtx:
		return "ctx"
	case regionPacket:
		return "packet"
	case regionMapValue:
		return "map value of " + reg.m.name
	case regionMapHandle:
		return "map " + reg.m.name
	case regionRingbufRecord:
		return "ring buffer record of " + reg.m.name
	}
	return "reserved"
}

func regionAddr(idx int, off uint32) uint64 { return uint64(idx+1)<<32 + offsetBias + uint64(off) }

// splitAddr returns the region index and signed offset of an address.
func splitAddr(addr uint64) (int, int64) {
	return int(addr>>32) - 1, int64(uint32(addr)) - offsetBias
}

// describe names an address for messages: "stack+504", "packet+70".
func (r *run) describe(addr uint64) string {
	idx, off := splitAddr(addr)
	if addr == 0 {
		return "null"
	}
	if idx < 1 || idx >= len(r.regions) {
		return fmt.Sprintf("%#x (not a pointer into any region)", addr)
	}
	return fmt.Sprintf("%s%+d", r.regions[idx].name(), off)
}

// errFault is a memory access the interpreter refuses; the interpreter
// adds the instruction.
type errFault struct{ msg string }

func (e *errFault) Error() string { return e.msg }

func faultf(format string, args ...any) error { return &errFault{fmt.Sprintf(format, args...)} }

// resolve checks an access of size bytes at addr and returns the region and
// offset.
func (r *run) resolve(addr uint64, size int, write bool) (*region, uint32, error) {
	idx, soff := splitAddr(addr)
	// Region 0 is reserved: an address there is a number, not a pointer.
	if idx < 1 || idx >= len(r.regions) {
		if addr < 4096 {
			return nil, 0, faultf("%s of %d bytes at %#x: null pointer dereference", rw(write), size, addr)
		}
		return nil, 0, faultf("%s of %d bytes at %#x: not a pointer into any region", rw(write), size, addr)
	}
	reg := &r.regions[idx]
	if reg.kind == regionMapHandle {
		return nil, 0, faultf("%s of %d bytes at %s%+d: a map pointer may only be passed to helpers", rw(write), size, reg.name(), soff)
	}
	if soff < int64(reg.lo) || soff+int64(size) > int64(reg.hi) {
		return nil, 0, faultf("%s of %d bytes at %s%+d is out of bounds (valid: %d..%d)", rw(write), size, reg.name(), soff, reg.lo, reg.hi)
	}
	off := uint32(soff)
	if write && !reg.writable && reg.kind != regionCtx {
		return nil, 0, faultf("write of %d bytes at %s%+d: %s is read-only", size, reg.name(), soff, reg.name())
	}
	return reg, off, nil
}

func rw(write bool) string {
	if write {
		return "write"
	}
	return "read"
}

func (r *run) load(addr uint64, size int) (uint64, error) {
	reg, off, err := r.resolve(addr, size, false)
	if err != nil {
		return 0, err
	}
	if reg.kind == regionCtx {
		return r.ctx.load(r, off, size)
	}
	return getLE(reg.data[off:], size), nil
}

func (r *run) store(addr uint64, size int, v uint64) error {
	reg, off, err := r.resolve(addr, size, true)
	if err != nil {
		return err
	}
	if reg.kind == regionCtx {
		return r.ctx.store(r, off, size, v)
	}
	putLE(reg.data[off:], size, v)
	return nil
}

// bytesAt returns n bytes at addr for a helper to read or write. Context
// memory is not addressable this way.
func (r *run) bytesAt(addr uint64, n int, write bool) ([]byte, error) {
	if n < 0 {
		return nil, faultf("negative length %d", n)
	}
	reg, off, err := r.resolve(addr, n, write)
	if err != nil {
		return nil, err
	}
	if reg.kind == regionCtx {
		return nil, faultf("helpers cannot access the context as memory (%s)", r.describe(addr))
	}
	return reg.data[off : int(off)+n], nil
}

func getLE(b []byte, size int) uint64 {
	switch size {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.LittleEndian.Uint16(b))
	case 4:
		return uint64(binary.LittleEndian.Uint32(b))
	default:
		return binary.LittleEndian.Uint64(b)
	}
}

func putLE(b []byte, size int, v uint64) {
	switch size {
	case 1:
		b[0] = byte(v)
	case 2:
		binary.LittleEndian.PutUint16(b, uint16(v))
	case 4:
		binary.LittleEndian.PutUint32(b, uint32(v))
	default:
		binary.LittleEndian.PutUint64(b, v)
	}
}

// addRegion appends a region for this run and returns its base address.
func (r *run) addRegion(reg region) uint64 {
	r.regions = append(r.regions, reg)
	return regionAddr(len(r.regions)-1, 0)
}

// valueRegion returns the address of a map value, creating its region on
// first use in this run so that repeated lookups of one value give the same
// pointer.
func (r *run) valueRegion(m *Map, v []byte) uint64 {
	if idx, ok := r.valueRegions[&v[0]]; ok {
		return regionAddr(idx, 0)
	}
	addr := r.addRegion(region{data: v, hi: uint32(len(v)), writable: m.writable(), kind: regionMapValue, m: m})
	r.valueRegions[&v[0]] = len(r.regions) - 1
	return addr
}
