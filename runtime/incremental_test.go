//go:build linux

package runtime

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/internal/benchcfg"
)

// TestModelComparisons holds the incremental path's comparisons of the
// model to the model's types: a field added to one of them must be compared
// (or knowingly ignored) there, and then counted here.
func TestModelComparisons(t *testing.T) {
	fields := map[reflect.Type]int{
		reflect.TypeFor[model.Config]():     9,
		reflect.TypeFor[model.Cluster]():    5,
		reflect.TypeFor[model.Node]():       7,
		reflect.TypeFor[model.Namespace]():  3,
		reflect.TypeFor[model.Endpoint]():   9,
		reflect.TypeFor[model.NamedPort]():  4,
		reflect.TypeFor[model.HostPort]():   5,
		reflect.TypeFor[model.Policy]():     15,
		reflect.TypeFor[model.Selector]():   4,
		reflect.TypeFor[model.Expression](): 4,
		reflect.TypeFor[model.Rule]():       7,
		reflect.TypeFor[model.CIDRPeer]():   3,
		reflect.TypeFor[model.EntityPeer](): 2,
		reflect.TypeFor[model.PortRule]():   5,
		reflect.TypeFor[model.ICMPRule]():   4,
	}
	for typ, n := range fields {
		if typ.NumField() != n {
			t.Errorf("%s has %d fields, the incremental path compares %d: update configChange and its helpers (and lower.EqualPolicy)", typ, typ.NumField(), n)
		}
	}

	base := benchcfg.Node(60, 20)
	clone := func() *model.Config { return benchcfg.Node(60, 20) }
	if added, policies, ok := configChange(base, clone()); !ok || policies || len(added) != 0 {
		t.Errorf("equal configurations: added %v, policies %v, ok %v", added, policies, ok)
	}
	ep := &model.Endpoint{Namespace: "ns-000", Name: "new", Node: benchcfg.NodeName, Addresses: []netip.Addr{netip.MustParseAddr("10.9.9.9")}}
	if added, policies, ok := configChange(base, benchcfg.WithEndpoint(clone(), ep)); !ok || policies || len(added) != 1 || added[0].ID() != ep.ID() {
		t.Errorf("one endpoint added: added %v, policies %v, ok %v", added, policies, ok)
	}
	// Changes to policies (positions included) are policy changes; any
	// other change is not incremental.
	policyChanges := map[string]func(c *model.Config){
		"port changed":     func(c *model.Config) { c.Policies[2].Ingress[0].Ports[0].Port++ },
		"port moved":       func(c *model.Config) { c.Policies[2].Ingress[0].Ports[0].Pos.Col++ },
		"policy moved":     func(c *model.Config) { c.Policies[2].Pos.Line++ },
		"except dropped":   func(c *model.Config) { c.Policies[0].Ingress[0].CIDRs[0].Except = nil },
		"selector changed": func(c *model.Config) { c.Policies[1].EndpointSelector.MatchLabels["tier"] = "x" },
		"selector expression": func(c *model.Config) {
			c.Policies[1].EndpointSelector.MatchExpressions = []model.Expression{{Key: "a", Operator: model.OpExists}}
		},
		"entity added": func(c *model.Config) {
			c.Policies[1].Ingress[0].Entities = []model.EntityPeer{{Entity: model.EntityWorld}}
		},
		"icmp added":          func(c *model.Config) { c.Policies[1].Ingress[0].ICMPs = []*model.ICMPRule{{Family: "IPv4", Type: 8}} },
		"policy removed":      func(c *model.Config) { c.Policies = c.Policies[1:] },
		"audit":               func(c *model.Config) { c.Policies[3].Audit = true },
		"default deny egress": func(c *model.Config) { c.Policies[3].DefaultDenyEgress = true },
		"description":         func(c *model.Config) { c.Policies[3].Description = "x" },
		"namespace selector":  func(c *model.Config) { c.Policies[1].Ingress[0].Endpoints[0].Namespaces = &model.Selector{} },
		"rule added":          func(c *model.Config) { c.Policies[4].Egress = []*model.Rule{{HasPeers: true}} },
	}
	for name, change := range policyChanges {
		next := clone()
		change(next)
		if added, policies, ok := configChange(base, next); !ok || !policies || len(added) != 0 {
			t.Errorf("%s: added %v, policies %v, ok %v; want a policy change", name, added, policies, ok)
		}
	}
	changes := map[string]func(c *model.Config){
		"endpoint removed":       func(c *model.Config) { c.Endpoints = c.Endpoints[1:] },
		"endpoint label changed": func(c *model.Config) { c.Endpoints[3].Labels["app"] = "x" },
		"endpoint moved":         func(c *model.Config) { c.Endpoints[3].Node = "node-b" },
		"setting changed":        func(c *model.Config) { c.Settings.Audit = true },
		"node address changed":   func(c *model.Config) { c.Nodes[0].Addresses = nil },
		"namespace label":        func(c *model.Config) { c.Namespaces[0].Labels["team"] = "x" },
	}
	for name, change := range changes {
		next := clone()
		change(next)
		if added, policies, ok := configChange(base, next); ok {
			t.Errorf("%s: taken for an incremental change (added %v, policies %v)", name, added, policies)
		}
	}
}

// TestSlotListJSON checks the sparse JSON form of program array slots in
// manifests and in the state, and that the dense form of earlier manifests
// and states still reads.
func TestSlotListJSON(t *testing.T) {
	slots := compiler.SlotList{"", "a", "", "", "b"}
	js, err := json.Marshal(slots)
	if err != nil {
		t.Fatal(err)
	}
	if string(js) != `{"1":"a","4":"b"}` {
		t.Errorf("marshalled %s", js)
	}
	for _, in := range []string{string(js), `["", "a", "", "", "b"]`} {
		var back compiler.SlotList
		if err := json.Unmarshal([]byte(in), &back); err != nil || !slices.Equal(back, slots) {
			t.Errorf("%s: read %q, %v", in, back, err)
		}
	}
	var bad compiler.SlotList
	if err := json.Unmarshal([]byte(`{"x":"a"}`), &bad); err == nil {
		t.Errorf("a slot index that is not a number was accepted")
	}
}
