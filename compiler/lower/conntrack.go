package lower

import (
	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/ir"
	"github.com/ebpfc/ebpfc/source"
)

// Connection tracking.
//
// A node has one conntrack map, an LRU hash keyed by the connection's
// addresses, ports and protocol as its first packet carried them, and the
// direction (of the endpoint) in which that packet was judged. A packet is
// a reply when its reversed tuple is in the map under the other direction:
// the connection endpoint A opened by egress is found again when the reply
// arrives at A's ingress, and a connection that arrived at B's ingress is
// found when B's reply leaves by egress. Both endpoints of a connection may
// run on one node; their entries differ by direction.

// ctKey is the conntrack key: IPv6 addresses, or IPv4 ones mapped into IPv6,
// as four big-endian words each.
var ctKey = ir.Struct{Name: "ct_key", Fields: []ir.Field{
	{Name: "saddr0", Size: 4, BigEndian: true},
	{Name: "saddr1", Size: 4, BigEndian: true},
	{Name: "saddr2", Size: 4, BigEndian: true},
	{Name: "saddr3", Size: 4, BigEndian: true},
	{Name: "daddr0", Size: 4, BigEndian: true},
	{Name: "daddr1", Size: 4, BigEndian: true},
	{Name: "daddr2", Size: 4, BigEndian: true},
	{Name: "daddr3", Size: 4, BigEndian: true},
	{Name: "sport", Size: 2, BigEndian: true},
	{Name: "dport", Size: 2, BigEndian: true},
	{Name: "protocol", Size: 1},
	{Name: "egress", Size: 1},
	{Name: "pad", Size: 2},
}}

// ctValue is a conntrack entry: when it expires (CLOCK_MONOTONIC ns), the
// rule that allowed the first packet (0 where the direction is open), and
// the connection's state flags.
var ctValue = ir.Struct{Name: "ct_value", Fields: []ir.Field{
	{Name: "expires", Size: 8},
	{Name: "cookie", Size: 4},
	{Name: "flags", Size: 4},
}}

// Offsets in ctValue.
const (
	ctExpiresOff = 0
	ctFlagsOff   = 12
)

// Conntrack entry flags.
const (
	ctSeenReply = 1 << 0 // a reply passed
	ctClosing   = 1 << 1 // a TCP FIN or RST was seen
)

// TCP header flags, as the byte at offset 13 holds them.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
)

// fragKey identifies a datagram whose fragments are in flight, as RFC 791
// and RFC 8200 do: addresses (IPv4 ones mapped into IPv6), protocol and
// identification (IPv4's 16 bits as a 16-bit load gives them, IPv6's 32).
var fragKey = ir.Struct{Name: "frag_key", Fields: []ir.Field{
	{Name: "saddr0", Size: 4, BigEndian: true},
	{Name: "saddr1", Size: 4, BigEndian: true},
	{Name: "saddr2", Size: 4, BigEndian: true},
	{Name: "saddr3", Size: 4, BigEndian: true},
	{Name: "daddr0", Size: 4, BigEndian: true},
	{Name: "daddr1", Size: 4, BigEndian: true},
	{Name: "daddr2", Size: 4, BigEndian: true},
	{Name: "daddr3", Size: 4, BigEndian: true},
	{Name: "id", Size: 4},
	{Name: "protocol", Size: 1},
	{Name: "pad", Size: 1},
	{Name: "pad2", Size: 2},
}}

// fragValue remembers what the first fragment carried: its ports and the
// policy port word (see the cb layout).
var fragValue = ir.Struct{Name: "frag_value", Fields: []ir.Field{
	{Name: "ports", Size: 4},
	{Name: "policy_port", Size: 4},
}}

// Default conntrack timeouts in seconds, as Cilium has them; overridable
// through settings.conntrackTimeouts.
var defaultCTTimeouts = map[string]int{
	"tcp":    21600,
	"tcpSyn": 60,
	"tcpFin": 10,
	"udp":    60,
	"icmp":   60,
	"any":    60,
}

// Default sizes of the datapath's own maps.
const (
	defaultConntrackSize = 65536
	defaultFragmentsSize = 8192
	eventsRingSize       = 256 << 10
)

// ctTimeout is the timeout called name in nanoseconds.
func (l *lowering) ctTimeout(name string) int64 {
	s, ok := l.cfg.Settings.CTTimeouts[name]
	if !ok || s <= 0 {
		s = defaultCTTimeouts[name]
	}
	return int64(s) * 1_000_000_000
}

// The per-packet metadata the entry program leaves in skb->cb for the
// programs it tail-calls, which read it instead of parsing the headers
// again. The IR has no phi: storing into cb and loading it back is how a
// value chosen on several paths reaches the code after them.
//
//	cb0  ports: source port | destination port << 16, as 16-bit loads from
//	     the packet give them (network order); an ICMP echo's identifier in
//	     both halves; 0 without ports
//	cb1  policy port word: the policy key's port field (destination port,
//	     or ICMP type << 8 | code in network order) | prefix length << 16
//	cb2  protocol | TCP flags << 8 | kind << 16
//	cb3  for an ICMP error, the offset of the ICMP header from data
//	cb4  unused by the entry program
//
// After the policy decision the policy program reuses cb1 for the verdict,
// cb3 for the deciding cookie and cb4 for the connection state.
const (
	kindPlain       = 0 // judge as it is
	kindICMPError   = 1 // an ICMP error: may be related to a connection
	kindFragMissing = 2 // a later fragment whose first fragment was not seen
)

