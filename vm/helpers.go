package vm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/cilium/ebpf/asm"
)

// HelperFunc implements one helper. It returns r0, or an error that stops
// the run as a fault (a bad pointer, a wrong context). Failures a program
// is meant to handle are return values (negative errnos), as in the kernel.
type HelperFunc func(c *HelperCall) (uint64, error)

// HelperCall is one call of a helper: its arguments (r1-r5) and access to
// the memory and maps of the run.
type HelperCall struct {
	Helper asm.BuiltinFunc
	Args   [5]uint64
	r      *run
	in     *insn
}

// Bytes returns n bytes of memory at addr, for the helper to read or (with
// write) change in place.
func (c *HelperCall) Bytes(addr uint64, n int, write bool) ([]byte, error) {
	return c.r.bytesAt(addr, n, write)
}

// Map returns the map addr points to (a map pointer loaded by lddw).
func (c *HelperCall) Map(addr uint64) (*Map, error) { return c.r.mapArg(addr) }

// CPU is the CPU the run executes on.
func (c *HelperCall) CPU() int { return c.r.mc.opts.CPU }

// Context is the run's context.
func (c *HelperCall) Context() Context { return c.r.ctxSrc }

// builtinHelpers is the helper table, by helper number. Adding a helper is
// adding an entry here (or passing Options.Helpers).
var builtinHelpers = map[asm.BuiltinFunc]HelperFunc{
	asm.FnMapLookupElem:     helperMapLookup,
	asm.FnMapUpdateElem:     helperMapUpdate,
	asm.FnMapDeleteElem:     helperMapDelete,
	asm.FnKtimeGetNs:        func(c *HelperCall) (uint64, error) { return c.r.mc.opts.Clock(), nil },
	asm.FnTracePrintk:       helperTracePrintk,
	asm.FnGetPrandomU32:     func(c *HelperCall) (uint64, error) { return uint64(c.r.mc.opts.Rand()), nil },
	asm.FnGetSmpProcessorId: func(c *HelperCall) (uint64, error) { return uint64(c.CPU()), nil },
	asm.FnSkbStoreBytes:     helperSkbStoreBytes,
	asm.FnL3CsumReplace:     helperL3CsumReplace,
	asm.FnL4CsumReplace:     helperL4CsumReplace,
	asm.FnRedirect:          helperRedirect,
	asm.FnSkbLoadBytes:      helperSkbLoadBytes,
	asm.FnCsumDiff:          helperCsumDiff,
	asm.FnXdpAdjustHead:     helperXdpAdjustHead,
	asm.FnRingbufOutput:     helperRingbufOutput,
	asm.FnRingbufReserve:    helperRingbufReserve,
	asm.FnRingbufSubmit:     func(c *HelperCall) (uint64, error) { return 0, c.r.ringbufCommit(c.Args[0], true) },
	asm.FnRingbufDiscard:    func(c *HelperCall) (uint64, error) { return 0, c.r.ringbufCommit(c.Args[0], false) },
}

func helperID(v uint64) asm.BuiltinFunc { return asm.BuiltinFunc(uint32(v)) }

func (r *run) callHelper(in *insn, fn asm.BuiltinFunc) error {
	h := r.mc.helpers[fn]
	if h == nil {
		if fn == asm.FnTailCall {
			return faultf("bpf_tail_call cannot be called through a register")
		}
		return faultf("helper %s is not supported by the interpreter", fn)
	}
	c := &r.call
	*c = HelperCall{Helper: fn, r: r, in: in}
	copy(c.Args[:], r.regs[1:6])
	ret, err := h(c)
	if err != nil {
		return fmt.Errorf("%s: %w", fn, err)
	}
	if t := r.mc.opts.Tracer; t != nil {
		t.Helper(&HelperEvent{Program: r.prog.name, Index: in.orig, Helper: fn, Args: c.Args, Ret: ret})
	}
	r.regs[0] = ret
	return nil
}

func helperMapLookup(c *HelperCall) (uint64, error) {
	m, err := c.Map(c.Args[0])
	if err != nil {
		return 0, err
	}
	switch m.impl.(type) {
	case *progArray, *ringbuf:
		return 0, faultf("programs cannot look up %s maps (%s)", m.typ, m.name)
	}
	key, err := c.Bytes(c.Args[1], int(m.keySize), false)
	if err != nil {
		return 0, fmt.Errorf("key: %w", err)
	}
	v := m.impl.lookup(key, c.CPU())
	if t := c.r.mc.opts.Tracer; t != nil {
		ev := &MapLookup{Program: c.r.prog.name, Index: c.in.orig, Map: m.name, Key: slices.Clone(key)}
		if v != nil {
			ev.Value = slices.Clone(v)
		}
		t.MapLookup(ev)
	}
	if v == nil {
		return 0, nil
	}
	return c.r.valueRegion(m, v), nil
}

