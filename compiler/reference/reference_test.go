package reference

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/ebpfc/ebpfc/compiler/load"
	"github.com/ebpfc/ebpfc/compiler/model"
)

// baseCUE is the cluster the unit tests share. From node-a's point of view:
// 10.0.1.1 (web/frontend), 10.0.1.2 (web/admin), 10.0.2.1 (db/postgres) and
// 10.0.2.2 (db/cache) are endpoints, 192.168.0.1 is the host, 192.168.0.2
// a remote node, 172.16.0.1 the API server, 10.0.99.9 unmanaged (in the pod
// CIDR) and 8.8.8.8 world.
const baseCUE = `package ebpfc

cluster: {podCIDRs: ["10.0.0.0/16", "fd00:10::/64"], apiServer: ["172.16.0.1"]}
nodes: "node-a": {addresses: ["192.168.0.1", "fd00::1"], labels: role: "worker"}
nodes: "node-b": {addresses: ["192.168.0.2"], labels: role: "db"}
namespaces: web: labels: team: "frontend"
namespaces: db: labels: team: "backend"
endpoints: web: frontend: {
	node: "node-a", interface: "lxc-fe", addresses: ["10.0.1.1", "fd00:10::1"]
	labels: {app: "frontend", tier: "web"}
	namedPorts: {http: {port: 8080}, dns: {port: 53, protocol: "UDP"}}
}
endpoints: web: admin: {node: "node-b", interface: "lxc-adm", addresses: ["10.0.1.2"], labels: app: "admin"}
endpoints: db: postgres: {
	node: "node-b", interface: "lxc-pg", addresses: ["10.0.2.1"]
	labels: {app: "postgres", tier: "db"}
	namedPorts: http: {port: 9090}
}
endpoints: db: cache: {node: "node-a", interface: "lxc-cache", addresses: ["10.0.2.2"], labels: app: "cache"}
`

// loadConfig loads baseCUE with the policies (and settings) in extra.
func loadConfig(t testing.TB, extra string) *model.Config {
	t.Helper()
	fsys := fstest.MapFS{
		"base.cue":  {Data: []byte(baseCUE)},
		"extra.cue": {Data: []byte("package ebpfc\n\n" + extra)},
	}
	cfg, err := load.LoadFS(fsys, []string{"base.cue", "extra.cue"})
	if err != nil {
		t.Fatalf("loading:\n%s\n%v", extra, err)
	}
	return cfg
}

// query is one question to the evaluator: at an endpoint ("web/frontend")
// or a node ("node:node-a"), in a direction, about a flow written as
// "PROTO SRC > DST[:PORT] [TYPE/CODE]" (PROTO tcp, udp, sctp, icmp, icmpv6
// or a number), and the summary the answer must have.
type query struct {
	at   string
	dir  Direction
	flow string
	want string
}

// summary writes a verdict as the tests expect it: "allow open",
// "deny by default", "allow by web/p ingress[0]", "audit by x egressDeny[1]",
// "deny malformed".
func summary(v Verdict) string {
	word := "deny"
	switch {
	case v.Audited:
		word = "audit"
	case v.Allowed:
		word = "allow"
	}
	d := v.Decider
	switch {
	case d.Rule >= 0:
		return fmt.Sprintf("%s by %s %s[%d]", word, d.Policy, d.list(), d.Rule)
	case d.Kind == KindDefaultDeny:
		return word + " by default"
	}
	return word + " " + d.Kind.String()
}

func parseFlow(t *testing.T, s string) Flow {
	t.Helper()
	f := strings.Fields(s)
	if len(f) < 4 || f[2] != ">" {
		t.Fatalf("flow %q: want PROTO SRC > DST[:PORT] [TYPE/CODE]", s)
	}
	var fl Flow
	switch f[0] {
	case "tcp":
		fl.Protocol = protoTCP
	case "udp":
		fl.Protocol = protoUDP
	case "sctp":
		fl.Protocol = protoSCTP
	case "icmp":
		fl.Protocol = protoICMP
	case "icmpv6":
		fl.Protocol = protoICMPv6
	default:
		n, err := strconv.Atoi(f[0])
		if err != nil {
			t.Fatalf("flow %q: protocol %q", s, f[0])
		}
		fl.Protocol = uint8(n)
	}
	var err error
	if fl.Src, err = netip.ParseAddr(f[1]); err != nil {
		t.Fatalf("flow %q: %v", s, err)
	}
	if ap, err := netip.ParseAddrPort(f[3]); err == nil {
		fl.Dst, fl.DstPort = ap.Addr(), ap.Port()
	} else if fl.Dst, err = netip.ParseAddr(f[3]); err != nil {
		t.Fatalf("flow %q: %v", s, err)
	}
	fl.SrcPort = 40000
	if len(f) > 4 {
		ty, code, _ := strings.Cut(f[4], "/")
		a, err1 := strconv.Atoi(ty)
		b, err2 := strconv.Atoi(code)
		if err1 != nil || err2 != nil {
			t.Fatalf("flow %q: ICMP type/code %q", s, f[4])
		}
		fl.ICMPType, fl.ICMPCode = uint8(a), uint8(b)
	}
	return fl
}

