package lower

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ebpfc/ebpfc/backend"
	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/internal/benchcfg"
	"github.com/ebpfc/ebpfc/ir"
)

// namedPortConfig is a small cluster that exercises what AddEndpoint must
// get right besides endpoint selectors: egress rules on named ports
// (resolved on each peer endpoint), the cluster entity, namespace
// selectors, NotIn expressions, and a CIDR rule whose /32 an endpoint's
// address may take over in the ipcache.
func namedPortConfig() *model.Config {
	cfg := benchcfg.Node(6, 0)
	cfg.Namespaces = append(cfg.Namespaces, &model.Namespace{Name: "other", Labels: map[string]string{"kubernetes.io/metadata.name": "other", "team": "blue"}})
	cfg.Nodes = append(cfg.Nodes, &model.Node{Name: "node-b", Addresses: []netip.Addr{netip.MustParseAddr("192.168.0.2")}})
	web := []model.NamedPort{{Name: "http", Port: 8080, Protocol: model.ProtoTCP}}
	cfg.Endpoints = append(cfg.Endpoints,
		&model.Endpoint{Namespace: "other", Name: "db", Node: "node-b", Addresses: []netip.Addr{netip.MustParseAddr("10.9.0.1")},
			Labels: map[string]string{"app": "db"}, NamedPorts: web},
		&model.Endpoint{Namespace: "other", Name: "api", Node: benchcfg.NodeName, Interface: "lxcapi", Addresses: []netip.Addr{netip.MustParseAddr("10.9.0.2")},
			Labels: map[string]string{"app": "api"}, NamedPorts: web})
	cfg.Policies = append(cfg.Policies,
		&model.Policy{Namespace: "ns-000", Name: "egress-http",
			EndpointSelector: &model.Selector{MatchLabels: map[string]string{"app": "app-0"}},
			Egress: []*model.Rule{{
				Endpoints: []*model.Selector{{Namespaces: &model.Selector{MatchLabels: map[string]string{"team": "blue"}}}},
				HasPeers:  true,
				Ports:     []*model.PortRule{{Name: "http"}},
			}},
		},
		&model.Policy{Namespace: "ns-000", Name: "from-cluster",
			EndpointSelector: &model.Selector{MatchLabels: map[string]string{"app": "app-1"}},
			Ingress: []*model.Rule{{
				Entities: []model.EntityPeer{{Entity: model.EntityCluster}},
				HasPeers: true,
				Ports:    []*model.PortRule{{Port: 443, Protocol: model.ProtoTCP}},
			}},
			IngressDeny: []*model.Rule{{
				Endpoints: []*model.Selector{{MatchExpressions: []model.Expression{{Key: "app", Operator: model.OpNotIn, Values: []string{"app-0", "app-1", "app-2"}}}}},
				HasPeers:  true,
			}},
		},
		&model.Policy{Namespace: "other", Name: "api",
			EndpointSelector: &model.Selector{MatchLabels: map[string]string{"app": "api"}},
			Ingress: []*model.Rule{{
				CIDRs:    []*model.CIDRPeer{{CIDR: netip.MustParsePrefix("10.9.0.7/32")}, {CIDR: netip.MustParsePrefix("11.0.0.0/8")}},
				HasPeers: true,
			}, {
				Endpoints: []*model.Selector{{MatchLabels: map[string]string{"role": "client"}, Namespaces: &model.Selector{}}},
				HasPeers:  true,
			}},
		})
	benchcfg.Sort(cfg)
	return cfg
}

// collidingEndpoint returns a new endpoint on cfg's first node whose index
// probe lands on the index of an endpoint of the node that comes after it
// in (hash, ID) order, so that the canonical numbering moves that endpoint.
func collidingEndpoint(cfg *model.Config, labels map[string]string) *model.Endpoint {
	var local []*model.Endpoint
	for _, ep := range cfg.Endpoints {
		if ep.Node == cfg.Nodes[0].Name {
			local = append(local, ep)
		}
	}
	idx := endpointIndexes(local)
	for _, x := range local {
		for i := 0; i < 1<<20; i++ {
			name := fmt.Sprintf("a-%d", i)
			if id := x.Namespace + "/" + name; endpointIndexHash(id) == idx[x] && id < x.ID() {
				return endpoint(x.Namespace, name, cfg.Nodes[0].Name, "10.7.3.3", labels)
			}
		}
	}
	panic("no colliding name found")
}

