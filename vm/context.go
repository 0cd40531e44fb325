package vm

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf"
)

// Context is what a program gets in r1: one of *XDP, *SKB, *SockAddr or
// *Mem. Programs see the kernel's UAPI structs (struct xdp_md, struct
// __sk_buff, struct bpf_sock_addr) at their offsets; loads of data,
// data_end and data_meta yield packet pointers. Stores to fields the kernel
// lets the program type write are copied back into the Context after the
// run; the packet the program leaves is in Result.Packet.
type Context interface {
	layout() *ctxLayout
	encode(buf []byte)
	decode(buf []byte)
	packet() []byte
}

// XDP is struct xdp_md with its packet. RX queue and interfaces are what the
// program reads; data, data_end and data_meta come from Packet.
type XDP struct {
	Packet         []byte
	IngressIfindex uint32
	RxQueueIndex   uint32
	EgressIfindex  uint32
}

// SKB is struct __sk_buff (tc and socket programs) with its packet, which
// starts at the Ethernet header. Len is always len(Packet); data, data_end
// and data_meta come from Packet. Fields hold what the struct holds: Protocol
// is the EtherType in network byte order, RemoteIP4 and the ports as the
// kernel stores them.
type SKB struct {
	Packet         []byte
	PktType        uint32
	Mark           uint32
	QueueMapping   uint32
	Protocol       uint32
	VlanPresent    uint32
	VlanTCI        uint32
	VlanProto      uint32
	Priority       uint32
	IngressIfindex uint32
	Ifindex        uint32
	TCIndex        uint32
	CB             [5]uint32
	Hash           uint32
	TCClassid      uint32
	NapiID         uint32
	Family         uint32
	RemoteIP4      uint32
	LocalIP4       uint32
	RemoteIP6      [4]uint32
	LocalIP6       [4]uint32
	RemotePort     uint32
	LocalPort      uint32
	Tstamp         uint64
	WireLen        uint32
	GSOSegs        uint32
	GSOSize        uint32
}

// NewSKB returns the __sk_buff the kernel's BPF_PROG_TEST_RUN gives a tc
// program for an Ethernet frame: protocol from the EtherType, the loopback
// device as ifindex, the frame length as wire length.
func NewSKB(pkt []byte) *SKB {
	s := &SKB{Packet: pkt, Ifindex: 1, IngressIfindex: 1, WireLen: uint32(len(pkt))}
	if len(pkt) >= 14 {
		// The field holds the network-order EtherType as the CPU loads it.
		s.Protocol = uint32(binary.LittleEndian.Uint16(pkt[12:14]))
	}
	return s
}

// SockAddr is struct bpf_sock_addr (cgroup connect, sendmsg, recvmsg, bind
// and getpeername/getsockname hooks). Addresses and ports are as the kernel
// stores them: network byte order in the u32 (UserPort in its low 16 bits).
// UserIP4, UserIP6, UserPort, MsgSrcIP4 and MsgSrcIP6 are writable.
type SockAddr struct {
	UserFamily uint32
	UserIP4    uint32
	UserIP6    [4]uint32
	UserPort   uint32
	Family     uint32
	Type       uint32
	Protocol   uint32
	MsgSrcIP4  uint32
	MsgSrcIP6  [4]uint32
}

// Mem is the conformance suite's calling convention: r1 points to Data
// (writable) and r2 holds its length. Programs of any type may run on it.
type Mem struct {
	Data []byte
}

type fieldKind uint8

const (
	fieldValue fieldKind = iota
	fieldData
	fieldDataEnd
	fieldDataMeta
	fieldLen
	fieldNullPtr // a pointer the interpreter models as NULL (sk, flow_keys)
)

type ctxField struct {
	name     string
	off      uint32
	size     uint32
	kind     fieldKind
	writable bool
}

// ctxLayout is a context struct: its fields and which field covers each
// byte.
type ctxLayout struct {
	name   string
	size   uint32
	fields []ctxField
	at     []int16 // byte offset → field index, -1 for padding
}

func newLayout(name string, size uint32, fields []ctxField) *ctxLayout {
	l := &ctxLayout{name: name, size: size, fields: fields, at: make([]int16, size)}
	for i := range l.at {
		l.at[i] = -1
	}
	for i, f := range fields {
		for b := f.off; b < f.off+f.size; b++ {
			l.at[b] = int16(i)
		}
	}
	return l
}

func u32f(name string, off uint32, w bool) ctxField {
	return ctxField{name: name, off: off, size: 4, writable: w}
}

var xdpLayout = newLayout("xdp_md", 24, []ctxField{
	{name: "data", off: 0, size: 4, kind: fieldData},
	{name: "data_end", off: 4, size: 4, kind: fieldDataEnd},
	{name: "data_meta", off: 8, size: 4, kind: fieldDataMeta},
	u32f("ingress_ifindex", 12, false),
	u32f("rx_queue_index", 16, false),
	u32f("egress_ifindex", 20, false),
})