func endpointByID(t *testing.T, cfg *model.Config, id string) *model.Endpoint {
	t.Helper()
	for _, ep := range cfg.Endpoints {
		if ep.ID() == id {
			return ep
		}
	}
	t.Fatalf("no endpoint %s", id)
	return nil
}

func nodeByName(t *testing.T, cfg *model.Config, name string) *model.Node {
	t.Helper()
	for _, n := range cfg.Nodes {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("no node %s", name)
	return nil
}

// ask answers q with e.
func ask(t *testing.T, e *Evaluator, q query) Verdict {
	t.Helper()
	f := parseFlow(t, q.flow)
	if name, ok := strings.CutPrefix(q.at, "node:"); ok {
		n := nodeByName(t, e.Config(), name)
		if q.dir == Egress {
			return e.HostEgress(n, f)
		}
		return e.HostIngress(n, f)
	}
	return e.Judge(endpointByID(t, e.Config(), q.at), q.dir, f)
}

// policyCase is a set of policies and the answers they must give.
type policyCase struct {
	name    string
	cue     string
	queries []query
}

func runCases(t *testing.T, cases []policyCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := New(loadConfig(t, c.cue))
			for _, q := range c.queries {
				if got := summary(ask(t, e, q)); got != q.want {
					t.Errorf("%s %s %s: %s, want %s", q.at, q.dir, q.flow, got, q.want)
				}
			}
		})
	}
}

// Ingress at web/frontend and egress from it, in short.
func in(flow, want string) query  { return query{"web/frontend", Ingress, flow, want} }
func out(flow, want string) query { return query{"web/frontend", Egress, flow, want} }

// docs/policy.md "Who is the peer".
func TestPeerClasses(t *testing.T) {
	e := New(loadConfig(t, ""))
	nodeA, nodeB := nodeByName(t, e.Config(), "node-a"), nodeByName(t, e.Config(), "node-b")
	for _, tc := range []struct {
		addr string
		node *model.Node
		want peerClass
	}{
		{"10.0.1.2", nodeA, classEndpoint},
		{"::ffff:10.0.1.2", nodeA, classEndpoint},
		{"fd00:10::1", nodeA, classEndpoint},
		{"192.168.0.1", nodeA, classHost},
		{"fd00::1", nodeA, classHost},
		{"192.168.0.1", nodeB, classRemoteNode},
		{"192.168.0.2", nodeA, classRemoteNode},
		{"192.168.0.2", nodeB, classHost},
		{"192.168.0.2", nil, classRemoteNode},
		{"172.16.0.1", nodeA, classKubeAPIServer},
		{"10.0.99.9", nodeA, classUnmanaged},
		{"fd00:10::99", nodeA, classUnmanaged},
		{"10.1.0.1", nodeA, classWorld},
		{"8.8.8.8", nodeA, classWorld},
		{"2001:db8::1", nodeA, classWorld},
	} {
		if got := e.classify(netip.MustParseAddr(tc.addr), tc.node); got.class != tc.want {
			t.Errorf("classify(%s) from %v = %d, want %d", tc.addr, tc.node.Name, got.class, tc.want)
		}
	}
}

// docs/policy.md "What a rule's peers match": entities. web/frontend is on
// node-a.
func TestEntities(t *testing.T) {
	sources := []struct{ class, addr string }{
		{"endpoint", "10.0.2.1"},
		{"host", "192.168.0.1"},
		{"remote-node", "192.168.0.2"},
		{"kube-apiserver", "172.16.0.1"},
		{"unmanaged", "10.0.99.9"},
		{"world", "8.8.8.8"},
	}
	for _, tc := range []struct {
		entity  string
		matches string // the classes it matches
	}{
		{"world", "world"},
		{"host", "host"},
		{"remote-node", "remote-node"},
		{"kube-apiserver", "kube-apiserver"},
		{"cluster", "endpoint host remote-node kube-apiserver unmanaged"},
		{"all", "endpoint host remote-node kube-apiserver unmanaged world"},
	} {
		c := policyCase{name: tc.entity, cue: fmt.Sprintf(`clusterPolicies: p: {
	endpointSelector: matchLabels: app: "frontend"
	ingress: [{fromEntities: [%q]}]
	egress: [{toEntities: [%q]}]
}`, tc.entity, tc.entity)}
		for _, s := range sources {
			want := "deny by default"
			if strings.Contains(" "+tc.matches+" ", " "+s.class+" ") {
				want = "allow by p ingress[0]"
			}
			c.queries = append(c.queries, in("tcp "+s.addr+" > 10.0.1.1:80", want))
			c.queries = append(c.queries, out("udp 10.0.1.1 > "+s.addr+":53", strings.ReplaceAll(want, "ingress", "egress")))
		}
		runCases(t, []policyCase{c})
	}
}

