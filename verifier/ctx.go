package verifier

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// ctxField is a range of a context struct with the rules the kernel's
// is_valid_access callback applies to it.
type ctxField struct {
	name     string
	off, end int     // [off, end)
	result   regType // what a load gives: scalar, or a pointer type
	// sizes lists the load sizes allowed; nil allows 1, 2 and 4 bytes
	// (a narrow load of a u32 field).
	sizes    []int
	writable bool
	// wide allows 8-byte aligned loads and stores across two u32s of an
	// array field (user_ip6).
	wide bool
	// attach, when set, restricts the field to these attach types.
	attach []ebpf.AttachType
}

// ctxLayout is a program type's context struct.
type ctxLayout struct {
	name   string
	size   int
	fields []ctxField
}

var (
	only4 = []int{4}
	only8 = []int{8}
)

// Layouts from include/uapi/linux/bpf.h and the is_valid_access callbacks
// in net/core/filter.c (xdp_is_valid_access, tc_cls_act_is_valid_access
// with bpf_skb_is_valid_access, sock_addr_is_valid_access).
var ctxLayouts = map[ebpf.ProgramType]*ctxLayout{
	ebpf.XDP: {name: "xdp_md", size: 24, fields: []ctxField{
		{name: "data", off: 0, end: 4, result: ptrToPacket, sizes: only4},
		{name: "data_end", off: 4, end: 8, result: ptrToPacketEnd, sizes: only4},
		{name: "data_meta", off: 8, end: 12, result: ptrToPacketMeta, sizes: only4},
		{name: "ingress_ifindex", off: 12, end: 16, result: scalarValue, sizes: only4},
		{name: "rx_queue_index", off: 16, end: 20, result: scalarValue, sizes: only4},
		{name: "egress_ifindex", off: 20, end: 24, result: scalarValue, sizes: only4,
			attach: []ebpf.AttachType{ebpf.AttachXDPDevMap}},
	}},
	ebpf.SchedCLS: skbLayout,
	ebpf.SchedACT: skbLayout,
	ebpf.CGroupSockAddr: {name: "bpf_sock_addr", size: 72, fields: []ctxField{
		{name: "user_family", off: 0, end: 4, result: scalarValue, sizes: only4},
		{name: "user_ip4", off: 4, end: 8, result: scalarValue, writable: true,
			attach: []ebpf.AttachType{ebpf.AttachCGroupInet4Bind, ebpf.AttachCGroupInet4Connect, ebpf.AttachCgroupInet4GetPeername,
				ebpf.AttachCgroupInet4GetSockname, ebpf.AttachCGroupUDP4Sendmsg, ebpf.AttachCGroupUDP4Recvmsg}},
		{name: "user_ip6", off: 8, end: 24, result: scalarValue, writable: true, wide: true,
			attach: []ebpf.AttachType{ebpf.AttachCGroupInet6Bind, ebpf.AttachCGroupInet6Connect, ebpf.AttachCgroupInet6GetPeername,
				ebpf.AttachCgroupInet6GetSockname, ebpf.AttachCGroupUDP6Sendmsg, ebpf.AttachCGroupUDP6Recvmsg}},
		{name: "user_port", off: 24, end: 28, result: scalarValue, writable: true},
		{name: "family", off: 28, end: 32, result: scalarValue, sizes: only4},
		{name: "type", off: 32, end: 36, result: scalarValue, sizes: only4},
		{name: "protocol", off: 36, end: 40, result: scalarValue, sizes: only4},
		{name: "msg_src_ip4", off: 40, end: 44, result: scalarValue, writable: true,
			attach: []ebpf.AttachType{ebpf.AttachCGroupUDP4Sendmsg}},
		{name: "msg_src_ip6", off: 44, end: 60, result: scalarValue, writable: true, wide: true,
			attach: []ebpf.AttachType{ebpf.AttachCGroupUDP6Sendmsg}},
		// 60..64 is padding before the sk pointer.
		{name: "sk", off: 64, end: 72, result: ptrToSocket, sizes: only8},
	}},
}

