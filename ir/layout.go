package ir

// Offsets returns the byte offset of each field of s, laid out in order with
// natural alignment, and the total size rounded up to the largest alignment.
func (s Struct) Offsets() (offs []int, size int) {
	align := 1
	for _, f := range s.Fields {
		if size%f.Size != 0 {
			size += f.Size - size%f.Size
		}
		offs = append(offs, size)
		size += f.Size
		align = max(align, f.Size)
	}
	if size%align != 0 {
		size += align - size%align
	}
	return offs, size
}

// Size returns the size in bytes of s.
func (s Struct) Size() int {
	_, n := s.Offsets()
	return n
}

// CtxField describes a context field a program may read.
type CtxField struct {
	Name     string
	Off      int16
	Size     int
	Type     Type
	Writable bool
}

// CtxFields lists, per program type, the context fields the IR may name.
// Offsets are those of the kernel's UAPI structs (__sk_buff, xdp_md,
// bpf_sock_addr).
var CtxFields = map[ProgType][]CtxField{
	ProgSchedCLS: {
		{Name: "len", Off: 0, Size: 4, Type: Scalar},
		{Name: "pkt_type", Off: 4, Size: 4, Type: Scalar},
		{Name: "mark", Off: 8, Size: 4, Type: Scalar, Writable: true},
		{Name: "protocol", Off: 16, Size: 4, Type: Scalar},
		{Name: "priority", Off: 32, Size: 4, Type: Scalar, Writable: true},
		{Name: "ingress_ifindex", Off: 36, Size: 4, Type: Scalar},
		{Name: "ifindex", Off: 40, Size: 4, Type: Scalar},
		{Name: "cb0", Off: 48, Size: 4, Type: Scalar, Writable: true},
		{Name: "cb1", Off: 52, Size: 4, Type: Scalar, Writable: true},
		{Name: "cb2", Off: 56, Size: 4, Type: Scalar, Writable: true},
		{Name: "cb3", Off: 60, Size: 4, Type: Scalar, Writable: true},
		{Name: "cb4", Off: 64, Size: 4, Type: Scalar, Writable: true},
		{Name: "data", Off: 76, Size: 4, Type: PacketPtr},
		{Name: "data_end", Off: 80, Size: 4, Type: PacketEnd},
	},
	ProgXDP: {
		{Name: "data", Off: 0, Size: 4, Type: PacketPtr},
		{Name: "data_end", Off: 4, Size: 4, Type: PacketEnd},
		{Name: "ingress_ifindex", Off: 12, Size: 4, Type: Scalar},
		{Name: "rx_queue_index", Off: 16, Size: 4, Type: Scalar},
	},
	ProgSockAddr: {
		{Name: "user_family", Off: 0, Size: 4, Type: Scalar},
		{Name: "user_ip4", Off: 4, Size: 4, Type: Scalar, Writable: true},
		{Name: "user_port", Off: 24, Size: 4, Type: Scalar, Writable: true},
		{Name: "family", Off: 28, Size: 4, Type: Scalar},
		{Name: "type", Off: 32, Size: 4, Type: Scalar},
		{Name: "protocol", Off: 36, Size: 4, Type: Scalar},
	},
}

// LookupCtxField returns the field called name of programs of type t.
func LookupCtxField(t ProgType, name string) (CtxField, bool) {
	for _, f := range CtxFields[t] {
		if f.Name == name {
			return f, true
		}
	}
	return CtxField{}, false
}
