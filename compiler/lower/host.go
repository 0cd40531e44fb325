package lower

import (
	"encoding/binary"
	"net/netip"
	"strconv"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/ir"
	"github.com/ebpfc/ebpfc/source"
)

// The host firewall.
//
// Policies with a nodeSelector (cluster-wide only) select nodes; on a
// selected node the host itself is a policy subject, as an endpoint is. Its
// programs are the endpoints' entry and IPv4 programs, built for a subject
// that stands for the host: its own policy map (pol_host), its own program
// array slots and default-deny cookies, the reserved identity host. They
// attach to every device the node lists: the ingress policy at tc ingress,
// the egress policy at tc egress.
//
// Unlike an endpoint's device, a node's device also carries packets that
// are not the host's: packets routed to and from the node's endpoints, or
// through the node. The entry program lets those pass before anything is
// judged or tracked: an ingress packet is the host's when its destination
// is one of the node's addresses, an egress packet when its source is one
// (docs/hostfw.md). The addresses are node constants folded into the code.
//
// A node no nodeSelector selects gets no host programs: its host is open,
// also under enforcement "always".

// Names of the host's programs and policy map. Endpoint programs start with
// "to_" or "from_" and endpoint maps are "pol_" + namespace + "_" + name, so
// these cannot clash with them.
const (
	hostIngressProg = "host_ingress"
	hostEgressProg  = "host_egress"
	hostBase        = "host"
)

// hostSubject returns the endpoint that stands for the node's host in
// computePolicy, entryProgram and ipv4Program, with the identity host and
// the policies that select the node, or nil when no policy selects it. It
// has the node's addresses and position and no named ports (a host has
// none: docs/policy.md).
func (l *lowering) hostSubject() *model.Endpoint {
	var pols []*model.Policy
	for _, p := range l.cfg.Policies {
		if p.NodeSelector != nil && p.NodeSelector.Matches(l.node.Labels) {
			pols = append(pols, p)
		}
	}
	if len(pols) == 0 {
		return nil
	}
	ep := &model.Endpoint{Name: hostBase, Node: l.node.Name, Addresses: l.node.Addresses, Pos: l.node.Pos}
	id := &identity{id: IdentityHost, name: "reserved:host", class: classHost}
	l.ids.byEndpoint[ep] = id
	l.selecting[id] = pols
	return ep
}

// hostID is how cookies and events name a node's host.
func hostID(n *model.Node) string { return "node:" + n.Name }

// hostPolicy returns the host's subject and its policy in both directions,
// or a nil subject when the host is open in both: no policy selects the
// node, or none enforces a direction. pos is where enforcement came from.
func (l *lowering) hostPolicy() (ep *model.Endpoint, pols [2]endpointPolicy, pos source.Pos, err error) {
	ep = l.hostSubject()
	if ep == nil {
		return nil, pols, pos, nil
	}
	for _, dir := range []direction{ingress, egress} {
		pols[dir] = l.computePolicy(ep, dir)
	}
	if !pols[ingress].enforced && !pols[egress].enforced {
		return nil, pols, pos, nil
	}
	pos = pols[ingress].pos
	if !pols[ingress].enforced {
		pos = pols[egress].pos
	}
	if len(l.node.Devices) == 0 {
		return nil, pols, pos, source.Errorf(pos, "node %s is selected by a nodeSelector policy but lists no devices for the host firewall to attach to; add its devices (nodes.%q.devices)", l.node.Name, l.node.Name)
	}
	return ep, pols, pos, nil
}

// hostPrograms lowers the host firewall of the node, when a policy selects
// it and enforces a direction: the policy map, the entry and IPv4 programs
// of both directions (an open direction tracks connections so that replies
// come back through the enforced one) and their attachments. It sets
// *tracking when the programs use connection tracking.
func (l *lowering) hostPrograms(tracking *bool) error {
	ep, pols, pos, err := l.hostPolicy()
	if ep == nil || err != nil {
		return err
	}
	l.host = ep
	*tracking = true

	base := l.identifier(hostBase)
	mapName := "pol_" + base
	size := l.mapSize("policy", defaultPolicySize)
	entries := append(append([]Entry{}, pols[ingress].entries...), pols[egress].entries...)
	if len(entries) > int(size) {
		return source.Errorf(pos, "the host of node %s needs %d policy map entries but settings.mapSizes.policy allows %d; raise it", l.node.Name, len(entries), size)
	}
	l.maps = append(l.maps, l.policyMap(mapName, pos))
	l.contents = append(l.contents, MapContents{Map: mapName, Entries: entries})

	// Entry programs first, then the IPv4 and IPv6 programs they tail-call, as
	// build orders the endpoints'.
	type plan struct {
		dir       direction
		name, v4  string
		v6        string
		tcDir     string
		pol       endpointPolicy
		slot      int64
		defCookie uint32
	}
	var plans []plan
	for _, dir := range []direction{ingress, egress} {
		pl := plan{dir: dir, name: hostIngressProg, tcDir: "ingress", pol: pols[dir]}
		if dir == egress {
			pl.name, pl.tcDir = hostEgressProg, "egress"
		}
		pl.v4, pl.v6 = pl.name+"_ipv4", pl.name+"_ipv6"
		pl.slot = hostTailCallSlot(dir, familyIPv4)
		l.setSlot(pl.slot, pl.v4)
		l.setSlot(hostTailCallSlot(dir, familyIPv6), pl.v6)
		if pl.pol.enforced {
			pl.defCookie = l.hostDefaultDenyCookie(dir)
			l.cookies = append(l.cookies, Cookie{
				ID: pl.defCookie, Kind: "default-deny", Direction: dir.String(), Rule: -1,
				Endpoint: hostID(l.node), Audit: pl.pol.audit, Pos: pl.pol.pos,
			})
		}
		for _, dev := range l.node.Devices {
			l.attach = append(l.attach, Attachment{Program: pl.name, Hook: "tc", Device: dev, Direction: pl.tcDir})
		}
		l.progs = append(l.progs, l.entryProgram(pl.name, ep, dir, pl.pol.enforced, pl.slot, hostTailCallSlot(dir, familyIPv6), pl.v4, pl.v6))
		plans = append(plans, pl)
	}
	for _, pl := range plans {
		l.progs = append(l.progs,
			l.policyProgram(pl.v4, ep, pl.dir, 4, pl.pol.enforced, mapName, pl.defCookie, pl.pol.pos, pl.pol.audit),
			l.policyProgram(pl.v6, ep, pl.dir, 6, pl.pol.enforced, mapName, pl.defCookie, pl.pol.pos, pl.pol.audit))
	}
	return nil
}

