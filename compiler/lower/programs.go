package lower

import (
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
	dropIPv6Unsupported
	dropTailCall
	dropNoIdentity
	dropSpoofed
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{
	dropNone:            "none",
	dropMalformed:       "malformed packet",
	dropPolicy:          "policy denied",
	dropIPv6Unsupported: "IPv6 not supported yet",
	dropTailCall:        "tail call failed",
	dropNoIdentity:      "no identity for address",
	dropSpoofed:         "source address not the endpoint's",
}

// Map names. Per-endpoint policy maps are called pol_<endpoint>.
const (
	progArrayMap = "progs"
	ipcacheMap   = "ipcache"
	ruleStatsMap = "rule_stats"
	dropStatsMap = "drop_stats"
)

var (
	u32Key  = ir.Struct{Name: "u32_key", Fields: []ir.Field{{Name: "index", Size: 4}}}
	u32Val  = ir.Struct{Name: "u32_value", Fields: []ir.Field{{Name: "value", Size: 4}}}
	statVal = ir.Struct{Name: "stats", Fields: []ir.Field{{Name: "packets", Size: 8}, {Name: "bytes", Size: 8}}}
	// ipcKey holds an IPv6 address, or an IPv4 address mapped into IPv6
	// (::ffff:a.b.c.d), as four big-endian words right after the prefix
	// length, as the kernel's LPM trie wants its data.
	ipcKey = ir.Struct{Name: "ipcache_key", Fields: []ir.Field{
		{Name: "prefixlen", Size: 4},
		{Name: "addr0", Size: 4, BigEndian: true},
		{Name: "addr1", Size: 4, BigEndian: true},
		{Name: "addr2", Size: 4, BigEndian: true},
		{Name: "addr3", Size: 4, BigEndian: true},
	}}
	ipcVal = ir.Struct{Name: "ipcache_value", Fields: []ir.Field{{Name: "identity", Size: 4}}}
)

// lpmNoPrealloc is BPF_F_NO_PREALLOC, which the kernel requires of LPM tries.
const lpmNoPrealloc = 1

func (l *lowering) build() error {
	clusterPos := l.cfg.Cluster.Pos

	type plan struct {
		ep   *model.Endpoint
		dir  direction
		pol  endpointPolicy
		name string // entry program
	}
	var plans []plan
	for _, ep := range l.endpoints {
		base := l.identifier(ep.Namespace + "_" + ep.Name)
		mapName := "pol_" + base
		var eps [2]endpointPolicy
		for _, dir := range []direction{ingress, egress} {
			eps[dir] = l.computePolicy(ep, dir)
		}
		if eps[ingress].enforced || eps[egress].enforced {
			l.maps = append(l.maps, &ir.Map{
				Name: mapName, Type: ir.MapLPMTrie, Key: policyKey, Value: policyValue,
				MaxEntries: l.mapSize("policy", defaultPolicySize), Flags: lpmNoPrealloc, Pos: ep.Pos,
			})
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
			plans = append(plans, plan{ep: ep, dir: dir, pol: eps[dir], name: name})
			l.attach = append(l.attach, Attachment{Program: name, Hook: "tc", Device: ep.Interface, Direction: tcDir, Endpoint: ep.ID()})
		}
	}

	// Entry programs first, then the IPv4 programs they tail-call, so the
	// listing reads from the hook inwards.
	var tails []func()
	for _, pl := range plans {
		pl := pl
		if !pl.pol.enforced {
			l.progs = append(l.progs, l.openProgram(pl.name, pl.ep))
			continue
		}
		defCookie := uint32(len(l.cookies) + 1)
		l.cookies = append(l.cookies, Cookie{
			ID: defCookie, Kind: "default-deny", Direction: pl.dir.String(), Rule: -1,
			Endpoint: pl.ep.ID(), Audit: pl.pol.audit, Pos: pl.pol.pos,
		})
		v4 := pl.name + "_ipv4"
		slot := int64(len(l.slots))
		l.slots = append(l.slots, v4)
		l.progs = append(l.progs, l.entryProgram(pl.name, pl.ep, pl.dir, slot, v4))
		base := pl.name[len("to_"):]
		if pl.dir == egress {
			base = pl.name[len("from_"):]
		}
		tails = append(tails, func() {
			l.progs = append(l.progs, l.ipv4Program(v4, pl.ep, pl.dir, "pol_"+base, defCookie, pl.pol.pos, pl.pol.audit))
		})
	}
	for _, f := range tails {
		f()
	}
	if l.node.Features["xdp"] {
		l.progs = append(l.progs, l.xdpPrefilter())
		for _, dev := range l.node.Devices {
			l.attach = append(l.attach, Attachment{Program: "xdp_prefilter", Hook: "xdp", Device: dev})
		}
	}

	// Node-wide maps.
	ipcSize := l.mapSize("ipcache", defaultIPCacheSize)
	ipc := l.ids.ipcacheEntries(l.cfg, l.node)
	if len(ipc) > int(ipcSize) {
		return source.Errorf(l.cfg.Settings.Pos, "the ipcache needs %d entries but settings.mapSizes.ipcache allows %d; raise it", len(ipc), ipcSize)
	}
	l.maps = append(l.maps,
		&ir.Map{Name: ipcacheMap, Type: ir.MapLPMTrie, Key: ipcKey, Value: ipcVal, MaxEntries: ipcSize, Flags: lpmNoPrealloc, Pos: clusterPos},
		&ir.Map{Name: ruleStatsMap, Type: ir.MapPerCPUArray, Key: u32Key, Value: statVal, MaxEntries: uint32(len(l.cookies) + 1), Pos: clusterPos},
		&ir.Map{Name: dropStatsMap, Type: ir.MapPerCPUArray, Key: u32Key, Value: statVal, MaxEntries: numDropReasons, Pos: clusterPos},
		&ir.Map{Name: progArrayMap, Type: ir.MapProgArray, Key: u32Key, Value: u32Val, MaxEntries: uint32(max(1, len(l.slots))), Slots: l.slots, Pos: l.node.Pos},
	)
	l.contents = append(l.contents, MapContents{Map: ipcacheMap, Entries: ipc})
	return nil
}

// openProgram is the program of a direction no policy enforces: it passes
// everything.
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

// entryProgram is the program attached to an endpoint's device in one
// direction: it checks the Ethernet header, drops what the endpoint may not
// send or receive before policy sees it, and tail-calls the IPv4 policy
// program at a constant slot of the node's program array.
func (l *lowering) entryProgram(name string, ep *model.Endpoint, dir direction, slot int64, target string) *ir.Program {
	pos := ep.Pos
	pb := ir.NewProgram(name, ir.ProgSchedCLS, "tc", pos)
	b := pb.Block("entry")
	ctx := b.Ctx(pos)
	data := b.CtxLoad(pos, ctx, "data")
	end := b.CtxLoad(pos, ctx, "data_end")
	b.Bounds(pos, data, ethHLen, end, "eth", "malformed")

	eth := pb.Block("eth")
	proto := eth.Load(pos, data, 12, 2)
	eth.Branch(pos, ir.Eq, proto, ir.C(be16(0x0800)), "ipv4", "not_ipv4")

	v4 := pb.Block("ipv4")
	if dir == egress {
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
		addr := v4.Param(pos, cname)
		v4.Branch(pos, ir.Eq, addr, ir.C(0), "dispatch", "spoof_check")
		sc := pb.Block("spoof_check")
		sc.Bounds(pos, data, ethHLen+ipv4HLen, end, "spoof_saddr", "malformed")
		ss := pb.Block("spoof_saddr")
		saddr := ss.Load(pos, data, ethHLen+12, 4)
		ss.Branch(pos, ir.Eq, saddr, ir.V(addr), "dispatch", "spoofed")
		l.dropBlock(pb, "spoofed", ctx, dropSpoofed, pos)
	} else {
		v4.Jump(pos, "dispatch")
	}
	disp := pb.Block("dispatch")
	disp.TailCall(pos, ctx, progArrayMap, slot, target, "tailcall_failed")

	nv4 := pb.Block("not_ipv4")
	// Until IPv6 policy is lowered an enforced endpoint drops IPv6 rather
	// than let it around policy; ARP and other non-IP frames pass.
	nv4.Branch(pos, ir.Eq, proto, ir.C(be16(0x86dd)), "ipv6", "pass")
	l.dropBlock(pb, "ipv6", ctx, dropIPv6Unsupported, pos)
	pass := pb.Block("pass")
	pass.Return(pos, tcOK)
	l.dropBlock(pb, "malformed", ctx, dropMalformed, pos)
	// An empty slot must not open the endpoint: fail closed.
	l.dropBlock(pb, "tailcall_failed", ctx, dropTailCall, pos)
	return pb.Program()
}

// ipv4Program enforces an endpoint's policy in one direction on IPv4
// packets: it finds the peer's identity in the ipcache and looks the
// (identity, protocol, port) up in the endpoint's policy map, first with the
// peer's identity and then with the wildcard identity. A deny entry in either
// wins; otherwise an allow in either passes; otherwise the packet meets the
// default deny. Every verdict counts the packet against the cookie of the
// rule that decided it.
//
// Header parsing points at the endpoint; the policy lookups and verdicts
// point at polPos, the policy that made the direction enforced.
func (l *lowering) ipv4Program(name string, ep *model.Endpoint, dir direction, polMap string, defCookie uint32, polPos source.Pos, audit bool) *ir.Program {
	pos := ep.Pos
	pb := ir.NewProgram(name, ir.ProgSchedCLS, "tc", pos)
	b := pb.Block("entry")
	ctx := b.Ctx(pos)
	data := b.CtxLoad(pos, ctx, "data")
	end := b.CtxLoad(pos, ctx, "data_end")
	b.Bounds(pos, data, ethHLen+ipv4HLen, end, "ip", "malformed")

	ip := pb.Block("ip")
	verIHL := ip.Load(pos, data, ethHLen, 1)
	ver := ip.And(pos, ir.V(verIHL), ir.C(0xf0))
	ip.Branch(pos, ir.Ne, ver, ir.C(0x40), "malformed", "ip_version_ok")
	ipv := pb.Block("ip_version_ok")
	ihl := ipv.And(pos, ir.V(verIHL), ir.C(0x0f))
	ipv.Branch(pos, ir.Lt, ihl, ir.C(5), "malformed", "ip_header_ok")

	ih := pb.Block("ip_header_ok")
	peerOff := int16(ethHLen + 12) // source address
	if dir == egress {
		peerOff = ethHLen + 16 // destination address
	}
	peer := ih.Load(pos, data, peerOff, 4)
	proto := ih.Load(pos, data, ethHLen+9, 1)
	frag := ih.Load(pos, data, ethHLen+6, 2)
	// The IPv4-mapped form of the address: ::ffff:a.b.c.d.
	ipc := ih.MapLookup(pos, ipcacheMap, ir.C(128), ir.C(0), ir.C(0), ir.C(be32(0xffff)), ir.V(peer))
	ih.IfNull(pos, ipc, "no_identity", "have_identity")
	l.dropBlock(pb, "no_identity", ctx, dropNoIdentity, pos)

	hi := pb.Block("have_identity")
	id := hi.Load(pos, ipc, 0, 4)
	// A non-first fragment carries no L4 header: only rules without ports
	// can match it.
	off := hi.And(pos, ir.V(frag), ir.C(be16(0x1fff)))
	hi.Branch(pos, ir.Ne, off, ir.C(0), "l3", "l4_tcp")
	lt := pb.Block("l4_tcp")
	lt.Branch(pos, ir.Eq, proto, ir.C(protoTCP), "ports", "l4_udp")
	lu := pb.Block("l4_udp")
	lu.Branch(pos, ir.Eq, proto, ir.C(protoUDP), "ports", "l4_sctp")
	ls := pb.Block("l4_sctp")
	ls.Branch(pos, ir.Eq, proto, ir.C(protoSCTP), "ports", "l4_icmp")
	li := pb.Block("l4_icmp")
	li.Branch(pos, ir.Eq, proto, ir.C(protoICMP), "ports", "l3")

	pt := pb.Block("ports")
	hlen := pt.Shl(pos, ir.V(ihl), ir.C(2))
	l4 := pt.PacketAdd(pos, data, hlen, 60)
	// A TCP, UDP, SCTP or ICMP packet too short to carry its ports (or
	// ICMP type, code and checksum) is malformed: it must not fall back
	// to the port-less rules.
	pt.Bounds(pos, l4, ethHLen+4, end, "ports_ok", "malformed")
	po := pb.Block("ports_ok")
	po.Branch(pos, ir.Eq, proto, ir.C(protoICMP), "icmp", "dport")
	dp := pb.Block("dport")
	dport := dp.Load(pos, l4, ethHLen+2, 2)
	l.policyLookups(pb, dp, "l4", ctx, polMap, dir, id, proto, ir.V(dport), prefixPort, defCookie, polPos, audit)
	// ICMP's type and code take the place of the port.
	ic := pb.Block("icmp")
	typeCode := ic.Load(pos, l4, ethHLen, 2)
	l.policyLookups(pb, ic, "icmp", ctx, polMap, dir, id, proto, ir.V(typeCode), prefixPort, defCookie, polPos, audit)

	l3 := pb.Block("l3")
	l.policyLookups(pb, l3, "l3", ctx, polMap, dir, id, proto, ir.C(0), prefixProto, defCookie, polPos, audit)

	l.dropBlock(pb, "malformed", ctx, dropMalformed, pos)
	return pb.Program()
}

// policyLookups emits, starting in b, the two policy map lookups and the
// verdicts that follow. Block labels start with tag so that the port and
// port-less paths stay apart.
//
// Each entry already carries what all the keys of its identity that match
// the packet decide (see propagate), so the two lookups combine simply: a
// deny in either denies, with the lower cookie when both deny; otherwise an
// allow in either passes, with the lower cookie when both allow; otherwise
// the default deny decides. A deny with the audit flag, and a default deny
// when audit is set, passes and counts as audited; when both lookups deny,
// one without the audit flag wins.
func (l *lowering) policyLookups(pb *ir.ProgramBuilder, b *ir.BlockBuilder, tag string, ctx ir.Value, polMap string, dir direction, id, proto ir.Value, dport ir.Operand, plen int64, defCookie uint32, pos source.Pos, audit bool) {
	lbl := func(s string) string { return tag + "_" + s }
	key := func(identity ir.Operand) []ir.Operand {
		return []ir.Operand{ir.C(plen), identity, ir.C(int64(dir)), ir.V(proto), dport}
	}
	peer := b.MapLookup(pos, polMap, key(ir.V(id))...)
	b.IfNull(pos, peer, lbl("any_only"), lbl("peer_hit"))

	// The peer's identity matched.
	ph := pb.Block(lbl("peer_hit"))
	pflags := ph.Load(pos, peer, 4, 4)
	pcookie := ph.Load(pos, peer, 0, 4)
	any1 := ph.MapLookup(pos, polMap, key(ir.C(IdentityAny))...)
	ph.IfNull(pos, any1, lbl("peer_only"), lbl("both_hit"))
	po := pb.Block(lbl("peer_only"))
	po.Branch(pos, ir.Set, pflags, ir.C(flagDeny), lbl("peer_deny"), lbl("peer_allow"))
	l.denyBlocks(pb, lbl("peer_deny"), ctx, pcookie, pflags, pos)
	l.verdictBlock(pb, lbl("peer_allow"), ctx, ir.V(pcookie), true, pos)

	// Both matched.
	bh := pb.Block(lbl("both_hit"))
	aflags := bh.Load(pos, any1, 4, 4)
	acookie := bh.Load(pos, any1, 0, 4)
	bh.Branch(pos, ir.Set, pflags, ir.C(flagDeny), lbl("pdeny"), lbl("pallow"))
	pd := pb.Block(lbl("pdeny"))
	pd.Branch(pos, ir.Set, aflags, ir.C(flagDeny), lbl("both_deny"), lbl("peer_deny"))
	pa := pb.Block(lbl("pallow"))
	pa.Branch(pos, ir.Set, aflags, ir.C(flagDeny), lbl("any_deny"), lbl("both_allow"))
	// Both deny: one that is not audited beats an audited one, else the
	// first rule decides.
	bd := pb.Block(lbl("both_deny"))
	paudit := bd.And(pos, ir.V(pflags), ir.C(flagAudit))
	aaudit := bd.And(pos, ir.V(aflags), ir.C(flagAudit))
	bd.Branch(pos, ir.Lt, paudit, ir.V(aaudit), lbl("peer_deny"), lbl("both_deny_rank"))
	br := pb.Block(lbl("both_deny_rank"))
	br.Branch(pos, ir.Lt, aaudit, ir.V(paudit), lbl("any_deny"), lbl("both_deny_first"))
	bf := pb.Block(lbl("both_deny_first"))
	bf.Branch(pos, ir.Lt, acookie, ir.V(pcookie), lbl("any_deny"), lbl("peer_deny"))
	l.denyBlocks(pb, lbl("any_deny"), ctx, acookie, aflags, pos)
	ba := pb.Block(lbl("both_allow"))
	ba.Branch(pos, ir.Lt, acookie, ir.V(pcookie), lbl("any_allow"), lbl("peer_allow"))

	// Only the wildcard identity can match.
	ao := pb.Block(lbl("any_only"))
	any2 := ao.MapLookup(pos, polMap, key(ir.C(IdentityAny))...)
	ao.IfNull(pos, any2, lbl("default_deny"), lbl("any_hit"))
	ah := pb.Block(lbl("any_hit"))
	oflags := ah.Load(pos, any2, 4, 4)
	ocookie := ah.Load(pos, any2, 0, 4)
	ah.Branch(pos, ir.Set, oflags, ir.C(flagDeny), lbl("any_only_deny"), lbl("any_only_allow"))
	l.denyBlocks(pb, lbl("any_only_deny"), ctx, ocookie, oflags, pos)
	l.verdictBlock(pb, lbl("any_only_allow"), ctx, ir.V(ocookie), true, pos)
	l.verdictBlock(pb, lbl("any_allow"), ctx, ir.V(acookie), true, pos)
	l.verdictBlock(pb, lbl("default_deny"), ctx, ir.C(int64(defCookie)), audit, pos)
}

// denyBlocks emits the verdict of a deny entry with cookie and flags: an
// audited deny passes, any other drops.
func (l *lowering) denyBlocks(pb *ir.ProgramBuilder, label string, ctx, cookie, flags ir.Value, pos source.Pos) {
	b := pb.Block(label)
	b.Branch(pos, ir.Set, flags, ir.C(flagAudit), label+"_audit", label+"_drop")
	l.verdictBlock(pb, label+"_audit", ctx, ir.V(cookie), true, pos)
	l.verdictBlock(pb, label+"_drop", ctx, ir.V(cookie), false, pos)
}

// verdictBlock emits a block that counts the packet against cookie in
// rule_stats (and, for a drop, against the policy reason in drop_stats) and
// returns the verdict.
func (l *lowering) verdictBlock(pb *ir.ProgramBuilder, label string, ctx ir.Value, cookie ir.Operand, allow bool, pos source.Pos) {
	d := l.countBlocks(pb, label, ctx, ruleStatsMap, cookie, pos)
	if allow {
		d.Return(pos, tcOK)
		return
	}
	d.Jump(pos, label+"_drop")
	l.dropBlock(pb, label+"_drop", ctx, dropPolicy, pos)
}

// dropBlock emits a block that counts a drop for reason and returns
// TC_ACT_SHOT.
func (l *lowering) dropBlock(pb *ir.ProgramBuilder, label string, ctx ir.Value, reason int, pos source.Pos) {
	d := l.countBlocks(pb, label, ctx, dropStatsMap, ir.C(int64(reason)), pos)
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