func endpoint(ns, name, node, addr string, labels map[string]string, ports ...model.NamedPort) *model.Endpoint {
	return &model.Endpoint{Namespace: ns, Name: name, Node: node, Interface: "lxc" + name,
		Addresses: []netip.Addr{netip.MustParseAddr(addr)}, Labels: labels, NamedPorts: ports}
}

// TestAddEndpoint checks that Incremental starts from Node's contents and
// that, for each added endpoint, its delta is exactly the difference
// between Node's contents before and after: applying it gives the full
// compile's contents, and every entry in it is a real change.
func TestAddEndpoint(t *testing.T) {
	http := model.NamedPort{Name: "http", Port: 9090, Protocol: model.ProtoTCP}
	cases := []struct {
		name string
		cfg  func() *model.Config
		add  []*model.Endpoint // added one after the other
		full bool              // the first addition needs a full compile
	}{
		{name: "remote new identity selected by peers", cfg: namedPortConfig,
			add: []*model.Endpoint{endpoint("ns-000", "x", "node-b", "10.7.0.1", map[string]string{"app": "app-1", "tier": "new"})}},
		{name: "remote existing identity", cfg: namedPortConfig,
			add: []*model.Endpoint{endpoint("ns-000", "pod-99999", "node-b", "10.7.0.1", map[string]string{"app": "app-0", "tier": "tier-0"})}},
		{name: "local new identity", cfg: namedPortConfig,
			add: []*model.Endpoint{endpoint("ns-000", "new", benchcfg.NodeName, "10.7.0.2", map[string]string{"app": "app-0", "tier": "x"})}},
		{name: "local existing identity", cfg: namedPortConfig,
			add: []*model.Endpoint{endpoint("ns-000", "new", benchcfg.NodeName, "10.7.0.2", map[string]string{"app": "app-1", "tier": "tier-1"})}},
		{name: "named port on an existing identity", cfg: namedPortConfig,
			add: []*model.Endpoint{endpoint("other", "db2", "node-b", "10.9.0.3", map[string]string{"app": "db"}, http)}},
		{name: "address a CIDR rule names", cfg: namedPortConfig,
			add: []*model.Endpoint{endpoint("other", "c", "node-b", "10.9.0.7", map[string]string{"role": "client"})}},
		{name: "new namespace, NotIn deny", cfg: namedPortConfig,
			add: []*model.Endpoint{endpoint("other", "z", "node-b", "10.9.0.9", map[string]string{"app": "zzz"})}},
		{name: "several in a row", cfg: func() *model.Config { return benchcfg.Node(300, 60) },
			add: []*model.Endpoint{
				endpoint("ns-001", "a", benchcfg.NodeName, "10.8.0.1", map[string]string{"app": "app-3", "tier": "new"}),
				endpoint("ns-001", "b", "node-b", "10.8.0.2", map[string]string{"app": "app-4", "tier": "new"}),
				endpoint("ns-002", "c", benchcfg.NodeName, "10.8.0.3", map[string]string{"app": "app-4", "tier": "tier-2"}),
			}},
		{name: "index collision moves an endpoint", cfg: namedPortConfig,
			add: []*model.Endpoint{collidingEndpoint(namedPortConfig(), map[string]string{"app": "app-1", "tier": "new"})}},
		{name: "index collision, then another", cfg: func() *model.Config { return benchcfg.Node(100, 30) },
			add: []*model.Endpoint{
				collidingEndpoint(benchcfg.Node(100, 30), map[string]string{"app": "app-0", "tier": "tier-0"}),
				endpoint("ns-002", "d", benchcfg.NodeName, "10.8.0.4", map[string]string{"app": "app-2", "tier": "new"}),
			}},
		{name: "address taken", cfg: namedPortConfig, full: true,
			add: []*model.Endpoint{endpoint("other", "dup", "node-b", "10.9.0.1", map[string]string{"app": "db"})}},
		{name: "name taken", cfg: namedPortConfig, full: true,
			add: []*model.Endpoint{endpoint("ns.000", "pod-00000", benchcfg.NodeName, "10.7.0.9", map[string]string{"app": "q"})}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg()
			inc, err := NewIncremental(cfg, cfg.Nodes[0])
			if err != nil {
				t.Fatal(err)
			}
			before := nodeContents(t, cfg)
			if diff := cmp.Diff(before, inc.Contents()); diff != "" {
				t.Fatalf("NewIncremental's contents differ from Node's (-Node +Incremental):\n%s", diff)
			}
			for i, ep := range c.add {
				next := benchcfg.WithEndpoint(cfg, ep)
				d, err := inc.AddEndpoint(next, ep)
				if c.full && i == 0 {
					if !errors.Is(err, ErrNeedsFullCompile) {
						t.Fatalf("AddEndpoint(%s) = %v, want ErrNeedsFullCompile", ep.ID(), err)
					}
					if diff := cmp.Diff(before, inc.Contents()); diff != "" {
						t.Fatalf("a refused change changed the contents:\n%s", diff)
					}
					return
				}
				if err != nil {
					t.Fatalf("AddEndpoint(%s): %v", ep.ID(), err)
				}
				after := nodeContents(t, next)
				checkDelta(t, before, after, d)
				if diff := cmp.Diff(after, inc.Contents()); diff != "" {
					t.Fatalf("after adding %s the contents differ from Node's (-Node +Incremental):\n%s", ep.ID(), diff)
				}
				if d.ProgramsChanged != (ep.Node == benchcfg.NodeName) || (d.Programs != nil) != d.ProgramsChanged {
					t.Errorf("ProgramsChanged = %v, Programs %v for an endpoint on %s", d.ProgramsChanged, d.Programs != nil, ep.Node)
				}
				if d.Programs != nil {
					checkPrograms(t, next, []string{ep.ID()}, d.Programs)
				}
				checkReplaced(t, cfg, next, d)
				t.Logf("added %s: %d map operations", ep.ID(), d.Ops())
				cfg, before = next, after
			}
		})
	}
}