// hostOwnPackets6 is hostOwnPackets for IPv6: saddr and daddr are the
// addresses' words as 32-bit loads give them, compared with the node's IPv6
// addresses.
func (l *lowering) hostOwnPackets6(pb *ir.ProgramBuilder, b *ir.BlockBuilder, dir direction, saddr, daddr addr, next string, pos source.Pos) {
	own := daddr
	if dir == egress {
		own = saddr
	}
	var addrs []netip.Addr
	for _, a := range l.node.Addresses {
		if a.Is6() && !a.Is4In6() {
			addrs = append(addrs, a)
		}
	}
	cur := b
	for i, a := range addrs {
		els := "v6_not_host"
		if i+1 < len(addrs) {
			els = "v6_host_addr_" + strconv.Itoa(i+1)
		}
		w := a.As16()
		for j := range 4 {
			ok := next
			if j < 3 {
				ok = "v6_host_addr_" + strconv.Itoa(i) + "_" + strconv.Itoa(j+1)
			}
			cur.Branch(pos, ir.Eq, own[j].Value, ir.C(be32(binary.BigEndian.Uint32(w[4*j:]))), ok, els)
			if j < 3 {
				cur = pb.Block(ok)
			}
		}
		if i+1 < len(addrs) {
			cur = pb.Block(els)
		}
	}
	if len(addrs) == 0 {
		cur.Jump(pos, "v6_not_host")
	}
	pb.Block("v6_not_host").Return(pos, tcOK)
}

// hostOwnPackets ends b, in an entry program of the host, with the test
// that lets packets that are not the host's pass: in the ingress program
// the destination address (daddr) must be one of the node's IPv4 addresses,
// in the egress program the source (saddr). The host's packets go on to
// next. saddr and daddr are 32-bit loads from the packet.
func (l *lowering) hostOwnPackets(pb *ir.ProgramBuilder, b *ir.BlockBuilder, dir direction, saddr, daddr ir.Value, next string, pos source.Pos) {
	own := daddr
	if dir == egress {
		own = saddr
	}
	var addrs []netip.Addr
	for _, a := range l.node.Addresses {
		if a.Is4() {
			addrs = append(addrs, a)
		}
	}
	cur := b
	for i, a := range addrs {
		els := "not_host"
		if i+1 < len(addrs) {
			els = "host_addr_" + strconv.Itoa(i+1)
		}
		cur.Branch(pos, ir.Eq, own, ir.C(be32(addr4(a))), next, els)
		if i+1 < len(addrs) {
			cur = pb.Block(els)
		}
	}
	if len(addrs) == 0 {
		cur.Jump(pos, "not_host")
	}
	pb.Block("not_host").Return(pos, tcOK)
}

// hostRefs names the host in events: its programs write endpoint index 0.
func (l *lowering) hostRefs() []EndpointRef {
	if l.host == nil {
		return nil
	}
	return []EndpointRef{{Index: 0, ID: hostID(l.node), Identity: IdentityHost}}
}

// lowerHost adds the host's policy map to inc's contents, as build does.
// It runs after the local endpoints are named, as in build.
func (inc *Incremental) lowerHost() error {
	l := inc.l
	ep, _, _, err := l.hostPolicy()
	if ep == nil || err != nil {
		return err
	}
	l.host = ep
	inc.hostMap = "pol_" + l.identifier(hostBase)
	return inc.updateHost(nil)
}

// updateHost computes the host's policy entries again and, when d is not
// nil, adds what changed to it. The host's rules may name a new identity
// or a new endpoint's named port just as an endpoint's may.
func (inc *Incremental) updateHost(d *[]MapDelta) error {
	if inc.l.host == nil {
		return nil
	}
	entries, sig, err := inc.policyEntries(inc.l.host)
	if err != nil {
		return err
	}
	inc.sig[inc.l.host] = sig
	if d != nil {
		if md := diffEntryLists(inc.hostMap, inc.policy[inc.hostMap], entries); md != nil {
			*d = append(*d, *md)
		}
	}
	inc.policy[inc.hostMap] = entries
	return nil
}
