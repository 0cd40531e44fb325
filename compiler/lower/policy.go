package lower

import (
	"slices"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/ir"
	"github.com/ebpfc/ebpfc/source"
)

// Direction is ingress (towards the endpoint) or egress (from it).
type direction uint8

const (
	ingress direction = 0
	egress  direction = 1
)

func (d direction) String() string {
	if d == egress {
		return "egress"
	}
	return "ingress"
}

// Policy maps are hash maps. A key is (prefix length, identity, direction,
// protocol, destination port) and matches the packets whose (identity,
// direction, protocol, port) agree with it on its first prefix-length bits:
// identity and direction always match exactly, a shorter length wildcards
// the low bits of the port, a shorter one still the protocol. The lengths
// are few: prefixL3 (any protocol and port), prefixProto (any port of the
// protocol), the port blocks prefixPort-12, -8 and -4 (4096, 256 and 16
// ports: port ranges), and prefixPort (one port). For ICMP the "port" is
// the type in the high byte and the code in the low byte, so a rule without
// a code is a key of length prefixPort-8. The identity 0 stands for any peer.
//
// A hash lookup is exact, so the program looks a packet up at each length
// that can match it, and stops at the first hit, the longest: every entry
// carries what all the keys of its identity that cover it decide, and what
// the keys of the wildcard identity that cover it decide (propagate). So
// the one lookup at prefixPort with the peer's identity, when it hits,
// decides. Otherwise, for the peer's identity and for 0, the entry of
// length prefixL3 (the identity's summary) says in its lengths field which
// other lengths the identity has entries of — and, in bit 0, whether the
// summary itself carries a verdict — so only those are looked up; an
// identity without a summary has no entries but those of length prefixPort,
// which the first lookup covers. See policyLookups.
const (
	prefixL3    = 32 + 8           // identity, direction
	prefixProto = prefixL3 + 8     // + protocol
	prefixPort  = prefixProto + 16 // + destination port
)

// portBlockBits are the sizes, in bits of the port, of the aligned blocks a
// port range is split into, largest first: each is a key length the
// programs may look up. Fewer sizes mean fewer lookups for a packet and more
// entries for a range.
var portBlockBits = []int{12, 8, 4, 0}

// Policy map value flags.
const (
	flagDeny  = 1 << 0
	flagAudit = 1 << 1 // a deny that only reports: the packet passes
)

// lengthsVerdict is bit 0 of a summary's lengths: the summary carries the
// identity's verdict for packets no longer key of it matches. Bit n > 0
// says that the identity has entries of length prefixL3+n.
const lengthsVerdict = 1 << 0

var policyKey = ir.Struct{Name: "policy_key", Fields: []ir.Field{
	{Name: "prefixlen", Size: 4},
	{Name: "identity", Size: 4},
	{Name: "egress", Size: 1},
	{Name: "protocol", Size: 1},
	{Name: "dport", Size: 2, BigEndian: true},
}}

var policyValue = ir.Struct{Name: "policy_value", Fields: []ir.Field{
	{Name: "cookie", Size: 4},
	{Name: "flags", Size: 4},
	{Name: "lengths", Size: 4},
}}

// noPrealloc is BPF_F_NO_PREALLOC: a map's memory is allocated entry by
// entry, so a map sized for the worst case costs what it holds. The kernel
// requires it of LPM tries; policy maps (one per endpoint) and the ipcache
// use it too.
const noPrealloc = 1

// policyMap is the definition of a policy map called name.
func (l *lowering) policyMap(name string, pos source.Pos) *ir.Map {
	return &ir.Map{
		Name: name, Type: ir.MapHash, Key: policyKey, Value: policyValue,
		MaxEntries: l.mapSize("policy", defaultPolicySize), Flags: noPrealloc, Pos: pos,
	}
}

// The IP protocol numbers.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
	protoSCTP   = 132
)

// ruleCookies numbers every rule of the config, in policy order and, within
// a policy, ingress, egress, ingressDeny then egressDeny rules in the order
// written, from 1. The numbering does not depend on the node, so a cookie
// means the same rule everywhere, and the lowest cookie among the matching
// rules of a kind is the first one (docs/policy.md).
func ruleCookies(cfg *model.Config) (map[*model.Rule]uint32, []Cookie) {
	ids := make(map[*model.Rule]uint32)
	var cookies []Cookie
	for _, p := range cfg.Policies {
		lists := []struct {
			rules []*model.Rule
			dir   direction
			kind  string
		}{
			{p.Ingress, ingress, "allow"}, {p.Egress, egress, "allow"},
			{p.IngressDeny, ingress, "deny"}, {p.EgressDeny, egress, "deny"},
		}
		for _, list := range lists {
			for i, r := range list.rules {
				id := uint32(len(cookies) + 1)
				ids[r] = id
				cookies = append(cookies, Cookie{
					ID: id, Kind: list.kind, Policy: p.ID(), Direction: list.dir.String(),
					Rule: i, Audit: p.Audit, Pos: r.Pos,
				})
			}
		}
	}
	return ids, cookies
}

