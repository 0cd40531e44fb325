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

// Policy map keys are longest-prefix-match keys over (identity, direction,
// protocol, destination port): identity and direction always match exactly,
// a shorter prefix wildcards the port, a shorter one still the protocol.
// Port ranges become several prefixes of the port. The identity 0 stands for
// any peer, so a lookup is made with the peer's identity and with 0.
const (
	prefixL3    = 32 + 8           // identity, direction
	prefixProto = prefixL3 + 8     // + protocol
	prefixPort  = prefixProto + 16 // + destination port
)

// Policy map value flags.
const (
	flagDeny = 1 << 0
)

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
}}

// ruleCookies numbers every allow rule of the config, in policy order, from
// 1. The numbering does not depend on the node, so a cookie means the same
// rule everywhere.
func ruleCookies(cfg *model.Config) (map[*model.Rule]uint32, []Cookie) {
	ids := make(map[*model.Rule]uint32)
	var cookies []Cookie
	for _, p := range cfg.Policies {
		for _, dir := range []direction{ingress, egress} {
			rules := p.Ingress
			if dir == egress {
				rules = p.Egress
			}
			for i, r := range rules {
				id := uint32(len(cookies) + 1)
				ids[r] = id
				cookies = append(cookies, Cookie{
					ID: id, Kind: "allow", Policy: p.ID(), Direction: dir.String(),
					Rule: i, Pos: r.Pos,
				})
			}
		}
	}
	return ids, cookies
}

// selects reports whether policy p applies to endpoint ep. A namespaced
// policy applies only in its namespace; a selector that restricts namespaces
// (namespaceSelector, or Cilium's namespace label) must also match the
// labels of the endpoint's namespace.
func (l *lowering) selects(p *model.Policy, ep *model.Endpoint) bool {
	sel := p.EndpointSelector
	if sel == nil {
		return false
	}
	if !p.ClusterWide && p.Namespace != ep.Namespace {
		return false
	}
	if sel.Namespaces != nil && !sel.Namespaces.Matches(l.namespaceLabels(ep.Namespace)) {
		return false
	}
	return sel.Matches(ep.Labels)
}

// namespaceLabels returns the labels of namespace ns. Every namespace
// carries kubernetes.io/metadata.name, also one the config only implies.
func (l *lowering) namespaceLabels(ns string) map[string]string {
	for _, n := range l.cfg.Namespaces {
		if n.Name == ns {
			return n.Labels
		}
	}
	return map[string]string{"kubernetes.io/metadata.name": ns}
}

// endpointPolicy is what lowering needs to know about one endpoint in one
// direction.
type endpointPolicy struct {
	enforced bool
	entries  []Entry    // policy map entries for this direction
	pos      source.Pos // where enforcement came from: the first selecting policy
}

// computePolicy decides whether ep is enforced in dir and which policy map
// entries allow its traffic.
//
// An endpoint selected by no policy with rules in a direction is open in that
// direction; once selected it is default-deny. As in Cilium, a rule with
// neither peers nor ports ("ingress: [{}]") matches nothing and only turns
// enforcement on, a rule with ports but no peers applies to every peer, and a
// rule with peers but no ports allows every protocol and port.
func (l *lowering) computePolicy(ep *model.Endpoint, dir direction, cookies map[*model.Rule]uint32) endpointPolicy {
	var ep_ endpointPolicy
	switch l.cfg.Settings.Enforcement {
	case model.EnforceNever:
		return ep_
	case model.EnforceAlways:
		ep_.enforced = true
		ep_.pos = l.cfg.Settings.Pos
	}
	best := make(map[[5]uint64]uint32)
	for _, p := range l.cfg.Policies {
		if !l.selects(p, ep) {
			continue
		}
		rules := p.Ingress
		if dir == egress {
			rules = p.Egress
		}
		if len(rules) == 0 {
			continue
		}
		if !ep_.enforced {
			ep_.enforced = true
			ep_.pos = p.Pos
		}
		for _, r := range rules {
			cookie := cookies[r]
			for _, k := range l.ruleKeys(r, dir) {
				if old, ok := best[k]; !ok || cookie < old {
					best[k] = cookie
				}
			}
		}
	}
	for k, cookie := range best {
		ep_.entries = append(ep_.entries, Entry{Key: k[:], Value: []uint64{uint64(cookie), 0}})
	}
	slices.SortFunc(ep_.entries, func(a, b Entry) int { return slices.Compare(a.Key, b.Key) })
	return ep_
}

// ruleKeys returns the policy map keys (prefixlen, identity, egress,
// protocol, dport) rule r allows.
func (l *lowering) ruleKeys(r *model.Rule, dir direction) [][5]uint64 {
	var ids []uint32
	switch {
	case !r.HasPeers && len(r.Ports) == 0:
		return nil
	case !r.HasPeers:
		ids = []uint32{IdentityAny}
	default:
		for _, c := range r.CIDRs {
			ids = append(ids, l.peerIdentities(c)...)
		}
		slices.Sort(ids)
		ids = slices.Compact(ids)
	}
	type l4 struct {
		plen  uint64
		proto uint8
		port  uint16
	}
	var ports []l4
	if len(r.Ports) == 0 {
		ports = append(ports, l4{plen: prefixL3})
	}
	for _, pr := range r.Ports {
		protos := []model.Protocol{pr.Protocol}
		if pr.Protocol == model.ProtoAny || pr.Protocol == "" {
			if pr.Port == 0 {
				ports = append(ports, l4{plen: prefixL3})
				continue
			}
			protos = []model.Protocol{model.ProtoTCP, model.ProtoUDP}
		}
		for _, proto := range protos {
			if pr.Port == 0 {
				ports = append(ports, l4{plen: prefixProto, proto: proto.Number()})
			} else {
				ports = append(ports, l4{plen: prefixPort, proto: proto.Number(), port: pr.Port})
			}
		}
	}
	var keys [][5]uint64
	for _, id := range ids {
		for _, p := range ports {
			keys = append(keys, [5]uint64{p.plen, uint64(id), uint64(dir), uint64(p.proto), uint64(p.port)})
		}
	}
	return keys
}