// docs/policy.md "What a rule's peers match": endpoint selectors.
func TestSelectorOperators(t *testing.T) {
	rule := func(sel string) string {
		return `clusterPolicies: p: {
	endpointSelector: matchLabels: app: "frontend"
	ingress: [{fromEndpoints: [` + sel + `]}]
}`
	}
	const allow, deny = "allow by p ingress[0]", "deny by default"
	admin, postgres, cache := "tcp 10.0.1.2 > 10.0.1.1:80", "tcp 10.0.2.1 > 10.0.1.1:80", "tcp 10.0.2.2 > 10.0.1.1:80"
	runCases(t, []policyCase{
		{"In", rule(`{matchExpressions: [{key: "tier", operator: "In", values: ["db", "cache"]}]}`),
			[]query{in(postgres, allow), in(admin, deny), in(cache, deny)}},
		{"NotIn matches a missing key", rule(`{matchExpressions: [{key: "tier", operator: "NotIn", values: ["db"]}]}`),
			[]query{in(postgres, deny), in(admin, allow), in(cache, allow)}},
		{"Exists", rule(`{matchExpressions: [{key: "tier", operator: "Exists"}]}`),
			[]query{in(postgres, allow), in(admin, deny), in(cache, deny)}},
		{"DoesNotExist matches a missing key", rule(`{matchExpressions: [{key: "tier", operator: "DoesNotExist"}]}`),
			[]query{in(postgres, deny), in(admin, allow), in(cache, allow)}},
		{"matchLabels and expressions all hold", rule(`{matchLabels: app: "cache", matchExpressions: [{key: "tier", operator: "DoesNotExist"}]}`),
			[]query{in(postgres, deny), in(admin, deny), in(cache, allow)}},
		{"a selector matches endpoints only", rule(`{}`),
			[]query{in(postgres, allow), in("tcp 8.8.8.8 > 10.0.1.1:80", deny), in("tcp 10.0.99.9 > 10.0.1.1:80", deny), in("tcp 192.168.0.1 > 10.0.1.1:80", deny)}},
	})
}

// docs/policy.md "What a rule's peers match": namespaces of peers, and
// "How policies combine": namespaces of subjects.
func TestNamespaceScoping(t *testing.T) {
	const allow, deny = "allow by web/p ingress[0]", "deny by default"
	admin, postgres, cache := "tcp 10.0.1.2 > 10.0.1.1:80", "tcp 10.0.2.1 > 10.0.1.1:80", "tcp 10.0.2.2 > 10.0.1.1:80"
	ns := func(rule string) string {
		return `policies: web: p: {
	endpointSelector: matchLabels: app: "frontend"
	ingress: [{fromEndpoints: [` + rule + `]}]
}`
	}
	runCases(t, []policyCase{
		{"namespaced policy: its own namespace", ns(`{}`),
			[]query{in(admin, allow), in(postgres, deny), in(cache, deny)}},
		{"namespaceSelector by label", ns(`{namespaceSelector: matchLabels: team: "backend"}`),
			[]query{in(admin, deny), in(postgres, allow), in(cache, allow)}},
		{"namespaceSelector and labels", ns(`{matchLabels: app: "cache", namespaceSelector: matchLabels: team: "backend"}`),
			[]query{in(admin, deny), in(postgres, deny), in(cache, allow)}},
		{"empty namespaceSelector: every namespace", ns(`{namespaceSelector: {}}`),
			[]query{in(admin, allow), in(postgres, allow), in(cache, allow)}},
		{"Cilium namespace label", ns(`{matchLabels: {"k8s:io.kubernetes.pod.namespace": "db", app: "postgres"}}`),
			[]query{in(admin, deny), in(postgres, allow), in(cache, deny)}},
		{"namespace by metadata name", ns(`{namespaceSelector: matchExpressions: [{key: "kubernetes.io/metadata.name", operator: "NotIn", values: ["web"]}]}`),
			[]query{in(admin, deny), in(postgres, allow), in(cache, allow)}},
		{"cluster-wide policy: every namespace", `clusterPolicies: p: {
	endpointSelector: matchLabels: app: "frontend"
	ingress: [{fromEndpoints: [{}]}]
}`, []query{in(admin, "allow by p ingress[0]"), in(postgres, "allow by p ingress[0]"), in(cache, "allow by p ingress[0]")}},
		{"a namespaced policy selects only in its namespace", `policies: db: p: {
	endpointSelector: {}
	ingress: [{}]
}`, []query{
			in(admin, "allow open"),
			{"db/cache", Ingress, "tcp 10.0.1.1 > 10.0.2.2:80", "deny by default"},
			{"db/postgres", Ingress, "tcp 10.0.1.1 > 10.0.2.1:80", "deny by default"},
		}},
		{"a cluster-wide subject selector with a namespace selector", `clusterPolicies: p: {
	endpointSelector: namespaceSelector: matchLabels: team: "frontend"
	ingress: [{}]
}`, []query{
			in(admin, "deny by default"),
			{"web/admin", Ingress, "tcp 10.0.1.1 > 10.0.1.2:80", "deny by default"},
			{"db/cache", Ingress, "tcp 10.0.1.1 > 10.0.2.2:80", "allow open"},
		}},
	})
}

