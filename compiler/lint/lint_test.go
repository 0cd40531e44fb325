package lint

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ebpfc/ebpfc/backend"
	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/load"
	"github.com/ebpfc/ebpfc/source"
	"github.com/ebpfc/ebpfc/verifier"
)

// base is the cluster every case adds its policies to: two namespaces with
// one endpoint each, the web endpoint with a named TCP port http, the api
// endpoint with grpc (TCP) and dns (UDP).
const base = `package ebpfc

cluster: {name: "t", podCIDRs: ["10.0.0.0/16"]}
nodes: "node-a": {addresses: ["192.168.1.1"], labels: role: "worker"}
namespaces: {web: labels: team: "w", api: labels: team: "a"}
endpoints: web: "web-0": {node: "node-a", interface: "lxc-web0", addresses: ["10.0.1.1"], labels: {app: "web", tier: "front"}, namedPorts: http: {port: 8080}}
endpoints: api: "api-0": {node: "node-a", interface: "lxc-api0", addresses: ["10.0.1.2"], labels: {app: "api"}, namedPorts: {grpc: {port: 9090}, dns: {port: 53, protocol: "UDP"}}}
`

// want is a finding a case expects: check id at the first character of
// the text at, which must occur once in the case's files; contains, when
// set, must be in the message or hint.
type want struct {
	id, at, contains string
}

type lintCase struct {
	name  string
	files map[string]string // added to base.cue
	opts  Options
	check string // the id under test: its findings must be exactly want
	want  []want
}

// writeConfig writes base.cue and files into a new directory.
func writeConfig(t *testing.T, files map[string]string, withBase bool) string {
	t.Helper()
	dir := t.TempDir()
	if withBase {
		files = mapWith(files, "base.cue", base)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mapWith(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for a, b := range m {
		out[a] = b
	}
	return out
}

// locate returns "file:line:col" of the unique occurrence of at in files.
func locate(t *testing.T, files map[string]string, at string) string {
	t.Helper()
	var found []string
	for name, data := range files {
		for i, line := range strings.Split(data, "\n") {
			if c := strings.Index(line, at); c >= 0 {
				if strings.Contains(line[c+1:], at) {
					t.Fatalf("marker %q occurs twice on a line of %s", at, name)
				}
				found = append(found, fmt.Sprintf("%s:%d:%d", name, i+1, c+1))
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("marker %q occurs %d times (%v), want once", at, len(found), found)
	}
	return found[0]
}

// runCase lints the case's configuration and checks that the findings of
// the check under test are exactly the wanted ones.
func runCase(t *testing.T, c lintCase) []Finding {
	t.Helper()
	withBase := true
	if _, ok := c.files["base.cue"]; ok {
		withBase = false
	}
	dir := writeConfig(t, c.files, withBase)
	all := c.files
	if withBase {
		all = mapWith(c.files, "base.cue", base)
	}
	findings, err := Dir(dir, c.opts)
	if err != nil {
		t.Fatal(err)
	}
	type keyed struct {
		key string
		f   Finding
	}
	var got []keyed
	for _, f := range findings {
		if f.ID != c.check {
			continue
		}
		rel, err := filepath.Rel(dir, f.Pos.File)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, keyed{fmt.Sprintf("%s %s:%d:%d", f.ID, rel, f.Pos.Line, f.Pos.Col), f})
	}
	// Each wanted finding takes one found finding at its position whose
	// message or hint has the wanted text; none may be left on either side.
	var missing []string
	for _, w := range c.want {
		key := w.id + " " + locate(t, all, w.at)
		i := slices.IndexFunc(got, func(k keyed) bool {
			return k.key == key && strings.Contains(k.f.Message+"\n"+k.f.Hint, w.contains)
		})
		if i < 0 {
			missing = append(missing, fmt.Sprintf("%s (with %q)", key, w.contains))
			continue
		}
		got = slices.Delete(got, i, i+1)
	}
	if len(missing) > 0 || len(got) > 0 {
		var b strings.Builder
		for _, f := range findings {
			fmt.Fprintf(&b, "  %s: %s: %s [%s]\n    hint: %s\n", f.Pos, f.Severity, f.Message, f.ID, f.Hint)
		}
		var extra []string
		for _, k := range got {
			extra = append(extra, k.key+": "+k.f.Message)
		}
		t.Errorf("%s findings:\n missing    %q\n unexpected %q\nall findings:\n%s", c.check, missing, extra, b.String())
	}
	for _, f := range findings {
		if f.Hint == "" || f.Message == "" || !f.Pos.IsValid() {
			t.Errorf("finding without hint, message or position: %+v", f)
		}
	}
	return findings
}

func runCases(t *testing.T, cases []lintCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runCase(t, c) })
	}
}