var skbLayout = newLayout("__sk_buff", 192, []ctxField{
	{name: "len", off: 0, size: 4, kind: fieldLen},
	u32f("pkt_type", 4, false),
	u32f("mark", 8, true),
	u32f("queue_mapping", 12, true),
	u32f("protocol", 16, false),
	u32f("vlan_present", 20, false),
	u32f("vlan_tci", 24, false),
	u32f("vlan_proto", 28, false),
	u32f("priority", 32, true),
	u32f("ingress_ifindex", 36, false),
	u32f("ifindex", 40, false),
	u32f("tc_index", 44, true),
	u32f("cb[0]", 48, true), u32f("cb[1]", 52, true), u32f("cb[2]", 56, true),
	u32f("cb[3]", 60, true), u32f("cb[4]", 64, true),
	u32f("hash", 68, false),
	u32f("tc_classid", 72, true),
	{name: "data", off: 76, size: 4, kind: fieldData},
	{name: "data_end", off: 80, size: 4, kind: fieldDataEnd},
	u32f("napi_id", 84, false),
	u32f("family", 88, false),
	u32f("remote_ip4", 92, false),
	u32f("local_ip4", 96, false),
	u32f("remote_ip6[0]", 100, false), u32f("remote_ip6[1]", 104, false),
	u32f("remote_ip6[2]", 108, false), u32f("remote_ip6[3]", 112, false),
	u32f("local_ip6[0]", 116, false), u32f("local_ip6[1]", 120, false),
	u32f("local_ip6[2]", 124, false), u32f("local_ip6[3]", 128, false),
	u32f("remote_port", 132, false),
	u32f("local_port", 136, false),
	{name: "data_meta", off: 140, size: 4, kind: fieldDataMeta},
	{name: "flow_keys", off: 144, size: 8, kind: fieldNullPtr},
	{name: "tstamp", off: 152, size: 8, writable: true},
	u32f("wire_len", 160, false),
	u32f("gso_segs", 164, false),
	{name: "sk", off: 168, size: 8, kind: fieldNullPtr},
	u32f("gso_size", 176, false),
	{name: "tstamp_type", off: 180, size: 1},
	{name: "hwtstamp", off: 184, size: 8},
})

var sockAddrLayout = newLayout("bpf_sock_addr", 72, []ctxField{
	u32f("user_family", 0, false),
	u32f("user_ip4", 4, true),
	u32f("user_ip6[0]", 8, true), u32f("user_ip6[1]", 12, true),
	u32f("user_ip6[2]", 16, true), u32f("user_ip6[3]", 20, true),
	u32f("user_port", 24, true),
	u32f("family", 28, false),
	u32f("type", 32, false),
	u32f("protocol", 36, false),
	u32f("msg_src_ip4", 40, true),
	u32f("msg_src_ip6[0]", 44, true), u32f("msg_src_ip6[1]", 48, true),
	u32f("msg_src_ip6[2]", 52, true), u32f("msg_src_ip6[3]", 56, true),
	{name: "sk", off: 64, size: 8, kind: fieldNullPtr},
})

func putU32s(b []byte, off int, vs ...uint32) {
	for i, v := range vs {
		binary.LittleEndian.PutUint32(b[off+4*i:], v)
	}
}

func getU32s(b []byte, off int, dst ...*uint32) {
	for i, d := range dst {
		*d = binary.LittleEndian.Uint32(b[off+4*i:])
	}
}

func (x *XDP) layout() *ctxLayout { return xdpLayout }
func (x *XDP) packet() []byte     { return x.Packet }
func (x *XDP) encode(b []byte)    { putU32s(b, 12, x.IngressIfindex, x.RxQueueIndex, x.EgressIfindex) }
func (x *XDP) decode(b []byte)    {}

func (s *SKB) layout() *ctxLayout { return skbLayout }
func (s *SKB) packet() []byte     { return s.Packet }
func (s *SKB) encode(b []byte) {
	putU32s(b, 4, s.PktType, s.Mark, s.QueueMapping, s.Protocol, s.VlanPresent, s.VlanTCI,
		s.VlanProto, s.Priority, s.IngressIfindex, s.Ifindex, s.TCIndex)
	putU32s(b, 48, s.CB[:]...)
	putU32s(b, 68, s.Hash, s.TCClassid)
	putU32s(b, 84, s.NapiID, s.Family, s.RemoteIP4, s.LocalIP4)
	putU32s(b, 100, s.RemoteIP6[:]...)
	putU32s(b, 116, s.LocalIP6[:]...)
	putU32s(b, 132, s.RemotePort, s.LocalPort)
	binary.LittleEndian.PutUint64(b[152:], s.Tstamp)
	putU32s(b, 160, s.WireLen, s.GSOSegs)
	putU32s(b, 176, s.GSOSize)
}
func (s *SKB) decode(b []byte) {
	getU32s(b, 8, &s.Mark, &s.QueueMapping)
	getU32s(b, 32, &s.Priority)
	getU32s(b, 44, &s.TCIndex, &s.CB[0], &s.CB[1], &s.CB[2], &s.CB[3], &s.CB[4])
	getU32s(b, 72, &s.TCClassid)
	s.Tstamp = binary.LittleEndian.Uint64(b[152:])
}

