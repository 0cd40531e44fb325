package load

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/source"
)

// posOf returns the position of the only occurrence of needle in the file
// name with contents src, so that expected positions come from the input
// text rather than from the code under test. A needle may carry a "|"
// marking where in it the position is: "- |{}" is the "{" after "- ".
func posOf(t *testing.T, name, src, needle string) source.Pos {
	t.Helper()
	before, _, marked := strings.Cut(needle, "|")
	if !marked {
		before = ""
	}
	needle = strings.Replace(needle, "|", "", 1)
	if n := strings.Count(src, needle); n != 1 {
		t.Fatalf("%q occurs %d times in %s; want a unique needle", needle, n, name)
	}
	off := strings.Index(src, needle) + len(before)
	line := strings.Count(src[:off], "\n") + 1
	col := off - strings.LastIndex(src[:off], "\n")
	return source.Pos{File: name, Line: line, Col: col}
}

func prefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// The examples of the Kubernetes documentation's NetworkPolicy page.
const docTestNetworkPolicy = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: test-network-policy
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
  - Ingress
  - Egress
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
        except:
        - 172.17.1.0/24
    - namespaceSelector:
        matchLabels:
          project: myproject
    - podSelector:
        matchLabels:
          role: frontend
    ports:
    - protocol: TCP
      port: 6379
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/24
    ports:
    - protocol: TCP
      port: 5978
`

const docDefaultDenyIngress = `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny-ingress
spec:
  podSelector: {}
  policyTypes:
  - Ingress
`

const docAllowAllIngress = `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-all-ingress
spec:
  podSelector: {}
  ingress:
  - {}
  policyTypes:
  - Ingress
`

const docDefaultDenyEgress = `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny-egress
spec:
  podSelector: {}
  policyTypes:
  - Egress
`

const docAllowAllEgress = `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-all-egress
spec:
  podSelector: {}
  egress:
  - {}
  policyTypes:
  - Egress
`

const docDefaultDenyAll = `---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny-all
spec:
  podSelector: {}
  policyTypes:
  - Ingress
  - Egress
`

const docMultiPortEgress = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: multi-port-egress
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
    - Egress
  egress:
    - to:
        - ipBlock:
            cidr: 10.0.0.0/24
      ports:
        - protocol: TCP
          port: 32000
          endPort: 32768
`

// loadPolicy loads one Kubernetes file and returns its only policy.
func loadPolicy(t *testing.T, name, src string) *model.Policy {
	t.Helper()
	cfg, err := loadFiles(t, map[string]string{name: src})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Policies) != 1 {
		t.Fatalf("%d policies, want 1", len(cfg.Policies))
	}
	return cfg.Policies[0]
}