func helperMapUpdate(c *HelperCall) (uint64, error) {
	m, err := c.Map(c.Args[0])
	if err != nil {
		return 0, err
	}
	key, err := c.Bytes(c.Args[1], int(m.keySize), false)
	if err != nil {
		return 0, fmt.Errorf("key: %w", err)
	}
	val, err := c.Bytes(c.Args[2], int(m.valueSize), false)
	if err != nil {
		return 0, fmt.Errorf("value: %w", err)
	}
	if err := m.impl.update(slices.Clone(key), [][]byte{val}, c.Args[3], c.CPU()); err != nil {
		if e, ok := err.(Errno); ok {
			return e.ret(), nil
		}
		return 0, err
	}
	return 0, nil
}

func helperMapDelete(c *HelperCall) (uint64, error) {
	m, err := c.Map(c.Args[0])
	if err != nil {
		return 0, err
	}
	key, err := c.Bytes(c.Args[1], int(m.keySize), false)
	if err != nil {
		return 0, fmt.Errorf("key: %w", err)
	}
	if err := m.impl.delete(key); err != nil {
		if e, ok := err.(Errno); ok {
			return e.ret(), nil
		}
		return 0, err
	}
	return 0, nil
}

// helperTracePrintk formats like the kernel's bpf_trace_printk: up to three
// arguments, %d %i %u %x %X with optional l/ll, %p, %c and %%.
func helperTracePrintk(c *HelperCall) (uint64, error) {
	n := int(uint32(c.Args[1]))
	b, err := c.Bytes(c.Args[0], n, false)
	if err != nil {
		return 0, fmt.Errorf("format: %w", err)
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	} else {
		return EINVAL.ret(), nil
	}
	args := c.Args[2:5]
	var out strings.Builder
	ai := 0
	for i := 0; i < len(b); i++ {
		if b[i] != '%' {
			out.WriteByte(b[i])
			continue
		}
		i++
		if i < len(b) && b[i] == '%' {
			out.WriteByte('%')
			continue
		}
		long := 0
		for i < len(b) && b[i] == 'l' {
			long++
			i++
		}
		if i >= len(b) || ai >= len(args) {
			return EINVAL.ret(), nil
		}
		v := args[ai]
		ai++
		if long == 0 {
			v = uint64(uint32(v))
		}
		switch b[i] {
		case 'd', 'i':
			if long == 0 {
				fmt.Fprintf(&out, "%d", int32(v))
			} else {
				fmt.Fprintf(&out, "%d", int64(v))
			}
		case 'u':
			fmt.Fprintf(&out, "%d", v)
		case 'x':
			fmt.Fprintf(&out, "%x", v)
		case 'X':
			fmt.Fprintf(&out, "%X", v)
		case 'p':
			fmt.Fprintf(&out, "%#x", args[ai-1])
		case 'c':
			out.WriteByte(byte(v))
		default:
			return EINVAL.ret(), nil
		}
	}
	s := strings.TrimSuffix(out.String(), "\n")
	c.r.res.Printk = append(c.r.res.Printk, s)
	return uint64(out.Len()), nil
}

// packetCtx checks that r1 is the context of a packet program.
func (c *HelperCall) packetCtx(kind string) error {
	if c.Args[0] != regionAddr(1, 0) {
		return faultf("first argument must be the context, got %s", c.r.describe(c.Args[0]))
	}
	switch c.r.ctxSrc.(type) {
	case *SKB:
		if kind == "skb" || kind == "any" {
			return nil
		}
	case *XDP:
		if kind == "xdp" || kind == "any" {
			return nil
		}
	}
	return faultf("not available to programs with a %T context", c.r.ctxSrc)
}

// packetRange returns len bytes of packet data at off, or nil when they
// are not all inside the packet.
func (r *run) packetRange(off, n uint64) []byte {
	plen := uint64(r.pktEnd - r.pktData)
	if off > plen || n > plen-off {
		return nil
	}
	s := uint64(r.pktData) + off
	return r.pktBuf[s : s+n]
}

func helperSkbLoadBytes(c *HelperCall) (uint64, error) {
	if err := c.packetCtx("skb"); err != nil {
		return 0, err
	}
	off, n := uint64(uint32(c.Args[1])), uint64(uint32(c.Args[3]))
	to, err := c.Bytes(c.Args[2], int(n), true)
	if err != nil {
		return 0, fmt.Errorf("destination: %w", err)
	}
	src := c.r.packetRange(off, n)
	if src == nil {
		clear(to)
		return EFAULT.ret(), nil
	}
	copy(to, src)
	return 0, nil
}

