package load

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/source"
)

// equateNet compares addresses and prefixes by value.
var equateNet = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

func TestLoadExamples(t *testing.T) {
	for _, dir := range []string{"../../examples/basic", "../../examples/inventory"} {
		t.Run(dir, func(t *testing.T) {
			cfg, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Nodes) == 0 || len(cfg.Endpoints) == 0 || len(cfg.Policies) == 0 {
				t.Fatalf("empty config: %d nodes, %d endpoints, %d policies", len(cfg.Nodes), len(cfg.Endpoints), len(cfg.Policies))
			}
			for _, e := range cfg.Endpoints {
				if !e.Pos.IsValid() || !strings.HasPrefix(e.Pos.File, dir+"/") {
					t.Errorf("endpoint %s at %v, want a position in %s", e.ID(), e.Pos, dir)
				}
			}
		})
	}
}

// full exercises every section, so that decoding and file-order
// independence are checked on all of them.
var full = map[string]string{
	"a.cue": `package ebpfc

cluster: {name: "c1", podCIDRs: ["10.0.0.0/16"], serviceCIDRs: ["10.96.0.0/16"]}
nodes: "node-a": {addresses: ["192.168.0.1", "fd00::1"], zone: "z1", devices: ["eth0"], features: xdp: true}
nodes: "node-b": {addresses: ["192.168.0.2"], devices: ["eth0"]}
namespaces: web: labels: team: "w"
endpoints: web: a: {
	node: "node-a", interface: "lxc-a", addresses: ["10.0.1.1"], labels: app: "web"
	namedPorts: {http: {port: 8080}, dns: {port: 53, protocol: "UDP"}}
	hostPorts: [{hostPort: 80, containerPort: 8080}]
}
`,
	"b.cue": `package ebpfc

policies: web: p: {
	endpointSelector: matchLabels: app: "web"
	ingress: [{
		fromEndpoints: [{matchLabels: {"k8s:app": "api", "k8s:io.kubernetes.pod.namespace": "api"}}]
		toPorts: [{ports: [{port: "http"}, {port: "9000", endPort: 9010, protocol: "TCP"}]}]
	}, {
		fromCIDRSet: [{cidr: "0.0.0.0/0", except: ["10.0.0.0/8"]}]
		icmps: [{fields: [{type: 8}, {type: 128, code: 0, family: "IPv6"}]}]
	}]
	egressDeny: [{toEntities: ["world"]}]
	egress: [{toEndpoints: []}]
}
clusterPolicies: hosts: {
	nodeSelector: matchExpressions: [{key: "role", operator: "Exists"}]
	ingress: [{fromEntities: ["cluster"]}]
	audit: true
}
services: web: s: {
	type: "NodePort"
	clusterIPs: ["10.96.0.10"]
	ports: [{name: "http", port: 80, targetPort: "http", nodePort: 30080}, {name: "x", port: 81}]
	backends: [{address: "10.0.1.1", port: 8080, node: "node-a", state: "terminating"}]
	sessionAffinity: "ClientIP"
	algorithm: "maglev"
}
`,
	"c.cue": `package ebpfc

nat: {
	masquerade: devices: ["eth0"]
	egressGateways: gw: {
		selector: {matchLabels: app: "web", namespaceSelector: matchLabels: team: "w"}
		destinations: ["0.0.0.0/0"]
		gatewayNode: "node-b"
		egressIP: "192.168.0.100"
	}
}
settings: {enforcement: "always", mapSizes: conntrack: 65536, mapSizeRatio: 0.0025, conntrackTimeouts: tcp: 21600}
tests: {
	t1: {from: "web/a", to: "10.0.1.1", port: 80, expect: "deny"}
	t2: {from: "1.2.3.4", to: "svc:web/s", port: 80, expect: ["web/a"]}
}
`,
	"d.json": `{"endpoints": [
  {"namespace": "api", "name": "b", "node": "node-b", "interface": "lxc-b", "addresses": ["10.0.2.1"], "labels": {"app": "api"}}
]}`,
}

func TestFileOrderDoesNotMatter(t *testing.T) {
	want, err := loadFiles(t, full)
	if err != nil {
		t.Fatal(err)
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range full {
			if !yield(k) {
				return
			}
		}
	})
	fsys := fstest.MapFS{}
	for k, v := range full {
		fsys[k] = &fstest.MapFile{Data: []byte(v)}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 5 {
		r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		got, err := LoadFS(fsys, names)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, equateNet); diff != "" {
			t.Fatalf("order %v changed the result (-want +got):\n%s", names, diff)
		}
	}
}

