package lower

import (
	"maps"
	"slices"

	"github.com/ebpfc/ebpfc/compiler/model"
)

// Comparisons of policies, for the incremental path: which policies of a new
// configuration differ from the running one's, and whether they differ only
// in their positions (which name cookies in the manifest but are not in the
// bytecode). They are reflect.DeepEqual written out, many times faster on a
// thousand policies; runtime's TestModelComparisons holds them to the
// model's fields.

// EqualPolicy reports whether two policies are equal. Positions (of the
// policy and of everything in it) are compared only when positions is set.
func EqualPolicy(a, b *model.Policy, positions bool) bool {
	return a.Namespace == b.Namespace && a.Name == b.Name && a.ClusterWide == b.ClusterWide &&
		equalSelector(a.EndpointSelector, b.EndpointSelector, positions) &&
		equalSelector(a.NodeSelector, b.NodeSelector, positions) &&
		equalRules(a.Ingress, b.Ingress, positions) && equalRules(a.Egress, b.Egress, positions) &&
		equalRules(a.IngressDeny, b.IngressDeny, positions) && equalRules(a.EgressDeny, b.EgressDeny, positions) &&
		a.DefaultDenyIngress == b.DefaultDenyIngress && a.DefaultDenyEgress == b.DefaultDenyEgress &&
		a.Audit == b.Audit && a.Description == b.Description && a.FromKubernetes == b.FromKubernetes &&
		(!positions || a.Pos == b.Pos)
}

// sameSelection reports whether two policies select the same subjects: the
// same scope and the same endpoint and node selectors.
func sameSelection(a, b *model.Policy) bool {
	return a.Namespace == b.Namespace && a.ClusterWide == b.ClusterWide &&
		equalSelector(a.EndpointSelector, b.EndpointSelector, false) &&
		equalSelector(a.NodeSelector, b.NodeSelector, false)
}

func equalSelector(a, b *model.Selector, positions bool) bool {
	if a == nil || b == nil {
		return a == b
	}
	return maps.Equal(a.MatchLabels, b.MatchLabels) && (a.MatchLabels == nil) == (b.MatchLabels == nil) &&
		slices.EqualFunc(a.MatchExpressions, b.MatchExpressions, func(x, y model.Expression) bool {
			return x.Key == y.Key && x.Operator == y.Operator && slices.Equal(x.Values, y.Values) && (!positions || x.Pos == y.Pos)
		}) &&
		equalSelector(a.Namespaces, b.Namespaces, positions) && (!positions || a.Pos == b.Pos)
}

func equalRules(a, b []*model.Rule, positions bool) bool {
	return slices.EqualFunc(a, b, func(x, y *model.Rule) bool { return equalRule(x, y, positions) })
}

func equalRule(a, b *model.Rule, positions bool) bool {
	return slices.EqualFunc(a.Endpoints, b.Endpoints, func(x, y *model.Selector) bool { return equalSelector(x, y, positions) }) &&
		slices.EqualFunc(a.CIDRs, b.CIDRs, func(x, y *model.CIDRPeer) bool {
			return x.CIDR == y.CIDR && slices.Equal(x.Except, y.Except) && (!positions || x.Pos == y.Pos)
		}) &&
		slices.EqualFunc(a.Entities, b.Entities, func(x, y model.EntityPeer) bool {
			return x.Entity == y.Entity && (!positions || x.Pos == y.Pos)
		}) &&
		a.HasPeers == b.HasPeers &&
		slices.EqualFunc(a.Ports, b.Ports, func(x, y *model.PortRule) bool {
			return x.Port == y.Port && x.EndPort == y.EndPort && x.Name == y.Name && x.Protocol == y.Protocol && (!positions || x.Pos == y.Pos)
		}) &&
		slices.EqualFunc(a.ICMPs, b.ICMPs, func(x, y *model.ICMPRule) bool {
			return x.Family == y.Family && x.Type == y.Type && (x.Code == nil) == (y.Code == nil) &&
				(x.Code == nil || *x.Code == *y.Code) && (!positions || x.Pos == y.Pos)
		}) &&
		(a.Endpoints == nil) == (b.Endpoints == nil) && (a.CIDRs == nil) == (b.CIDRs == nil) &&
		(a.Entities == nil) == (b.Entities == nil) && (!positions || a.Pos == b.Pos)
}