func policy(body string) map[string]string {
	return map[string]string{"c.cue": "package ebpfc\n\n" + body + "\n"}
}

func TestShadowedRules(t *testing.T) {
	runCases(t, []lintCase{
		{name: "narrower CIDR and port in the same policy", check: "EBPFC001", files: policy(`
policies: web: p: {
	endpointSelector: matchLabels: app: "web"
	ingress: [{fromCIDR: ["10.1.0.0/16"], toPorts: [{ports: [{port: 80, endPort: 90, protocol: "TCP"}]}]},
		{fromCIDR: ["10.1.2.0/24"], toPorts: [{ports: [{port: 85, protocol: "TCP"}]}]}]
}`), want: []want{{"EBPFC001", `{fromCIDR: ["10.1.2.0/24"]`, "ingress[0] of policy web/p"}}},
		{name: "port outside the broader range", check: "EBPFC001", files: policy(`
policies: web: p: {
	endpointSelector: matchLabels: app: "web"
	ingress: [{fromCIDR: ["10.1.0.0/16"], toPorts: [{ports: [{port: 80, endPort: 90, protocol: "TCP"}]}]},
		{fromCIDR: ["10.1.2.0/24"], toPorts: [{ports: [{port: 95, protocol: "TCP"}]}]}]
}`)},
		{name: "ranges that together cover the port", check: "EBPFC001", files: policy(`
policies: web: p: {
	endpointSelector: matchLabels: app: "web"
	ingress: [{toPorts: [{ports: [{port: 80, endPort: 89, protocol: "TCP"}, {port: 90, endPort: 99, protocol: "TCP"}]}]},
		{toPorts: [{ports: [{port: 85, endPort: 95, protocol: "TCP"}]}]}]
}`), want: []want{{"EBPFC001", `{toPorts: [{ports: [{port: 85`, ""}}},
		{name: "TCP is within ANY, not the other way", check: "EBPFC001", files: policy(`
policies: web: p: {
	endpointSelector: matchLabels: app: "web"
	ingress: [{toPorts: [{ports: [{port: 53, protocol: "TCP"}]}]},
		{toPorts: [{ports: [{port: 53, protocol: "ANY"}]}]}]
}`), want: []want{{"EBPFC001", `{toPorts: [{ports: [{port: 53, protocol: "TCP"}]}]}`, "ingress[1]"}}},
		{name: "broader rule in a policy selecting a superset", check: "EBPFC001", files: policy(`
policies: web: narrow: {
	endpointSelector: matchLabels: {app: "web", tier: "front"}
	egress: [{toEndpoints: [{matchLabels: app: "web"}]}]
}
policies: web: all: {
	endpointSelector: {}
	egress: [{toEntities: ["cluster"]}]
}`), want: []want{{"EBPFC001", `{toEndpoints`, "egress[0] of policy web/all"}}},
		{name: "broader rule in a policy selecting other endpoints", check: "EBPFC001", files: policy(`
policies: web: narrow: {
	endpointSelector: matchLabels: app: "web"
	egress: [{toEndpoints: [{matchLabels: app: "web"}]}]
}
policies: web: other: {
	endpointSelector: matchLabels: tier: "front"
	egress: [{toEntities: ["cluster"]}]
}`)},
		{name: "cluster-wide policy covers a namespaced one", check: "EBPFC001", files: policy(`
policies: web: p: {
	endpointSelector: matchLabels: app: "web"
	ingress: [{fromEntities: ["world"], toPorts: [{ports: [{port: 443, protocol: "TCP"}]}]}]
}
clusterPolicies: q: {
	endpointSelector: matchExpressions: [{key: "app", operator: "In", values: ["web", "api"]}]
	ingress: [{fromEntities: ["all"], toPorts: [{ports: [{port: 443, protocol: "TCP"}]}]}]
}`), want: []want{{"EBPFC001", `{fromEntities: ["world"]`, ""}}},
		{name: "identical rules: only the later one", check: "EBPFC001", files: policy(`
policies: web: a: {
	endpointSelector: matchLabels: app: "web"
	ingress: [{fromCIDR: ["192.0.2.0/24"]}] // first
}
policies: web: b: {
	endpointSelector: matchLabels: app: "web"
	ingress: [{fromCIDR: ["192.0.2.0/24"]}] // second
}`), want: []want{{"EBPFC001", `{fromCIDR: ["192.0.2.0/24"]}] // second`, "ingress[0] of policy web/a"}}},
		{name: "rules that match nothing are never shadowed", check: "EBPFC001", files: policy(`
policies: web: a: {
	endpointSelector: {}
	ingress: [{}, {fromEntities: ["all"]}, {fromEndpoints: []}]
}`)},
		{name: "except of the broader rule cuts into the narrower", check: "EBPFC001", files: policy(`
policies: web: p: {
	endpointSelector: {}
	ingress: [{fromCIDRSet: [{cidr: "10.1.0.0/16", except: ["10.1.2.0/25"]}]},
		{fromCIDR: ["10.1.2.0/24"]},
		{fromCIDR: ["10.1.3.0/24"]}]
}`), want: []want{{"EBPFC001", `{fromCIDR: ["10.1.3.0/24"]}`, ""}}},
		{name: "CIDRs against world and cluster", check: "EBPFC001", files: policy(`
policies: web: p: {
	endpointSelector: {}
	egress: [{toEntities: ["world"]},
		{toCIDR: ["192.0.2.0/24"]},
		{toCIDR: ["10.0.5.0/24"]}]
}
policies: web: q: {
	endpointSelector: {}
	ingress: [{fromEntities: ["cluster"]},
		{fromCIDR: ["10.0.6.0/24"]},
		{fromCIDR: ["198.51.100.0/24"]}]
}`), want: []want{{"EBPFC001", `{toCIDR: ["192.0.2.0/24"]}`, ""}, {"EBPFC001", `{fromCIDR: ["10.0.6.0/24"]}`, ""}}},
		{name: "selector implication", check: "EBPFC001", files: policy(`
policies: web: p: {
	endpointSelector: {}
	ingress: [{fromEndpoints: [{matchExpressions: [{key: "tier", operator: "NotIn", values: ["db"]}]}]},
		{fromEndpoints: [{matchLabels: tier: "front"}]},
		{fromEndpoints: [{matchExpressions: [{key: "tier", operator: "DoesNotExist"}]}]},
		{fromEndpoints: [{matchExpressions: [{key: "tier", operator: "In", values: ["db", "front"]}]}]}]
}`), want: []want{
			{"EBPFC001", `{fromEndpoints: [{matchLabels: tier: "front"}]}`, ""},
			{"EBPFC001", `{fromEndpoints: [{matchExpressions: [{key: "tier", operator: "DoesNotExist"`, ""},
		}},
		{name: "named port against every TCP port and a number", check: "EBPFC001", files: policy(`
policies: web: p: {
	endpointSelector: {}
	ingress: [{toPorts: [{ports: [{port: 8080, protocol: "TCP"}]}]},
		{toPorts: [{ports: [{port: "http", protocol: "TCP"}]}]}]
	egress: [{toPorts: [{ports: [{port: 0, protocol: "TCP"}]}]},
		{toPorts: [{ports: [{port: "http", protocol: "TCP"}]}]}] // named
}`), want: []want{{"EBPFC001", `{toPorts: [{ports: [{port: "http", protocol: "TCP"}]}]}] // named`, "egress[0]"}}},
		{name: "deny rules of the same audit mode", check: "EBPFC001", files: policy(`
policies: web: p: {
	endpointSelector: {}
	ingressDeny: [{fromCIDR: ["10.1.0.0/16"]}, {fromCIDR: ["10.1.1.0/24"]}]
}
policies: web: q: {
	endpointSelector: {}
	audit: true
	ingressDeny: [{fromCIDR: ["10.1.2.0/24"]}]
}`), want: []want{{"EBPFC001", `{fromCIDR: ["10.1.1.0/24"]}`, "already denies"}}},
	})
}