// docs/policy.md "What a rule's peers match": CIDR.
func TestCIDR(t *testing.T) {
	const allow, deny = "allow by p ingress[0]", "deny by default"
	runCases(t, []policyCase{
		{"except, and a second peer inside the exception", `clusterPolicies: p: {
	endpointSelector: matchLabels: app: "frontend"
	ingress: [{fromCIDRSet: [{cidr: "0.0.0.0/0", except: ["10.0.0.0/8", "172.16.0.0/12"]}, {cidr: "10.0.99.0/24"}]}]
}`, []query{
			in("tcp 8.8.8.8 > 10.0.1.1:80", allow),
			in("tcp 10.1.0.1 > 10.0.1.1:80", deny),
			// unmanaged (pod CIDR): never a CIDR peer
			in("tcp 10.0.99.9 > 10.0.1.1:80", deny),
			in("tcp 10.0.98.9 > 10.0.1.1:80", deny),
			in("tcp 172.16.0.1 > 10.0.1.1:80", deny),
			in("tcp 172.32.0.1 > 10.0.1.1:80", allow),
			in("tcp 2001:db8::1 > fd00:10::1:80", deny),
		}},
		{"world addresses only: never endpoints, nodes, the API server or unmanaged", `clusterPolicies: p: {
	endpointSelector: matchLabels: app: "frontend"
	ingress: [{fromCIDR: ["10.0.0.0/8", "192.168.0.0/16", "172.16.0.0/12"]}]
}`, []query{
			in("tcp 10.0.2.1 > 10.0.1.1:80", deny),
			in("tcp 192.168.0.1 > 10.0.1.1:80", deny),
			in("tcp 192.168.0.2 > 10.0.1.1:80", deny),
			in("tcp 172.16.0.1 > 10.0.1.1:80", deny),
			in("tcp 10.0.99.9 > 10.0.1.1:80", deny),
			in("tcp 10.200.0.1 > 10.0.1.1:80", allow),
			in("tcp 192.169.0.1 > 10.0.1.1:80", deny),
		}},
		{"IPv6 prefix, egress", `clusterPolicies: p: {
	endpointSelector: matchLabels: app: "frontend"
	egress: [{toCIDRSet: [{cidr: "2001:db8::/32", except: ["2001:db8:bad::/48"]}]}]
}`, []query{
			out("tcp fd00:10::1 > 2001:db8::1:443", "allow by p egress[0]"),
			out("tcp fd00:10::1 > 2001:db8:bad::1:443", deny),
			out("tcp fd00:10::1 > 2001:db9::1:443", deny),
			out("tcp 10.0.1.1 > 8.8.8.8:443", deny),
		}},
	})
}

// docs/policy.md "What a rule's ports match": numbers, ranges, protocols.
func TestPorts(t *testing.T) {
	const allow, deny = "allow by p ingress[0]", "deny by default"
	ports := func(p string) string {
		return `clusterPolicies: p: {
	endpointSelector: matchLabels: app: "frontend"
	ingress: [{toPorts: [{ports: [` + p + `]}]}]
}`
	}
	const src = "8.8.8.8 > 10.0.1.1"
	runCases(t, []policyCase{
		{"TCP port", ports(`{port: 80, protocol: "TCP"}`), []query{
			in("tcp "+src+":80", allow), in("tcp "+src+":81", deny), in("udp "+src+":80", deny), in("sctp "+src+":80", deny),
		}},
		{"port as a numeric string", ports(`{port: "80", protocol: "UDP"}`), []query{
			in("udp "+src+":80", allow), in("tcp "+src+":80", deny),
		}},
		{"UDP range, both ends included", ports(`{port: 8000, endPort: 8010, protocol: "UDP"}`), []query{
			in("udp "+src+":7999", deny), in("udp "+src+":8000", allow), in("udp "+src+":8005", allow),
			in("udp "+src+":8010", allow), in("udp "+src+":8011", deny), in("tcp "+src+":8000", deny),
		}},
		{"ANY means TCP, UDP and SCTP", ports(`{port: 443}`), []query{
			in("tcp "+src+":443", allow), in("udp "+src+":443", allow), in("sctp "+src+":443", allow),
			in("icmp "+src+" 8/0", deny), in("47 "+src, deny), in("tcp "+src+":444", deny),
		}},
		{"no port: every port of the protocol", ports(`{protocol: "SCTP"}`), []query{
			in("sctp "+src+":1", allow), in("sctp "+src+":65535", allow), in("tcp "+src+":1", deny), in("icmp "+src+" 8/0", deny),
		}},
		{"port 0 with ANY: every protocol", ports(`{port: 0}`), []query{
			in("tcp "+src+":1", allow), in("icmp "+src+" 8/0", allow), in("icmpv6 2001:db8::1 > fd00:10::1 128/0", allow), in("47 "+src, allow),
		}},
		{"several ports are alternatives", ports(`{port: 80, protocol: "TCP"}, {port: 53, protocol: "UDP"}`), []query{
			in("tcp "+src+":80", allow), in("udp "+src+":53", allow), in("udp "+src+":80", deny), in("tcp "+src+":53", deny),
		}},
	})
}