func TestKubernetesTranslation(t *testing.T) {
	const f = "np.yaml"
	tests := []struct {
		name string
		src  string
		want func(t *testing.T, src string) *model.Policy
	}{{
		name: "test-network-policy",
		src:  docTestNetworkPolicy,
		want: func(t *testing.T, src string) *model.Policy {
			return &model.Policy{
				Namespace: "default", Name: "test-network-policy", FromKubernetes: true,
				Pos:              posOf(t, f, src, "name: |test-network-policy"),
				EndpointSelector: &model.Selector{MatchLabels: map[string]string{"role": "db"}, Pos: posOf(t, f, src, "matchLabels:\n      role: db")},
				Ingress: []*model.Rule{{
					HasPeers: true,
					CIDRs: []*model.CIDRPeer{{
						CIDR: prefix("172.17.0.0/16"), Except: []netip.Prefix{prefix("172.17.1.0/24")},
						Pos: posOf(t, f, src, "cidr: 172.17.0.0/16"),
					}},
					Endpoints: []*model.Selector{{
						// namespaceSelector alone: every pod of the matching namespaces.
						Pos: posOf(t, f, src, "namespaceSelector"),
						Namespaces: &model.Selector{
							MatchLabels: map[string]string{"project": "myproject"},
							Pos:         posOf(t, f, src, "matchLabels:\n          project: myproject"),
						},
					}, {
						// podSelector alone: pods of the policy's namespace.
						MatchLabels: map[string]string{"role": "frontend"},
						Pos:         posOf(t, f, src, "matchLabels:\n          role: frontend"),
					}},
					Ports: []*model.PortRule{{Port: 6379, Protocol: model.ProtoTCP, Pos: posOf(t, f, src, "protocol: TCP\n      port: 6379")}},
					Pos:   posOf(t, f, src, "- |from:"),
				}},
				Egress: []*model.Rule{{
					HasPeers: true,
					CIDRs:    []*model.CIDRPeer{{CIDR: prefix("10.0.0.0/24"), Pos: posOf(t, f, src, "cidr: 10.0.0.0/24")}},
					Ports:    []*model.PortRule{{Port: 5978, Protocol: model.ProtoTCP, Pos: posOf(t, f, src, "protocol: TCP\n      port: 5978")}},
					Pos:      posOf(t, f, src, "- |to:"),
				}},
				DefaultDenyIngress: true,
				DefaultDenyEgress:  true,
			}
		},
	}, {
		name: "default-deny-ingress",
		src:  docDefaultDenyIngress,
		want: func(t *testing.T, src string) *model.Policy {
			// No metadata.namespace: the policy is in namespace default.
			return &model.Policy{
				Namespace: "default", Name: "default-deny-ingress", FromKubernetes: true,
				Pos:                posOf(t, f, src, "default-deny-ingress"),
				EndpointSelector:   &model.Selector{Pos: posOf(t, f, src, "podSelector: |{}")},
				DefaultDenyIngress: true,
			}
		},
	}, {
		name: "allow-all-ingress",
		src:  docAllowAllIngress,
		want: func(t *testing.T, src string) *model.Policy {
			// A rule without from matches every peer: written out as the
			// entity all, since an ebpfc rule with neither peers nor ports
			// matches nothing.
			rule := posOf(t, f, src, "- |{}")
			return &model.Policy{
				Namespace: "default", Name: "allow-all-ingress", FromKubernetes: true,
				Pos:                posOf(t, f, src, "allow-all-ingress"),
				EndpointSelector:   &model.Selector{Pos: posOf(t, f, src, "podSelector: |{}")},
				Ingress:            []*model.Rule{{HasPeers: true, Entities: []model.EntityPeer{{Entity: model.EntityAll, Pos: rule}}, Pos: rule}},
				DefaultDenyIngress: true,
			}
		},
	}, {
		name: "default-deny-egress",
		src:  docDefaultDenyEgress,
		want: func(t *testing.T, src string) *model.Policy {
			return &model.Policy{
				Namespace: "default", Name: "default-deny-egress", FromKubernetes: true,
				Pos:               posOf(t, f, src, "default-deny-egress"),
				EndpointSelector:  &model.Selector{Pos: posOf(t, f, src, "podSelector: |{}")},
				DefaultDenyEgress: true,
			}
		},
	}, {
		name: "allow-all-egress",
		src:  docAllowAllEgress,
		want: func(t *testing.T, src string) *model.Policy {
			rule := posOf(t, f, src, "- |{}")
			return &model.Policy{
				Namespace: "default", Name: "allow-all-egress", FromKubernetes: true,
				Pos:               posOf(t, f, src, "allow-all-egress"),
				EndpointSelector:  &model.Selector{Pos: posOf(t, f, src, "podSelector: |{}")},
				Egress:            []*model.Rule{{HasPeers: true, Entities: []model.EntityPeer{{Entity: model.EntityAll, Pos: rule}}, Pos: rule}},
				DefaultDenyEgress: true,
			}
		},
	}, {
		name: "default-deny-all",
		src:  docDefaultDenyAll,
		want: func(t *testing.T, src string) *model.Policy {
			return &model.Policy{
				Namespace: "default", Name: "default-deny-all", FromKubernetes: true,
				Pos:                posOf(t, f, src, "default-deny-all"),
				EndpointSelector:   &model.Selector{Pos: posOf(t, f, src, "podSelector: |{}")},
				DefaultDenyIngress: true,
				DefaultDenyEgress:  true,
			}
		},
	}, {
		name: "multi-port-egress",
		src:  docMultiPortEgress,
		want: func(t *testing.T, src string) *model.Policy {
			return &model.Policy{
				Namespace: "default", Name: "multi-port-egress", FromKubernetes: true,
				Pos:              posOf(t, f, src, "multi-port-egress"),
				EndpointSelector: &model.Selector{MatchLabels: map[string]string{"role": "db"}, Pos: posOf(t, f, src, "matchLabels")},
				Egress: []*model.Rule{{
					HasPeers: true,
					CIDRs:    []*model.CIDRPeer{{CIDR: prefix("10.0.0.0/24"), Pos: posOf(t, f, src, "cidr:")}},
					Ports:    []*model.PortRule{{Port: 32000, EndPort: 32768, Protocol: model.ProtoTCP, Pos: posOf(t, f, src, "protocol: TCP")}},
					Pos:      posOf(t, f, src, "- |to:"),
				}},
				DefaultDenyEgress: true,
			}
		},
	}, {
		name: "named, protocol-wide and SCTP ports; from: [] matches every peer",
		src: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ports, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: []
    ports:
    - port: http
    - protocol: UDP
    - {protocol: SCTP, port: 9000}
`,
		want: func(t *testing.T, src string) *model.Policy {
			return &model.Policy{
				Namespace: "shop", Name: "ports", FromKubernetes: true,
				Pos:              posOf(t, f, src, "name: |ports"),
				EndpointSelector: &model.Selector{MatchLabels: map[string]string{"app": "web"}, Pos: posOf(t, f, src, "{matchLabels")},
				Ingress: []*model.Rule{{
					HasPeers: true,
					Entities: []model.EntityPeer{{Entity: model.EntityAll, Pos: posOf(t, f, src, "from: |[]")}},
					Ports: []*model.PortRule{
						{Name: "http", Protocol: model.ProtoTCP, Pos: posOf(t, f, src, "port: http")},
						{Protocol: model.ProtoUDP, Pos: posOf(t, f, src, "protocol: UDP")},
						{Port: 9000, Protocol: model.ProtoSCTP, Pos: posOf(t, f, src, "{protocol: SCTP")},
					},
					Pos: posOf(t, f, src, "- |from"),
				}},
				DefaultDenyIngress: true,
			}
		},
	}, {
		name: "podSelector and namespaceSelector in one peer match pods in namespaces (and); two peers are or",
		src: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: and-or, namespace: shop}
spec:
  podSelector:
    matchExpressions:
    - {key: tier, operator: In, values: [web, api]}
    - {key: canary, operator: DoesNotExist}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {user: alice}}
      podSelector: {matchLabels: {role: client}}
  - from:
    - namespaceSelector: {matchLabels: {user: bob}}
    - podSelector: {matchLabels: {role: admin}}
`,
		want: func(t *testing.T, src string) *model.Policy {
			return &model.Policy{
				Namespace: "shop", Name: "and-or", FromKubernetes: true,
				Pos: posOf(t, f, src, "and-or"),
				EndpointSelector: &model.Selector{
					MatchExpressions: []model.Expression{
						{Key: "tier", Operator: model.OpIn, Values: []string{"web", "api"}, Pos: posOf(t, f, src, "{key: tier")},
						{Key: "canary", Operator: model.OpDoesNotExist, Pos: posOf(t, f, src, "{key: canary")},
					},
					Pos: posOf(t, f, src, "matchExpressions"),
				},
				Ingress: []*model.Rule{{
					HasPeers: true,
					Endpoints: []*model.Selector{{
						MatchLabels: map[string]string{"role": "client"},
						Namespaces:  &model.Selector{MatchLabels: map[string]string{"user": "alice"}, Pos: posOf(t, f, src, "{matchLabels: {user: alice")},
						Pos:         posOf(t, f, src, "{matchLabels: {role: client"),
					}},
					Pos: posOf(t, f, src, "- |from:\n    - namespaceSelector: {matchLabels: {user: alice"),
				}, {
					HasPeers: true,
					Endpoints: []*model.Selector{{
						Namespaces: &model.Selector{MatchLabels: map[string]string{"user": "bob"}, Pos: posOf(t, f, src, "{matchLabels: {user: bob")},
						Pos:        posOf(t, f, src, "namespaceSelector: {matchLabels: {user: bob"),
					}, {
						MatchLabels: map[string]string{"role": "admin"},
						Pos:         posOf(t, f, src, "{matchLabels: {role: admin"),
					}},
					Pos: posOf(t, f, src, "- |from:\n    - namespaceSelector: {matchLabels: {user: bob"),
				}},
				DefaultDenyIngress: true,
			}
		},
	}, {
		name: "policyTypes absent: Ingress, plus Egress when there are egress rules",
		src: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: implied}
spec:
  podSelector: {}
  egress:
  - ports: [{port: 53, protocol: UDP}]
`,
		want: func(t *testing.T, src string) *model.Policy {
			rule := posOf(t, f, src, "- |ports")
			return &model.Policy{
				Namespace: "default", Name: "implied", FromKubernetes: true,
				Pos:              posOf(t, f, src, "implied"),
				EndpointSelector: &model.Selector{Pos: posOf(t, f, src, "podSelector: |{}")},
				Egress: []*model.Rule{{
					HasPeers: true,
					Entities: []model.EntityPeer{{Entity: model.EntityAll, Pos: rule}},
					Ports:    []*model.PortRule{{Port: 53, Protocol: model.ProtoUDP, Pos: posOf(t, f, src, "{port: 53")}},
					Pos:      rule,
				}},
				DefaultDenyIngress: true,
				DefaultDenyEgress:  true,
			}
		},
	}, {
		name: "policyTypes absent and an empty egress list: Ingress only",
		src: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: empty-egress}
spec:
  podSelector: {}
  egress: []
  policyTypes: []
`,
		want: func(t *testing.T, src string) *model.Policy {
			return &model.Policy{
				Namespace: "default", Name: "empty-egress", FromKubernetes: true,
				Pos:                posOf(t, f, src, "empty-egress"),
				EndpointSelector:   &model.Selector{Pos: posOf(t, f, src, "podSelector: |{}")},
				DefaultDenyIngress: true,
			}
		},
	}, {
		name: "rules of a direction policyTypes leaves out do not apply",
		src: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-only}
spec:
  podSelector: null
  policyTypes: [Egress]
  ingress:
  - ports: [{port: 80}]
`,
		want: func(t *testing.T, src string) *model.Policy {
			// podSelector: null is an absent podSelector: every pod.
			return &model.Policy{
				Namespace: "default", Name: "egress-only", FromKubernetes: true,
				Pos:               posOf(t, f, src, "egress-only"),
				EndpointSelector:  &model.Selector{Pos: posOf(t, f, src, "podSelector: null")},
				DefaultDenyEgress: true,
			}
		},
	}, {
		name: "JSON",
		src: `{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
 "metadata": {"name": "json", "namespace": "web"},
 "spec": {"podSelector": {"matchLabels": {"app": "web"}},
  "ingress": [{"from": [{"ipBlock": {"cidr": "192.168.0.0/16"}}], "ports": [{"port": 443}]}]}}
`,
		want: func(t *testing.T, src string) *model.Policy {
			const f = "np.json"
			return &model.Policy{
				Namespace: "web", Name: "json", FromKubernetes: true,
				Pos:              posOf(t, f, src, `"name": |"json"`),
				EndpointSelector: &model.Selector{MatchLabels: map[string]string{"app": "web"}, Pos: posOf(t, f, src, `{"matchLabels"`)},
				Ingress: []*model.Rule{{
					HasPeers: true,
					CIDRs:    []*model.CIDRPeer{{CIDR: prefix("192.168.0.0/16"), Pos: posOf(t, f, src, `{"cidr"`)}},
					Ports:    []*model.PortRule{{Port: 443, Protocol: model.ProtoTCP, Pos: posOf(t, f, src, `{"port": 443`)}},
					Pos:      posOf(t, f, src, `{"from"`),
				}},
				DefaultDenyIngress: true,
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := f
			if strings.HasPrefix(tt.src, "{") {
				name = "np.json"
			}
			got := loadPolicy(t, name, tt.src)
			if diff := cmp.Diff(tt.want(t, tt.src), got, equateNet); diff != "" {
				t.Errorf("policy (-want +got):\n%s", diff)
			}
		})
	}
}

// A config with Kubernetes objects beside CUE: policies from both, a
// namespace declared both ways, namespaces implied by Kubernetes policies.
func TestKubernetesWithCUE(t *testing.T) {
	files := map[string]string{
		"a.cue": `package ebpfc

nodes: "node-a": {addresses: ["192.168.0.1"], devices: ["eth0"]}
namespaces: shop: labels: team: "shop"
endpoints: shop: web: {node: "node-a", interface: "lxc-web", addresses: ["10.0.1.1"], labels: app: "web"}
policies: shop: web: {endpointSelector: {}, ingress: [{fromCIDR: ["10.9.0.0/16"]}]}
`,
		// A JSON inventory and a JSON Kubernetes list side by side.
		"inv.json": `{"endpoints": [{"namespace": "api", "name": "api", "node": "node-a", "interface": "lxc-api", "addresses": ["10.0.2.1"]}]}`,
		"list.json": `{"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": [
  {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"team": "shop", "kubernetes.io/metadata.name": "shop"}},
   "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}},
  {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "db", "namespace": "db"}, "spec": {"podSelector": {}}}
]}`,
		"objects.yaml": `# Objects as kubectl get -o yaml writes them.
apiVersion: v1
kind: NamespaceList
items:
- metadata:
    name: api
    labels: {team: backend}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicyList
items:
- metadata:
    name: web
    namespace: shop-k8s
    uid: 0b4c7c1e-8c0e-4f6e-9b1a-3c1f0a0e9d2f
    resourceVersion: "123"
    generation: 1
    creationTimestamp: "2024-01-01T00:00:00Z"
    annotations: {kubectl.kubernetes.io/last-applied-configuration: "{}"}
  spec:
    podSelector: {}
---
---
`,
	}
	cfg, err := loadFiles(t, files)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range cfg.Policies {
		ids = append(ids, p.ID())
		if p.FromKubernetes != (p.ID() != "shop/web") {
			t.Errorf("policy %s: FromKubernetes %v", p.ID(), p.FromKubernetes)
		}
	}
	if want := []string{"db/db", "shop/web", "shop-k8s/web"}; !slices.Equal(ids, want) {
		t.Errorf("policies %v, want %v", ids, want)
	}
	got := map[string]map[string]string{}
	for _, ns := range cfg.Namespaces {
		got[ns.Name] = ns.Labels
	}
	want := map[string]map[string]string{
		"api":      {"team": "backend", namespaceNameLabel: "api"},
		"db":       {namespaceNameLabel: "db"},
		"shop":     {"team": "shop", namespaceNameLabel: "shop"},
		"shop-k8s": {namespaceNameLabel: "shop-k8s"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("namespaces (-want +got):\n%s", diff)
	}
	for _, ns := range cfg.Namespaces {
		if !ns.Pos.IsValid() {
			t.Errorf("namespace %s has no position", ns.Name)
		}
	}
	if len(cfg.Endpoints) != 2 {
		t.Errorf("%d endpoints, want 2 (the inventory is still an inventory)", len(cfg.Endpoints))
	}
}

func TestKubernetesErrors(t *testing.T) {
	const cuePolicy = "package ebpfc\n\npolicies: default: web: {endpointSelector: {}, ingress: [{fromCIDR: [\"10.0.0.0/8\"]}]}\nnamespaces: shop: labels: team: \"shop\"\n"
	np := func(spec string) string {
		return "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: web}\nspec:\n" + spec
	}
	tests := []struct {
		name  string
		files map[string]string
		pos   []string // file:line:col of every error, in order
		msg   []string // a substring of each
	}{{
		name:  "unknown field",
		files: map[string]string{"x.yaml": np("  podSelector: {}\n  ingres: []\n")},
		pos:   []string{"x.yaml:6:3"},
		msg:   []string{`spec.ingres: unknown field "ingres": NetworkPolicySpec has podSelector, policyTypes, ingress, egress`},
	}, {
		name:  "wrong type",
		files: map[string]string{"x.yaml": np("  ingress:\n  - ports:\n    - port: true\n")},
		pos:   []string{"x.yaml:7:13"},
		msg:   []string{"spec.ingress[0].ports[0].port: wrong type bool, want number or string"},
	}, {
		name:  "ipBlock with a selector",
		files: map[string]string{"x.yaml": np("  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.0/8}\n      podSelector: {}\n")},
		pos:   []string{"x.yaml:7:7"},
		msg:   []string{"spec.ingress[0].from[0]: may not specify both ipBlock and another peer"},
	}, {
		name:  "empty peer",
		files: map[string]string{"x.yaml": np("  egress:\n  - to:\n    - {}\n")},
		pos:   []string{"x.yaml:7:7"},
		msg:   []string{"spec.egress[0].to[0]: must specify a peer: podSelector, namespaceSelector or ipBlock"},
	}, {
		name: "except not a strict subset",
		files: map[string]string{"x.yaml": np(`  ingress:
  - from:
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8, 192.168.0.0/16, 10.1.0.0/16]}
`)},
		pos: []string{"x.yaml:7:44", "x.yaml:7:56"},
		msg: []string{
			"spec.ingress[0].from[0].ipBlock.except[0]: except 10.0.0.0/8 must be a strict subset of cidr 10.0.0.0/8",
			"except[1]: except 192.168.0.0/16 must be a strict subset of cidr 10.0.0.0/8",
		},
	}, {
		name:  "CIDR with host bits, and a bad CIDR",
		files: map[string]string{"x.yaml": np("  ingress:\n  - from:\n    - ipBlock: {cidr: 10.0.0.1/8}\n    - ipBlock: {cidr: 10.0.0.0/33}\n")},
		pos:   []string{"x.yaml:7:23", "x.yaml:8:23"},
		msg:   []string{"CIDR 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?", `invalid CIDR "10.0.0.0/33"`},
	}, {
		name:  "ipBlock without cidr",
		files: map[string]string{"x.yaml": np("  ingress:\n  - from:\n    - ipBlock: {except: [10.0.0.0/8]}\n")},
		pos:   []string{"x.yaml:7:16"},
		msg:   []string{"ipBlock.cidr: cidr is required"},
	}, {
		name:  "protocol",
		files: map[string]string{"x.yaml": np("  ingress:\n  - ports:\n    - protocol: ICMP\n")},
		pos:   []string{"x.yaml:7:17"},
		msg:   []string{`spec.ingress[0].ports[0].protocol: unsupported protocol "ICMP": want "TCP", "UDP" or "SCTP"`},
	}, {
		name: "endPort",
		files: map[string]string{"x.yaml": np(`  egress:
  - ports:
    - endPort: 90
    - {port: http, endPort: 90}
    - {port: 100, endPort: 90}
    - {port: 100, endPort: 70000}
`)},
		pos: []string{"x.yaml:7:16", "x.yaml:8:29", "x.yaml:9:28", "x.yaml:10:28"},
		msg: []string{
			"spec.egress[0].ports[0].endPort: may not be specified when port is not specified",
			`ports[1].endPort: may not be specified when port is a name ("http")`,
			"ports[2].endPort: endPort 90 must be greater than or equal to port 100",
			"ports[3].endPort: endPort 70000 is out of range [1, 65535]",
		},
	}, {
		name: "port numbers and names",
		files: map[string]string{"x.yaml": np(`  egress:
  - ports:
    - port: 0
    - port: 70000
    - port: "80"
    - port: http--alt
    - port: 80.5
`)},
		pos: []string{"x.yaml:7:13", "x.yaml:8:13", "x.yaml:9:13", "x.yaml:10:13", "x.yaml:11:13"},
		msg: []string{
			"port 0 is out of range [1, 65535]",
			"port 70000 is out of range [1, 65535]",
			`invalid port name "80": want at least one letter; write a port number without quotes`,
			`invalid port name "http--alt": '-' may not be next to another '-'`,
			"80.5 is not a 32-bit integer",
		},
	}, {
		name:  "policyTypes",
		files: map[string]string{"x.yaml": np("  policyTypes: [Ingress, Both]\n")},
		pos:   []string{"x.yaml:5:26"},
		msg:   []string{`spec.policyTypes[1]: unsupported value "Both": want "Ingress" or "Egress"`},
	}, {
		name:  "too many policyTypes",
		files: map[string]string{"x.yaml": np("  policyTypes: [Ingress, Egress, Ingress]\n")},
		pos:   []string{"x.yaml:5:16"},
		msg:   []string{"spec.policyTypes: may not list more than two policyTypes"},
	}, {
		name:  "kind not accepted",
		files: map[string]string{"x.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n"},
		pos:   []string{"x.yaml:2:7", "x.yaml:6:7"},
		msg: []string{
			"kind: Pod is not accepted: a Kubernetes file holds NetworkPolicy (networking.k8s.io/v1), Namespace (v1), and List",
			"write Cilium-style policies in CUE under policies or clusterPolicies",
		},
	}, {
		name:  "old apiVersion",
		files: map[string]string{"x.yaml": "apiVersion: extensions/v1beta1\nkind: NetworkPolicy\nmetadata: {name: p}\n"},
		pos:   []string{"x.yaml:1:13"},
		msg:   []string{"apiVersion: extensions/v1beta1 is not a version of NetworkPolicy that ebpfc reads; change apiVersion to networking.k8s.io/v1"},
	}, {
		name:  "JSON object without kind",
		files: map[string]string{"x.json": `{"apiVersion": "networking.k8s.io/v1", "metadata": {"name": "p"}}`},
		pos:   []string{"x.json:1:1"},
		msg:   []string{"kind is required"},
	}, {
		name:  "metadata",
		files: map[string]string{"x.yaml": "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: Web_1, namespace: -web, owner: me}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {generateName: web-}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"},
		pos:   []string{"x.yaml:3:18", "x.yaml:3:36", "x.yaml:3:42", "x.yaml:7:11", "x.yaml:9:1"},
		msg: []string{
			`metadata.name: invalid name "Web_1": want a DNS subdomain`,
			`metadata.namespace: invalid namespace "-web"`,
			`metadata.owner: unknown field "owner"`,
			"metadata: generateName is not supported",
			"metadata: NetworkPolicy needs metadata with a name",
		},
	}, {
		name:  "namespace objects",
		files: map[string]string{"x.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, namespace: x}\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: db\n  labels: {kubernetes.io/metadata.name: database, \"bad key!\": x, tier: \"-x\"}\n"},
		pos:   []string{"x.yaml:3:35", "x.yaml:8:9", "x.yaml:9:51", "x.yaml:9:72"},
		msg: []string{
			"metadata.namespace: a Namespace has no namespace",
			`label kubernetes.io/metadata.name is "database"; it is always the namespace's name ("db")`,
			`invalid label key "bad key!"`,
			`invalid label value "-x"`,
		},
	}, {
		name: "selectors",
		files: map[string]string{"x.yaml": np(`  podSelector:
    matchExpressions:
    - {key: a, operator: In}
    - {key: b, operator: Exists, values: [x]}
    - {key: c, operator: Equals, values: [x]}
    - {operator: Exists}
`)},
		pos: []string{"x.yaml:7:26", "x.yaml:8:26", "x.yaml:9:26", "x.yaml:10:7"},
		msg: []string{
			"spec.podSelector.matchExpressions[0].values: operator In needs at least one value",
			"matchExpressions[1].values: operator Exists takes no values; remove them",
			`matchExpressions[2].operator: unsupported operator "Equals"`,
			"matchExpressions[3]: key is required",
		},
	}, {
		name:  "duplicate key",
		files: map[string]string{"x.yaml": np("  podSelector: {}\n  podSelector: {}\n")},
		pos:   []string{"x.yaml:6:3"},
		msg:   []string{`duplicate key "podSelector" (first at x.yaml:5:3)`},
	}, {
		name:  "YAML syntax",
		files: map[string]string{"x.yaml": "apiVersion: v1\n kind: Namespace\n"},
		pos:   []string{"x.yaml:2:2"},
		msg:   []string{"invalid YAML: mapping values are not allowed in this context"},
	}, {
		name:  "a document that is not an object",
		files: map[string]string{"x.yaml": "- apiVersion: v1\n"},
		pos:   []string{"x.yaml:1:1"},
		msg:   []string{"wrong type array: a Kubernetes object is an object with apiVersion, kind and metadata"},
	}, {
		name:  "a list inside a list",
		files: map[string]string{"x.yaml": "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: List, items: []}\n"},
		pos:   []string{"x.yaml:4:26"},
		msg:   []string{"items[0].kind: a List inside a list"},
	}, {
		name:  "a typed list with another kind",
		files: map[string]string{"x.yaml": "apiVersion: v1\nkind: NamespaceList\nitems:\n- {kind: Pod}\n"},
		pos:   []string{"x.yaml:4:10"},
		msg:   []string{"items[0].kind: a NamespaceList holds Namespace objects, not Pod"},
	}, {
		name: "policy defined in CUE and Kubernetes",
		files: map[string]string{
			"p.cue":  cuePolicy,
			"x.yaml": "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web}\n",
		},
		pos: []string{"p.cue:3:20", "x.yaml:3:18"},
		msg: []string{
			"policy default/web is defined twice: here and at x.yaml:3:18; rename one",
			"policy default/web is defined twice: here and at p.cue:3:20; rename one",
		},
	}, {
		name: "policy defined twice in Kubernetes files",
		files: map[string]string{
			"x.yaml": "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: a}\n",
			"y.json": `{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "web", "namespace": "a"}}`,
		},
		pos: []string{"x.yaml:3:18", "y.json:1:86"},
		msg: []string{"here and at y.json:1:86", "here and at x.yaml:3:18"},
	}, {
		name: "namespace declared with different labels",
		files: map[string]string{
			"p.cue":  cuePolicy,
			"x.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: shopping}}\n",
		},
		pos: []string{"p.cue:4:13", "x.yaml:3:18"},
		msg: []string{
			"namespace shop is declared twice with different labels: here {team=shop}, at x.yaml:3:18 {team=shopping}",
			"namespace shop is declared twice with different labels: here {team=shopping}, at p.cue:4:13 {team=shop}",
		},
	}, {
		name:  "rules not a list",
		files: map[string]string{"x.yaml": np("  ingress: {}\n")},
		pos:   []string{"x.yaml:5:12"},
		msg:   []string{"spec.ingress: wrong type object, want array"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadFiles(t, tt.files)
			if err == nil {
				t.Fatal("no error")
			}
			errs, ok := source.AsErrors(err)
			if !ok {
				t.Fatalf("not positioned: %v", err)
			}
			if len(errs) != len(tt.pos) {
				t.Fatalf("%d errors, want %d:\n%v", len(errs), len(tt.pos), err)
			}
			for i, e := range errs {
				if e.Pos.String() != tt.pos[i] || !strings.Contains(e.Msg, tt.msg[i]) {
					t.Errorf("error %d:\n  got  %s\n  want %s: ...%s...", i, e, tt.pos[i], tt.msg[i])
				}
			}
		})
	}
}

// TestKubernetesEmptyFiles: a YAML file of comments or empty documents
// holds no objects, and that is not an error.
func TestKubernetesEmptyFiles(t *testing.T) {
	cfg, err := loadFiles(t, map[string]string{
		"a.yaml": "",
		"b.yml":  "# nothing yet\n",
		"c.yaml": "---\n---\n",
		"d.cue":  "package ebpfc\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Policies)+len(cfg.Namespaces) != 0 {
		t.Errorf("objects from empty files: %d policies, %d namespaces", len(cfg.Policies), len(cfg.Namespaces))
	}
}

func FuzzLoadKubernetes(f *testing.F) {
	for _, s := range []string{docTestNetworkPolicy, docAllowAllIngress, docMultiPortEgress, docDefaultDenyAll,
		"apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: a, labels: {x: y}}}\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := fstest.MapFS{
			"x.yaml": &fstest.MapFile{Data: data},
			"x.json": &fstest.MapFile{Data: data},
		}
		cfg, err := LoadFS(fsys, []string{"x.yaml", "x.json"})
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