func TestDeniedAllows(t *testing.T) {
	runCases(t, []lintCase{
		{name: "allow inside a deny", check: "EBPFC002", files: policy(`
policies: web: p: {
	endpointSelector: matchLabels: app: "web"
	ingress: [{fromCIDR: ["10.1.1.0/24"], toPorts: [{ports: [{port: 80, protocol: "TCP"}]}]}]
}
clusterPolicies: block: {
	endpointSelector: {}
	ingressDeny: [{fromCIDR: ["10.1.0.0/16"]}]
}`), want: []want{{"EBPFC002", `{fromCIDR: ["10.1.1.0/24"]`, "ingressDeny[0] of policy block"}}},
		{name: "deny of other ports", check: "EBPFC002", files: policy(`
policies: web: p: {
	endpointSelector: matchLabels: app: "web"
	ingress: [{fromCIDR: ["10.1.1.0/24"], toPorts: [{ports: [{port: 80, protocol: "TCP"}]}]}]
	ingressDeny: [{fromCIDR: ["10.1.0.0/16"], toPorts: [{ports: [{port: 443, protocol: "TCP"}]}]}]
}`)},
		{name: "audited deny", check: "EBPFC002", files: policy(`
policies: web: p: {
	endpointSelector: matchLabels: app: "web"
	ingress: [{fromCIDR: ["10.1.1.0/24"]}]
}
policies: web: q: {
	endpointSelector: {}
	audit: true
	ingressDeny: [{fromCIDR: ["10.1.0.0/16"]}]
}`)},
		{name: "deny for other endpoints", check: "EBPFC002", files: policy(`
policies: web: p: {
	endpointSelector: {}
	egress: [{toEntities: ["world"]}]
}
policies: web: q: {
	endpointSelector: matchLabels: app: "web"
	egressDeny: [{toEntities: ["world"]}]
}`)},
		{name: "deny in the other direction", check: "EBPFC002", files: policy(`
policies: web: p: {
	endpointSelector: {}
	egress: [{toEntities: ["world"]}]
	ingressDeny: [{fromEntities: ["all"]}]
}`)},
	})
}