const (
	fRecomputeCsum = 1 << 0
	fInvalidHash   = 1 << 1
	fHdrFieldMask  = 0xf
	fPseudoHdr     = 1 << 4
	fMarkMangled0  = 1 << 5
	fMarkEnforce   = 1 << 6
	fIPv6          = 1 << 7
	fIngress       = 1 << 0
)

func helperSkbStoreBytes(c *HelperCall) (uint64, error) {
	if err := c.packetCtx("skb"); err != nil {
		return 0, err
	}
	off, n, flags := uint64(uint32(c.Args[1])), uint64(uint32(c.Args[3])), c.Args[4]
	if flags&^(fRecomputeCsum|fInvalidHash) != 0 {
		return EINVAL.ret(), nil
	}
	from, err := c.Bytes(c.Args[2], int(n), false)
	if err != nil {
		return 0, fmt.Errorf("source: %w", err)
	}
	dst := c.r.packetRange(off, n)
	if dst == nil {
		return EFAULT.ret(), nil
	}
	copy(dst, from)
	return 0, nil
}

func helperRedirect(c *HelperCall) (uint64, error) {
	ifindex, flags := uint32(c.Args[0]), c.Args[1]
	switch c.r.ctxSrc.(type) {
	case *XDP:
		if flags != 0 {
			return 0, nil // XDP_ABORTED
		}
		c.r.res.Redirect = &Redirect{Ifindex: ifindex, Flags: flags}
		return 4, nil // XDP_REDIRECT
	case *SKB:
		if flags&^fIngress != 0 {
			return 2, nil // TC_ACT_SHOT
		}
		c.r.res.Redirect = &Redirect{Ifindex: ifindex, Flags: flags}
		return 7, nil // TC_ACT_REDIRECT
	}
	return 0, faultf("not available to programs with a %T context", c.r.ctxSrc)
}

// Checksums, with the kernel's arithmetic: a 32-bit ones' complement sum
// (csum_partial as on x86-64), folded to 16 bits. Values are the raw
// host-order loads of network-order fields, as programs pass them.

func csumAdd(a, b uint32) uint32 {
	s := a + b
	if s < b {
		s++
	}
	return s
}

func csumFold(s uint32) uint16 {
	s = (s & 0xffff) + (s >> 16)
	s = (s & 0xffff) + (s >> 16)
	return ^uint16(s)
}

func csumPartial(b []byte, seed uint32) uint32 {
	s := seed
	for i := 0; i+4 <= len(b); i += 4 {
		s = csumAdd(s, binary.LittleEndian.Uint32(b[i:]))
	}
	return s
}

func csum16Add(a, b uint16) uint16 {
	s := a + b
	if s < b {
		s++
	}
	return s
}

// csumReplace updates the 16-bit checksum at sum (raw bytes) for a field
// changing from from to to (size 2 or 4), or by the 32-bit diff to (size 0).
func csumReplace(sum []byte, from, to uint64, size uint64) {
	old := binary.LittleEndian.Uint16(sum)
	var nv uint16
	switch size {
	case 0:
		nv = csumFold(csumAdd(uint32(to), ^uint32(old)))
	case 2:
		nv = ^csum16Add(csum16Add(^old, ^uint16(from)), uint16(to))
	case 4:
		tmp := csumAdd(^uint32(old), ^uint32(from))
		nv = csumFold(csumAdd(tmp, uint32(to)))
	}
	binary.LittleEndian.PutUint16(sum, nv)
}

func helperCsumDiff(c *HelperCall) (uint64, error) {
	fromSize, toSize, seed := uint32(c.Args[1]), uint32(c.Args[3]), uint32(c.Args[4])
	if fromSize%4 != 0 || toSize%4 != 0 || fromSize+toSize > 512*2 {
		return EINVAL.ret(), nil
	}
	s := seed
	if fromSize > 0 {
		from, err := c.Bytes(c.Args[0], int(fromSize), false)
		if err != nil {
			return 0, fmt.Errorf("from: %w", err)
		}
		for i := 0; i < len(from); i += 4 {
			s = csumAdd(s, ^binary.LittleEndian.Uint32(from[i:]))
		}
	}
	if toSize > 0 {
		to, err := c.Bytes(c.Args[2], int(toSize), false)
		if err != nil {
			return 0, fmt.Errorf("to: %w", err)
		}
		s = csumPartial(to, s)
	}
	return uint64(s), nil
}

