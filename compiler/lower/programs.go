package lower

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/ir"
	"github.com/ebpfc/ebpfc/source"
)

// Return codes of tc and XDP programs.
const (
	tcOK     = 0 // TC_ACT_OK, TCX_PASS
	tcShot   = 2 // TC_ACT_SHOT, TCX_DROP
	xdpDrop  = 1
	xdpPass  = 2
	ethHLen  = 14
	ipv4HLen = 20
)

// The drop reasons counted in the drop_stats map, by index.
const (
	dropNone = iota
	dropMalformed
	dropPolicy
	dropTailCall
	dropNoIdentity
	dropSpoofed
	dropFragment
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{
	dropNone:       "none",
	dropMalformed:  "malformed packet",
	dropPolicy:     "policy denied",
	dropTailCall:   "tail call failed",
	dropNoIdentity: "no identity for address",
	dropSpoofed:    "source address not the endpoint's",
	dropFragment:   "fragment without its first fragment",
}

// Map names. Per-endpoint policy maps are called pol_<endpoint>.
const (
	progArrayMap = "progs"
	ipcacheMap   = "ipcache"
	ruleStatsMap = "rule_stats"
	dropStatsMap = "drop_stats"
	ctMap        = "conntrack"
	fragMap      = "fragments"
	eventsMap    = "events"
)

// ipcacheCIDRMap is the LPM trie of the ipcache's prefixes shorter than a
// whole address; ipcacheMap holds the whole addresses (identity.go).
const ipcacheCIDRMap = "ipcache_cidr"

var (
	u32Key  = ir.Struct{Name: "u32_key", Fields: []ir.Field{{Name: "index", Size: 4}}}
	u32Val  = ir.Struct{Name: "u32_value", Fields: []ir.Field{{Name: "value", Size: 4}}}
	statVal = ir.Struct{Name: "stats", Fields: []ir.Field{{Name: "packets", Size: 8}, {Name: "bytes", Size: 8}}}
	// ipcKey holds an IPv6 address, or an IPv4 address mapped into IPv6
	// (::ffff:a.b.c.d), as four big-endian words: the key of the ipcache
	// hash, which holds whole addresses.
	ipcKey = ir.Struct{Name: "ipcache_key", Fields: []ir.Field{
		{Name: "addr0", Size: 4, BigEndian: true},
		{Name: "addr1", Size: 4, BigEndian: true},
		{Name: "addr2", Size: 4, BigEndian: true},
		{Name: "addr3", Size: 4, BigEndian: true},
	}}
	// ipcCIDRKey is the key of the ipcache_cidr LPM trie, which holds the
	// shorter prefixes: the address right after the prefix length, as the
	// kernel's LPM trie wants its data.
	ipcCIDRKey = ir.Struct{Name: "ipcache_cidr_key", Fields: []ir.Field{
		{Name: "prefixlen", Size: 4},
		{Name: "addr0", Size: 4, BigEndian: true},
		{Name: "addr1", Size: 4, BigEndian: true},
		{Name: "addr2", Size: 4, BigEndian: true},
		{Name: "addr3", Size: 4, BigEndian: true},
	}}
	ipcVal = ir.Struct{Name: "ipcache_value", Fields: []ir.Field{{Name: "identity", Size: 4}}}
)

func (l *lowering) build() error {
	clusterPos := l.cfg.Cluster.Pos
	if err := l.numberEndpoints(); err != nil {
		return err
	}

	type plan struct {
		ep      *model.Endpoint
		dir     direction
		pol     endpointPolicy
		tracked bool   // the endpoint enforces some direction: track connections
		name    string // entry program
	}
	var plans []plan
	tracking := false
	for _, ep := range l.endpoints {
		base := l.identifier(ep.Namespace + "_" + ep.Name)
		mapName := "pol_" + base
		var eps [2]endpointPolicy
		for _, dir := range []direction{ingress, egress} {
			eps[dir] = l.computePolicy(ep, dir)
		}
		tracked := eps[ingress].enforced || eps[egress].enforced
		if tracked {
			tracking = true
			l.maps = append(l.maps, l.policyMap(mapName, ep.Pos))
			var entries []Entry
			for _, dir := range []direction{ingress, egress} {
				entries = append(entries, eps[dir].entries...)
			}
			if len(entries) > int(l.mapSize("policy", defaultPolicySize)) {
				return source.Errorf(ep.Pos, "endpoint %s needs %d policy map entries but settings.mapSizes.policy allows %d; raise it", ep.ID(), len(entries), l.mapSize("policy", defaultPolicySize))
			}
			l.contents = append(l.contents, MapContents{Map: mapName, Entries: entries})
		}
		for _, dir := range []direction{ingress, egress} {
			// Ingress policy runs on packets the host sends into the
			// endpoint's device: tc egress of the host side. Egress policy
			// runs on packets the endpoint sends: tc ingress.
			prefix, tcDir := "to_", "egress"
			if dir == egress {
				prefix, tcDir = "from_", "ingress"
			}
			name := prefix + base
			plans = append(plans, plan{ep: ep, dir: dir, pol: eps[dir], tracked: tracked, name: name})
			l.attach = append(l.attach, Attachment{Program: name, Hook: "tc", Device: ep.Interface, Direction: tcDir, Endpoint: ep.ID()})
		}
	}

	// Entry programs first, then the IPv4 and IPv6 programs they tail-call, so the
	// listing reads from the hook inwards.
	var tails []func()
	for _, pl := range plans {
		pl := pl
		if !pl.tracked {
			l.progs = append(l.progs, l.openProgram(pl.name, pl.ep))
			continue
		}
		v4, v6 := pl.name+"_ipv4", pl.name+"_ipv6"
		slot4 := l.tailCallSlot(pl.ep, pl.dir, familyIPv4)
		slot6 := l.tailCallSlot(pl.ep, pl.dir, familyIPv6)
		l.setSlot(slot4, v4)
		l.setSlot(slot6, v6)
		l.progs = append(l.progs, l.entryProgram(pl.name, pl.ep, pl.dir, pl.pol.enforced, slot4, slot6, v4, v6))
		base := pl.name[len("to_"):]
		if pl.dir == egress {
			base = pl.name[len("from_"):]
		}
		var defCookie uint32
		if pl.pol.enforced {
			defCookie = l.defaultDenyCookie(pl.ep, pl.dir)
			l.cookies = append(l.cookies, Cookie{
				ID: defCookie, Kind: "default-deny", Direction: pl.dir.String(), Rule: -1,
				Endpoint: pl.ep.ID(), Audit: pl.pol.audit, Pos: pl.pol.pos,
			})
		}
		tails = append(tails, func() {
			l.progs = append(l.progs,
				l.policyProgram(v4, pl.ep, pl.dir, 4, pl.pol.enforced, "pol_"+base, defCookie, pl.pol.pos, pl.pol.audit),
				l.policyProgram(v6, pl.ep, pl.dir, 6, pl.pol.enforced, "pol_"+base, defCookie, pl.pol.pos, pl.pol.audit))
		})
	}
	for _, f := range tails {
		f()
	}
	if err := l.hostPrograms(&tracking); err != nil {
		return err
	}
	if l.node.Features["xdp"] {
		l.progs = append(l.progs, l.xdpPrefilter())
		for _, dev := range l.node.Devices {
			l.attach = append(l.attach, Attachment{Program: "xdp_prefilter", Hook: "xdp", Device: dev})
		}
	}

	// Node-wide maps.
	ipcSize := l.mapSize("ipcache", defaultIPCacheSize)
	var ipc []MapContents
	if !l.programsOnly {
		ipc = ipcacheContents(l.ids.ipcachePrefixes(l.cfg, l.node))
	} else {
		ipc = ipcacheContents(nil)
	}
	for _, c := range ipc {
		if len(c.Entries) > int(ipcSize) {
			return source.Errorf(l.cfg.Settings.Pos, "the ipcache needs %d entries (map %s) but settings.mapSizes.ipcache allows %d; raise it", len(c.Entries), c.Map, ipcSize)
		}
	}
	l.maps = append(l.maps,
		&ir.Map{Name: ipcacheMap, Type: ir.MapHash, Key: ipcKey, Value: ipcVal, MaxEntries: ipcSize, Flags: noPrealloc, Pos: clusterPos},
		&ir.Map{Name: ipcacheCIDRMap, Type: ir.MapLPMTrie, Key: ipcCIDRKey, Value: ipcVal, MaxEntries: ipcSize, Flags: noPrealloc, Pos: clusterPos},
		&ir.Map{Name: ruleStatsMap, Type: ir.MapPerCPUArray, Key: u32Key, Value: statVal, MaxEntries: l.ruleStatsSize(), Pos: clusterPos},
		&ir.Map{Name: dropStatsMap, Type: ir.MapPerCPUArray, Key: u32Key, Value: statVal, MaxEntries: numDropReasons, Pos: clusterPos},
		&ir.Map{Name: progArrayMap, Type: ir.MapProgArray, Key: u32Key, Value: u32Val, MaxEntries: ProgArraySize, Slots: l.slots, Pos: l.node.Pos},
	)
	if tracking {
		l.maps = append(l.maps,
			&ir.Map{Name: ctMap, Type: ir.MapLRUHash, Key: ctKey, Value: ctValue, MaxEntries: l.mapSize("conntrack", defaultConntrackSize), Pos: clusterPos},
			&ir.Map{Name: fragMap, Type: ir.MapLRUHash, Key: fragKey, Value: fragValue, MaxEntries: defaultFragmentsSize, Pos: clusterPos},
			&ir.Map{Name: eventsMap, Type: ir.MapRingBuf, Value: eventRecord, MaxEntries: eventsRingSize, Pos: clusterPos},
		)
	}
	l.contents = append(l.contents, ipc...)
	return nil
}

// openProgram is the program of an endpoint no policy enforces in either
// direction: it passes everything, and tracks nothing, as no reply needs
// recognising.
func (l *lowering) openProgram(name string, ep *model.Endpoint) *ir.Program {
	pb := ir.NewProgram(name, ir.ProgSchedCLS, "tc", ep.Pos)
	b := pb.Block("entry")
	b.Ctx(ep.Pos)
	b.Return(ep.Pos, tcOK)
	return pb.Program()
}

// be16 returns the value a 16-bit load from the packet yields for a field
// holding v in network order, on the little-endian eBPF target.
func be16(v uint16) int64 { return int64(bits.ReverseBytes16(v)) }

// be32 is be16 for 32-bit fields.
func be32(v uint32) int64 { return int64(bits.ReverseBytes32(v)) }

// Limits of the IPv6 extension-header walk. A packet with more extension
// headers than maxIPv6ExtHdrs, or whose transport header starts more than
// maxIPv6L4Off bytes into the IPv6 packet, is malformed: the programs walk
// the chain with a fixed number of steps, as Cilium's do.
const (
	ipv6HLen       = 40
	maxIPv6ExtHdrs = 8
	maxIPv6L4Off   = 1023
)

// IPv6 extension headers walked to reach the transport header.
const (
	ip6HopByHop = 0
	ip6Routing  = 43
	ip6Fragment = 44
	ip6DestOpts = 60
)

// l3 is what the transport parsing of an entry program needs from the IP
// header parsing before it.
type l3 struct {
	prefix       string // block label prefix: "" for IPv4, "v6_" for IPv6
	family       int64
	saddr, daddr addr
	proto        ir.Value
	fragID       ir.Value // the identification, as the fragment key holds it
	first        ir.Value // first&firstMask is non-zero for a first fragment
	firstMask    int64
	// fragProto, when set, is the protocol a first fragment is remembered
	// under: an IPv6 fragment header's next header, which is what a later
	// fragment carries, when other extension headers follow it. Otherwise
	// proto.
	fragProto *ir.Operand
	dispatch  string
}

// entryProgram is the program attached to an endpoint's device in one
// direction. It checks the Ethernet header and the IPv4 or IPv6 header
// (walking IPv6 extension headers), drops what the endpoint may not send
// before policy sees it, reads the transport header (or, for a later
// fragment, what its first fragment carried) into skb->cb, and tail-calls
// the IPv4 or IPv6 program at a constant slot of the node's program array.
// ICMPv6 neighbour discovery passes without policy, as IPv6 cannot work
// without it.
//
// In a direction no policy enforces (of an endpoint that enforces the
// other), a packet policy cannot judge passes instead of being dropped: the
// program is there only so that connections are tracked.
func (l *lowering) entryProgram(name string, ep *model.Endpoint, dir direction, enforced bool, slot4, slot6 int64, target4, target6 string) *ir.Program {
	pos := ep.Pos
	pi := noInfo(&packetInfo{endpoint: l.endpointIndex(ep), dir: dir})
	pb := ir.NewProgram(name, ir.ProgSchedCLS, "tc", pos)
	b := pb.Block("entry")
	ctx := b.Ctx(pos)
	data := b.CtxLoad(pos, ctx, "data")
	end := b.CtxLoad(pos, ctx, "data_end")
	b.Bounds(pos, data, ethHLen, end, "eth", "malformed")

	eth := pb.Block("eth")
	ethProto := eth.Load(pos, data, 12, 2)
	eth.Branch(pos, ir.Eq, ethProto, ir.C(be16(0x0800)), "ipv4", "not_ipv4")

	v4 := pb.Block("ipv4")
	v4.Bounds(pos, data, ethHLen+ipv4HLen, end, "ip", "malformed")
	ip := pb.Block("ip")
	verIHL := ip.Load(pos, data, ethHLen, 1)
	ver := ip.And(pos, ir.V(verIHL), ir.C(0xf0))
	ip.Branch(pos, ir.Ne, ver, ir.C(0x40), "malformed", "ip_version_ok")
	ipv := pb.Block("ip_version_ok")
	ihl := ipv.And(pos, ir.V(verIHL), ir.C(0x0f))
	ipv.Branch(pos, ir.Lt, ihl, ir.C(5), "malformed", "ip_ihl_ok")
	// The header and the total length must be consistent with each other
	// and with the frame: what lies past the total length is padding.
	ih := pb.Block("ip_ihl_ok")
	hlen := ih.Shl(pos, ir.V(ihl), ir.C(2))
	tl := ih.Load(pos, data, ethHLen+2, 2)
	tlen := ih.Swap16(pos, ir.V(tl))
	ih.Branch(pos, ir.Lt, tlen, ir.V(hlen), "malformed", "ip_tlen_min")
	tm := pb.Block("ip_tlen_min")
	flen := tm.CtxLoad(pos, ctx, "len")
	room := tm.Sub(pos, ir.V(flen), ir.C(ethHLen))
	tm.Branch(pos, ir.Gt, tlen, ir.V(room), "malformed", "ip_ok")

	ok := pb.Block("ip_ok")
	saddr := ok.Load(pos, data, ethHLen+12, 4)
	daddr := ok.Load(pos, data, ethHLen+16, 4)
	proto := ok.Load(pos, data, ethHLen+9, 1)
	pi4 := *pi
	pi4.family, pi4.saddr, pi4.daddr, pi4.proto = 4, mapped4(ir.V(saddr)), mapped4(ir.V(daddr)), ir.V(proto)
	if ep == l.host {
		l.hostOwnPackets(pb, ok, dir, saddr, daddr, "frag", pos)
	} else if dir == egress && enforced {
		// Source address verification: an endpoint may only send from its
		// own address. The address is a node constant (as a 32-bit load
		// from the packet yields it), so an endpoint without an IPv4
		// address folds the check away.
		cname := l.identifier("addr_" + name)
		var a int64
		for _, ad := range ep.Addresses {
			if ad.Is4() {
				a = be32(addr4(ad))
				break
			}
		}
		l.consts = append(l.consts, ir.Const{Name: cname, Value: a})
		addr := ok.Param(pos, cname)
		ok.Branch(pos, ir.Eq, addr, ir.C(0), "frag", "spoof_check")
		sc := pb.Block("spoof_check")
		sc.Branch(pos, ir.Eq, saddr, ir.V(addr), "frag", "spoofed")
		l.dropBlock(pb, "spoofed", ctx, dropSpoofed, &pi4, pos)
	} else {
		ok.Jump(pos, "frag")
	}

	fr := pb.Block("frag")
	ff := fr.Load(pos, data, ethHLen+6, 2)
	ipID := fr.Load(pos, data, ethHLen+4, 2)
	off := fr.And(pos, ir.V(ff), ir.C(be16(0x1fff)))
	fr.Branch(pos, ir.Ne, off, ir.C(0), "later_fragment", "transport")
	h4 := &l3{family: 4, saddr: pi4.saddr, daddr: pi4.daddr, proto: proto, fragID: ipID, first: ff, firstMask: be16(0x2000), dispatch: "dispatch"}
	l.laterFragment(pb, pb.Block("later_fragment"), ctx, h4, pos)

	// The transport header must lie within the IP total length.
	tr := pb.Block("transport")
	l4len := tr.Sub(pos, ir.V(tlen), ir.V(hlen))
	l4 := tr.PacketAdd(pos, data, hlen, 60)
	l.transport(pb, tr, ctx, end, l4, hlen, l4len, h4, pos)

	disp := pb.Block("dispatch")
	disp.TailCall(pos, ctx, progArrayMap, slot4, target4, "tailcall_failed")
	// An empty slot must not open the endpoint: fail closed.
	l.dropBlock(pb, "tailcall_failed", ctx, dropTailCall, &pi4, pos)

	nv4 := pb.Block("not_ipv4")
	// ARP and other frames that are not IP pass.
	nv4.Branch(pos, ir.Eq, ethProto, ir.C(be16(0x86dd)), "ipv6", "pass")
	l.ipv6Entry(pb, name, ep, dir, enforced, ctx, data, end, pi, slot6, target6, pos)

	if enforced {
		l.dropBlock(pb, "malformed", ctx, dropMalformed, noInfo(pi), pos)
	} else {
		pb.Block("malformed").Jump(pos, "pass")
	}
	pass := pb.Block("pass")
	pass.Return(pos, tcOK)
	return pb.Program()
}

// ipv6Entry emits the IPv6 part of an entry program, from the block
// "ipv6": the fixed header, the walk over the extension headers, the
// transport header and the tail call to the IPv6 program.
//
// The IR has no phi, so the walk keeps its state in cb while it runs: cb0
// the offset of the next header from the IPv6 header, cb1 its type, cb3 the
// more-fragments flag of a fragment header (non-zero: a first fragment),
// cb4 its identification. The transport parsing then overwrites them with
// the layout the policy program reads. A first fragment's cb3 also holds
// its fragment header's next header in bits 16-23: the protocol its record
// in the fragments map is keyed by, as its later fragments carry it.
func (l *lowering) ipv6Entry(pb *ir.ProgramBuilder, name string, ep *model.Endpoint, dir direction, enforced bool, ctx, data, end ir.Value, pi *packetInfo, slot int64, target string, pos source.Pos) {
	v6 := pb.Block("ipv6")
	v6.Bounds(pos, data, ethHLen+ipv6HLen, end, "ip6", "malformed")
	ip := pb.Block("ip6")
	b0 := ip.Load(pos, data, ethHLen, 1)
	ver := ip.And(pos, ir.V(b0), ir.C(0xf0))
	ip.Branch(pos, ir.Ne, ver, ir.C(0x60), "malformed", "ip6_version_ok")
	vo := pb.Block("ip6_version_ok")
	pl := vo.Load(pos, data, ethHLen+4, 2)
	plen := vo.Swap16(pos, ir.V(pl))
	flen := vo.CtxLoad(pos, ctx, "len")
	room := vo.Sub(pos, ir.V(flen), ir.C(ethHLen+ipv6HLen))
	vo.Branch(pos, ir.Gt, plen, ir.V(room), "malformed", "ip6_ok")

	ok := pb.Block("ip6_ok")
	var saddr, daddr addr
	for i := range 4 {
		saddr[i] = ir.V(ok.Load(pos, data, ethHLen+8+4*int16(i), 4))
	}
	for i := range 4 {
		daddr[i] = ir.V(ok.Load(pos, data, ethHLen+24+4*int16(i), 4))
	}
	total := ok.Add(pos, ir.V(plen), ir.C(ipv6HLen))
	nh := ok.Load(pos, data, ethHLen+6, 1)
	ok.CtxStore(pos, ctx, "cb0", ir.C(ipv6HLen))
	ok.CtxStore(pos, ctx, "cb1", ir.V(nh))
	ok.CtxStore(pos, ctx, "cb3", ir.C(0))
	ok.CtxStore(pos, ctx, "cb4", ir.C(0))
	if ep == l.host {
		l.hostOwnPackets6(pb, ok, dir, saddr, daddr, "v6_ext0", pos)
	} else {
		ok.Jump(pos, "v6_ext0")
	}
	pi6 := *pi
	pi6.family, pi6.saddr, pi6.daddr = 6, saddr, daddr

	// The walk: one step per extension header, unrolled. After the last
	// step, one more extension header is one too many.
	for i := 0; i <= maxIPv6ExtHdrs; i++ {
		lbl := fmt.Sprintf("v6_ext%d", i)
		next := fmt.Sprintf("v6_ext%d", i+1)
		opt, frag := lbl+"_opt", lbl+"_frag"
		if i == maxIPv6ExtHdrs {
			opt, frag = "malformed", "malformed"
		}
		e := pb.Block(lbl)
		off := e.CtxLoad(pos, ctx, "cb0")
		nx := e.CtxLoad(pos, ctx, "cb1")
		e.Branch(pos, ir.Eq, nx, ir.C(ip6HopByHop), opt, lbl+"_not_hbh")
		e1 := pb.Block(lbl + "_not_hbh")
		e1.Branch(pos, ir.Eq, nx, ir.C(ip6Routing), opt, lbl+"_not_rt")
		e2 := pb.Block(lbl + "_not_rt")
		e2.Branch(pos, ir.Eq, nx, ir.C(ip6DestOpts), opt, lbl+"_not_dst")
		e3 := pb.Block(lbl + "_not_dst")
		e3.Branch(pos, ir.Eq, nx, ir.C(ip6Fragment), frag, "v6_transport")
		if i == maxIPv6ExtHdrs {
			break
		}
		// An extension header's 8 fixed bytes must lie within the
		// payload, and inside the frame; the bound on the offset is for
		// the verifier.
		header := func(label string) ir.Value {
			h := pb.Block(label)
			hend := h.Add(pos, ir.V(off), ir.C(8))
			h.Branch(pos, ir.Gt, hend, ir.V(total), "malformed", label+"_in")
			in := pb.Block(label + "_in")
			in.Branch(pos, ir.Gt, off, ir.C(maxIPv6L4Off), "malformed", label+"_ptr")
			pt := pb.Block(label + "_ptr")
			ob := pt.And(pos, ir.V(off), ir.C(0x3ff))
			p := pt.PacketAdd(pos, data, ob, 0x3ff)
			pt.Bounds(pos, p, ethHLen+8, end, label+"_hdr", "malformed")
			return p
		}
		// Hop-by-hop, routing and destination options: next header and
		// length in 8-byte units, not counting the first 8.
		p := header(opt)
		oh := pb.Block(opt + "_hdr")
		onx := oh.Load(pos, p, ethHLen, 1)
		hl := oh.Load(pos, p, ethHLen+1, 1)
		hl1 := oh.Add(pos, ir.V(hl), ir.C(1))
		n := oh.Shl(pos, ir.V(hl1), ir.C(3))
		noff := oh.Add(pos, ir.V(off), ir.V(n))
		oh.Branch(pos, ir.Gt, noff, ir.V(total), "malformed", opt+"_next")
		on := pb.Block(opt + "_next")
		on.CtxStore(pos, ctx, "cb0", ir.V(noff))
		on.CtxStore(pos, ctx, "cb1", ir.V(onx))
		on.Jump(pos, next)

		// Fragment: a later fragment (offset > 0) takes what its first
		// fragment left; a first one is remembered once its ports are read.
		fp := header(frag)
		fh := pb.Block(frag + "_hdr")
		fnx := fh.Load(pos, fp, ethHLen, 1)
		fw := fh.Load(pos, fp, ethHLen+2, 2)
		fid := fh.Load(pos, fp, ethHLen+4, 4)
		fo := fh.And(pos, ir.V(fw), ir.C(be16(0xfff8)))
		fh.CtxStore(pos, ctx, "cb1", ir.V(fnx))
		fh.CtxStore(pos, ctx, "cb4", ir.V(fid))
		fh.Branch(pos, ir.Ne, fo, ir.C(0), "v6_later_fragment", frag+"_first")
		ff := pb.Block(frag + "_first")
		more := ff.And(pos, ir.V(fw), ir.C(be16(1)))
		fnx16 := ff.Shl(pos, ir.V(fnx), ir.C(16))
		fstate := ff.Or(pos, ir.V(more), ir.V(fnx16))
		ff.CtxStore(pos, ctx, "cb3", ir.V(fstate))
		foff := ff.Add(pos, ir.V(off), ir.C(8))
		ff.CtxStore(pos, ctx, "cb0", ir.V(foff))
		ff.Jump(pos, next)
	}

	lf := pb.Block("v6_later_fragment")
	lid := lf.CtxLoad(pos, ctx, "cb4")
	lnx := lf.CtxLoad(pos, ctx, "cb1")
	l.laterFragment(pb, lf, ctx, &l3{prefix: "v6_", family: 6, saddr: saddr, daddr: daddr, proto: lnx, fragID: lid, dispatch: "v6_dispatch"}, pos)

	tr := pb.Block("v6_transport")
	off := tr.CtxLoad(pos, ctx, "cb0")
	nx := tr.CtxLoad(pos, ctx, "cb1")
	first := tr.CtxLoad(pos, ctx, "cb3")
	fid := tr.CtxLoad(pos, ctx, "cb4")
	fproto := ir.V(tr.Shr(pos, ir.V(first), ir.C(16)))
	tr.Branch(pos, ir.Gt, off, ir.C(maxIPv6L4Off), "malformed", "v6_transport_in")
	ti := pb.Block("v6_transport_in")
	ob := ti.And(pos, ir.V(off), ir.C(0x3ff))
	l4len := ti.Sub(pos, ir.V(total), ir.V(ob))
	l4 := ti.PacketAdd(pos, data, ob, 0x3ff)
	h6 := &l3{prefix: "v6_", family: 6, saddr: saddr, daddr: daddr, proto: nx, fragID: fid, first: first, firstMask: be16(1), fragProto: &fproto, dispatch: "v6_dispatch"}
	l.transport(pb, ti, ctx, end, l4, ob, l4len, h6, pos)

	disp := pb.Block("v6_dispatch")
	if dir == egress && enforced && ep != l.host {
		// Source address verification, as for IPv4, against the
		// endpoint's first IPv6 address; none folds the check away.
		var words [4]int64
		for _, ad := range ep.Addresses {
			if ad.Is6() && !ad.Is4In6() {
				a := ad.As16()
				for i := range 4 {
					words[i] = be32(binary.BigEndian.Uint32(a[4*i:]))
				}
				break
			}
		}
		var params [4]ir.Value
		for i := range 4 {
			cname := l.identifier(fmt.Sprintf("addr6_%d_%s", i, name))
			l.consts = append(l.consts, ir.Const{Name: cname, Value: words[i]})
			params[i] = disp.Param(pos, cname)
		}
		any01 := disp.Or(pos, ir.V(params[0]), ir.V(params[1]))
		any23 := disp.Or(pos, ir.V(params[2]), ir.V(params[3]))
		anyAddr := disp.Or(pos, ir.V(any01), ir.V(any23))
		disp.Branch(pos, ir.Eq, anyAddr, ir.C(0), "v6_tail", "v6_spoof_check")
		sc := pb.Block("v6_spoof_check")
		var diff ir.Value
		for i := range 4 {
			x := sc.Xor(pos, saddr[i], ir.V(params[i]))
			if i == 0 {
				diff = x
			} else {
				diff = sc.Or(pos, ir.V(diff), ir.V(x))
			}
		}
		sc.Branch(pos, ir.Ne, diff, ir.C(0), "v6_spoofed", "v6_tail")
		l.dropBlock(pb, "v6_spoofed", ctx, dropSpoofed, &pi6, pos)
	} else {
		disp.Jump(pos, "v6_tail")
	}
	tail := pb.Block("v6_tail")
	tail.TailCall(pos, ctx, progArrayMap, slot, target, "v6_tailcall_failed")
	l.dropBlock(pb, "v6_tailcall_failed", ctx, dropTailCall, &pi6, pos)
}

// laterFragment ends b, for a later fragment: it takes the ports and policy
// port word its first fragment left in the fragments map, or marks the
// packet as a fragment whose first fragment was not seen; then the
// dispatch.
func (l *lowering) laterFragment(pb *ir.ProgramBuilder, lf *ir.BlockBuilder, ctx ir.Value, h *l3, pos source.Pos) {
	p := h.prefix
	key := append(append(append([]ir.Operand{}, h.saddr[:]...), h.daddr[:]...), ir.V(h.fragID), ir.V(h.proto), ir.C(0), ir.C(0))
	rec := lf.MapLookup(pos, fragMap, key...)
	lf.IfNull(pos, rec, p+"fragment_missing", p+"fragment_found")
	fm := pb.Block(p + "fragment_missing")
	fm.CtxStore(pos, ctx, "cb0", ir.C(0))
	fm.CtxStore(pos, ctx, "cb1", ir.C(prefixProto<<16))
	fmMeta := fm.Or(pos, ir.V(h.proto), ir.C(kindFragMissing<<16))
	fm.CtxStore(pos, ctx, "cb2", ir.V(fmMeta))
	fm.Jump(pos, h.dispatch)
	fo := pb.Block(p + "fragment_found")
	rports := fo.Load(pos, rec, 0, 4)
	rpol := fo.Load(pos, rec, 4, 4)
	fo.CtxStore(pos, ctx, "cb0", ir.V(rports))
	fo.CtxStore(pos, ctx, "cb1", ir.V(rpol))
	fo.CtxStore(pos, ctx, "cb2", ir.V(h.proto))
	fo.Jump(pos, h.dispatch)
}

// transport emits, from tr, the parsing of the transport header at l4
// (l4at bytes after the IP header, l4len bytes of it inside the IP packet):
// ports, TCP flags, ICMP type and code into cb, the record of a first
// fragment, and the jump to the dispatch.
func (l *lowering) transport(pb *ir.ProgramBuilder, tr *ir.BlockBuilder, ctx, end, l4, l4at, l4len ir.Value, h *l3, pos source.Pos) {
	p := h.prefix
	proto := h.proto
	icmpProto := int64(protoICMP)
	if h.family == 6 {
		icmpProto = protoICMPv6
	}
	tr.Branch(pos, ir.Eq, proto, ir.C(protoTCP), p+"tcp", p+"not_tcp")
	nt := pb.Block(p + "not_tcp")
	nt.Branch(pos, ir.Eq, proto, ir.C(protoUDP), p+"udp", p+"not_udp")
	nu := pb.Block(p + "not_udp")
	nu.Branch(pos, ir.Eq, proto, ir.C(protoSCTP), p+"sctp", p+"not_sctp")
	ns := pb.Block(p + "not_sctp")
	ns.Branch(pos, ir.Eq, proto, ir.C(icmpProto), p+"icmp", p+"no_ports")

	// Ports of TCP, UDP and SCTP; TCP also gives its flags and its data
	// offset must be sane.
	portsAt := func(label string, need int64, next string) {
		blk := pb.Block(p + label)
		blk.Branch(pos, ir.Lt, l4len, ir.C(need), "malformed", p+label+"_len")
		ln := pb.Block(p + label + "_len")
		ln.Bounds(pos, l4, ethHLen+need, end, p+next, "malformed")
	}
	portsAt("tcp", 20, "tcp_hdr")
	th := pb.Block(p + "tcp_hdr")
	doff := th.Load(pos, l4, ethHLen+12, 1)
	doffBytes := th.Shr(pos, ir.V(doff), ir.C(2))
	doffLen := th.And(pos, ir.V(doffBytes), ir.C(0x3c))
	th.Branch(pos, ir.Lt, doffLen, ir.C(20), "malformed", p+"tcp_doff_min")
	td := pb.Block(p + "tcp_doff_min")
	td.Branch(pos, ir.Gt, doffLen, ir.V(l4len), "malformed", p+"tcp_ok")
	to := pb.Block(p + "tcp_ok")
	tflags := to.Load(pos, l4, ethHLen+13, 1)
	l.storePorts(pb, to, ctx, l4, ir.V(tflags), h, pos)
	portsAt("udp", 8, "udp_ok")
	l.storePorts(pb, pb.Block(p+"udp_ok"), ctx, l4, ir.C(0), h, pos)
	portsAt("sctp", 12, "sctp_ok")
	l.storePorts(pb, pb.Block(p+"sctp_ok"), ctx, l4, ir.C(0), h, pos)

	// ICMP: type and code take the place of the port; an echo's identifier
	// that of both ports; an error may belong to a tracked connection.
	// ICMPv6 needs only its 4-byte header; an echo without its identifier
	// is tracked without one.
	echoReq, echoRep := int64(8), int64(0)
	errTypes := []int64{3, 11, 12}
	notErr := []string{"icmp_not_unreach", "icmp_not_time"}
	need := int64(8)
	if h.family == 6 {
		echoReq, echoRep = 128, 129
		errTypes = []int64{1, 2, 3, 4}
		notErr = []string{"icmp_not_err1", "icmp_not_err2", "icmp_not_err3"}
		need = 4
	}
	portsAt("icmp", need, "icmp_ok")
	io := pb.Block(p + "icmp_ok")
	typeCode := io.Load(pos, l4, ethHLen, 2)
	icmpType := io.And(pos, ir.V(typeCode), ir.C(0xff))
	var echoID ir.Value
	if h.family == 4 {
		echoID = io.Load(pos, l4, ethHLen+4, 2)
	}
	pol := io.Or(pos, ir.V(typeCode), ir.C(prefixPort<<16))
	io.CtxStore(pos, ctx, "cb1", ir.V(pol))
	io.Branch(pos, ir.Eq, icmpType, ir.C(echoReq), p+"icmp_echo", p+"icmp_not_request")
	inr := pb.Block(p + "icmp_not_request")
	inr.Branch(pos, ir.Eq, icmpType, ir.C(echoRep), p+"icmp_echo", p+"icmp_not_echo")
	ie := pb.Block(p + "icmp_echo")
	if h.family == 6 {
		ie.Branch(pos, ir.Lt, l4len, ir.C(8), p+"icmp_not_echo", p+"icmp_echo_len")
		el := pb.Block(p + "icmp_echo_len")
		el.Bounds(pos, l4, ethHLen+8, end, p+"icmp_echo_id", "malformed")
		ie = pb.Block(p + "icmp_echo_id")
		echoID = ie.Load(pos, l4, ethHLen+4, 2)
	}
	hi := ie.Shl(pos, ir.V(echoID), ir.C(16))
	both := ie.Or(pos, ir.V(hi), ir.V(echoID))
	ie.CtxStore(pos, ctx, "cb0", ir.V(both))
	ie.Jump(pos, p+"icmp_meta")
	ine := pb.Block(p + "icmp_not_echo")
	ine.CtxStore(pos, ctx, "cb0", ir.C(0))
	cur := ine
	for i, t := range errTypes {
		other := p + "icmp_meta"
		if i < len(notErr) {
			other = p + notErr[i]
		} else if h.family == 6 {
			other = p + "icmp_not_error"
		}
		cur.Branch(pos, ir.Eq, icmpType, ir.C(t), p+"icmp_error", other)
		if i < len(notErr) {
			cur = pb.Block(other)
		}
	}
	if h.family == 6 {
		// Neighbour discovery (133–137) passes, unless fragmented.
		ne := pb.Block(p + "icmp_not_error")
		ne.Branch(pos, ir.Lt, icmpType, ir.C(133), p+"icmp_meta", p+"icmp_nd_low")
		nl := pb.Block(p + "icmp_nd_low")
		nl.Branch(pos, ir.Gt, icmpType, ir.C(137), p+"icmp_meta", p+"icmp_nd")
		nd := pb.Block(p + "icmp_nd")
		fragd := nd.And(pos, ir.V(h.first), ir.C(h.firstMask))
		nd.Branch(pos, ir.Ne, fragd, ir.C(0), p+"icmp_meta", "pass")
	}
	ier := pb.Block(p + "icmp_error")
	l4off := ier.Add(pos, ir.V(l4at), ir.C(ethHLen))
	ier.CtxStore(pos, ctx, "cb3", ir.V(l4off))
	errMeta := ier.Or(pos, ir.V(proto), ir.C(kindICMPError<<16))
	ier.CtxStore(pos, ctx, "cb2", ir.V(errMeta))
	ier.Jump(pos, p+"icmp_record")
	im := pb.Block(p + "icmp_meta")
	im.CtxStore(pos, ctx, "cb2", ir.V(proto))
	im.Jump(pos, p+"icmp_record")
	l.recordFragment(pb, pb.Block(p+"icmp_record"), ctx, h, pos)

	// Other protocols: only rules without ports can match.
	np := pb.Block(p + "no_ports")
	np.CtxStore(pos, ctx, "cb0", ir.C(0))
	np.CtxStore(pos, ctx, "cb1", ir.C(prefixProto<<16))
	np.CtxStore(pos, ctx, "cb2", ir.V(proto))
	l.recordFragment(pb, np, ctx, h, pos)
}

// storePorts emits, in b, the stores of a TCP, UDP or SCTP packet's ports
// and metadata into cb, the fragment record of a first fragment, and the
// jump to the dispatch.
func (l *lowering) storePorts(pb *ir.ProgramBuilder, b *ir.BlockBuilder, ctx, l4 ir.Value, tcpFlags ir.Operand, h *l3, pos source.Pos) {
	ports := b.Load(pos, l4, ethHLen, 4)
	b.CtxStore(pos, ctx, "cb0", ir.V(ports))
	dport := b.Shr(pos, ir.V(ports), ir.C(16))
	pol := b.Or(pos, ir.V(dport), ir.C(prefixPort<<16))
	b.CtxStore(pos, ctx, "cb1", ir.V(pol))
	meta := ir.V(h.proto)
	if !tcpFlags.IsConst {
		f := b.Shl(pos, tcpFlags, ir.C(8))
		meta = ir.V(b.Or(pos, ir.V(f), ir.V(h.proto)))
	}
	b.CtxStore(pos, ctx, "cb2", meta)
	l.recordFragment(pb, b, ctx, h, pos)
}

// recordFragment ends b: when the packet is a first fragment (more
// fragments follow, offset 0) its cb0 and cb1 are remembered for the later
// fragments; then the dispatch.
func (l *lowering) recordFragment(pb *ir.ProgramBuilder, b *ir.BlockBuilder, ctx ir.Value, h *l3, pos source.Pos) {
	label := b.Label()
	mf := b.And(pos, ir.V(h.first), ir.C(h.firstMask))
	b.Branch(pos, ir.Ne, mf, ir.C(0), label+"_first_fragment", h.dispatch)
	r := pb.Block(label + "_first_fragment")
	ports := r.CtxLoad(pos, ctx, "cb0")
	pol := r.CtxLoad(pos, ctx, "cb1")
	proto := ir.V(h.proto)
	if h.fragProto != nil {
		proto = *h.fragProto
	}
	key := append(append(append([]ir.Operand{}, h.saddr[:]...), h.daddr[:]...), ir.V(h.fragID), proto, ir.C(0), ir.C(0))
	r.MapUpdate(pos, fragMap, 0, append(key, ir.V(ports), ir.V(pol))...)
	r.Jump(pos, h.dispatch)
}

// policyProgram decides an IPv4 (family 4) or IPv6 (family 6) packet of an
// endpoint in one direction, from the metadata the entry program left in cb.
//
// A reply to a tracked connection, or an ICMP error about one, passes. Any
// other packet is judged by policy when the direction is enforced: the
// peer's identity comes from the ipcache, and the (identity, protocol,
// port) is looked up in the endpoint's policy map, first with the peer's
// identity and then with the wildcard identity. A deny entry in either
// wins; otherwise an allow in either passes; otherwise the default deny
// decides. Every verdict counts the packet against the cookie of the rule
// that decided it. The first packet of a connection that passes creates its
// conntrack entry and, as settings.verdictEvents asks, a verdict event;
// every drop sends a drop event.
//
// Header parsing points at the endpoint; the policy lookups and verdicts
// point at polPos, the policy that made the direction enforced.
func (l *lowering) policyProgram(name string, ep *model.Endpoint, dir direction, family int64, enforced bool, polMap string, defCookie uint32, polPos source.Pos, audit bool) *ir.Program {
	pos := ep.Pos
	pb := ir.NewProgram(name, ir.ProgSchedCLS, "tc", pos)
	b := pb.Block("entry")
	ctx := b.Ctx(pos)
	data := b.CtxLoad(pos, ctx, "data")
	end := b.CtxLoad(pos, ctx, "data_end")
	hdr, icmpProto := int64(ipv4HLen), int64(protoICMP)
	if family == 6 {
		hdr, icmpProto = ipv6HLen, protoICMPv6
	}
	b.Bounds(pos, data, ethHLen+hdr, end, "ip", "malformed")

	ip := pb.Block("ip")
	var saddr, daddr addr
	if family == 4 {
		saddr = mapped4(ir.V(ip.Load(pos, data, ethHLen+12, 4)))
		daddr = mapped4(ir.V(ip.Load(pos, data, ethHLen+16, 4)))
	} else {
		for i := range 4 {
			saddr[i] = ir.V(ip.Load(pos, data, ethHLen+8+4*int16(i), 4))
		}
		for i := range 4 {
			daddr[i] = ir.V(ip.Load(pos, data, ethHLen+24+4*int16(i), 4))
		}
	}
	ports := ip.CtxLoad(pos, ctx, "cb0")
	meta := ip.CtxLoad(pos, ctx, "cb2")
	proto := ip.And(pos, ir.V(meta), ir.C(0xff))
	fl := ip.Shr(pos, ir.V(meta), ir.C(8))
	tcpFlags := ip.And(pos, ir.V(fl), ir.C(0xff))
	kind := ip.Shr(pos, ir.V(meta), ir.C(16))
	sport := ip.And(pos, ir.V(ports), ir.C(0xffff))
	dport := ip.Shr(pos, ir.V(ports), ir.C(16))
	now := ip.KtimeNs(pos)
	pi := &packetInfo{endpoint: l.endpointIndex(ep), dir: dir, family: family, proto: ir.V(proto), saddr: saddr, daddr: daddr, ports: ir.V(ports), identity: ir.C(0)}
	ip.Branch(pos, ir.Eq, kind, ir.C(kindFragMissing), "fragment_missing", "kind_known")
	if enforced {
		l.dropBlock(pb, "fragment_missing", ctx, dropFragment, pi, pos)
	} else {
		pb.Block("fragment_missing").Return(pos, tcOK)
	}
	kk := pb.Block("kind_known")
	kk.Branch(pos, ir.Eq, kind, ir.C(kindICMPError), "related", "conntrack")

	// An ICMP error quotes the IP header and the first 8 bytes of the
	// packet it is about. If that packet belongs to a tracked connection,
	// in either orientation, the error passes. (A quoted IPv6 packet is
	// read as far as its fixed header: its next header must be the
	// transport.)
	rel := pb.Block("related")
	l4off := rel.CtxLoad(pos, ctx, "cb3")
	var offMask int64 = 0x7f
	if family == 6 {
		offMask = 0x7ff
	}
	l4offB := rel.And(pos, ir.V(l4off), ir.C(offMask))
	icmp := rel.PacketAdd(pos, data, l4offB, offMask)
	var isaddr, idaddr addr
	var iproto, il4 ir.Value
	var il4At int16 // the quoted transport header is at il4 + il4At
	if family == 4 {
		rel.Bounds(pos, icmp, 8+ipv4HLen, end, "related_ip", "conntrack")
		rip := pb.Block("related_ip")
		iverIHL := rip.Load(pos, icmp, 8, 1)
		iver := rip.And(pos, ir.V(iverIHL), ir.C(0xf0))
		rip.Branch(pos, ir.Ne, iver, ir.C(0x40), "conntrack", "related_ihl")
		rih := pb.Block("related_ihl")
		iihl := rih.And(pos, ir.V(iverIHL), ir.C(0x0f))
		rih.Branch(pos, ir.Lt, iihl, ir.C(5), "conntrack", "related_hdr")
		rh := pb.Block("related_hdr")
		isaddr = mapped4(ir.V(rh.Load(pos, icmp, 8+12, 4)))
		idaddr = mapped4(ir.V(rh.Load(pos, icmp, 8+16, 4)))
		iproto = rh.Load(pos, icmp, 8+9, 1)
		ihlen := rh.Shl(pos, ir.V(iihl), ir.C(2))
		il4 = rh.PacketAdd(pos, icmp, ihlen, 60)
		il4At = 8
		rh.Bounds(pos, il4, 8+8, end, "related_l4", "conntrack")
	} else {
		rel.Bounds(pos, icmp, 8+ipv6HLen+8, end, "related_ip", "conntrack")
		rip := pb.Block("related_ip")
		ib0 := rip.Load(pos, icmp, 8, 1)
		iver := rip.And(pos, ir.V(ib0), ir.C(0xf0))
		rip.Branch(pos, ir.Ne, iver, ir.C(0x60), "conntrack", "related_hdr")
		rh := pb.Block("related_hdr")
		for i := range 4 {
			isaddr[i] = ir.V(rh.Load(pos, icmp, 8+8+4*int16(i), 4))
		}
		for i := range 4 {
			idaddr[i] = ir.V(rh.Load(pos, icmp, 8+24+4*int16(i), 4))
		}
		iproto = rh.Load(pos, icmp, 8+6, 1)
		il4, il4At = icmp, 8+ipv6HLen
		rh.Jump(pos, "related_l4")
	}
	rl := pb.Block("related_l4")
	rl.Branch(pos, ir.Eq, iproto, ir.C(icmpProto), "related_echo", "related_ports")
	rp := pb.Block("related_ports")
	iports := rp.Load(pos, il4, il4At, 4)
	rp.Jump(pos, "related_lookup_ports")
	re := pb.Block("related_echo")
	iid := re.Load(pos, il4, il4At+4, 2)
	iidHi := re.Shl(pos, ir.V(iid), ir.C(16))
	iidBoth := re.Or(pos, ir.V(iidHi), ir.V(iid))
	re.Jump(pos, "related_lookup_echo")
	relatedLookups := func(label string, p ir.Value) {
		blk := pb.Block(label)
		isp := blk.And(pos, ir.V(p), ir.C(0xffff))
		idp := blk.Shr(pos, ir.V(p), ir.C(16))
		// The quoted packet went the other way: an entry made in the
		// other direction with its tuple as quoted, or one made in this
		// direction with the tuple reversed.
		a := blk.MapLookup(pos, ctMap, ctTuple(isaddr, idaddr, ir.V(isp), ir.V(idp), ir.V(iproto), dir.other())...)
		blk.IfNull(pos, a, label+"_reversed", label+"_hit")
		rv := pb.Block(label + "_reversed")
		bb := rv.MapLookup(pos, ctMap, ctTuple(idaddr, isaddr, ir.V(idp), ir.V(isp), ir.V(iproto), dir)...)
		rv.IfNull(pos, bb, "conntrack", label+"_hit")
		pb.Block(label+"_hit").Jump(pos, "related_pass")
	}
	relatedLookups("related_lookup_ports", iports)
	relatedLookups("related_lookup_echo", iidBoth)
	pb.Block("related_pass").Return(pos, tcOK)

	// Connection tracking: the same direction (established) or a reply.
	ct := pb.Block("conntrack")
	fwd := ct.MapLookup(pos, ctMap, ctTuple(saddr, daddr, ir.V(sport), ir.V(dport), ir.V(proto), dir)...)
	ct.IfNull(pos, fwd, "reply_lookup", "established_entry")
	ee := pb.Block("established_entry")
	fexp := ee.Load(pos, fwd, ctExpiresOff, 8)
	ee.Branch(pos, ir.Lt, fexp, ir.V(now), "reply_lookup", "established")
	l.refreshBlocks(pb, "established", fwd, proto, tcpFlags, now, icmpProto, false, "established_judge", pos)
	ej := pb.Block("established_judge")
	ej.CtxStore(pos, ctx, "cb4", ir.C(stateEstablished))
	ej.Jump(pos, "policy")

	rlu := pb.Block("reply_lookup")
	rev := rlu.MapLookup(pos, ctMap, ctTuple(daddr, saddr, ir.V(dport), ir.V(sport), ir.V(proto), dir.other())...)
	rlu.IfNull(pos, rev, "new", "reply_entry")
	rle := pb.Block("reply_entry")
	rexp := rle.Load(pos, rev, ctExpiresOff, 8)
	rle.Branch(pos, ir.Lt, rexp, ir.V(now), "new", "reply")
	l.refreshBlocks(pb, "reply", rev, proto, tcpFlags, now, icmpProto, true, "reply_pass", pos)
	pb.Block("reply_pass").Return(pos, tcOK)

	nw := pb.Block("new")
	nw.CtxStore(pos, ctx, "cb4", ir.C(stateNew))
	nw.Jump(pos, "policy")

	fwdKey := ctTuple(saddr, daddr, ir.V(sport), ir.V(dport), ir.V(proto), dir)
	if !enforced {
		// Open direction: every packet passes; a new connection is
		// tracked so that the enforced direction lets its replies in.
		pol := pb.Block("policy")
		st := pol.CtxLoad(pos, ctx, "cb4")
		pol.Branch(pos, ir.Eq, st, ir.C(stateEstablished), "pass", "track")
		l.createBlocks(pb, "track", fwdKey, proto, tcpFlags, now, icmpProto, ir.C(0), "pass", pos)
		pb.Block("pass").Return(pos, tcOK)
		l.dropBlock(pb, "malformed", ctx, dropMalformed, noInfo(pi), pos)
		return pb.Program()
	}

	pol := pb.Block("policy")
	peer := saddr
	if dir == egress {
		peer = daddr
	}
	// IPv4 addresses are in the IPv4-mapped form: ::ffff:a.b.c.d. The
	// address of an endpoint, a node or an API server is in the ipcache
	// hash; any other address takes the longest prefix of ipcache_cidr.
	// The identity reaches have_identity through cb2.
	ipc := pol.MapLookup(polPos, ipcacheMap, peer[:]...)
	pol.IfNull(polPos, ipc, "cidr_lookup", "addr_identity")
	ai := pb.Block("addr_identity")
	aid := ai.Load(polPos, ipc, 0, 4)
	ai.CtxStore(polPos, ctx, "cb2", ir.V(aid))
	ai.Jump(polPos, "have_identity")
	cl := pb.Block("cidr_lookup")
	cidr := cl.MapLookup(polPos, ipcacheCIDRMap, append([]ir.Operand{ir.C(128)}, peer[:]...)...)
	cl.IfNull(polPos, cidr, "no_identity", "cidr_identity")
	ci := pb.Block("cidr_identity")
	cid := ci.Load(polPos, cidr, 0, 4)
	ci.CtxStore(polPos, ctx, "cb2", ir.V(cid))
	ci.Jump(polPos, "have_identity")
	l.dropBlock(pb, "no_identity", ctx, dropNoIdentity, pi, pos)

	hi := pb.Block("have_identity")
	id := hi.CtxLoad(polPos, ctx, "cb2")
	word := hi.CtxLoad(polPos, ctx, "cb1")
	polPort := hi.And(polPos, ir.V(word), ir.C(0xffff))
	plen := hi.Shr(polPos, ir.V(word), ir.C(16))
	l.policyLookups(pb, hi, ctx, polMap, dir, id, proto, polPort, plen, defCookie, polPos, audit)

	// The verdict, with the deciding cookie in cb3 and the verdict in cb1.
	dec := pb.Block("decided")
	cookie := dec.CtxLoad(polPos, ctx, "cb3")
	verdict := dec.CtxLoad(polPos, ctx, "cb1")
	state := dec.CtxLoad(polPos, ctx, "cb4")
	cnt := l.countBlocks(pb, "count", ctx, ruleStatsMap, ir.V(cookie), polPos)
	dec.Jump(polPos, "count")
	cnt.Branch(polPos, ir.Eq, verdict, ir.C(verdictDenied), "denied", "passed")
	vpi := *pi
	vpi.identity = ir.V(id)

	pa := pb.Block("passed")
	pa.Branch(polPos, ir.Eq, state, ir.C(stateEstablished), "pass", "create")
	l.createBlocks(pb, "create", fwdKey, proto, tcpFlags, now, icmpProto, ir.V(cookie), "created", polPos)
	cr := pb.Block("created")
	if l.wantVerdictEvent(verdictAllowed) || l.wantVerdictEvent(verdictAudited) {
		if !l.wantVerdictEvent(verdictAllowed) {
			cr.Branch(polPos, ir.Eq, verdict, ir.C(verdictAllowed), "pass", "created_event")
			cr = pb.Block("created_event")
		}
		l.event(cr, polPos, eventVerdict, &vpi, ir.V(verdict), ir.C(0), ir.V(cookie))
	}
	cr.Jump(polPos, "pass")
	pb.Block("pass").Return(polPos, tcOK)

	dn := pb.Block("denied")
	if l.wantVerdictEvent(verdictDenied) {
		dn.Branch(polPos, ir.Eq, state, ir.C(stateEstablished), "policy_drop", "denied_event")
		de := pb.Block("denied_event")
		l.event(de, polPos, eventVerdict, &vpi, ir.V(verdict), ir.C(0), ir.V(cookie))
		de.Jump(polPos, "policy_drop")
	} else {
		dn.Jump(polPos, "policy_drop")
	}
	l.dropBlockCookie(pb, "policy_drop", ctx, dropPolicy, &vpi, ir.V(cookie), polPos)
	l.dropBlock(pb, "malformed", ctx, dropMalformed, noInfo(pi), pos)
	return pb.Program()
}

// policyLookups emits, starting in b, the policy map lookups of a packet
// from (ingress) or to (egress) a peer of identity id, and the verdicts
// that follow, which store the deciding cookie in cb3 and the verdict in
// cb1 and go to "decided". plen is prefixPort when the packet has a port
// (or an ICMP type and code), prefixProto when it has none.
//
// The lookups are exact (policy.go): first the peer's identity with the
// packet's protocol and port, whose entry, when there is one, already
// carries what every key of the peer's and of the wildcard identity that
// matches the packet decides (propagate). Otherwise the peer's identity
// and then the wildcard identity are looked up as identityLookups says,
// each giving the verdict of its longest matching key, or none; the two
// combine as the rules do: a deny beats an audited deny, which beats an
// allow, and between equals the lower cookie (the first rule) decides.
// When neither matches, the default deny decides, audited when audit is
// set.
//
// The number of lookups depends on the lengths of the keys the two
// identities have, never on the number of entries: 1 for a peer with an
// entry for the packet's port, 3 for a packet no key matches, 12 at most.
func (l *lowering) policyLookups(pb *ir.ProgramBuilder, b *ir.BlockBuilder, ctx ir.Value, polMap string, dir direction, id, proto, port, plen ir.Value, defCookie uint32, pos source.Pos, audit bool) {
	b.Branch(pos, ir.Eq, plen, ir.C(prefixPort), "pol_exact", "pol_peer")
	ex := pb.Block("pol_exact")
	e := ex.MapLookup(pos, polMap, ir.C(prefixPort), ir.V(id), ir.C(int64(dir)), ir.V(proto), ir.V(port))
	ex.IfNull(pos, e, "pol_peer", "pol_exact_hit")
	eh := pb.Block("pol_exact_hit")
	eflags := eh.Load(pos, e, 4, 4)
	ecookie := eh.Load(pos, e, 0, 4)
	eh.Branch(pos, ir.Set, eflags, ir.C(flagDeny), "pol_exact_deny", "pol_exact_allow")
	l.denyBlocks(pb, "pol_exact_deny", ctx, ecookie, eflags, pos)
	l.verdictBlock(pb, "pol_exact_allow", ctx, ir.V(ecookie), verdictAllowed, pos)

	// The peer's result goes to cb0 (rank) and cb2 (cookie), the
	// wildcard's to cb1 and cb3.
	l.identityLookups(pb, "pol_peer", ctx, polMap, dir, ir.V(id), true, proto, port, plen, "cb0", "cb2", "pol_any", pos)
	l.identityLookups(pb, "pol_any", ctx, polMap, dir, ir.C(IdentityAny), false, proto, port, plen, "cb1", "cb3", "pol_combine", pos)

	cb := pb.Block("pol_combine")
	prank := cb.CtxLoad(pos, ctx, "cb0")
	pcookie := cb.CtxLoad(pos, ctx, "cb2")
	arank := cb.CtxLoad(pos, ctx, "cb1")
	acookie := cb.CtxLoad(pos, ctx, "cb3")
	cb.Branch(pos, ir.Gt, arank, ir.V(prank), "pol_any_wins", "pol_rank_eq")
	eq := pb.Block("pol_rank_eq")
	eq.Branch(pos, ir.Eq, arank, ir.V(prank), "pol_rank_tie", "pol_result")
	tie := pb.Block("pol_rank_tie")
	tie.Branch(pos, ir.Lt, acookie, ir.V(pcookie), "pol_any_wins", "pol_result")
	aw := pb.Block("pol_any_wins")
	aw.CtxStore(pos, ctx, "cb0", ir.V(arank))
	aw.CtxStore(pos, ctx, "cb2", ir.V(acookie))
	aw.Jump(pos, "pol_result")

	res := pb.Block("pol_result")
	rank := res.CtxLoad(pos, ctx, "cb0")
	cookie := res.CtxLoad(pos, ctx, "cb2")
	res.Branch(pos, ir.Eq, rank, ir.C(rankDeny), "pol_deny", "pol_not_deny")
	nd := pb.Block("pol_not_deny")
	nd.Branch(pos, ir.Eq, rank, ir.C(rankAuditedDeny), "pol_audited", "pol_not_audited")
	na := pb.Block("pol_not_audited")
	na.Branch(pos, ir.Eq, rank, ir.C(rankAllow), "pol_allow", "default_deny")
	l.verdictBlock(pb, "pol_deny", ctx, ir.V(cookie), verdictDenied, pos)
	l.verdictBlock(pb, "pol_audited", ctx, ir.V(cookie), verdictAudited, pos)
	l.verdictBlock(pb, "pol_allow", ctx, ir.V(cookie), verdictAllowed, pos)
	def := verdictDenied
	if audit {
		def = verdictAudited
	}
	l.verdictBlock(pb, "default_deny", ctx, ir.C(int64(defCookie)), def, pos)
}

// The ranks identityLookups stores: what a matching entry decides, higher
// beating lower; rankNone when no entry matches.
const (
	rankNone        = 0
	rankAllow       = 1
	rankAuditedDeny = 2
	rankDeny        = 3
)

// identityLookups emits, from a block called label, the lookups of the
// entries of identity x that can match the packet, longest first: its
// summary (length prefixL3), then each length the summary's lengths field
// lists — the port lengths only for a packet with a port, and prefixPort
// not again when exactDone (policyLookups has looked it up) — then the
// summary's own verdict when it has one. Without a summary x has no entries
// that exactDone did not cover (propagate). The first hit decides for x: it
// stores its rank in rankSlot and its cookie in cookieSlot (rankNone and 0
// when nothing matches) and goes to next.
func (l *lowering) identityLookups(pb *ir.ProgramBuilder, label string, ctx ir.Value, polMap string, dir direction, x ir.Operand, exactDone bool, proto, port, plen ir.Value, rankSlot, cookieSlot, next string, pos source.Pos) {
	key := func(length int64, proto, port ir.Operand) []ir.Operand {
		return []ir.Operand{ir.C(length), x, ir.C(int64(dir)), proto, port}
	}
	hit := func(blk string, ent ir.Value) {
		h := pb.Block(blk)
		flags := h.Load(pos, ent, 4, 4)
		cookie := h.Load(pos, ent, 0, 4)
		// flags 0 (allow) → 1, flagDeny → 3, flagDeny|flagAudit → 2.
		deny := h.And(pos, ir.V(flags), ir.C(flagDeny))
		deny2 := h.Shl(pos, ir.V(deny), ir.C(1))
		au := h.Shr(pos, ir.V(flags), ir.C(1))
		au1 := h.And(pos, ir.V(au), ir.C(1))
		r := h.Sub(pos, ir.V(deny2), ir.V(au1))
		rank := h.Add(pos, ir.V(r), ir.C(rankAllow))
		h.CtxStore(pos, ctx, rankSlot, ir.V(rank))
		h.CtxStore(pos, ctx, cookieSlot, ir.V(cookie))
		h.Jump(pos, next)
	}

	b := pb.Block(label)
	sum := b.MapLookup(pos, polMap, key(prefixL3, ir.C(0), ir.C(0))...)
	b.IfNull(pos, sum, label+"_none", label+"_sum")
	none := pb.Block(label + "_none")
	none.CtxStore(pos, ctx, rankSlot, ir.C(rankNone))
	none.CtxStore(pos, ctx, cookieSlot, ir.C(0))
	none.Jump(pos, next)

	s := pb.Block(label + "_sum")
	lengths := s.Load(pos, sum, 8, 4)
	// The port lengths, longest first (portBlockBits is largest first).
	var portLens []int
	if !exactDone {
		portLens = append(portLens, prefixPort)
	}
	for i := len(portBlockBits) - 1; i >= 0; i-- {
		if nb := portBlockBits[i]; nb > 0 {
			portLens = append(portLens, prefixPort-nb)
		}
	}
	check := func(n int) string { return fmt.Sprintf("%s_len%d", label, n) }
	s.Branch(pos, ir.Eq, plen, ir.C(prefixPort), check(portLens[0]), check(prefixProto))
	for i, n := range portLens {
		other := check(prefixProto)
		if i+1 < len(portLens) {
			other = check(portLens[i+1])
		}
		c := pb.Block(check(n))
		c.Branch(pos, ir.Set, lengths, ir.C(1<<(n-prefixL3)), fmt.Sprintf("%s_at%d", label, n), other)
		at := pb.Block(fmt.Sprintf("%s_at%d", label, n))
		p := ir.V(port)
		if n < prefixPort {
			// The port is in network order, as a 16-bit load gives it.
			p = ir.V(at.And(pos, ir.V(port), ir.C(be16(uint16(0xffff<<(prefixPort-n))))))
		}
		ent := at.MapLookup(pos, polMap, key(int64(n), ir.V(proto), p)...)
		at.IfNull(pos, ent, other, fmt.Sprintf("%s_hit%d", label, n))
		hit(fmt.Sprintf("%s_hit%d", label, n), ent)
	}
	c := pb.Block(check(prefixProto))
	c.Branch(pos, ir.Set, lengths, ir.C(1<<(prefixProto-prefixL3)), fmt.Sprintf("%s_at%d", label, prefixProto), label+"_l3")
	at := pb.Block(fmt.Sprintf("%s_at%d", label, prefixProto))
	ent := at.MapLookup(pos, polMap, key(prefixProto, ir.V(proto), ir.C(0))...)
	at.IfNull(pos, ent, label+"_l3", fmt.Sprintf("%s_hit%d", label, prefixProto))
	hit(fmt.Sprintf("%s_hit%d", label, prefixProto), ent)
	l3 := pb.Block(label + "_l3")
	l3.Branch(pos, ir.Set, lengths, ir.C(lengthsVerdict), label+"_hit_l3", label+"_none")
	hit(label+"_hit_l3", sum)
}

// denyBlocks emits the verdict of a deny entry with cookie and flags: an
// audited deny passes, any other drops.
func (l *lowering) denyBlocks(pb *ir.ProgramBuilder, label string, ctx, cookie, flags ir.Value, pos source.Pos) {
	b := pb.Block(label)
	b.Branch(pos, ir.Set, flags, ir.C(flagAudit), label+"_audit", label+"_drop")
	l.verdictBlock(pb, label+"_audit", ctx, ir.V(cookie), verdictAudited, pos)
	l.verdictBlock(pb, label+"_drop", ctx, ir.V(cookie), verdictDenied, pos)
}

// verdictBlock emits a block that records cookie and verdict in cb3 and
// cb1 and goes to "decided".
func (l *lowering) verdictBlock(pb *ir.ProgramBuilder, label string, ctx ir.Value, cookie ir.Operand, verdict int, pos source.Pos) {
	b := pb.Block(label)
	b.CtxStore(pos, ctx, "cb3", cookie)
	b.CtxStore(pos, ctx, "cb1", ir.C(int64(verdict)))
	b.Jump(pos, "decided")
}

// dropBlock emits a block that counts a drop for reason, sends a drop
// event and returns TC_ACT_SHOT.
func (l *lowering) dropBlock(pb *ir.ProgramBuilder, label string, ctx ir.Value, reason int, pi *packetInfo, pos source.Pos) {
	l.dropBlockCookie(pb, label, ctx, reason, pi, ir.C(0), pos)
}

// dropBlockCookie is dropBlock for a drop a rule (cookie) decided.
func (l *lowering) dropBlockCookie(pb *ir.ProgramBuilder, label string, ctx ir.Value, reason int, pi *packetInfo, cookie ir.Operand, pos source.Pos) {
	d := l.countBlocks(pb, label, ctx, dropStatsMap, ir.C(int64(reason)), pos)
	l.event(d, pos, eventDrop, pi, ir.C(verdictDenied), ir.C(int64(reason)), cookie)
	d.Return(pos, tcShot)
}

// countBlocks emits, from a block called label, the addition of the packet
// and its bytes to entry key of the per-CPU stats map statsMap, and returns
// the unterminated block that follows.
func (l *lowering) countBlocks(pb *ir.ProgramBuilder, label string, ctx ir.Value, statsMap string, key ir.Operand, pos source.Pos) *ir.BlockBuilder {
	b := pb.Block(label)
	st := b.MapLookup(pos, statsMap, key)
	b.IfNull(pos, st, label+"_done", label+"_count")
	c := pb.Block(label + "_count")
	n := c.CtxLoad(pos, ctx, "len")
	c.AtomicAdd(pos, st, 0, 8, ir.C(1))
	c.AtomicAdd(pos, st, 8, 8, ir.V(n))
	c.Jump(pos, label+"_done")
	return pb.Block(label + "_done")
}

// xdpPrefilter drops, at the host's devices, IPv4 packets whose header is
// malformed, before any later program spends time on them.
func (l *lowering) xdpPrefilter() *ir.Program {
	pos := l.node.Pos
	pb := ir.NewProgram("xdp_prefilter", ir.ProgXDP, "xdp", pos)
	b := pb.Block("entry")
	ctx := b.Ctx(pos)
	data := b.CtxLoad(pos, ctx, "data")
	end := b.CtxLoad(pos, ctx, "data_end")
	b.Bounds(pos, data, ethHLen, end, "eth", "pass")
	eth := pb.Block("eth")
	proto := eth.Load(pos, data, 12, 2)
	eth.Branch(pos, ir.Eq, proto, ir.C(be16(0x0800)), "ipv4", "pass")
	v4 := pb.Block("ipv4")
	v4.Bounds(pos, data, ethHLen+ipv4HLen, end, "ip", "drop")
	ip := pb.Block("ip")
	verIHL := ip.Load(pos, data, ethHLen, 1)
	ver := ip.And(pos, ir.V(verIHL), ir.C(0xf0))
	ip.Branch(pos, ir.Ne, ver, ir.C(0x40), "drop", "version_ok")
	vo := pb.Block("version_ok")
	ihl := vo.And(pos, ir.V(verIHL), ir.C(0x0f))
	vo.Branch(pos, ir.Lt, ihl, ir.C(5), "drop", "ihl_ok")
	io := pb.Block("ihl_ok")
	tl := io.Load(pos, data, ethHLen+2, 2)
	tlen := io.Swap16(pos, ir.V(tl))
	hlen := io.Shl(pos, ir.V(ihl), ir.C(2))
	io.Branch(pos, ir.Lt, tlen, ir.V(hlen), "drop", "pass")
	pass := pb.Block("pass")
	pass.Return(pos, xdpPass)
	drop := pb.Block("drop")
	drop.Return(pos, xdpDrop)
	return pb.Program()
}