func TestPeerSelectors(t *testing.T) {
	runCases(t, []lintCase{
		{name: "labels nobody has", check: "EBPFC003", files: policy(`
policies: web: p: {
	endpointSelector: {}
	ingress: [{fromEndpoints: [{matchLabels: app: "nope"}, {matchLabels: app: "web"}]}]
}`), want: []want{{"EBPFC003", `{matchLabels: app: "nope"}`, "No endpoint has these labels"}}},
		{name: "labels in another namespace", check: "EBPFC003", files: policy(`
policies: web: p: {
	endpointSelector: {}
	egress: [{toEndpoints: [{matchLabels: app: "api"}]}]
}`), want: []want{{"EBPFC003", `{matchLabels: app: "api"}`, "namespaceSelector"}}},
		{name: "namespace given", check: "EBPFC003", files: policy(`
policies: web: p: {
	endpointSelector: {}
	egress: [{toEndpoints: [{matchLabels: {app: "api", "k8s:io.kubernetes.pod.namespace": "api"}}, {matchLabels: app: "api", namespaceSelector: matchLabels: team: "a"}]}]
}
clusterPolicies: c: {
	endpointSelector: {}
	egress: [{toEndpoints: [{matchLabels: app: "api"}]}]
}`)},
	})
}

func TestPolicySubjects(t *testing.T) {
	runCases(t, []lintCase{
		{name: "selects nothing", check: "EBPFC004", files: policy(`
policies: web: p: {
	endpointSelector: matchLabels: app: "nope"
	ingress: [{}]
}
policies: api: q: {
	endpointSelector: matchLabels: app: "web"
	ingress: [{}]
}
clusterPolicies: hosts: {
	nodeSelector: matchLabels: role: "db"
	ingress: [{fromEntities: ["cluster"]}]
}`), want: []want{
			{"EBPFC004", `matchLabels: app: "nope"`, "No endpoint has these labels"},
			{"EBPFC004", `matchLabels: app: "web"`, "exist in namespace web"},
			{"EBPFC004", `matchLabels: role: "db"`, "no node"},
		}},
		{name: "selects something", check: "EBPFC004", files: policy(`
policies: web: p: {
	endpointSelector: matchLabels: app: "web"
	ingress: [{}]
}
clusterPolicies: c: {
	endpointSelector: matchLabels: app: "api"
	ingress: [{}]
}
clusterPolicies: hosts: {
	nodeSelector: matchLabels: role: "worker"
	ingress: [{fromEntities: ["cluster"]}]
}`)},
	})
}