// docs/policy.md "What a rule's ports match": named ports, resolved on the
// destination endpoint.
func TestNamedPorts(t *testing.T) {
	const deny = "deny by default"
	runCases(t, []policyCase{
		{"ingress: the subject's port", `clusterPolicies: p: {
	endpointSelector: {}
	ingress: [{toPorts: [{ports: [{port: "http"}]}]}]
}`, []query{
			in("tcp 8.8.8.8 > 10.0.1.1:8080", "allow by p ingress[0]"),
			in("udp 8.8.8.8 > 10.0.1.1:8080", deny), // http is TCP
			in("tcp 8.8.8.8 > 10.0.1.1:9090", deny), // postgres's http, not the subject's
			{"db/postgres", Ingress, "tcp 8.8.8.8 > 10.0.2.1:9090", "allow by p ingress[0]"},
			{"db/postgres", Ingress, "tcp 8.8.8.8 > 10.0.2.1:8080", deny},
			{"web/admin", Ingress, "tcp 8.8.8.8 > 10.0.1.2:8080", deny}, // admin has no named ports
		}},
		{"the rule's protocol must be the named port's", `clusterPolicies: p: {
	endpointSelector: matchLabels: app: "frontend"
	ingress: [{toPorts: [{ports: [{port: "dns", protocol: "TCP"}, {port: "http", protocol: "TCP"}]}]}]
}`, []query{
			in("udp 8.8.8.8 > 10.0.1.1:53", deny),
			in("tcp 8.8.8.8 > 10.0.1.1:53", deny),
			in("tcp 8.8.8.8 > 10.0.1.1:8080", "allow by p ingress[0]"),
		}},
		{"egress: the peer's port, endpoints only", `clusterPolicies: p: {
	endpointSelector: matchLabels: app: "frontend"
	egress: [{toPorts: [{ports: [{port: "http"}]}]}]
}`, []query{
			out("tcp 10.0.1.1 > 10.0.2.1:9090", "allow by p egress[0]"),
			out("tcp 10.0.1.1 > 10.0.2.1:8080", deny),
			out("tcp 10.0.1.1 > 10.0.2.2:8080", deny), // cache has no named ports
			out("tcp 10.0.1.1 > 8.8.8.8:8080", deny),  // world has none either
			out("tcp 10.0.1.1 > 10.0.1.1:8080", "allow by p egress[0]"),
		}},
	})
}

// docs/policy.md "What a rule's ports match": ICMP.
func TestICMP(t *testing.T) {
	const allow, deny = "allow by p ingress[0]", "deny by default"
	runCases(t, []policyCase{{"type and code", `clusterPolicies: p: {
	endpointSelector: matchLabels: app: "frontend"
	ingress: [{
		icmps: [{fields: [{type: 8}, {type: 3, code: 4}]}, {fields: [{type: 128, family: "IPv6"}]}]
		toPorts: [{ports: [{port: 80, protocol: "TCP"}]}]
	}]
}`, []query{
		in("icmp 8.8.8.8 > 10.0.1.1 8/0", allow),
		in("icmp 8.8.8.8 > 10.0.1.1 8/9", allow),
		in("icmp 8.8.8.8 > 10.0.1.1 3/4", allow),
		in("icmp 8.8.8.8 > 10.0.1.1 3/3", deny),
		in("icmp 8.8.8.8 > 10.0.1.1 0/0", deny),
		in("icmp 8.8.8.8 > 10.0.1.1 128/0", deny),
		in("icmpv6 2001:db8::1 > fd00:10::1 128/0", allow),
		in("icmpv6 2001:db8::1 > fd00:10::1 8/0", deny),
		in("tcp 8.8.8.8 > 10.0.1.1:80", allow),
		in("udp 8.8.8.8 > 10.0.1.1:80", deny),
	}}})
}

// docs/policy.md "What a rule's peers match" and "What a rule's ports
// match": rules without peers or ports.
func TestRuleShapes(t *testing.T) {
	policy := func(rule string) string {
		return `clusterPolicies: p: {
	endpointSelector: matchLabels: app: "frontend"
	ingress: [` + rule + `]
}`
	}
	runCases(t, []policyCase{
		{"an empty rule matches nothing but enforces", policy(`{}`), []query{
			in("tcp 10.0.1.2 > 10.0.1.1:80", "deny by default"),
			out("tcp 10.0.1.1 > 10.0.1.2:80", "allow open"),
		}},
		{"an empty peer list matches no peer", policy(`{fromEndpoints: [], toPorts: [{ports: [{port: 80}]}]}`), []query{
			in("tcp 10.0.1.2 > 10.0.1.1:80", "deny by default"),
			in("tcp 8.8.8.8 > 10.0.1.1:80", "deny by default"),
		}},
		{"ports without peers: every peer", policy(`{toPorts: [{ports: [{port: 80}]}]}`), []query{
			in("tcp 10.0.1.2 > 10.0.1.1:80", "allow by p ingress[0]"),
			in("tcp 8.8.8.8 > 10.0.1.1:80", "allow by p ingress[0]"),
			in("tcp 192.168.0.1 > 10.0.1.1:80", "allow by p ingress[0]"),
			in("tcp 8.8.8.8 > 10.0.1.1:81", "deny by default"),
		}},
		{"peers without ports: every protocol and port", policy(`{fromEntities: ["world"]}`), []query{
			in("tcp 8.8.8.8 > 10.0.1.1:1", "allow by p ingress[0]"),
			in("icmp 8.8.8.8 > 10.0.1.1 8/0", "allow by p ingress[0]"),
			in("47 8.8.8.8 > 10.0.1.1", "allow by p ingress[0]"),
			in("tcp 10.0.1.2 > 10.0.1.1:1", "deny by default"),
		}},
		{"peer fields are alternatives", policy(`{fromEntities: ["host"], fromCIDR: ["8.8.8.0/24"], fromEndpoints: [{matchLabels: app: "admin"}]}`), []query{
			in("tcp 8.8.8.8 > 10.0.1.1:1", "allow by p ingress[0]"),
			in("tcp 192.168.0.1 > 10.0.1.1:1", "allow by p ingress[0]"),
			in("tcp 10.0.1.2 > 10.0.1.1:1", "allow by p ingress[0]"),
			in("tcp 10.0.2.1 > 10.0.1.1:1", "deny by default"),
			in("tcp 9.9.9.9 > 10.0.1.1:1", "deny by default"),
		}},
	})
}