func helperL3CsumReplace(c *HelperCall) (uint64, error) {
	if err := c.packetCtx("skb"); err != nil {
		return 0, err
	}
	off, from, to, flags := uint64(uint32(c.Args[1])), c.Args[2], c.Args[3], c.Args[4]
	if flags&^fHdrFieldMask != 0 {
		return EINVAL.ret(), nil
	}
	size := flags & fHdrFieldMask
	if size != 0 && size != 2 && size != 4 {
		return EINVAL.ret(), nil
	}
	sum := c.r.packetRange(off, 2)
	if sum == nil {
		return EFAULT.ret(), nil
	}
	csumReplace(sum, from, to, size)
	return 0, nil
}

func helperL4CsumReplace(c *HelperCall) (uint64, error) {
	if err := c.packetCtx("skb"); err != nil {
		return 0, err
	}
	off, from, to, flags := uint64(uint32(c.Args[1])), c.Args[2], c.Args[3], c.Args[4]
	if flags&^(fPseudoHdr|fMarkMangled0|fMarkEnforce|fHdrFieldMask|fIPv6) != 0 {
		return EINVAL.ret(), nil
	}
	size := flags & fHdrFieldMask
	if size != 0 && size != 2 && size != 4 {
		return EINVAL.ret(), nil
	}
	sum := c.r.packetRange(off, 2)
	if sum == nil {
		return EFAULT.ret(), nil
	}
	mangled0 := flags&fMarkMangled0 != 0
	if mangled0 && sum[0] == 0 && sum[1] == 0 {
		return 0, nil // a zero UDP checksum means none; leave it
	}
	csumReplace(sum, from, to, size)
	if mangled0 && sum[0] == 0 && sum[1] == 0 {
		sum[0], sum[1] = 0xff, 0xff
	}
	return 0, nil
}

// xdpFrameSize is sizeof(struct xdp_frame), which the kernel keeps free at
// the start of the headroom.
const xdpFrameSize = 40

func helperXdpAdjustHead(c *HelperCall) (uint64, error) {
	if err := c.packetCtx("xdp"); err != nil {
		return 0, err
	}
	r := c.r
	delta := int64(int32(c.Args[1]))
	metalen := int64(r.pktData - r.pktMeta)
	data := int64(r.pktData) + delta
	if data-metalen < xdpFrameSize || data > int64(r.pktEnd)-14 {
		return EINVAL.ret(), nil
	}
	if metalen > 0 {
		copy(r.pktBuf[int64(r.pktMeta)+delta:], r.pktBuf[r.pktMeta:r.pktData])
	}
	r.pktData = uint32(data)
	r.pktMeta = uint32(data - metalen)
	r.regions[r.pkt].lo = r.pktMeta
	return 0, nil
}

func (c *HelperCall) ringbuf(addr uint64) (*ringbuf, *Map, error) {
	m, err := c.Map(addr)
	if err != nil {
		return nil, nil, err
	}
	rb, ok := m.impl.(*ringbuf)
	if !ok {
		return nil, nil, faultf("%s is a %s, not a ring buffer", m.name, m.typ)
	}
	return rb, m, nil
}

func helperRingbufOutput(c *HelperCall) (uint64, error) {
	rb, _, err := c.ringbuf(c.Args[0])
	if err != nil {
		return 0, err
	}
	n, flags := int(c.Args[2]), c.Args[3]
	data, err := c.Bytes(c.Args[1], n, false)
	if err != nil {
		return 0, fmt.Errorf("data: %w", err)
	}
	if flags&^3 != 0 {
		return EINVAL.ret(), nil
	}
	rec := rb.reserve(n)
	if rec == nil {
		return EAGAIN.ret(), nil
	}
	copy(rec.data, data)
	rec.submitted = true
	return 0, nil
}

func helperRingbufReserve(c *HelperCall) (uint64, error) {
	rb, m, err := c.ringbuf(c.Args[0])
	if err != nil {
		return 0, err
	}
	if c.Args[2] != 0 {
		return 0, nil
	}
	rec := rb.reserve(int(c.Args[1]))
	if rec == nil {
		return 0, nil
	}
	addr := c.r.addRegion(region{data: rec.data, hi: uint32(len(rec.data)), writable: true, kind: regionRingbufRecord, m: m, rec: rec})
	c.r.ringRecs[addr] = rec
	return addr, nil
}

func (r *run) ringbufCommit(addr uint64, submit bool) error {
	rec := r.ringRecs[addr]
	if rec == nil {
		return faultf("%s is not a reserved ring buffer record", r.describe(addr))
	}
	delete(r.ringRecs, addr)
	rec.submitted, rec.discarded = submit, !submit
	return nil
}