// polKey is a policy map key of one endpoint and direction. Its fields are
// ordered so that it has no padding: computePolicy hashes many of them,
// and a struct without padding hashes as one block of memory.
type polKey struct {
	id    uint32
	port  uint16
	plen  uint8
	proto uint8
}

// polVal is what a key decides.
type polVal struct {
	cookie uint32
	deny   bool
	audit  bool
}

// endpointPolicy is what lowering needs to know about one endpoint in one
// direction.
type endpointPolicy struct {
	enforced bool
	audit    bool       // a default deny only reports
	entries  []Entry    // policy map entries for this direction
	pos      source.Pos // where enforcement came from: the first selecting policy
}

// computePolicy decides whether ep is enforced in dir and which policy map
// entries decide its traffic (docs/policy.md, "How policies combine").
func (l *lowering) computePolicy(ep *model.Endpoint, dir direction) endpointPolicy {
	var out endpointPolicy
	settings := &l.cfg.Settings
	if settings.Enforcement == model.EnforceNever {
		return out
	}
	allAudit, anyPolicy := true, false
	if settings.Enforcement == model.EnforceAlways {
		out.enforced = true
		out.pos = settings.Pos
	}
	keys := make(map[polKey]polVal)
	record := func(k polKey, v polVal) {
		if old, ok := keys[k]; !ok || v.beats(old) {
			keys[k] = v
		}
	}
	subject := l.ids.byEndpoint[ep]
	for _, p := range l.selecting[subject] {
		if !p.Enforces(dir == egress) {
			continue
		}
		if !out.enforced {
			out.enforced = true
			out.pos = p.Pos
		}
		anyPolicy = true
		allAudit = allAudit && p.Audit
		allow, deny := p.Ingress, p.IngressDeny
		if dir == egress {
			allow, deny = p.Egress, p.EgressDeny
		}
		for _, r := range allow {
			v := polVal{cookie: l.cookieOf[r]}
			for _, k := range l.ruleKeys(p, r, ep, dir) {
				record(k, v)
			}
		}
		for _, r := range deny {
			v := polVal{cookie: l.cookieOf[r], deny: true, audit: p.Audit || settings.Audit}
			for _, k := range l.ruleKeys(p, r, ep, dir) {
				record(k, v)
			}
		}
	}
	out.audit = settings.Audit || anyPolicy && allAudit
	for k, e := range propagate(keys) {
		var flags uint64
		if e.deny {
			flags |= flagDeny
			if e.audit {
				flags |= flagAudit
			}
		}
		out.entries = append(out.entries, Entry{
			Key:   []uint64{uint64(k.plen), uint64(k.id), uint64(dir), uint64(k.proto), uint64(k.port)},
			Value: []uint64{uint64(e.cookie), flags, uint64(e.lengths)},
		})
	}
	slices.SortFunc(out.entries, func(a, b Entry) int { return slices.Compare(a.Key, b.Key) })
	return out
}

// rank orders what a key decides: a deny beats an audited deny, which
// beats an allow — an audited policy never hides another policy's deny.
func (v polVal) rank() int {
	switch {
	case v.deny && !v.audit:
		return 2
	case v.deny:
		return 1
	}
	return 0
}

// beats reports whether v decides rather than w when both match: the higher
// rank, then the first rule.
func (v polVal) beats(w polVal) bool {
	return v.rank() > w.rank() || v.rank() == w.rank() && v.cookie < w.cookie
}

// polEntry is what a policy map entry holds: the verdict of the keys that
// cover it and, for a summary (a key of length prefixL3), the lengths of
// its identity's entries.
type polEntry struct {
	polVal
	lengths uint32
}