// docs/policy.md "How policies combine": deny beats allow, open and
// enforced directions, and which rule decides.
func TestCombine(t *testing.T) {
	runCases(t, []policyCase{
		{"deny beats allow across policies", `policies: web: allow: {
	endpointSelector: matchLabels: app: "frontend"
	ingress: [{fromEntities: ["all"]}]
}
clusterPolicies: deny: {
	endpointSelector: {}
	ingressDeny: [{fromCIDR: ["8.8.8.0/24"]}, {fromCIDR: ["8.8.0.0/16"], toPorts: [{ports: [{port: 22}]}]}]
}`, []query{
			in("tcp 8.8.8.8 > 10.0.1.1:80", "deny by deny ingressDeny[0]"),
			in("tcp 8.8.9.9 > 10.0.1.1:22", "deny by deny ingressDeny[1]"),
			in("tcp 8.8.9.9 > 10.0.1.1:80", "allow by web/allow ingress[0]"),
			in("tcp 1.1.1.1 > 10.0.1.1:22", "allow by web/allow ingress[0]"),
			// The deny-only policy enforces web/admin's ingress too.
			{"web/admin", Ingress, "tcp 1.1.1.1 > 10.0.1.2:80", "deny by default"},
			{"web/admin", Ingress, "tcp 8.8.8.8 > 10.0.1.2:80", "deny by deny ingressDeny[0]"},
			{"web/admin", Egress, "tcp 10.0.1.2 > 8.8.8.8:80", "allow open"},
		}},
		{"first matching rule in policy order decides", `policies: web: "b-second": {
	endpointSelector: {}
	ingress: [{fromEntities: ["host"]}, {fromEntities: ["world"]}, {fromEntities: ["all"]}]
}
policies: web: "a-first": {
	endpointSelector: matchLabels: app: "frontend"
	ingress: [{fromCIDR: ["9.9.9.9/32"]}, {fromEntities: ["world"]}]
}
policies: db: "z-other": {
	endpointSelector: {}
	ingress: [{}]
}
clusterPolicies: "0-cluster": {
	endpointSelector: {}
	ingress: [{fromEntities: ["all"]}]
}`, []query{
			in("tcp 8.8.8.8 > 10.0.1.1:80", "allow by web/a-first ingress[1]"),
			in("tcp 9.9.9.9 > 10.0.1.1:80", "allow by web/a-first ingress[0]"),
			in("tcp 192.168.0.1 > 10.0.1.1:80", "allow by web/b-second ingress[0]"),
			in("tcp 10.0.2.1 > 10.0.1.1:80", "allow by web/b-second ingress[2]"),
			{"web/admin", Ingress, "tcp 8.8.8.8 > 10.0.1.2:80", "allow by web/b-second ingress[1]"},
			{"db/cache", Ingress, "tcp 8.8.8.8 > 10.0.2.2:80", "allow by 0-cluster ingress[0]"},
		}},
		{"first matching deny rule decides", `policies: web: b: {
	endpointSelector: {}
	egressDeny: [{toPorts: [{ports: [{port: 25}]}]}]
}
policies: web: a: {
	endpointSelector: {}
	egress: [{toEntities: ["all"]}]
	egressDeny: [{toEntities: ["host"]}, {toEntities: ["world"]}]
}`, []query{
			out("tcp 10.0.1.1 > 8.8.8.8:25", "deny by web/a egressDeny[1]"),
			out("tcp 10.0.1.1 > 10.0.2.1:25", "deny by web/b egressDeny[0]"),
			out("tcp 10.0.1.1 > 192.168.0.1:80", "deny by web/a egressDeny[0]"),
			out("tcp 10.0.1.1 > 10.0.2.1:80", "allow by web/a egress[0]"),
		}},
		{"unselected endpoints and directions are open", `policies: web: p: {
	endpointSelector: matchLabels: app: "frontend"
	ingress: [{fromEntities: ["cluster"]}]
}`, []query{
			in("tcp 8.8.8.8 > 10.0.1.1:80", "deny by default"),
			out("tcp 10.0.1.1 > 8.8.8.8:80", "allow open"),
			{"web/admin", Ingress, "tcp 8.8.8.8 > 10.0.1.2:80", "allow open"},
		}},
	})
}