var skbLayout = &ctxLayout{name: "__sk_buff", size: 192, fields: []ctxField{
	{name: "len", off: 0, end: 4, result: scalarValue},
	{name: "pkt_type", off: 4, end: 8, result: scalarValue},
	{name: "mark", off: 8, end: 12, result: scalarValue, writable: true},
	{name: "queue_mapping", off: 12, end: 16, result: scalarValue, writable: true},
	{name: "protocol", off: 16, end: 20, result: scalarValue},
	{name: "vlan_present", off: 20, end: 24, result: scalarValue},
	{name: "vlan_tci", off: 24, end: 28, result: scalarValue},
	{name: "vlan_proto", off: 28, end: 32, result: scalarValue},
	{name: "priority", off: 32, end: 36, result: scalarValue, writable: true},
	{name: "ingress_ifindex", off: 36, end: 40, result: scalarValue},
	{name: "ifindex", off: 40, end: 44, result: scalarValue},
	{name: "tc_index", off: 44, end: 48, result: scalarValue, writable: true},
	{name: "cb", off: 48, end: 68, result: scalarValue, writable: true},
	{name: "hash", off: 68, end: 72, result: scalarValue},
	{name: "tc_classid", off: 72, end: 76, result: scalarValue, writable: true},
	{name: "data", off: 76, end: 80, result: ptrToPacket, sizes: only4},
	{name: "data_end", off: 80, end: 84, result: ptrToPacketEnd, sizes: only4},
	{name: "napi_id", off: 84, end: 88, result: scalarValue},
	// 88..140 (family .. local_port) is for socket programs only.
	{name: "data_meta", off: 140, end: 144, result: ptrToPacketMeta, sizes: only4},
	// 144..152 is flow_keys, refused outside flow dissectors.
	{name: "tstamp", off: 152, end: 160, result: scalarValue, sizes: only8, writable: true},
	{name: "wire_len", off: 160, end: 164, result: scalarValue},
	{name: "gso_segs", off: 164, end: 168, result: scalarValue},
	{name: "sk", off: 168, end: 176, result: ptrToSocketOrNull, sizes: only8},
	{name: "gso_size", off: 176, end: 180, result: scalarValue},
	// 180 is tstamp_type, 181..184 padding: both refused.
	{name: "hwtstamp", off: 184, end: 192, result: scalarValue, sizes: only8},
}}

// ctxAccess checks a load (write=false) or store of size bytes at off of
// the context and returns the type the load gives. The error says what
// the program may do instead.
func ctxAccess(typ ebpf.ProgramType, attach ebpf.AttachType, off, size int, write bool) (regType, error) {
	l := ctxLayouts[typ]
	if l == nil {
		return 0, fmt.Errorf("ebpfc's verifier has no context layout for %v programs", typ)
	}
	verb := "read"
	if write {
		verb = "write"
	}
	if off < 0 || off >= l.size {
		return 0, fmt.Errorf("invalid %s of %s at offset %d: the struct is %d bytes", verb, l.name, off, l.size)
	}
	if off%size != 0 {
		return 0, fmt.Errorf("misaligned %d-byte %s of %s at offset %d", size, verb, l.name, off)
	}
	var f *ctxField
	for i := range l.fields {
		if off >= l.fields[i].off && off < l.fields[i].end {
			f = &l.fields[i]
			break
		}
	}
	if f == nil {
		return 0, fmt.Errorf("invalid %s of %s at offset %d: no field there that %v programs may access", verb, l.name, off, typ)
	}
	if len(f.attach) > 0 {
		ok := false
		for _, a := range f.attach {
			ok = ok || a == attach
		}
		if !ok {
			return 0, fmt.Errorf("%s.%s is not available to %v programs attached as %v", l.name, f.name, typ, attach)
		}
	}
	if write && !f.writable {
		return 0, fmt.Errorf("%s.%s (offset %d) is read-only for %v programs", l.name, f.name, off, typ)
	}
	if f.wide && size == 8 && off%8 == 0 && off+8 <= f.end {
		return scalarValue, nil
	}
	if off+size > f.end {
		return 0, fmt.Errorf("%d-byte %s at offset %d crosses the end of %s.%s", size, verb, off, l.name, f.name)
	}
	sizes := f.sizes
	if sizes == nil {
		sizes = []int{1, 2, 4}
		if write {
			sizes = only4
		}
	}
	for _, s := range sizes {
		if s == size {
			if write {
				return scalarValue, nil
			}
			return f.result, nil
		}
	}
	return 0, fmt.Errorf("%d-byte %s of %s.%s: allowed sizes are %v", size, verb, l.name, f.name, sizes)
}