func TestDecodeFull(t *testing.T) {
	cfg, err := loadFiles(t, full)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range cfg.Policies {
		ids = append(ids, p.ID())
	}
	if want := []string{"web/p", "hosts"}; !slices.Equal(ids, want) {
		t.Errorf("policies %v, want %v", ids, want)
	}
	var nss []string
	for _, ns := range cfg.Namespaces {
		nss = append(nss, ns.Name)
		if ns.Labels[namespaceNameLabel] != ns.Name {
			t.Errorf("namespace %s labels %v", ns.Name, ns.Labels)
		}
	}
	if want := []string{"api", "web"}; !slices.Equal(nss, want) {
		t.Errorf("namespaces %v, want %v", nss, want)
	}
	p := cfg.Policies[0]
	peer := p.Ingress[0].Endpoints[0]
	if diff := cmp.Diff(&model.Selector{
		MatchLabels: map[string]string{"app": "api"},
		Namespaces:  &model.Selector{MatchLabels: map[string]string{namespaceNameLabel: "api"}},
	}, peer, cmpopts.IgnoreTypes(source.Pos{}), equateNet); diff != "" {
		t.Errorf("namespace label not turned into a namespace selector:\n%s", diff)
	}
	wantPorts := []*model.PortRule{
		{Name: "http", Protocol: model.ProtoAny},
		{Port: 9000, EndPort: 9010, Protocol: model.ProtoTCP},
	}
	if diff := cmp.Diff(wantPorts, p.Ingress[0].Ports, cmpopts.IgnoreTypes(source.Pos{}), equateNet); diff != "" {
		t.Errorf("ports:\n%s", diff)
	}
	if !p.Egress[0].HasPeers || len(p.Egress[0].Endpoints) != 0 {
		t.Errorf("toEndpoints: [] should be a rule with peers that match nothing: %+v", p.Egress[0])
	}
	if p.Ingress[1].ICMPs[1].Code == nil || p.Ingress[1].ICMPs[1].Family != "IPv6" {
		t.Errorf("icmps: %+v", p.Ingress[1].ICMPs[1])
	}
	if got := p.Ingress[0].Ports[1].Pos.String(); got != "b.cue:7:38" {
		t.Errorf("port rule at %s, want b.cue:7:38", got)
	}
	s := cfg.Services[0]
	if s.Ports[0].TargetName != "http" || s.Ports[1].TargetPort != 81 || s.Backends[0].Weight != 1 || s.SessionAffinityTimeout != 10800 {
		t.Errorf("service: %+v %+v %+v", s, s.Ports[1], s.Backends[0])
	}
	if cfg.NAT.PortMin != 32768 || len(cfg.NAT.Masquerade.NonMasqueradeCIDRs) != 11 || !cfg.NAT.Masquerade.Enabled {
		t.Errorf("nat defaults: %+v %+v", cfg.NAT, cfg.NAT.Masquerade)
	}
	if cfg.Settings.Enforcement != model.EnforceAlways || cfg.Settings.VerdictEvents != "all" || cfg.Settings.MapSizeRatio != 0.0025 {
		t.Errorf("settings: %+v", cfg.Settings)
	}
	if tt := cfg.Tests[1]; tt.Expect != "allow" || !slices.Equal(tt.Backends, []string{"web/a"}) {
		t.Errorf("test t2: %+v", tt)
	}
	if !cfg.Nodes[0].Features["xdp"] {
		t.Errorf("node features: %v", cfg.Nodes[0].Features)
	}
}

func TestEveryErrorInOneRun(t *testing.T) {
	_, err := loadFiles(t, map[string]string{
		"a.cue": "package ebpfc\n\nnodes: n: {addresses: [\"1.2.3\"], devices: [\"eth0\"]}\n",
		"b.cue": "package ebpfc\n\nsettings: audit: \"yes\"\nnodes: m: addresses: [\"1.2.3.4\"], zone: 3\n",
	})
	errs, ok := source.AsErrors(err)
	if !ok {
		t.Fatalf("got %v", err)
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Pos.String())
	}
	want := []string{"a.cue:3:24", "b.cue:3:18", "b.cue:4:35"}
	if !slices.Equal(got, want) {
		t.Errorf("errors at %v, want %v:\n%v", got, want, err)
	}
}