// propagate makes each key decide what the set of keys that match a packet
// it matches decides, so that the first hit of the programs' lookups gives
// the verdict (see policyLookups): a key covered by a deny key becomes a
// deny, and each key carries the lowest cookie of the keys of its kind that
// cover it — the first rule, as docs/policy.md says. A deny that is not
// audited beats an audited one. The keys that cover a key are those of its
// identity whose prefix contains it and, for an identity other than 0,
// those of the wildcard identity 0 whose prefix contains it.
//
// It also gives a summary, the key of length prefixL3, to the wildcard
// identity when it has keys and to every other identity with keys of
// another length than prefixPort (those the programs look up first, without
// a summary): its lengths field lists the lengths of the identity's keys,
// and bit 0 (lengthsVerdict) is set when some key of length prefixL3 — the
// identity's own or the wildcard's — decides every packet of the identity.
// A summary without that bit decides nothing (cookie 0, flags 0).
func propagate(keys map[polKey]polVal) map[polKey]polEntry {
	out := make(map[polKey]polEntry, len(keys))
	var buf [2 * (2 + 16)]polKey
	for k := range keys {
		var best polVal
		found := false
		for _, c := range covering(k, &buf) {
			if v, ok := keys[c]; ok && (!found || v.beats(best)) {
				best, found = v, true
			}
		}
		out[k] = polEntry{polVal: best}
	}
	lengths := make(map[uint32]uint32)
	for k := range keys {
		lengths[k.id] |= 1 << (k.plen - prefixL3)
	}
	// The wildcard's L3 key, if there is one, as propagated above (the
	// summaries below must not be mistaken for it).
	anyL3 := polKey{plen: prefixL3, id: IdentityAny}
	_, anyHasL3 := keys[anyL3]
	anyVerdict := out[anyL3]
	for id, bits := range lengths {
		if id != IdentityAny && bits == 1<<(prefixPort-prefixL3) {
			// Only keys of one port: the programs look them up
			// before any summary, so this identity needs none.
			continue
		}
		sum := polKey{plen: prefixL3, id: id}
		_, ok := keys[sum]
		e := out[sum]
		if !ok && id != IdentityAny && anyHasL3 {
			// The wildcard's L3 key decides the identity's packets
			// that no key of its own matches.
			e, ok = polEntry{polVal: anyVerdict.polVal}, true
		}
		e.lengths = bits &^ lengthsVerdict
		if ok {
			e.lengths |= lengthsVerdict
		}
		out[sum] = e
	}
	return out
}

// covering returns k and every key whose prefix contains k: k's identity's
// and, when that is not 0, the wildcard identity's. The result lives in buf
// when it fits (it always does for keys of at most prefixPort bits).
func covering(k polKey, buf *[2 * (2 + 16)]polKey) []polKey {
	out := buf[:0]
	ids := [2]uint32{k.id, IdentityAny}
	n := 2
	if k.id == IdentityAny {
		n = 1
	}
	for _, id := range ids[:n] {
		out = append(out, polKey{plen: prefixL3, id: id})
		if k.plen >= prefixProto {
			out = append(out, polKey{plen: prefixProto, id: id, proto: k.proto})
		}
		for bits := 1; bits <= int(k.plen)-prefixProto; bits++ {
			mask := uint16(0xffff << (16 - bits))
			out = append(out, polKey{plen: uint8(prefixProto + bits), id: id, proto: k.proto, port: k.port & mask})
		}
	}
	return out
}

// l4Key is the protocol and port part of a policy key.
type l4Key struct {
	plen  uint8
	proto uint8
	port  uint16
}

// ruleKeys returns the policy map keys rule r of policy p matches for
// endpoint ep in direction dir.
func (l *lowering) ruleKeys(p *model.Policy, r *model.Rule, ep *model.Endpoint, dir direction) []polKey {
	if !r.HasPeers && len(r.Ports) == 0 && len(r.ICMPs) == 0 {
		return nil // "ingress: [{}]" matches nothing
	}
	peers := l.rulePeers(p, r)
	var out []polKey
	add := func(ids []uint32, l4s []l4Key) {
		for _, id := range ids {
			for _, k := range l4s {
				out = append(out, polKey{plen: k.plen, id: id, proto: k.proto, port: k.port})
			}
		}
	}
	if len(r.Ports) == 0 && len(r.ICMPs) == 0 {
		add(peers, []l4Key{{plen: prefixL3}})
	}
	for _, pr := range r.Ports {
		if pr.Name == "" {
			add(peers, portKeys(pr.Protocol, pr.Port, pr.EndPort))
			continue
		}
		// A named port is resolved on the destination endpoint: the
		// subject for ingress, each peer endpoint for egress.
		if dir == ingress {
			add(peers, namedPortKeys(ep, pr))
			continue
		}
		for _, id := range l.endpointIdentities(peers) {
			for _, dst := range l.ids.byID[id].endpoints {
				add([]uint32{id}, namedPortKeys(dst, pr))
			}
		}
	}
	for _, ic := range r.ICMPs {
		proto := uint8(protoICMP)
		if ic.Family == "IPv6" {
			proto = protoICMPv6
		}
		k := l4Key{plen: prefixProto + 8, proto: proto, port: uint16(ic.Type) << 8}
		if ic.Code != nil {
			k.plen = prefixPort
			k.port |= uint16(*ic.Code)
		}
		add(peers, []l4Key{k})
	}
	return out
}