// docs/policy.md "How policies combine", point 1, and Kubernetes'
// policyTypes (DefaultDeny*).
func TestEnforcement(t *testing.T) {
	const p = `policies: web: p: {
	endpointSelector: matchLabels: app: "frontend"
	ingress: [{fromEntities: ["world"]}]
	ingressDeny: [{fromCIDR: ["8.8.8.0/24"]}]
}
`
	runCases(t, []policyCase{
		{"always", p + `settings: enforcement: "always"`, []query{
			in("tcp 1.1.1.1 > 10.0.1.1:80", "allow by web/p ingress[0]"),
			in("tcp 8.8.8.8 > 10.0.1.1:80", "deny by web/p ingressDeny[0]"),
			out("tcp 10.0.1.1 > 1.1.1.1:80", "deny by default"),
			{"db/cache", Ingress, "tcp 10.0.1.1 > 10.0.2.2:80", "deny by default"},
			{"db/cache", Egress, "tcp 10.0.2.2 > 10.0.1.1:80", "deny by default"},
			// The host firewall is opt-in per node: "always" does not
			// enforce a host no nodeSelector selects.
			{"node:node-a", Ingress, "tcp 8.8.8.8 > 192.168.0.1:22", "allow open"},
		}},
		{"never", p + `settings: enforcement: "never"`, []query{
			in("tcp 8.8.8.8 > 10.0.1.1:80", "allow open"),
			in("tcp 10.0.1.2 > 10.0.1.1:80", "allow open"),
		}},
		{"default", p + `settings: enforcement: "default"`, []query{
			in("tcp 8.8.8.8 > 10.0.1.1:80", "deny by web/p ingressDeny[0]"),
			in("tcp 10.0.1.2 > 10.0.1.1:80", "deny by default"),
			out("tcp 10.0.1.1 > 1.1.1.1:80", "allow open"),
			{"node:node-a", Ingress, "tcp 8.8.8.8 > 192.168.0.1:22", "allow open"},
		}},
	})

	t.Run("policyTypes", func(t *testing.T) {
		cfg := loadConfig(t, p)
		e := New(cfg)
		q := out("tcp 10.0.1.1 > 1.1.1.1:80", "")
		if got := summary(ask(t, e, q)); got != "allow open" {
			t.Fatalf("before DefaultDenyEgress: %s", got)
		}
		cfg.Policies[0].DefaultDenyEgress = true
		if got := summary(ask(t, New(cfg), q)); got != "deny by default" {
			t.Errorf("with DefaultDenyEgress: %s, want deny by default", got)
		}
		cfg.Policies[0].Ingress, cfg.Policies[0].IngressDeny = nil, nil
		if got := summary(ask(t, New(cfg), in("tcp 1.1.1.1 > 10.0.1.1:80", ""))); got != "allow open" {
			t.Errorf("no ingress rules, no DefaultDenyIngress: %s, want allow open", got)
		}
		cfg.Policies[0].DefaultDenyIngress = true
		if got := summary(ask(t, New(cfg), in("tcp 1.1.1.1 > 10.0.1.1:80", ""))); got != "deny by default" {
			t.Errorf("with DefaultDenyIngress: %s, want deny by default", got)
		}
	})
}

// docs/policy.md "Audit".
func TestAudit(t *testing.T) {
	runCases(t, []policyCase{
		{"settings.audit audits every deny", `policies: web: p: {
	endpointSelector: matchLabels: app: "frontend"
	ingress: [{fromEntities: ["cluster"]}]
	ingressDeny: [{fromEntities: ["host"]}]
}
settings: audit: true`, []query{
			in("tcp 8.8.8.8 > 10.0.1.1:80", "audit by default"),
			in("tcp 192.168.0.1 > 10.0.1.1:80", "audit by web/p ingressDeny[0]"),
			in("tcp 10.0.2.1 > 10.0.1.1:80", "allow by web/p ingress[0]"),
			out("tcp 10.0.1.1 > 8.8.8.8:80", "allow open"),
		}},
		{"a policy's audit flag", `policies: web: audited: {
	endpointSelector: matchLabels: app: "frontend"
	audit: true
	ingressDeny: [{fromEntities: ["world"]}, {fromEntities: ["host"]}]
	egress: [{toEntities: ["cluster"]}]
}
policies: web: strict: {
	endpointSelector: matchLabels: app: "frontend"
	ingress: [{fromEntities: ["all"]}]
	ingressDeny: [{fromEntities: ["host"]}]
}`, []query{
			in("tcp 8.8.8.8 > 10.0.1.1:80", "audit by web/audited ingressDeny[0]"),
			// The strict policy's deny is not hidden by the audited one.
			in("tcp 192.168.0.1 > 10.0.1.1:80", "deny by web/strict ingressDeny[0]"),
			in("tcp 10.0.2.1 > 10.0.1.1:80", "allow by web/strict ingress[0]"),
			// Only the audited policy enforces egress.
			out("tcp 10.0.1.1 > 8.8.8.8:80", "audit by default"),
			out("tcp 10.0.1.1 > 10.0.2.1:80", "allow by web/audited egress[0]"),
		}},
		{"default deny is audited only when every enforcing policy audits", `policies: web: audited: {
	endpointSelector: {}
	audit: true
	ingress: [{fromEntities: ["host"]}]
}
policies: web: strict: {
	endpointSelector: matchLabels: app: "frontend"
	ingress: [{fromEntities: ["world"]}]
	egress: [{toEntities: ["world"]}]
}`, []query{
			in("tcp 10.0.2.1 > 10.0.1.1:80", "deny by default"),
			{"web/admin", Ingress, "tcp 10.0.2.1 > 10.0.1.2:80", "audit by default"},
			{"web/admin", Ingress, "tcp 192.168.0.2 > 10.0.1.2:80", "allow by web/audited ingress[0]"},
		}},
		{"enforcement always alone is not audited", `policies: web: audited: {
	endpointSelector: {}
	audit: true
	egress: [{toEntities: ["world"]}]
}
settings: enforcement: "always"`, []query{
			in("tcp 8.8.8.8 > 10.0.1.1:80", "deny by default"),
			out("tcp 10.0.1.1 > 10.0.2.1:80", "audit by default"),
			{"db/cache", Ingress, "tcp 8.8.8.8 > 10.0.2.2:80", "deny by default"},
		}},
	})
}