func nodeContents(t *testing.T, cfg *model.Config) []MapContents {
	t.Helper()
	if errs := Supported(cfg); len(errs) > 0 {
		t.Fatal(errs)
	}
	res, err := Node(cfg, cfg.Nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	var out []MapContents
	for _, c := range res.Contents {
		if c.Map == ipcacheMap || c.Map == ipcacheCIDRMap || len(c.Map) > 4 && c.Map[:4] == "pol_" {
			out = append(out, c)
		}
	}
	return out
}

// checkDelta applies d to before and compares the result with after, and
// checks that each entry of d is a real change.
func checkDelta(t *testing.T, before, after []MapContents, d *Delta) {
	t.Helper()
	state := map[string]map[string][]uint64{}
	for _, c := range before {
		state[c.Map] = map[string][]uint64{}
		for _, e := range c.Entries {
			state[c.Map][fmt.Sprint(e.Key)] = e.Value
		}
	}
	for _, md := range d.Maps {
		m, exists := state[md.Map]
		if md.Created == exists {
			t.Errorf("map %s: created %v, but it exists before: %v", md.Map, md.Created, exists)
		}
		if m == nil {
			m = map[string][]uint64{}
			state[md.Map] = m
		}
		for _, e := range md.Added {
			if _, ok := m[fmt.Sprint(e.Key)]; ok {
				t.Errorf("map %s: added %v, which exists", md.Map, e.Key)
			}
			m[fmt.Sprint(e.Key)] = e.Value
		}
		for _, e := range md.Updated {
			if old, ok := m[fmt.Sprint(e.Key)]; !ok || slices.Equal(old, e.Value) {
				t.Errorf("map %s: updated %v to %v, which was %v (present %v)", md.Map, e.Key, e.Value, old, ok)
			}
			m[fmt.Sprint(e.Key)] = e.Value
		}
		for _, e := range md.Deleted {
			if _, ok := m[fmt.Sprint(e.Key)]; !ok {
				t.Errorf("map %s: deleted %v, which does not exist", md.Map, e.Key)
			}
			delete(m, fmt.Sprint(e.Key))
		}
	}
	want := map[string]map[string][]uint64{}
	for _, c := range after {
		want[c.Map] = map[string][]uint64{}
		for _, e := range c.Entries {
			want[c.Map][fmt.Sprint(e.Key)] = e.Value
		}
	}
	if diff := cmp.Diff(want, state); diff != "" {
		t.Errorf("contents before with the delta applied differ from the full compile's (-full +applied):\n%s", diff)
	}
}

// checkPrograms checks that the programs AddEndpoint or ChangePolicies
// lowered for the endpoints ids are those a full lowering of cfg gives
// them: the same bytecode, tail-call slots, attachments, default-deny
// cookies and endpoint references, and that the maps they use have the
// full lowering's layout.
func checkPrograms(t *testing.T, cfg *model.Config, ids []string, part *Result) {
	t.Helper()
	full, fullRes := compiledOnce(t, cfg)
	if err := ir.Run(part.Module, ir.RunOptions{Check: true}); err != nil {
		t.Fatal(err)
	}
	obj, err := backend.Generate(part.Module)
	if err != nil {
		t.Fatal(err)
	}
	if len(obj.Programs) < 2 {
		t.Errorf("%d programs for %s, want at least two entry programs", len(obj.Programs), ids)
	}
	for _, p := range obj.Programs {
		var buf bytes.Buffer
		if err := p.Insns.Marshal(&buf, binary.LittleEndian); err != nil {
			t.Fatal(err)
		}
		if want, ok := full[p.Name]; !ok || !bytes.Equal(want, buf.Bytes()) {
			t.Errorf("program %s: differs from the full lowering's (present there: %v)", p.Name, ok)
		}
	}
	fullSlots := mapByName(fullRes, progArrayMap).Slots
	for _, m := range part.Module.Maps {
		fm := mapByName(fullRes, m.Name)
		if fm == nil {
			t.Errorf("map %s is not in the full lowering", m.Name)
			continue
		}
		if fm.Type != m.Type || fm.MaxEntries != m.MaxEntries || fm.Flags != m.Flags || !cmp.Equal(fm.Key, m.Key) || !cmp.Equal(fm.Value, m.Value) {
			t.Errorf("map %s: layout differs from the full lowering's", m.Name)
		}
		for i, prog := range m.Slots {
			if prog != "" && (i >= len(fullSlots) || fullSlots[i] != prog) {
				t.Errorf("slot %d: %s, the full lowering has another program there", i, prog)
			}
		}
	}
	var attach []Attachment
	for _, a := range fullRes.Attach {
		if slices.Contains(ids, a.Endpoint) && slices.ContainsFunc(part.Module.Programs, func(p *ir.Program) bool { return p.Name == a.Program }) {
			attach = append(attach, a)
		}
	}
	if diff := cmp.Diff(attach, part.Attach, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("attachments (-full +incremental):\n%s", diff)
	}
	var cookies []Cookie
	for _, c := range fullRes.Cookies {
		if c.Kind == "default-deny" && slices.Contains(ids, c.Endpoint) {
			cookies = append(cookies, c)
		}
	}
	if diff := cmp.Diff(cookies, part.Cookies); diff != "" {
		t.Errorf("cookies (-full +incremental):\n%s", diff)
	}
	var ref []EndpointRef
	for _, r := range fullRes.Endpoints {
		if slices.Contains(ids, r.ID) {
			ref = append(ref, r)
		}
	}
	if diff := cmp.Diff(ref, part.Endpoints); diff != "" {
		t.Errorf("endpoint reference (-full +incremental):\n%s", diff)
	}
	if diff := cmp.Diff(fullRes.Identities, part.Identities); diff != "" {
		t.Errorf("identities (-full +incremental):\n%s", diff)
	}
}

// checkReplaced checks, for a change from cfg to next, that d.Replaced
// holds exactly the running programs whose bytecode a full lowering
// changes and that they are
// the full lowering's, and that d.Cookies, when set, is the full
// lowering's list of cookies.
func checkReplaced(t *testing.T, cfg, next *model.Config, d *Delta) {
	t.Helper()
	before, _ := compiledOnce(t, cfg)
	after, fullRes := compiledOnce(t, next)
	var changed []string
	for name, insns := range before {
		if !bytes.Equal(after[name], insns) {
			changed = append(changed, name)
		}
	}
	slices.Sort(changed)
	var got, ids []string
	if d.Replaced != nil {
		for _, p := range d.Replaced.Module.Programs {
			got = append(got, p.Name)
		}
		for _, r := range d.Replaced.Endpoints {
			ids = append(ids, r.ID)
		}
	}
	slices.Sort(got)
	if diff := cmp.Diff(changed, got); diff != "" {
		t.Errorf("programs replaced (-changed by a full lowering +Replaced):\n%s", diff)
	}
	if d.Replaced != nil {
		if !d.ProgramsChanged {
			t.Errorf("Replaced is set but ProgramsChanged is not")
		}
		checkPrograms(t, next, ids, d.Replaced)
	}
	if d.Cookies != nil {
		sortCookies := func(cs []Cookie) []Cookie {
			cs = slices.Clone(cs)
			slices.SortFunc(cs, func(a, b Cookie) int { return int(a.ID) - int(b.ID) })
			return cs
		}
		if diff := cmp.Diff(sortCookies(fullRes.Cookies), sortCookies(d.Cookies)); diff != "" {
			t.Errorf("cookies (-full +incremental):\n%s", diff)
		}
	}
}

// compiled memoises compiledPrograms for the configurations a test steps
// through: each is compiled once.
var compiled = map[*model.Config]struct {
	progs map[string][]byte
	res   *Result
}{}

func compiledOnce(t *testing.T, cfg *model.Config) (map[string][]byte, *Result) {
	t.Helper()
	if c, ok := compiled[cfg]; ok {
		return c.progs, c.res
	}
	progs, res := generatePrograms(t, cfg, false) // TestStableNumbering checks the IR
	compiled[cfg] = struct {
		progs map[string][]byte
		res   *Result
	}{progs, res}
	return progs, res
}

// TestChangePolicies checks that, for each change of policies,
// ChangePolicies' delta is exactly the difference between Node's contents
// before and after, that Replaced holds exactly the programs a full
// lowering changes, with the full lowering's code, and that Cookies is the
// full lowering's list; and that changes it cannot apply are refused.
func TestChangePolicies(t *testing.T) {
	policy := func(cfg *model.Config, id string) *model.Policy {
		for _, p := range cfg.Policies {
			if p.ID() == id {
				return p
			}
		}
		t.Fatalf("no policy %s", id)
		return nil
	}
	tcp := func(port uint16) []*model.PortRule {
		return []*model.PortRule{{Port: port, Protocol: model.ProtoTCP}}
	}
	peers := func(app string) []*model.Selector {
		return []*model.Selector{{MatchLabels: map[string]string{"app": app}}}
	}
	cases := []struct {
		name   string
		cfg    func() *model.Config
		change func(cfg *model.Config)
		// programs: the change replaces programs; full: it is refused
		programs, full bool
	}{
		{name: "port changed", cfg: namedPortConfig, change: func(c *model.Config) {
			policy(c, "other/api").Ingress[0].Ports = tcp(8443)
		}},
		{name: "rule added before others", cfg: func() *model.Config { return benchcfg.Node(60, 20) }, change: func(c *model.Config) {
			p := c.Policies[0]
			p.Ingress = append([]*model.Rule{{Endpoints: peers("app-3"), HasPeers: true, Ports: tcp(9000)}}, p.Ingress...)
		}},
		{name: "rule removed", cfg: namedPortConfig, change: func(c *model.Config) {
			p := policy(c, "other/api")
			p.Ingress = p.Ingress[:1]
		}},
		{name: "rules removed, default deny kept", cfg: namedPortConfig, change: func(c *model.Config) {
			p := policy(c, "ns-000/from-cluster")
			p.Ingress, p.IngressDeny, p.DefaultDenyIngress = nil, nil, true
		}},
		{name: "deny rule added", cfg: namedPortConfig, change: func(c *model.Config) {
			p := policy(c, "ns-000/from-cluster")
			p.IngressDeny = append(p.IngressDeny, &model.Rule{Entities: []model.EntityPeer{{Entity: model.EntityWorld}}, HasPeers: true})
		}},
		{name: "policy added", cfg: namedPortConfig, programs: true, change: func(c *model.Config) {
			c.Policies = append(c.Policies, &model.Policy{Namespace: "ns-000", Name: "aaa-new",
				EndpointSelector: &model.Selector{MatchLabels: map[string]string{"app": "app-0"}},
				Ingress:          []*model.Rule{{Endpoints: peers("app-1"), HasPeers: true, Ports: tcp(7)}}})
			benchcfg.Sort(c)
		}},
		{name: "policy removed", cfg: func() *model.Config {
			c := namedPortConfig()
			c.Policies = append(c.Policies, &model.Policy{Namespace: "ns-000", Name: "aaa-extra",
				EndpointSelector: &model.Selector{MatchLabels: map[string]string{"app": "app-1"}},
				Ingress:          []*model.Rule{{Endpoints: peers("app-0"), HasPeers: true, Ports: tcp(7)}}})
			benchcfg.Sort(c)
			return c
		}, change: func(c *model.Config) {
			c.Policies = slices.DeleteFunc(slices.Clone(c.Policies), func(p *model.Policy) bool { return p.Name == "aaa-extra" })
		}},
		{name: "selector changed", cfg: func() *model.Config { return benchcfg.Node(60, 20) }, change: func(c *model.Config) {
			c.Policies[4].EndpointSelector = &model.Selector{MatchLabels: map[string]string{"app": "app-7"}}
		}},
		{name: "positions moved", cfg: namedPortConfig, change: func(c *model.Config) {
			for _, p := range c.Policies {
				p.Pos.Line += 3
				for _, list := range ruleLists(p) {
					for _, r := range list {
						r.Pos.Line += 3
					}
				}
			}
		}},
		{name: "egress enforced", cfg: namedPortConfig, programs: true, change: func(c *model.Config) {
			policy(c, "other/api").Egress = []*model.Rule{{Endpoints: peers("db"), HasPeers: true}}
		}},
		{name: "audit", cfg: namedPortConfig, programs: true, change: func(c *model.Config) {
			policy(c, "other/api").Audit = true
		}},
		{name: "CIDR added", cfg: namedPortConfig, full: true, change: func(c *model.Config) {
			r := policy(c, "other/api").Ingress[0]
			r.CIDRs = append(r.CIDRs, &model.CIDRPeer{CIDR: netip.MustParsePrefix("12.0.0.0/8")})
		}},
		{name: "endpoint opened", cfg: namedPortConfig, full: true, change: func(c *model.Config) {
			c.Policies = slices.DeleteFunc(slices.Clone(c.Policies), func(p *model.Policy) bool { return p.ID() == "other/api" })
		}},
		{name: "rule count crosses a power of two", cfg: func() *model.Config { return benchcfg.Node(10, minRuleCookieSpace) }, full: true, change: func(c *model.Config) {
			c.Policies[0].Ingress = append(c.Policies[0].Ingress, &model.Rule{Endpoints: peers("app-3"), HasPeers: true})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg()
			inc, err := NewIncremental(cfg, cfg.Nodes[0])
			if err != nil {
				t.Fatal(err)
			}
			// The change is made to a copy of the configuration, as a
			// new load of the files gives new policies.
			next := c.cfg()
			next.Endpoints = cfg.Endpoints
			c.change(next)
			d, err := inc.ChangePolicies(next)
			if c.full {
				if !errors.Is(err, ErrNeedsFullCompile) {
					t.Fatalf("ChangePolicies = %v, want ErrNeedsFullCompile", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			before, after := nodeContents(t, cfg), nodeContents(t, next)
			checkDelta(t, before, after, d)
			if diff := cmp.Diff(after, inc.Contents()); diff != "" {
				t.Fatalf("after the change the contents differ from Node's (-Node +Incremental):\n%s", diff)
			}
			if d.Programs != nil || (d.Replaced != nil) != c.programs || d.ProgramsChanged != c.programs {
				t.Errorf("Programs %v, Replaced %v, ProgramsChanged %v; want replaced programs: %v", d.Programs != nil, d.Replaced != nil, d.ProgramsChanged, c.programs)
			}
			if d.Cookies == nil {
				t.Errorf("no cookies in the delta")
			}
			checkReplaced(t, cfg, next, d)
			t.Logf("%d map operations", d.Ops())

			// The Incremental goes on from the new configuration: adding
			// an endpoint gives what a full lowering gives.
			ep := endpoint("ns-000", "later", benchcfg.NodeName, "10.7.9.9", map[string]string{"app": "app-1", "tier": "later"})
			last := benchcfg.WithEndpoint(next, ep)
			d, err = inc.AddEndpoint(last, ep)
			if err != nil {
				t.Fatal(err)
			}
			checkDelta(t, after, nodeContents(t, last), d)
		})
	}
}