func TestLoadErrorsBecomeFindings(t *testing.T) {
	runCases(t, []lintCase{
		{name: "except outside its cidr", check: "EBPFC005", files: policy(`
policies: web: p: {
	endpointSelector: {}
	ingress: [{fromCIDRSet: [{cidr: "10.1.0.0/16", except: ["10.2.0.0/24"]}]}]
}`), want: []want{{"EBPFC005", `"10.2.0.0/24"`, "not inside"}}},
		{name: "except inside its cidr", check: "EBPFC005", files: policy(`
policies: web: p: {
	endpointSelector: {}
	ingress: [{fromCIDRSet: [{cidr: "10.1.0.0/16", except: ["10.1.0.0/24"]}]}]
}`)},
		{name: "inverted range", check: "EBPFC006", files: policy(`
policies: web: p: {
	endpointSelector: {}
	ingress: [{toPorts: [{ports: [{port: 90, endPort: 80, protocol: "TCP"}]}]}]
}`), want: []want{{"EBPFC006", `80, protocol`, "less than port 90"}}},
		{name: "range without a start", check: "EBPFC006", files: policy(`
policies: web: p: {
	endpointSelector: {}
	ingress: [{toPorts: [{ports: [{endPort: 80, protocol: "TCP"}]}]}]
}`), want: []want{{"EBPFC006", `80, protocol`, "needs a port"}}},
		{name: "range in order", check: "EBPFC006", files: policy(`
policies: web: p: {
	endpointSelector: {}
	ingress: [{toPorts: [{ports: [{port: 80, endPort: 80, protocol: "TCP"}]}]}]
}`)},
		{name: "Kubernetes except and range", check: "EBPFC005", files: map[string]string{"np.yaml": `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np, namespace: web}
spec:
  podSelector: {}
  ingress:
  - from:
    - ipBlock: {cidr: 10.1.0.0/16, except: [10.9.0.0/24]}
`}, want: []want{{"EBPFC005", `10.9.0.0/24`, ""}}},
	})
}

func TestNamedPorts(t *testing.T) {
	runCases(t, []lintCase{
		{name: "ingress port the subject lacks", check: "EBPFC007", files: policy(`
policies: web: p: {
	endpointSelector: {}
	ingress: [{toPorts: [{ports: [{port: "grpc"}, {port: "http"}, {port: "http", protocol: "UDP"}]}]}]
}`), want: []want{
			{"EBPFC007", `{port: "grpc"}`, "none of the endpoints it selects (web/web-0)"},
			{"EBPFC007", `{port: "http", protocol: "UDP"}`, "it is TCP on web/web-0"},
		}},
		{name: "egress to endpoints", check: "EBPFC007", files: policy(`
policies: web: p: {
	endpointSelector: {}
	egress: [{toEndpoints: [{matchLabels: {app: "api", "k8s:io.kubernetes.pod.namespace": "api"}}], toPorts: [{ports: [{port: "grpc"}, {port: "dns", protocol: "UDP"}, {port: "http"}]}]},
		{toEntities: ["cluster"], toPorts: [{ports: [{port: "http", protocol: "TCP"}]}]}]
}`), want: []want{{"EBPFC007", `{port: "http"}]}]},`, "api/api-0"}}},
		{name: "egress to CIDRs", check: "EBPFC007", files: policy(`
policies: web: p: {
	endpointSelector: {}
	egress: [{toCIDR: ["192.0.2.0/24"], toPorts: [{ports: [{port: "http"}]}]}]
}`), want: []want{{"EBPFC007", `{port: "http"}`, "never endpoints"}}},
		{name: "selector matching nothing is left to EBPFC003", check: "EBPFC007", files: policy(`
policies: web: p: {
	endpointSelector: {}
	egress: [{toEndpoints: [{matchLabels: app: "nope"}], toPorts: [{ports: [{port: "http"}]}]}]
}`)},
	})
}