// Verdicts, as events carry them.
const (
	verdictAllowed = 0
	verdictDenied  = 1
	verdictAudited = 2
)

// Connection states the policy program keeps in cb4.
const (
	stateNew         = 0
	stateEstablished = 1
)

// eventRecord is the layout of the records on the events ring buffer. The
// runtime decodes it by field name from the manifest.
var eventRecord = ir.Struct{Name: "event", Fields: []ir.Field{
	{Name: "type", Size: 1},
	{Name: "direction", Size: 1},
	{Name: "verdict", Size: 1},
	{Name: "protocol", Size: 1},
	{Name: "family", Size: 1},
	{Name: "reason", Size: 1},
	{Name: "sport", Size: 2, BigEndian: true},
	{Name: "dport", Size: 2, BigEndian: true},
	{Name: "endpoint", Size: 4},
	{Name: "identity", Size: 4},
	{Name: "cookie", Size: 4},
	{Name: "saddr0", Size: 4, BigEndian: true},
	{Name: "saddr1", Size: 4, BigEndian: true},
	{Name: "saddr2", Size: 4, BigEndian: true},
	{Name: "saddr3", Size: 4, BigEndian: true},
	{Name: "daddr0", Size: 4, BigEndian: true},
	{Name: "daddr1", Size: 4, BigEndian: true},
	{Name: "daddr2", Size: 4, BigEndian: true},
	{Name: "daddr3", Size: 4, BigEndian: true},
}}

// Event types.
const (
	eventVerdict = 1
	eventDrop    = 2
)

// packetInfo is what a program knows about the packet it is deciding, for
// events. Unknown parts are constant zeros.
type packetInfo struct {
	endpoint     int64 // the endpoint's index in the manifest
	dir          direction
	family       int64 // 4 or 6; 0 when nothing is parsed
	proto        ir.Operand
	saddr, daddr addr
	ports        ir.Operand // cb0's layout
	identity     ir.Operand
}

// addr is an IPv6 address, or an IPv4 one mapped into IPv6, as four 32-bit
// loads from the packet give its words.
type addr [4]ir.Operand

// mapped4 is the IPv4 address a (a 32-bit load) mapped into IPv6:
// ::ffff:a.b.c.d.
func mapped4(a ir.Operand) addr { return addr{ir.C(0), ir.C(0), ir.C(be32(0xffff)), a} }

// noAddr is the all-zero address of a packet nothing is known about.
var noAddr = addr{ir.C(0), ir.C(0), ir.C(0), ir.C(0)}

// event emits, in b, a record of type typ on the events ring buffer.
func (l *lowering) event(b *ir.BlockBuilder, pos source.Pos, typ int64, pi *packetInfo, verdict, reason, cookie ir.Operand) {
	var sport, dport ir.Operand = ir.C(0), ir.C(0)
	if !pi.ports.IsConst {
		sport = ir.V(b.And(pos, pi.ports, ir.C(0xffff)))
		dport = ir.V(b.Shr(pos, pi.ports, ir.C(16)))
	}
	fields := []ir.Operand{
		ir.C(typ), ir.C(int64(pi.dir)), verdict, pi.proto, ir.C(pi.family), reason,
		sport, dport, ir.C(pi.endpoint), pi.identity, cookie,
	}
	fields = append(fields, pi.saddr[:]...)
	fields = append(fields, pi.daddr[:]...)
	b.RingbufOutput(pos, eventsMap, fields...)
}

// wantVerdictEvent says whether settings.verdictEvents asks for events of
// verdict v.
func (l *lowering) wantVerdictEvent(v int) bool {
	switch l.cfg.Settings.VerdictEvents {
	case "none":
		return false
	case "denied":
		return v != verdictAllowed
	}
	return true
}

// ctTuple is a connection's key operands in one orientation.
func ctTuple(saddr, daddr addr, sport, dport, proto ir.Operand, dir direction) []ir.Operand {
	key := append(saddr[:], daddr[:]...)
	return append(key, sport, dport, proto, ir.C(int64(dir)), ir.C(0))
}

