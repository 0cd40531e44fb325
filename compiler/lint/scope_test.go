package lint

import (
	"testing"

	"github.com/ebpfc/ebpfc/compiler/model"
)

func TestSelectorImplication(t *testing.T) {
	in := func(k string, v ...string) model.Expression {
		return model.Expression{Key: k, Operator: model.OpIn, Values: v}
	}
	notIn := func(k string, v ...string) model.Expression {
		return model.Expression{Key: k, Operator: model.OpNotIn, Values: v}
	}
	exists := model.Expression{Key: "a", Operator: model.OpExists}
	absent := model.Expression{Key: "a", Operator: model.OpDoesNotExist}
	sel := func(labels map[string]string, exprs ...model.Expression) *model.Selector {
		return &model.Selector{MatchLabels: labels, MatchExpressions: exprs}
	}
	cases := []struct {
		name string
		a, b *model.Selector
		want bool
	}{
		{"anything implies the empty selector", sel(map[string]string{"a": "1"}), sel(nil), true},
		{"empty selector implies nothing narrower", sel(nil), sel(map[string]string{"a": "1"}), false},
		{"more labels imply fewer", sel(map[string]string{"a": "1", "b": "2"}), sel(map[string]string{"a": "1"}), true},
		{"fewer labels do not imply more", sel(map[string]string{"a": "1"}), sel(map[string]string{"a": "1", "b": "2"}), false},
		{"label implies In containing it", sel(map[string]string{"a": "1"}), sel(nil, in("a", "1", "2")), true},
		{"In implies a wider In", sel(nil, in("a", "1")), sel(nil, in("a", "1", "2")), true},
		{"In does not imply a narrower In", sel(nil, in("a", "1", "2")), sel(nil, in("a", "1")), false},
		{"In implies Exists", sel(nil, in("a", "1")), sel(nil, exists), true},
		{"Exists does not imply In", sel(nil, exists), sel(nil, in("a", "1")), false},
		{"In implies NotIn of other values", sel(nil, in("a", "1")), sel(nil, notIn("a", "2")), true},
		{"In does not imply NotIn of its value", sel(nil, in("a", "1", "2")), sel(nil, notIn("a", "2")), false},
		{"NotIn implies a narrower NotIn", sel(nil, notIn("a", "1", "2")), sel(nil, notIn("a", "1")), true},
		{"NotIn does not imply a wider NotIn", sel(nil, notIn("a", "1")), sel(nil, notIn("a", "1", "2")), false},
		{"DoesNotExist implies NotIn", sel(nil, absent), sel(nil, notIn("a", "1")), true},
		{"DoesNotExist does not imply Exists", sel(nil, absent), sel(nil, exists), false},
		{"other keys imply nothing", sel(map[string]string{"b": "1"}), sel(nil, exists), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := selectorTerms(c.a).implies(selectorTerms(c.b)); got != c.want {
				t.Errorf("%s implies %s = %v, want %v", describeSelector(c.a), describeSelector(c.b), got, c.want)
			}
		})
	}
}

// TestScopes checks the namespace part of subjects and peers: a namespaced
// policy's selectors stay in its namespace unless they say otherwise.
func TestScopes(t *testing.T) {
	web := &model.Policy{Namespace: "web", EndpointSelector: &model.Selector{}}
	api := &model.Policy{Namespace: "api", EndpointSelector: &model.Selector{}}
	cluster := &model.Policy{ClusterWide: true, EndpointSelector: &model.Selector{}}
	nodes := &model.Policy{ClusterWide: true, NodeSelector: &model.Selector{}}
	cases := []struct {
		name string
		a, b scope
		want bool
	}{
		{"namespaced within cluster-wide", subjectScope(web), subjectScope(cluster), true},
		{"cluster-wide not within namespaced", subjectScope(cluster), subjectScope(web), false},
		{"other namespaces", subjectScope(web), subjectScope(api), false},
		{"endpoints are not nodes", subjectScope(cluster), subjectScope(nodes), false},
		{"peer of a namespaced policy within its namespace", peerScope(web, &model.Selector{}), subjectScope(web), true},
		{"peer with a namespace selector leaves the namespace", peerScope(web, &model.Selector{Namespaces: &model.Selector{}}), subjectScope(web), false},
		{"peer of a cluster-wide policy in every namespace", peerScope(cluster, &model.Selector{}), peerScope(web, &model.Selector{Namespaces: &model.Selector{}}), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.a.within(c.b); got != c.want {
				t.Errorf("within = %v, want %v", got, c.want)
			}
		})
	}
}
