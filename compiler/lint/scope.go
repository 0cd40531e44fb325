package lint

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/ebpfc/ebpfc/compiler/model"
)

// A term is one requirement on a label set: matchLabels k: v is the term
// {k, In, [v]}.
type term struct {
	key    string
	op     model.Operator
	values []string // sorted; for In and NotIn
}

// conj is a conjunction of terms: a label selector in a form that can be
// compared with another without looking at any endpoint.
type conj []term

// selectorTerms returns the label terms of s (not its namespace part).
func selectorTerms(s *model.Selector) conj {
	if s == nil {
		return nil
	}
	var c conj
	for k, v := range s.MatchLabels {
		c = append(c, term{key: k, op: model.OpIn, values: []string{v}})
	}
	for _, e := range s.MatchExpressions {
		vals := slices.Clone(e.Values)
		slices.Sort(vals)
		c = append(c, term{key: e.Key, op: e.Operator, values: slices.Compact(vals)})
	}
	slices.SortFunc(c, func(a, b term) int {
		return cmp.Or(strings.Compare(a.key, b.key), strings.Compare(string(a.op), string(b.op)), slices.Compare(a.values, b.values))
	})
	return c
}

// implies reports whether every label set that satisfies c satisfies d. It
// compares term by term, so it may answer false for a c that implies d
// only through a combination of terms; it never answers true wrongly.
func (c conj) implies(d conj) bool {
	for _, t := range d {
		if !slices.ContainsFunc(c, func(u term) bool { return u.implies(t) }) {
			return false
		}
	}
	return true
}

// implies reports whether a label set that satisfies u satisfies t.
func (u term) implies(t term) bool {
	if u.key != t.key {
		return false
	}
	switch t.op {
	case model.OpIn:
		return u.op == model.OpIn && len(u.values) > 0 && subset(u.values, t.values)
	case model.OpNotIn:
		switch u.op {
		case model.OpIn:
			return !slices.ContainsFunc(u.values, func(v string) bool { return slices.Contains(t.values, v) })
		case model.OpNotIn:
			return subset(t.values, u.values)
		case model.OpDoesNotExist:
			return true
		}
	case model.OpExists:
		return u.op == model.OpExists || u.op == model.OpIn && len(u.values) > 0
	case model.OpDoesNotExist:
		return u.op == model.OpDoesNotExist
	}
	return false
}

func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// scope is a set of endpoints (or nodes) given by selectors: those whose
// labels satisfy labels and whose namespace's labels satisfy namespace.
type scope struct {
	nodes     bool // labels are node labels; namespace is empty
	namespace conj
	labels    conj
}

// within reports whether every endpoint in a is in b, for any inventory.
func (a scope) within(b scope) bool {
	return a.nodes == b.nodes && a.namespace.implies(b.namespace) && a.labels.implies(b.labels)
}

// subjectScope is the set of endpoints (or nodes) policy p applies to: a
// namespaced policy applies in its namespace only, and a selector's
// namespace restriction applies on top.
func subjectScope(p *model.Policy) scope {
	if p.NodeSelector != nil {
		return scope{nodes: true, labels: selectorTerms(p.NodeSelector)}
	}
	s := scope{labels: selectorTerms(p.EndpointSelector)}
	if !p.ClusterWide {
		s.namespace = conj{{key: namespaceNameLabel, op: model.OpIn, values: []string{p.Namespace}}}
	}
	if p.EndpointSelector != nil {
		s.namespace = append(s.namespace, selectorTerms(p.EndpointSelector.Namespaces)...)
	}
	return s
}

// peerScope is the set of endpoints peer selector sel of policy p matches:
// a namespace restriction decides the namespaces when there is one;
// otherwise a namespaced policy's selector matches in its namespace and a
// cluster-wide one in every namespace.
func peerScope(p *model.Policy, sel *model.Selector) scope {
	s := scope{labels: selectorTerms(sel)}
	switch {
	case sel.Namespaces != nil:
		s.namespace = selectorTerms(sel.Namespaces)
	case !p.ClusterWide:
		s.namespace = conj{{key: namespaceNameLabel, op: model.OpIn, values: []string{p.Namespace}}}
	}
	return s
}

// selects reports whether policy p applies to endpoint ep.
func (l *linter) selects(p *model.Policy, ep *model.Endpoint) bool {
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

// peerMatches reports whether peer selector sel of policy p matches ep.
func (l *linter) peerMatches(p *model.Policy, sel *model.Selector, ep *model.Endpoint) bool {
	switch {
	case sel.Namespaces != nil:
		if !sel.Namespaces.Matches(l.namespaceLabels(ep.Namespace)) {
			return false
		}
	case !p.ClusterWide:
		if ep.Namespace != p.Namespace {
			return false
		}
	}
	return sel.Matches(ep.Labels)
}

// subjects returns the endpoints policy p applies to, in config order.
func (l *linter) subjects(p *model.Policy) []*model.Endpoint {
	var out []*model.Endpoint
	for _, ep := range l.cfg.Endpoints {
		if l.selects(p, ep) {
			out = append(out, ep)
		}
	}
	return out
}

// describeSelector writes a selector's terms the way a person reads them,
// e.g. "app=web, tier in (a, b)"; an empty selector is "{}".
func describeSelector(s *model.Selector) string {
	c := selectorTerms(s)
	if len(c) == 0 {
		return "{}"
	}
	var parts []string
	for _, t := range c {
		switch t.op {
		case model.OpIn:
			if len(t.values) == 1 {
				parts = append(parts, t.key+"="+t.values[0])
			} else {
				parts = append(parts, fmt.Sprintf("%s in (%s)", t.key, strings.Join(t.values, ", ")))
			}
		case model.OpNotIn:
			parts = append(parts, fmt.Sprintf("%s notin (%s)", t.key, strings.Join(t.values, ", ")))
		case model.OpExists:
			parts = append(parts, t.key)
		case model.OpDoesNotExist:
			parts = append(parts, "!"+t.key)
		}
	}
	return strings.Join(parts, ", ")
}