// rulePeers returns the identities a rule's peers select, sorted, with 0
// for any peer. They do not depend on the subject endpoint, so they are
// computed once per rule; the result must not be modified.
func (l *lowering) rulePeers(p *model.Policy, r *model.Rule) []uint32 {
	key := policyRule{p, r}
	if ids, ok := l.sel.rules[key]; ok {
		return ids
	}
	ids := l.computeRulePeers(p, r)
	l.sel.rules[key] = ids
	return ids
}

func (l *lowering) computeRulePeers(p *model.Policy, r *model.Rule) []uint32 {
	if !r.HasPeers {
		return []uint32{IdentityAny}
	}
	var ids []uint32
	for _, s := range r.Endpoints {
		ids = append(ids, l.sel.endpointPeers(p, s)...)
	}
	for _, c := range r.CIDRs {
		ids = append(ids, l.ids.cidrIdentities(c)...)
	}
	for _, e := range r.Entities {
		ids = append(ids, l.sel.entityPeers(e.Entity)...)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// endpointIdentities returns the endpoint identities among peers; the
// wildcard stands for all of them.
func (l *lowering) endpointIdentities(peers []uint32) []uint32 {
	var out []uint32
	for _, id := range peers {
		if id == IdentityAny {
			out = out[:0]
			for _, e := range l.sel.endpoint {
				out = append(out, e.id)
			}
			return out
		}
		if x := l.ids.byID[id]; x != nil && x.class == classEndpoint {
			out = append(out, id)
		}
	}
	return out
}

// namedPortKeys resolves port rule pr, which names a port, on endpoint dst.
func namedPortKeys(dst *model.Endpoint, pr *model.PortRule) []l4Key {
	for _, np := range dst.NamedPorts {
		if np.Name != pr.Name {
			continue
		}
		if pr.Protocol != "" && pr.Protocol != model.ProtoAny && pr.Protocol != np.Protocol {
			continue
		}
		return []l4Key{{plen: prefixPort, proto: np.Protocol.Number(), port: np.Port}}
	}
	return nil
}

// portKeys returns the keys of a numbered port rule.
func portKeys(proto model.Protocol, port, end uint16) []l4Key {
	protos := []uint8{proto.Number()}
	if proto == model.ProtoAny || proto == "" {
		if port == 0 {
			return []l4Key{{plen: prefixL3}}
		}
		protos = []uint8{protoTCP, protoUDP, protoSCTP}
	}
	var out []l4Key
	for _, pn := range protos {
		switch {
		case port == 0:
			out = append(out, l4Key{plen: prefixProto, proto: pn})
		case end == 0 || end == port:
			out = append(out, l4Key{plen: prefixPort, proto: pn, port: port})
		default:
			for _, r := range portBlocks(port, end) {
				out = append(out, l4Key{plen: uint8(prefixPort - r.bits), proto: pn, port: r.port})
			}
		}
	}
	return out
}

// portBlock is the aligned block of 1<<bits ports from port.
type portBlock struct {
	port uint16
	bits int
}

// portBlocks splits lo..hi into aligned blocks of the sizes portBlockBits
// allows, largest first where they fit: at most 15 blocks of each smaller
// size on each side of the largest, so about 100 at most for any range (60
// for 1-65535), against at most 30 prefixes of any length.
func portBlocks(lo, hi uint16) []portBlock {
	var out []portBlock
	for start := uint32(lo); start <= uint32(hi); {
		for _, bits := range portBlockBits {
			size := uint32(1) << bits
			if start%size == 0 && start+size-1 <= uint32(hi) {
				out = append(out, portBlock{port: uint16(start), bits: bits})
				start += size
				break
			}
		}
	}
	return out
}

// selectPolicies finds, for every identity of an endpoint on the node, the
// policies that select it, in policy order.
func (l *lowering) selectPolicies() {
	l.selecting = make(map[*identity][]*model.Policy)
	for _, ep := range l.endpoints {
		id := l.ids.byEndpoint[ep]
		if _, done := l.selecting[id]; done {
			continue
		}
		var ps []*model.Policy
		for _, p := range l.cfg.Policies {
			if selectsIdentity(p, id) {
				ps = append(ps, p)
			}
		}
		l.selecting[id] = ps
	}
}