func TestDefaultOpen(t *testing.T) {
	runCases(t, []lintCase{
		{name: "no policies", check: "EBPFC008", files: policy(`// nothing`), want: []want{
			{"EBPFC008", `"web-0":`, "open for ingress"}, {"EBPFC008", `"web-0":`, "open for egress"},
			{"EBPFC008", `"api-0":`, "open for ingress"}, {"EBPFC008", `"api-0":`, "open for egress"},
		}},
		{name: "one direction enforced", check: "EBPFC008", files: map[string]string{"base.cue": base + `
policies: web: p: {
	endpointSelector: {}
	ingress: [{}]
}
clusterPolicies: q: {
	endpointSelector: matchLabels: app: "api"
	egress: [{toEntities: ["world"]}]
}
`}, want: []want{{"EBPFC008", `"web-0":`, "open for egress"}, {"EBPFC008", `"api-0":`, "open for ingress"}}},
		{name: "Kubernetes policyTypes", check: "EBPFC008", files: map[string]string{
			"base.cue": base,
			"np.yaml": `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: api}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
`}, want: []want{{"EBPFC008", `"web-0":`, "open for ingress"}, {"EBPFC008", `"web-0":`, "open for egress"}}},
		{name: "enforcement always", check: "EBPFC008", files: policy(`settings: enforcement: "always"`)},
		{name: "enforcement never", check: "EBPFC008", files: policy(`settings: enforcement: "never"`), want: []want{{"EBPFC008", `enforcement: "never"`, "no policy is enforced"}}},
	})
}

func TestBroadIngress(t *testing.T) {
	runCases(t, []lintCase{
		{name: "world to everything", check: "EBPFC009", files: policy(`
policies: web: p: {
	endpointSelector: {}
	ingress: [{fromEntities: ["world", "cluster"]},
		{fromCIDRSet: [{cidr: "0.0.0.0/0", except: ["10.0.0.0/8"]}], toPorts: [{ports: [{port: 0, protocol: "TCP"}]}]},
		{toPorts: [{ports: [{port: 1, endPort: 65535, protocol: "ANY"}]}]}]
}`), want: []want{
			{"EBPFC009", `"world"`, "every protocol and port"},
			{"EBPFC009", `{cidr: "0.0.0.0/0"`, "every TCP port"},
			{"EBPFC009", `{toPorts: [{ports: [{port: 1,`, "every peer"},
		}},
		{name: "narrow enough", check: "EBPFC009", files: policy(`
policies: web: p: {
	endpointSelector: {}
	ingress: [{fromCIDR: ["0.0.0.0/0"], toPorts: [{ports: [{port: 443, protocol: "TCP"}]}]},
		{fromEntities: ["world"], toPorts: [{ports: [{port: 1, endPort: 1024, protocol: "TCP"}]}]},
		{fromEntities: ["cluster"]},
		{}]
	egress: [{toEntities: ["world"]}]
	ingressDeny: [{fromEntities: ["world"]}]
}`)},
	})
}

func TestMapCapacity(t *testing.T) {
	const rules = `
policies: web: p: {
	endpointSelector: {}
	ingress: [{fromCIDR: ["192.0.2.0/24"], toPorts: [{ports: [{port: 1, protocol: "TCP"}, {port: 2, protocol: "TCP"}, {port: 3, protocol: "TCP"}, {port: 4, protocol: "TCP"}]}]}]
}
`
	runCases(t, []lintCase{
		{name: "policy map too small", check: "EBPFC010", files: policy(rules + `settings: mapSizes: policy: 3`),
			want: []want{{"EBPFC010", `"web-0":`, "settings.mapSizes.policy is 3"}}},
		{name: "ipcache too small", check: "EBPFC010", files: policy(rules + `settings: mapSizes: ipcache: 1`),
			want: []want{{"EBPFC010", `ipcache: 1`, "node node-a needs"}}},
		{name: "sizes that fit", check: "EBPFC010", files: policy(rules + `settings: mapSizes: {policy: 100, ipcache: 100}`)},
		{name: "default sizes", check: "EBPFC010", files: policy(rules)},
	})
}