func (a *SockAddr) layout() *ctxLayout { return sockAddrLayout }
func (a *SockAddr) packet() []byte     { return nil }
func (a *SockAddr) encode(b []byte) {
	putU32s(b, 0, a.UserFamily, a.UserIP4)
	putU32s(b, 8, a.UserIP6[:]...)
	putU32s(b, 24, a.UserPort, a.Family, a.Type, a.Protocol, a.MsgSrcIP4)
	putU32s(b, 44, a.MsgSrcIP6[:]...)
}
func (a *SockAddr) decode(b []byte) {
	getU32s(b, 4, &a.UserIP4, &a.UserIP6[0], &a.UserIP6[1], &a.UserIP6[2], &a.UserIP6[3], &a.UserPort)
	getU32s(b, 40, &a.MsgSrcIP4, &a.MsgSrcIP6[0], &a.MsgSrcIP6[1], &a.MsgSrcIP6[2], &a.MsgSrcIP6[3])
}

func (m *Mem) layout() *ctxLayout { return nil }
func (m *Mem) packet() []byte     { return nil }
func (m *Mem) encode(b []byte)    {}
func (m *Mem) decode(b []byte)    {}

// contextFits says whether ctx is what programs of type typ get.
func contextFits(typ ebpf.ProgramType, ctx Context) error {
	want := ""
	switch typ {
	case ebpf.UnspecifiedProgram:
		return nil
	case ebpf.XDP:
		if _, ok := ctx.(*XDP); !ok {
			want = "*vm.XDP"
		}
	case ebpf.SchedCLS, ebpf.SchedACT, ebpf.SocketFilter, ebpf.CGroupSKB:
		if _, ok := ctx.(*SKB); !ok {
			want = "*vm.SKB"
		}
	case ebpf.CGroupSockAddr:
		if _, ok := ctx.(*SockAddr); !ok {
			want = "*vm.SockAddr"
		}
	default:
		if _, ok := ctx.(*Mem); !ok {
			return fmt.Errorf("program type %s has no context model in the interpreter; run it with *vm.Mem", typ)
		}
	}
	if want != "" {
		if _, ok := ctx.(*Mem); ok {
			return nil
		}
		return fmt.Errorf("a %s program takes a %s context, got %T", typ, want, ctx)
	}
	return nil
}

// ctxState is the context of one run: its struct as bytes.
type ctxState struct {
	lay *ctxLayout
	buf []byte
}

func (c *ctxState) field(off uint32, size int) (*ctxField, error) {
	if off >= c.lay.size || c.lay.at[off] < 0 {
		return nil, faultf("access to %s at offset %d: no field there", c.lay.name, off)
	}
	f := &c.lay.fields[c.lay.at[off]]
	if off+uint32(size) > f.off+f.size {
		return nil, faultf("access of %d bytes to %s.%s at offset %d crosses the field's end", size, c.lay.name, f.name, off)
	}
	return f, nil
}

func (c *ctxState) load(r *run, off uint32, size int) (uint64, error) {
	f, err := c.field(off, size)
	if err != nil {
		return 0, err
	}
	switch f.kind {
	case fieldData, fieldDataEnd, fieldDataMeta:
		if off != f.off || size != 4 {
			return 0, faultf("%s.%s must be loaded whole, as a u32", c.lay.name, f.name)
		}
		var p uint32
		switch f.kind {
		case fieldData:
			p = r.pktData
		case fieldDataEnd:
			p = r.pktEnd
		default:
			p = r.pktMeta
		}
		return regionAddr(r.pkt, p), nil
	case fieldNullPtr:
		if off != f.off || size != 8 {
			return 0, faultf("%s.%s must be loaded whole, as a u64", c.lay.name, f.name)
		}
		return 0, nil
	case fieldLen:
		v := uint64(r.pktEnd - r.pktData)
		return (v >> (8 * (off - f.off))) & (1<<(8*size) - 1), nil
	}
	return getLE(c.buf[off:], size), nil
}

func (c *ctxState) store(r *run, off uint32, size int, v uint64) error {
	f, err := c.field(off, size)
	if err != nil {
		return err
	}
	if !f.writable || f.kind != fieldValue {
		return faultf("%s.%s is read-only for programs", c.lay.name, f.name)
	}
	putLE(c.buf[off:], size, v)
	return nil
}
