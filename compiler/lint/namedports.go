package lint

import (
	"slices"
	"strconv"
	"strings"

	"github.com/ebpfc/ebpfc/compiler/model"
)

// checkNamedPorts reports named ports that resolve on no destination
// endpoint the rule applies to (EBPFC007). A named port is resolved
// against the destination: for ingress rules the endpoints the policy
// selects, for egress rules the endpoints the rule's peers match (CIDR and
// entity peers other than cluster and all match no endpoint).
//
// When there is no destination at all because a selector matches nothing,
// EBPFC003 or EBPFC004 already says so and this check stays silent.
func (l *linter) checkNamedPorts() error {
	for _, r := range l.rules() {
		if !slices.ContainsFunc(r.rule.Ports, func(pr *model.PortRule) bool { return pr.Name != "" }) || matchesNothing(r.rule) {
			continue
		}
		dests, why := l.namedPortDestinations(r)
		if len(dests) == 0 && why == "" {
			continue
		}
		for _, pr := range r.rule.Ports {
			if pr.Name == "" {
				continue
			}
			proto := protocolOf(pr)
			if why != "" {
				l.report("EBPFC007", pr.Pos, "", nil, "named port %q of %s never matches: %s", pr.Name, r, why)
				continue
			}
			var otherProto []string
			found := false
			for _, ep := range dests {
				for _, np := range ep.NamedPorts {
					if np.Name != pr.Name {
						continue
					}
					if proto == model.ProtoAny || np.Protocol == proto {
						found = true
					} else {
						otherProto = append(otherProto, string(np.Protocol)+" on "+ep.ID())
					}
				}
			}
			if found {
				continue
			}
			role := "the endpoints it selects"
			if r.egress() {
				role = "the endpoints its peers match"
			}
			if len(otherProto) > 0 {
				slices.Sort(otherProto)
				otherProto = slices.Compact(otherProto)
				l.report("EBPFC007", pr.Pos,
					"Write the protocol the endpoints declare for "+pr.Name+", or declare the port with protocol "+string(proto)+".", nil,
					"named port %q of %s is unresolved: none of %s has it with protocol %s (it is %s)",
					pr.Name, r, role, proto, strings.Join(limit(otherProto, 3), ", "))
				continue
			}
			l.report("EBPFC007", pr.Pos, "", nil,
				"named port %q of %s is unresolved: none of %s (%s) declares it in namedPorts",
				pr.Name, r, role, strings.Join(limit(endpointIDs(dests), 3), ", "))
		}
	}
	return nil
}

// namedPortDestinations returns the endpoints a named port of rule r is
// resolved against, or why the rule's destinations can have no named port.
func (l *linter) namedPortDestinations(r ruleRef) ([]*model.Endpoint, string) {
	if !r.egress() {
		if r.policy.NodeSelector != nil {
			return nil, "the policy selects nodes, and nodes have no named ports"
		}
		return l.subjects(r.policy), ""
	}
	var dests []*model.Endpoint
	for _, ep := range l.cfg.Endpoints {
		if l.peerMatchesEndpoint(r, ep) {
			dests = append(dests, ep)
		}
	}
	if len(dests) == 0 && len(r.rule.Endpoints) == 0 &&
		!slices.ContainsFunc(r.peers, func(p peer) bool {
			return p.kind == peerEvery || p.kind == peerEntity && (p.entity == model.EntityAll || p.entity == model.EntityCluster)
		}) {
		return nil, "a named port is resolved on the destination endpoint, and the rule's peers (CIDRs or entities) are never endpoints"
	}
	return dests, ""
}

// peerMatchesEndpoint reports whether one of the peers of r matches an
// endpoint ep.
func (l *linter) peerMatchesEndpoint(r ruleRef, ep *model.Endpoint) bool {
	if !r.rule.HasPeers {
		return true
	}
	for _, e := range r.rule.Entities {
		if e.Entity == model.EntityAll || e.Entity == model.EntityCluster {
			return true
		}
	}
	return slices.ContainsFunc(r.rule.Endpoints, func(sel *model.Selector) bool { return l.peerMatches(r.policy, sel, ep) })
}

func endpointIDs(eps []*model.Endpoint) []string {
	var out []string
	for _, ep := range eps {
		out = append(out, ep.ID())
	}
	return out
}

// limit returns at most n items of list, saying how many more there are.
func limit(list []string, n int) []string {
	if len(list) <= n {
		return list
	}
	return append(slices.Clone(list[:n]), "and "+strconv.Itoa(len(list)-n)+" more")
}