// endpointRecord is one endpoint written both ways, for holding the JSON
// checks to the schema.
type endpointRecord struct {
	ns, name, node, iface string
	addresses             []string
	labels                map[string]string
	namedPorts            string // CUE and JSON spell these the same
	hostPorts             string
}

func (r endpointRecord) cue() string {
	var b strings.Builder
	fmt.Fprintf(&b, "endpoints: %q: %q: {node: %q, interface: %q, addresses: [", r.ns, r.name, r.node, r.iface)
	for i, a := range r.addresses {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", a)
	}
	b.WriteString("], labels: {")
	for _, k := range slices.Sorted(func(y func(string) bool) {
		for k := range r.labels {
			if !y(k) {
				return
			}
		}
	}) {
		fmt.Fprintf(&b, "%q: %q, ", k, r.labels[k])
	}
	b.WriteString("}")
	if r.namedPorts != "" {
		b.WriteString(", namedPorts: " + r.namedPorts)
	}
	if r.hostPorts != "" {
		b.WriteString(", hostPorts: " + r.hostPorts)
	}
	b.WriteString("}\n")
	return b.String()
}

func (r endpointRecord) json() string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"namespace": %q, "name": %q, "node": %q, "interface": %q, "addresses": [`, r.ns, r.name, r.node, r.iface)
	for i, a := range r.addresses {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", a)
	}
	b.WriteString(`], "labels": {`)
	i := 0
	for _, k := range slices.Sorted(func(y func(string) bool) {
		for k := range r.labels {
			if !y(k) {
				return
			}
		}
	}) {
		if i > 0 {
			b.WriteString(", ")
		}
		i++
		fmt.Fprintf(&b, "%q: %q", k, r.labels[k])
	}
	b.WriteString("}")
	if r.namedPorts != "" {
		b.WriteString(`, "namedPorts": ` + r.namedPorts)
	}
	if r.hostPorts != "" {
		b.WriteString(`, "hostPorts": ` + r.hostPorts)
	}
	b.WriteString("}")
	return b.String()
}

const inventoryNodes = `package ebpfc

nodes: "node-a": {addresses: ["192.168.0.1"], devices: ["eth0"]}
nodes: "node-b": {addresses: ["192.168.0.2"], devices: ["eth0"]}
`

func loadBothWays(t *testing.T, recs []endpointRecord) (fromCUE, fromJSON *model.Config, cueErr, jsonErr error) {
	t.Helper()
	var c, j strings.Builder
	c.WriteString("package ebpfc\n\n")
	j.WriteString(`{"endpoints": [` + "\n")
	for i, r := range recs {
		c.WriteString(r.cue())
		if i > 0 {
			j.WriteString(",\n")
		}
		j.WriteString(r.json())
	}
	j.WriteString("\n]}\n")
	fromCUE, cueErr = loadFiles(t, map[string]string{"nodes.cue": inventoryNodes, "eps.cue": c.String()})
	fromJSON, jsonErr = loadFiles(t, map[string]string{"nodes.cue": inventoryNodes, "eps.json": j.String()})
	return
}

// TestInventoryMatchesSchema holds the JSON fast path to the CUE schema:
// the same records give the same model, and records the schema rejects are
// rejected by the JSON checks too.
func TestInventoryMatchesSchema(t *testing.T) {
	valid := []endpointRecord{
		{ns: "web", name: "a", node: "node-a", iface: "lxc-a", addresses: []string{"10.0.1.1", "fd00::1:1"}, labels: map[string]string{"app": "web", "tier": "front"}},
		{ns: "web", name: "b", node: "node-b", iface: "lxc-b", addresses: []string{"10.0.1.2"},
			namedPorts: `{"http": {"port": 8080}, "dns": {"port": 53, "protocol": "UDP"}}`,
			hostPorts:  `[{"hostPort": 80, "containerPort": 8080}, {"hostPort": 53, "containerPort": 53, "protocol": "UDP", "hostIP": "192.168.0.2"}]`},
		{ns: "db", name: "pg.0", node: "node-a", iface: "veth_pg@0", addresses: []string{"10.0.2.1"}},
	}
	fromCUE, fromJSON, cueErr, jsonErr := loadBothWays(t, valid)
	if cueErr != nil || jsonErr != nil {
		t.Fatalf("CUE: %v\nJSON: %v", cueErr, jsonErr)
	}
	if diff := cmp.Diff(fromCUE, fromJSON, cmpopts.IgnoreTypes(source.Pos{}), equateNet); diff != "" {
		t.Errorf("CUE and JSON give different models (-cue +json):\n%s", diff)
	}

	ok := valid[0]
	invalid := map[string]endpointRecord{}
	mut := func(name string, f func(r *endpointRecord)) {
		r := ok
		r.addresses = slices.Clone(ok.addresses)
		f(&r)
		invalid[name] = r
	}
	mut("bad IP", func(r *endpointRecord) { r.addresses[0] = "10.0.1.300" })
	mut("CIDR as IP", func(r *endpointRecord) { r.addresses[0] = "10.0.1.0/24" })
	mut("IP with zone", func(r *endpointRecord) { r.addresses[1] = "fe80::1%eth0" })
	mut("no addresses", func(r *endpointRecord) { r.addresses = nil })
	mut("unknown node", func(r *endpointRecord) { r.node = "node-z" })
	mut("long interface", func(r *endpointRecord) { r.iface = "lxc-0123456789abcdef" })
	mut("interface with slash", func(r *endpointRecord) { r.iface = "lxc/a" })
	mut("empty interface", func(r *endpointRecord) { r.iface = "" })
	mut("bad namespace", func(r *endpointRecord) { r.ns = "Web" })
	mut("bad name", func(r *endpointRecord) { r.name = "a_b" })
	mut("port out of range", func(r *endpointRecord) { r.namedPorts = `{"http": {"port": 70000}}` })
	mut("port zero", func(r *endpointRecord) { r.namedPorts = `{"http": {"port": 0}}` })
	mut("port not integer", func(r *endpointRecord) { r.namedPorts = `{"http": {"port": 80.5}}` })
	mut("port as string", func(r *endpointRecord) { r.namedPorts = `{"http": {"port": "80"}}` })
	mut("bad protocol", func(r *endpointRecord) { r.namedPorts = `{"http": {"port": 80, "protocol": "ICMP"}}` })
	mut("bad port name", func(r *endpointRecord) { r.namedPorts = `{"HTTP": {"port": 80}}` })
	mut("numeric port name", func(r *endpointRecord) { r.namedPorts = `{"8080": {"port": 80}}` })
	mut("unknown named port field", func(r *endpointRecord) { r.namedPorts = `{"http": {"port": 80, "name": "x"}}` })
	mut("named port without port", func(r *endpointRecord) { r.namedPorts = `{"http": {"protocol": "TCP"}}` })
	mut("host port missing container port", func(r *endpointRecord) { r.hostPorts = `[{"hostPort": 80}]` })
	mut("host port bad IP", func(r *endpointRecord) { r.hostPorts = `[{"hostPort": 80, "containerPort": 80, "hostIP": "x"}]` })
	mut("duplicate host port", func(r *endpointRecord) {
		r.hostPorts = `[{"hostPort": 80, "containerPort": 80}, {"hostPort": 80, "containerPort": 81}]`
	})
	mut("node address", func(r *endpointRecord) { r.addresses = []string{"192.168.0.1"} })
	for name, r := range invalid {
		t.Run(name, func(t *testing.T) {
			_, _, cueErr, jsonErr := loadBothWays(t, []endpointRecord{r})
			if cueErr == nil {
				t.Errorf("CUE accepts %s", r.cue())
			}
			if jsonErr == nil {
				t.Errorf("JSON accepts %s", r.json())
			}
			for _, err := range []error{cueErr, jsonErr} {
				if err != nil {
					if _, ok := source.AsErrors(err); !ok {
						t.Errorf("not positioned: %v", err)
					}
				}
			}
		})
	}
}

func FuzzLoad(f *testing.F) {
	for _, v := range full {
		f.Add([]byte(v))
	}
	f.Add([]byte(base))
	f.Add([]byte("package ebpfc\nnodes: n: addresses: [\"1.2.3.4\"]\npolicies: a: b: {endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: \"x\", endPort: 2}]}]}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := fstest.MapFS{
			"x.cue":    &fstest.MapFile{Data: data},
			"inv.json": &fstest.MapFile{Data: data},
		}
		cfg, err := LoadFS(fsys, []string{"x.cue", "inv.json"})
		if err != nil {
			if _, ok := source.AsErrors(err); !ok {
				t.Fatalf("error without a position: %v", err)
			}
			return
		}
		if cfg == nil {
			t.Fatal("nil config and nil error")
		}
	})
}

func BenchmarkLoadJSONEndpoints(b *testing.B) {
	const n = 10000
	var j strings.Builder
	j.WriteString(`{"endpoints": [` + "\n")
	for i := range n {
		if i > 0 {
			j.WriteString(",\n")
		}
		fmt.Fprintf(&j, `  {"namespace": "ns%d", "name": "pod-%d", "node": "node-%d", "interface": "lxc%d", "addresses": ["10.%d.%d.%d"], "labels": {"app": "app%d", "tier": "t%d"}, "namedPorts": {"http": {"port": 8080}}}`,
			i%50, i, i%20, i, i>>16, (i>>8)&255, i&255, i%100, i%3)
	}
	j.WriteString("\n]}\n")
	var nodes strings.Builder
	nodes.WriteString("package ebpfc\n\n")
	for i := range 20 {
		fmt.Fprintf(&nodes, "nodes: \"node-%d\": {addresses: [\"192.168.0.%d\"], devices: [\"eth0\"]}\n", i, i+1)
	}
	fsys := fstest.MapFS{
		"nodes.cue":      &fstest.MapFile{Data: []byte(nodes.String())},
		"endpoints.json": &fstest.MapFile{Data: []byte(j.String())},
	}
	b.SetBytes(int64(j.Len()))
	b.ReportAllocs()
	for b.Loop() {
		cfg, err := LoadFS(fsys, []string{"nodes.cue", "endpoints.json"})
		if err != nil {
			b.Fatal(err)
		}
		if len(cfg.Endpoints) != n {
			b.Fatalf("%d endpoints", len(cfg.Endpoints))
		}
	}
}

// TestCache loads a directory through a Cache as its files change: every
// load gives what Load gives; the CUE evaluation is reused (the policies
// are the same values) exactly when the CUE files are unchanged; an error
// in the inventory is reported with the CUE files cached; and a YAML file
// turns the cache off.
func TestCache(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cue := func(port int) string {
		return fmt.Sprintf(`package ebpfc

cluster: {name: "c", podCIDRs: ["10.0.0.0/16"], serviceCIDRs: ["10.96.0.0/12"]}
nodes: "n": {addresses: ["192.168.0.1"]}
namespaces: web: labels: team: "a"
endpoints: web: cue: {node: "n", interface: "lxccue", addresses: ["10.0.9.9"], labels: app: "cue", namedPorts: {b: {port: 2}, a: {port: 1}}}
policies: web: p: {
	endpointSelector: matchLabels: app: "x"
	ingress: [{fromEndpoints: [{matchLabels: app: "y"}], toPorts: [{ports: [{port: %d, protocol: "TCP"}]}]}]
}
`, port)
	}
	inventory := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"endpoints": [`)
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"namespace": "ns%d", "name": "e%d", "node": "n", "interface": "lxc%d", "addresses": ["10.0.0.%d"], "labels": {"app": "x"}}`, i%2, i, i, i+1)
		}
		b.WriteString("]}\n")
		return b.String()
	}
	var c Cache
	var last *model.Config
	step := func(name string, reused bool) {
		t.Helper()
		got, err := c.Load(dir)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, equateNet); diff != "" {
			t.Errorf("%s: the cached load differs from Load (-Load +cached):\n%s", name, diff)
		}
		if last != nil && (got.Policies[0] == last.Policies[0]) != reused {
			t.Errorf("%s: CUE evaluation reused %v, want %v", name, !reused, reused)
		}
		last = got
	}
	write("a.cue", cue(80))
	write("endpoints.json", inventory(3))
	step("first", false)
	write("endpoints.json", inventory(5))
	step("endpoints added", true)
	step("nothing changed", true)
	write("a.cue", cue(81))
	step("a port changed", false)
	write("endpoints.json", inventory(2))
	step("endpoints removed", true)

	write("endpoints.json", `{"endpoints": [{"namespace": "web", "name": "bad", "node": "nowhere", "interface": "lxcbad", "addresses": ["10.0.0.1"]}]}`)
	_, cerr := c.Load(dir)
	_, lerr := Load(dir)
	if cerr == nil || lerr == nil || cerr.Error() != lerr.Error() {
		t.Errorf("an invalid inventory: cached load %v, Load %v; want the same error", cerr, lerr)
	}
	write("endpoints.json", inventory(2))
	step("fixed", true)

	write("k.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: kube, labels: {team: b}}\n")
	step("a YAML file", false)
	step("a YAML file, again", false)
}