// docs/policy.md "Connections": egress at the source, then ingress at the
// destination.
func TestConnection(t *testing.T) {
	cfg := loadConfig(t, `policies: web: "fe-egress": {
	endpointSelector: matchLabels: app: "frontend"
	egress: [{toEndpoints: [{namespaceSelector: matchLabels: team: "backend"}]}, {toEntities: ["world"]}]
}
policies: db: "pg-ingress": {
	endpointSelector: matchLabels: app: "postgres"
	ingress: [{fromEndpoints: [{namespaceSelector: {}, matchLabels: app: "frontend"}], toPorts: [{ports: [{port: 5432, protocol: "TCP"}]}]}]
}
policies: db: "cache-audit": {
	endpointSelector: matchLabels: app: "cache"
	audit: true
	ingress: [{fromEntities: ["host"]}]
}`)
	e := New(cfg)
	for _, tc := range []struct {
		flow     string
		want     string
		subject  string
		enforced bool
	}{
		{"tcp 10.0.1.1 > 10.0.2.1:5432", "allow by db/pg-ingress ingress[0]", "db/postgres", true},
		{"tcp 10.0.1.1 > 10.0.2.1:80", "deny by default", "db/postgres", true},
		{"tcp 10.0.1.1 > 10.0.1.2:80", "deny by default", "web/frontend", true},
		{"tcp 10.0.1.2 > 10.0.2.1:5432", "deny by default", "db/postgres", true},
		{"tcp 10.0.1.1 > 8.8.8.8:443", "allow by web/fe-egress egress[1]", "web/frontend", true},
		{"tcp 8.8.8.8 > 10.0.2.1:5432", "deny by default", "db/postgres", true},
		{"tcp 8.8.8.8 > 10.0.1.2:80", "allow open", "web/admin", false},
		{"tcp 10.0.1.2 > 8.8.8.8:80", "allow open", "web/admin", false},
		{"tcp 10.0.1.1 > 10.0.2.2:80", "audit by default", "db/cache", true},
		{"tcp 8.8.8.8 > 1.1.1.1:80", "allow open", "", false},
	} {
		v := e.Connection(parseFlow(t, tc.flow))
		if got := summary(v); got != tc.want || v.Decider.Subject != tc.subject || v.Enforced != tc.enforced {
			t.Errorf("Connection(%s) = %s at %q enforced %v, want %s at %q enforced %v", tc.flow, got, v.Decider.Subject, v.Enforced, tc.want, tc.subject, tc.enforced)
		}
	}
}

// The host firewall: policies with a nodeSelector select nodes.
func TestHostFirewall(t *testing.T) {
	runCases(t, []policyCase{{"nodeSelector", `clusterPolicies: workers: {
	nodeSelector: matchLabels: role: "worker"
	ingress: [
		{fromEntities: ["cluster"], toPorts: [{ports: [{port: 10250, protocol: "TCP"}]}]},
		{fromEndpoints: [{matchLabels: app: "postgres"}]},
		{toPorts: [{ports: [{port: "http"}]}]},
	]
}`, []query{
		{"node:node-a", Ingress, "tcp 10.0.1.1 > 192.168.0.1:10250", "allow by workers ingress[0]"},
		{"node:node-a", Ingress, "tcp 192.168.0.2 > 192.168.0.1:10250", "allow by workers ingress[0]"},
		{"node:node-a", Ingress, "tcp 192.168.0.1 > 192.168.0.1:10250", "allow by workers ingress[0]"},
		{"node:node-a", Ingress, "tcp 8.8.8.8 > 192.168.0.1:10250", "deny by default"},
		{"node:node-a", Ingress, "tcp 10.0.2.1 > 192.168.0.1:22", "allow by workers ingress[1]"},
		// A host has no named ports.
		{"node:node-a", Ingress, "tcp 8.8.8.8 > 192.168.0.1:8080", "deny by default"},
		{"node:node-a", Egress, "tcp 192.168.0.1 > 8.8.8.8:80", "allow open"},
		{"node:node-b", Ingress, "tcp 8.8.8.8 > 192.168.0.2:10250", "allow open"},
		// Node policies do not select endpoints.
		in("tcp 8.8.8.8 > 10.0.1.1:80", "allow open"),
	}}})
}