// TestVerifierBudget holds EBPFC011 to the compiled programs. With a
// budget of 10, every program whose estimate is above 10 (those that
// enforce policy) is reported and the two-instruction programs of open
// directions are not: by instruction count ("at least"), by the static
// verifier's estimate (the default), and by a plugged-in estimate.
func TestVerifierBudget(t *testing.T) {
	files := mapWith(policy(`
policies: web: p: {
	endpointSelector: matchLabels: app: "web"
	ingress: [{fromCIDR: ["192.0.2.0/24"]}]
}`), "base.cue", base)
	dir := writeConfig(t, files, false)
	cfg, err := load.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	arts, err := compiler.Compile(cfg, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	type prog struct {
		name             string
		pos              source.Pos
		insns, processed int
	}
	var progs []prog
	long, short := 0, 0
	for _, a := range arts {
		rep := verifier.Verify(compiler.VerifierCollection(a.Object))
		for i, p := range a.Object.Programs {
			progs = append(progs, prog{p.Name, p.Pos, len(p.Insns), rep.Programs[i].Processed})
			if len(p.Insns) > 10 {
				long++
			} else {
				short++
			}
			if rep.Programs[i].Processed < len(p.Insns) {
				t.Errorf("program %s: static estimate %d is below its %d instructions", p.Name, rep.Programs[i].Processed, len(p.Insns))
			}
		}
	}
	if long == 0 || short == 0 {
		t.Fatalf("want programs on both sides of the budget: %d above, %d at or below", long, short)
	}
	for _, c := range []struct {
		name   string
		opts   Options
		report func(prog) bool
		text   func(prog) string
	}{
		{"default budget", Options{}, func(prog) bool { return false }, nil},
		{"budget of 10, static verifier", Options{VerifierBudget: 10}, func(p prog) bool { return p.processed > 10 },
			func(p prog) string {
				return fmt.Sprintf("program %s of node node-a needs an estimated %d processed", p.name, p.processed)
			}},
		{"budget of 10, instruction count", Options{VerifierBudget: 10, Estimate: InstructionCount}, func(p prog) bool { return p.insns > 10 },
			func(p prog) string {
				return fmt.Sprintf("program %s of node node-a needs at least %d processed", p.name, p.insns)
			}},
		{"plugged-in estimate", Options{Estimate: func(_ *backend.Object, p *backend.Program) (int, bool) {
			if strings.HasPrefix(p.Name, "to_web") {
				return 200_000, false
			}
			return 1, false
		}}, func(p prog) bool { return strings.HasPrefix(p.name, "to_web") },
			func(p prog) string {
				return fmt.Sprintf("program %s of node node-a needs an estimated 200000 processed", p.name)
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			findings, err := Config(cfg, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got, want []string
			for _, f := range findings {
				if f.ID == "EBPFC011" {
					got = append(got, f.Pos.String()+": "+f.Message)
				}
			}
			for _, p := range progs {
				if c.report(p) {
					want = append(want, p.pos.String()+": "+c.text(p))
				}
			}
			if len(got) != len(want) {
				t.Fatalf("got %d findings, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
			}
			for _, w := range want {
				if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
					t.Errorf("no finding %q in:\n%s", w, strings.Join(got, "\n"))
				}
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	f := runCase(t, lintCase{name: "services", check: "EBPFC012", files: policy(`
services: web: s: {clusterIPs: ["10.96.0.9"], ports: [{port: 80}], selector: app: "web"}
policies: web: p: {
	endpointSelector: matchLabels: app: "nope"
	ingress: [{}]
}`), opts: Options{VerifierBudget: 1}, want: []want{{"EBPFC012", `s: {clusterIPs`, "not supported"}}})
	ids := map[string]bool{}
	for _, x := range f {
		ids[x.ID] = true
	}
	if !ids["EBPFC004"] {
		t.Errorf("model checks did not run when compilation failed: %v", ids)
	}
	if ids["EBPFC011"] {
		t.Errorf("verifier budget checked without a compiled program: %v", ids)
	}
}
