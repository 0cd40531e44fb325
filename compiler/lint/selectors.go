package lint

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ebpfc/ebpfc/compiler/model"
)

// checkPeerSelectors reports peer endpoint selectors that match no
// endpoint of the configuration (EBPFC003).
func (l *linter) checkPeerSelectors() error {
	for _, r := range l.rules() {
		for _, sel := range r.rule.Endpoints {
			if slices.ContainsFunc(l.cfg.Endpoints, func(ep *model.Endpoint) bool { return l.peerMatches(r.policy, sel, ep) }) {
				continue
			}
			where := "in any namespace"
			switch {
			case sel.Namespaces != nil:
				where = "in namespaces with " + describeSelector(sel.Namespaces)
			case !r.policy.ClusterWide:
				where = "in namespace " + r.policy.Namespace
			}
			l.report("EBPFC003", sel.Pos, l.selectorHint(r.policy, sel, false), nil,
				"peer selector {%s} of %s matches no endpoint %s", describeSelector(sel), r, where)
		}
	}
	return nil
}

// checkPolicySubjects reports policies whose endpointSelector matches no
// endpoint or whose nodeSelector matches no node (EBPFC004).
func (l *linter) checkPolicySubjects() error {
	for _, p := range l.cfg.Policies {
		if sel := p.NodeSelector; sel != nil {
			if !slices.ContainsFunc(l.cfg.Nodes, func(n *model.Node) bool { return sel.Matches(n.Labels) }) {
				l.report("EBPFC004", sel.Pos, "", nil,
					"policy %s selects no node: no node has the labels {%s}", p.ID(), describeSelector(sel))
			}
			continue
		}
		sel := p.EndpointSelector
		if sel == nil || len(l.subjects(p)) > 0 {
			continue
		}
		where := ""
		if !p.ClusterWide {
			where = " in namespace " + p.Namespace
		}
		if sel.Namespaces != nil {
			where += " with namespace labels " + describeSelector(sel.Namespaces)
		}
		l.report("EBPFC004", sel.Pos, l.selectorHint(p, sel, true), nil,
			"policy %s selects no endpoint: none%s has the labels {%s}", p.ID(), where, describeSelector(sel))
	}
	return nil
}

// selectorHint says why a selector that matches nothing may be wrong: the
// labels match endpoints elsewhere (the namespace is the mistake), or
// nothing has them (the labels are).
func (l *linter) selectorHint(p *model.Policy, sel *model.Selector, subject bool) string {
	var elsewhere []string
	for _, ep := range l.cfg.Endpoints {
		if sel.Matches(ep.Labels) && !slices.Contains(elsewhere, ep.Namespace) {
			elsewhere = append(elsewhere, ep.Namespace)
		}
	}
	if len(elsewhere) > 0 {
		ns := strings.Join(elsewhere, ", ")
		if subject && !p.ClusterWide && !slices.Contains(elsewhere, p.Namespace) {
			return fmt.Sprintf("Endpoints with these labels exist in namespace %s; a namespaced policy selects only in its own namespace, so move the policy there or make it a clusterPolicies entry.", ns)
		}
		if !subject && sel.Namespaces == nil && !p.ClusterWide {
			return fmt.Sprintf("Endpoints with these labels exist in namespace %s, but a selector in a namespaced policy matches only namespace %s; add namespaceSelector: matchLabels: \"kubernetes.io/metadata.name\": %q (or the label k8s:io.kubernetes.pod.namespace).", ns, p.Namespace, elsewhere[0])
		}
		return fmt.Sprintf("Endpoints with these labels exist in namespace %s, which the selector's namespace restriction excludes; fix the restriction.", ns)
	}
	return "No endpoint has these labels; check the label keys and values against the endpoints."
}