// refreshBlocks emits, from a block called label, the renewal of the
// conntrack entry ent for a packet of protocol proto with TCP flags
// tcpFlags seen at time now, then a jump to next. A reply also marks the
// entry as having seen one. TCP entries live tcpSyn until a reply is seen,
// then tcp; a FIN or RST in either direction cuts them to tcpFin for good.
func (l *lowering) refreshBlocks(pb *ir.ProgramBuilder, label string, ent, proto, tcpFlags, now ir.Value, icmpProto int64, reply bool, next string, pos source.Pos) {
	b := pb.Block(label)
	b.Branch(pos, ir.Eq, proto, ir.C(protoTCP), label+"_tcp", label+"_other")
	t := pb.Block(label + "_tcp")
	old := t.Load(pos, ent, ctFlagsOff, 4)
	flags := old
	if reply {
		flags = t.Or(pos, ir.V(old), ir.C(ctSeenReply))
	}
	closing := t.And(pos, ir.V(tcpFlags), ir.C(tcpFIN|tcpRST))
	t.Branch(pos, ir.Ne, closing, ir.C(0), label+"_close", label+"_tcp_open")
	to := pb.Block(label + "_tcp_open")
	to.Branch(pos, ir.Set, flags, ir.C(ctClosing), label+"_close", label+"_tcp_state")
	ts := pb.Block(label + "_tcp_state")
	ts.Branch(pos, ir.Set, flags, ir.C(ctSeenReply), label+"_est", label+"_syn")
	set := func(name string, fl ir.Operand, timeout string) {
		s := pb.Block(label + "_" + name)
		s.Store(pos, ent, ctFlagsOff, 4, fl)
		exp := s.Add(pos, ir.V(now), ir.C(l.ctTimeout(timeout)))
		s.Store(pos, ent, ctExpiresOff, 8, ir.V(exp))
		s.Jump(pos, next)
	}
	cl := pb.Block(label + "_close")
	cf := cl.Or(pos, ir.V(flags), ir.C(ctClosing))
	cl.Jump(pos, label+"_fin")
	set("fin", ir.V(cf), "tcpFin")
	set("est", ir.V(flags), "tcp")
	set("syn", ir.V(flags), "tcpSyn")

	o := pb.Block(label + "_other")
	oflags := o.Load(pos, ent, ctFlagsOff, 4)
	if reply {
		oflags = o.Or(pos, ir.V(oflags), ir.C(ctSeenReply))
	}
	o.Branch(pos, ir.Eq, proto, ir.C(protoUDP), label+"_udp", label+"_other2")
	o2 := pb.Block(label + "_other2")
	o2.Branch(pos, ir.Eq, proto, ir.C(icmpProto), label+"_icmp", label+"_any")
	set("udp", ir.V(oflags), "udp")
	set("icmp", ir.V(oflags), "icmp")
	set("any", ir.V(oflags), "any")
}

// createBlocks emits, from a block called label, the creation of the
// conntrack entry for a new connection allowed by cookie, then a jump to
// next. A TCP connection starts with tcpSyn (tcpFin when its first packet
// already closes it).
func (l *lowering) createBlocks(pb *ir.ProgramBuilder, label string, key []ir.Operand, proto, tcpFlags, now ir.Value, icmpProto int64, cookie ir.Operand, next string, pos source.Pos) {
	b := pb.Block(label)
	b.Branch(pos, ir.Eq, proto, ir.C(protoTCP), label+"_tcp", label+"_other")
	put := func(name string, timeout string, flags int64) {
		s := pb.Block(label + "_" + name)
		exp := s.Add(pos, ir.V(now), ir.C(l.ctTimeout(timeout)))
		args := append(append([]ir.Operand{}, key...), ir.V(exp), cookie, ir.C(flags))
		s.MapUpdate(pos, ctMap, 0, args...)
		s.Jump(pos, next)
	}
	t := pb.Block(label + "_tcp")
	closing := t.And(pos, ir.V(tcpFlags), ir.C(tcpFIN|tcpRST))
	t.Branch(pos, ir.Ne, closing, ir.C(0), label+"_fin", label+"_syn")
	put("fin", "tcpFin", ctClosing)
	put("syn", "tcpSyn", 0)
	o := pb.Block(label + "_other")
	o.Branch(pos, ir.Eq, proto, ir.C(protoUDP), label+"_udp", label+"_other2")
	o2 := pb.Block(label + "_other2")
	o2.Branch(pos, ir.Eq, proto, ir.C(icmpProto), label+"_icmp", label+"_any")
	put("udp", "udp", 0)
	put("icmp", "icmp", 0)
	put("any", "any", 0)
}

// endpointIndex is the index events carry for ep, stable as endpoints come
// and go (slots.go). The manifest maps the numbers back.
func (l *lowering) endpointIndex(ep *model.Endpoint) int64 {
	return int64(l.index[ep])
}

// noInfo is pi with nothing known about the packet, for drops before or
// outside the parsing of its headers.
func noInfo(pi *packetInfo) *packetInfo {
	return &packetInfo{endpoint: pi.endpoint, dir: pi.dir, proto: ir.C(0), saddr: noAddr, daddr: noAddr, ports: ir.C(0), identity: ir.C(0)}
}

// other is the opposite direction.
func (d direction) other() direction { return 1 - d }

// endpointRefs lists the node's endpoints with the indexes events carry.
func (l *lowering) endpointRefs() []EndpointRef {
	refs := []EndpointRef{}
	for _, ep := range l.endpoints {
		refs = append(refs, EndpointRef{Index: uint32(l.endpointIndex(ep)), ID: ep.ID(), Identity: l.ids.byEndpoint[ep].id})
	}
	return refs
}
