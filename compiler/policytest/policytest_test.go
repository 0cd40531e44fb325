package policytest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/load"
	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/internal/testenv"
	"github.com/ebpfc/ebpfc/source"
)

// compileFS loads and compiles files (name → CUE) for every node.
func compileFS(t *testing.T, files map[string]string) (*model.Config, []*compiler.Artifacts) {
	t.Helper()
	fsys := fstest.MapFS{}
	var names []string
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
		names = append(names, name)
	}
	cfg, err := load.LoadFS(fsys, names)
	if err != nil {
		t.Fatal(err)
	}
	arts, err := compiler.Compile(cfg, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, arts
}

func compileDir(t *testing.T, dir string) (*model.Config, []*compiler.Artifacts) {
	t.Helper()
	cfg, err := load.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	arts, err := compiler.Compile(cfg, compiler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, arts
}

// eachEngine runs f with the interpreter and, where the kernel can be had,
// with the kernel.
func eachEngine(t *testing.T, f func(t *testing.T, e Engine)) {
	t.Run("vm", func(t *testing.T) { f(t, EngineVM) })
	t.Run("kernel", func(t *testing.T) {
		testenv.RequireKernel(t)
		f(t, EngineKernel)
	})
}

func run(t *testing.T, cfg *model.Config, arts []*compiler.Artifacts, opts Options) *Report {
	t.Helper()
	rep, err := Run(cfg, arts, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func byName(rep *Report) map[string]Result {
	m := map[string]Result{}
	for _, r := range rep.Tests {
		m[r.Name] = r
	}
	return m
}

// small has one node, an endpoint with IPv4 and one with only IPv6, and a
// policy that lets 192.0.2.0/24 reach web on TCP 80. Its tests pass, fail
// and cannot run in every way the runner distinguishes.
var small = map[string]string{
	"cluster.cue": `package ebpfc

cluster: {name: "t", podCIDRs: ["10.0.0.0/16"], serviceCIDRs: ["10.96.0.0/12"]}
nodes: "node-a": {addresses: ["192.168.1.1"]}
endpoints: default: {
	web: {node: "node-a", interface: "lxc-web", addresses: ["10.0.1.5"], labels: app: "web"}
	v6: {node: "node-a", interface: "lxc-v6", addresses: ["fd00::5"], labels: app: "v6"}
}
policies: default: web: {
	endpointSelector: matchLabels: app: "web"
	ingress: [{fromCIDR: ["192.0.2.0/24"], toPorts: [{ports: [{port: 80}]}]}]
}
`,
	"tests.cue": `package ebpfc

tests: {
	ok: {from: "192.0.2.1", to: "default/web", port: 80, expect: "allow"}
	"wrong-port": {from: "192.0.2.1", to: "default/web", port: 81, expect: "allow"}
	"wrong-deny": {from: "192.0.2.1", to: "default/web", port: 80, expect: "deny"}
	icmpv6: {from: "fd00::1", to: "default/web", protocol: "ICMPv6", expect: "deny"}
	"v6-address": {from: "fd00::1", to: "default/web", port: 80, expect: "deny"}
	"v6-endpoint": {from: "default/v6", to: "default/web", port: 80, expect: "deny"}
	"no-endpoint": {from: "192.0.2.1", to: "198.51.100.1", port: 80, expect: "allow"}
}
`,
}

func TestRunOutcomes(t *testing.T) {
	cfg, arts := compileFS(t, small)
	eachEngine(t, func(t *testing.T, e Engine) {
		rep := run(t, cfg, arts, Options{Engine: e})
		if rep.Engine != e {
			t.Errorf("engine %s, want %s", rep.Engine, e)
		}
		if rep.Passed != 1 || rep.Failed != 3 || rep.NotRun != 3 {
			t.Errorf("passed %d, failed %d, not run %d; want 1, 3, 3", rep.Passed, rep.Failed, rep.NotRun)
		}
		var names []string
		for _, r := range rep.Tests {
			names = append(names, r.Name)
		}
		if want := []string{"icmpv6", "no-endpoint", "ok", "v6-address", "v6-endpoint", "wrong-deny", "wrong-port"}; !cmp.Equal(names, want) {
			t.Errorf("tests in order %v, want %v (sorted by name)", names, want)
		}
		got := byName(rep)
		for _, c := range []struct {
			name    string
			status  Status
			message string // a substring
		}{
			{"ok", Pass, ""},
			{"wrong-port", Fail, "want allow, but the forward packet was dropped by to_default_web on node-a (default deny of default/web)"},
			{"wrong-deny", Fail, "want deny, but the forward packet passed every program"},
			{"icmpv6", NotRun, "ebpfc test carries IPv4 flows only so far, and ICMPv6 needs IPv6"},
			{"v6-address", NotRun, "from: fd00::1 is an IPv6 address, and ebpfc test carries IPv4 flows only so far"},
			{"v6-endpoint", NotRun, "from: endpoint default/v6 has no IPv4 address"},
			{"no-endpoint", Fail, "neither from nor to is an endpoint"},
		} {
			r := got[c.name]
			if r.Status != c.status || !strings.Contains(r.Message, c.message) || (c.message == "") != (r.Message == "") {
				t.Errorf("%s: %s %q, want %s %q", c.name, r.Status, r.Message, c.status, c.message)
			}
			if !strings.HasPrefix(r.Position, "tests.cue:") {
				t.Errorf("%s: position %q, want one in tests.cue", c.name, r.Position)
			}
		}

		// ok: the policy's rule lets the SYN in; web's egress is open, so
		// the SYN-ACK leaves; 192.0.2.1 is no endpoint and runs nothing.
		ok := got["ok"]
		if len(ok.Packets) != 2 {
			t.Fatalf("ok: %d packets, want the SYN and the SYN-ACK: %+v", len(ok.Packets), ok.Packets)
		}
		fwd, rep2 := ok.Packets[0], ok.Packets[1]
		// ok is the third test by name: source port 32768+2.
		if fwd.Kind != "forward" || fwd.Summary != "TCP 192.0.2.1:32770 > 10.0.1.5:80 SYN" {
			t.Errorf("forward packet %q", fwd.Summary)
		}
		if len(fwd.Steps) != 1 {
			t.Fatalf("forward steps %+v, want web's ingress program only", fwd.Steps)
		}
		s := fwd.Steps[0]
		want := Step{
			Node: "node-a", Program: "to_default_web", Endpoint: "default/web", Direction: "ingress", Verdict: "pass",
			Decision: Decision{Kind: "allow", Cookie: s.Decision.Cookie, Policy: "default/web", Rule: "ingress[rule 0]", Position: "cluster.cue:11:12"},
		}
		if d := cmp.Diff(want, s); d != "" {
			t.Errorf("forward step (-want +got):\n%s", d)
		}
		if s.Decision.Cookie == 0 {
			t.Errorf("the allow was counted against no cookie")
		}
		if rep2.Kind != "reply" || !strings.HasSuffix(rep2.Summary, " SYN-ACK") || len(rep2.Steps) != 1 ||
			rep2.Steps[0].Program != "from_default_web" || rep2.Steps[0].Decision.Kind != "open" || rep2.Steps[0].Decision.Position != "cluster.cue:6:2" {
			t.Errorf("reply %+v, want a SYN-ACK passing web's open egress program (endpoint at cluster.cue:6:2)", rep2)
		}

		// wrong-port is dropped by the default deny, which points at the
		// policy that made the direction default-deny; the reply is never
		// sent.
		wp := got["wrong-port"]
		if len(wp.Packets) != 1 || len(wp.Packets[0].Steps) != 1 {
			t.Fatalf("wrong-port: %+v, want one packet, one step", wp.Packets)
		}
		d := wp.Packets[0].Steps[0].Decision
		if wp.Packets[0].Steps[0].Verdict != "drop" || d.Kind != "default-deny" || d.Endpoint != "default/web" || d.Direction != "ingress" ||
			d.Reason != "policy denied" || d.Position != "cluster.cue:9:20" {
			t.Errorf("wrong-port decision %+v, want the default deny of default/web's ingress (policy at cluster.cue:9:20)", d)
		}
	})
}

// TestShop runs the shipped example with each engine: every test passes,
// and the decisions are the ones its policies say (read from
// examples/shop/policies.cue, not from the output).
func TestShop(t *testing.T) {
	cfg, arts := compileDir(t, filepath.Join("..", "..", "examples", "shop"))
	eachEngine(t, func(t *testing.T, e Engine) {
		rep := run(t, cfg, arts, Options{Engine: e})
		if rep.Failed != 0 || rep.NotRun != 0 || rep.Passed != 15 {
			var b bytes.Buffer
			WriteText(&b, rep, TextOptions{})
			t.Fatalf("want 15 passes:\n%s", b.String())
		}
		got := byName(rep)
		pol := filepath.Join("..", "..", "examples", "shop", "policies.cue")
		for _, c := range []struct {
			test   string
			packet int
			steps  []string // program verdict decision
		}{
			// Deny beats allow: the client may send to the database on
			// 5432, and the database's ingressDeny refuses the client.
			{"client-to-db", 0, []string{
				"from_shop_client_0 pass policy shop/client-egress egress[rule 2] at " + pol + ":23:6",
				"to_data_db_0 drop policy data/db-ingress ingressDeny[rule 0] at " + pol + ":52:16",
			}},
			// Named port pg of the database, a peer selected by tier
			// across namespaces; from an address that is the worker's.
			{"worker-address-to-db", 0, []string{
				"from_shop_worker_0 pass open: egress of shop/worker-0 is not enforced",
				"to_data_db_0 pass policy data/db-ingress ingress[rule 0] at " + pol + ":48:12",
			}},
			// The except of the CIDR rule: the blocked range meets the
			// default deny.
			{"blocked-range-to-frontend", 0, []string{
				"to_shop_frontend_0 drop default deny of shop/frontend-0 at " + pol + ":5:2",
			}},
			{"internet-to-frontend", 0, []string{"to_shop_frontend_0 pass policy shop/frontend-public ingress[rule 0] at " + pol + ":7:13"}},
			// The SCTP port is in the first rule, ICMP in the second, DNS
			// to a CIDR in the fourth.
			{"client-to-api-sctp", 0, []string{
				"from_shop_client_0 pass policy shop/client-egress egress[rule 0] at " + pol + ":17:12",
				"to_shop_api_0 pass policy shop/api-from-client ingress[rule 0] at " + pol + ":34:13",
			}},
			{"client-pings-api", 0, []string{
				"from_shop_client_0 pass policy shop/client-egress egress[rule 1] at " + pol + ":20:6",
				"to_shop_api_0 pass policy shop/api-from-client ingress[rule 1] at " + pol + ":37:6",
			}},
			{"client-dns", 0, []string{"from_shop_client_0 pass policy shop/client-egress egress[rule 3] at " + pol + ":26:6"}},
			{"client-dns-tcp", 0, []string{"from_shop_client_0 drop default deny of shop/client-0 at " + pol + ":15:2"}},
			{"worker-to-api", 0, []string{
				"from_shop_worker_0 pass open: egress of shop/worker-0 is not enforced",
				"to_shop_api_0 drop default deny of shop/api-0 at " + pol + ":32:2",
			}},
		} {
			r := got[c.test]
			if c.packet >= len(r.Packets) {
				t.Errorf("%s: no packet %d", c.test, c.packet)
				continue
			}
			var steps []string
			for _, s := range r.Packets[c.packet].Steps {
				line := s.Program + " " + s.Verdict + " " + s.Decision.String()
				if s.Decision.Kind != "open" {
					line += " at " + s.Decision.Position
				}
				steps = append(steps, line)
			}
			if d := cmp.Diff(c.steps, steps); d != "" {
				t.Errorf("%s %s (-want +got):\n%s", c.test, r.Packets[c.packet].Summary, d)
			}
		}
	})
}

// TestShopText holds the verbose table of the shipped example, in the
// interpreter and in the kernel, to testdata/shop.golden (EBPFC_UPDATE=1
// rewrites it; review the diff). Both engines must print the same table
// below the header.
func TestShopText(t *testing.T) {
	cfg, arts := compileDir(t, filepath.Join("..", "..", "examples", "shop"))
	golden := filepath.Join("testdata", "shop.golden")
	eachEngine(t, func(t *testing.T, e Engine) {
		rep := run(t, cfg, arts, Options{Engine: e})
		var b bytes.Buffer
		if err := WriteText(&b, rep, TextOptions{Verbose: true}); err != nil {
			t.Fatal(err)
		}
		header, body, _ := strings.Cut(b.String(), "\n")
		if header != "engine: "+rep.EngineDescription() {
			t.Errorf("header %q", header)
		}
		if e == EngineVM && os.Getenv("EBPFC_UPDATE") == "1" {
			if err := os.WriteFile(golden, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (EBPFC_UPDATE=1 writes it)", err)
		}
		if d := cmp.Diff(string(want), body); d != "" {
			t.Errorf("%s differs (-want +got; EBPFC_UPDATE=1 rewrites it):\n%s", golden, d)
		}
	})
}

// TestEnginesAgree runs the same tests in the kernel and in the
// interpreter and requires the same verdict and deciding rule at every
// step. The configuration is the shipped example (allow, deny and
// default-deny rules, CIDR peers with an except, named ports, TCP, UDP,
// SCTP, ICMP, two nodes) with one more policy that enforces the API's
// egress, so that replies meet policy too, and tests whose expectations
// are wrong.
func TestEnginesAgree(t *testing.T) {
	testenv.RequireKernel(t)
	dir := t.TempDir()
	shop := filepath.Join("..", "..", "examples", "shop")
	ents, err := os.ReadDir(shop)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(shop, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	extra := `package ebpfc

policies: shop: "api-egress": {
	endpointSelector: matchLabels: app: "api"
	egress: [{toEndpoints: [{matchLabels: app: "db", namespaceSelector: {}}], toPorts: [{ports: [{port: "pg"}]}]}]
}
tests: {
	"api-to-db": {from: "shop/api-0", to: "data/db-0", port: 5432, expect: "allow"}
	"api-to-client": {from: "shop/api-0", to: "shop/client-0", port: 8080, expect: "allow"}
	"db-to-api": {from: "data/db-0", to: "shop/api-0", protocol: "UDP", port: 8080, expect: "allow"}
	"internet-to-db": {from: "198.51.100.7", to: "10.0.2.30", protocol: "SCTP", port: 5432, expect: "allow"}
	"client-to-api-wrong": {from: "shop/client-0", to: "shop/api-0", port: 8080, expect: "deny"}
}
`
	if err := os.WriteFile(filepath.Join(dir, "extra.cue"), []byte(extra), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, arts := compileDir(t, dir)
	kernel := run(t, cfg, arts, Options{Engine: EngineKernel})
	interp := run(t, cfg, arts, Options{Engine: EngineVM})
	if len(kernel.Tests) != 20 {
		t.Fatalf("%d tests ran, want 20", len(kernel.Tests))
	}
	var steps int
	kinds := map[string]bool{}
	for _, r := range kernel.Tests {
		for _, p := range r.Packets {
			for _, s := range p.Steps {
				steps++
				kinds[s.Decision.Kind] = true
			}
		}
	}
	for _, k := range []string{"allow", "deny", "default-deny", "open"} {
		if !kinds[k] {
			t.Errorf("no step was decided by %s; the comparison should cover it", k)
		}
	}
	if d := cmp.Diff(kernel.Tests, interp.Tests); d != "" {
		t.Errorf("the kernel and the interpreter disagree (-kernel +vm):\n%s", d)
	}
	t.Logf("%d tests, %d program runs: kernel and interpreter agree on every verdict and deciding rule", len(kernel.Tests), steps)
}

// TestState checks that one datapath per node serves the whole run: the
// per-rule counters that a test leaves behind are still there for the
// next (as a conntrack entry will be), and each test has its own source
// port.
func TestState(t *testing.T) {
	cfg, arts := compileFS(t, small)
	eachEngine(t, func(t *testing.T, e Engine) {
		eng, _, err := chooseEngine(e)
		if err != nil {
			t.Fatal(err)
		}
		r := newRunner(cfg, arts, eng)
		defer r.close()
		var test *model.Test
		for _, x := range cfg.Tests {
			if x.Name == "ok" {
				test = x
			}
		}
		for i := range 3 {
			if _, err := r.test(test, sourcePort(i)); err != nil {
				t.Fatal(err)
			}
		}
		if len(r.loaded) != 1 {
			t.Fatalf("%d datapaths loaded, want one for node-a", len(r.loaded))
		}
		counts, err := r.loaded["node-a"].counters(ruleStatsMap)
		if err != nil {
			t.Fatal(err)
		}
		var total uint64
		for _, n := range counts {
			total += n
		}
		// Three SYNs counted against the allow rule; the SYN-ACKs left
		// through the open egress program, which counts nothing.
		if total != 3 {
			t.Errorf("rule_stats counts %d packets in all, want 3 (state kept across tests)", total)
		}
	})
	if sourcePort(0) == sourcePort(1) || sourcePort(0) != 32768 || sourcePort(61000-32768) != 32768 {
		t.Errorf("source ports %d, %d, %d", sourcePort(0), sourcePort(1), sourcePort(61000-32768))
	}
}

func TestRunSelect(t *testing.T) {
	cfg, arts := compileFS(t, small)
	rep := run(t, cfg, arts, Options{Engine: EngineVM, Run: regexp.MustCompile(`^wrong-`)})
	if len(rep.Tests) != 2 || rep.Tests[0].Name != "wrong-deny" || rep.Tests[1].Name != "wrong-port" {
		t.Errorf("selected %+v, want wrong-deny and wrong-port", rep.Tests)
	}
	// A test keeps its source port whatever --run selects.
	full := byName(run(t, cfg, arts, Options{Engine: EngineVM}))
	if a, b := rep.Tests[1].Packets[0].Summary, full["wrong-port"].Packets[0].Summary; a != b {
		t.Errorf("selected run sent %q, full run %q", a, b)
	}
}

func TestParseEngine(t *testing.T) {
	for _, s := range []string{"auto", "kernel", "vm"} {
		if e, err := ParseEngine(s); err != nil || string(e) != s {
			t.Errorf("ParseEngine(%q) = %q, %v", s, e, err)
		}
	}
	if _, err := ParseEngine("qemu"); err == nil || !strings.Contains(err.Error(), "want kernel, vm or auto") {
		t.Errorf("ParseEngine(qemu): %v", err)
	}
}

func TestAutoEngine(t *testing.T) {
	e, note, err := chooseEngine(EngineAuto)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case kernelUsable() == nil && (e != EngineKernel || note != ""):
		t.Errorf("kernel usable, auto chose %s (%q)", e, note)
	case kernelUsable() != nil && (e != EngineVM || !strings.Contains(note, kernelUsable().Error())):
		t.Errorf("kernel unusable (%v), auto chose %s (%q)", kernelUsable(), e, note)
	}
}

// TestJSON checks that the JSON document carries what the table shows.
func TestJSON(t *testing.T) {
	cfg, arts := compileFS(t, small)
	rep := run(t, cfg, arts, Options{Engine: EngineVM})
	var b bytes.Buffer
	if err := WriteJSON(&b, rep); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(*rep, back); d != "" {
		t.Errorf("JSON round trip (-want +got):\n%s", d)
	}
	for _, field := range []string{` > 10.0.1.5:80 SYN"`, `"engine": "vm"`, `"status": "fail"`, `"status": "not run"`, `"kind": "default-deny"`, `"rule": "ingress[rule 0]"`} {
		if !strings.Contains(b.String(), field) {
			t.Errorf("JSON lacks %s", field)
		}
	}
}

func TestICMPTestWithPort(t *testing.T) {
	files := map[string]string{"cluster.cue": small["cluster.cue"], "tests.cue": `package ebpfc

tests: ping: {from: "192.0.2.1", to: "default/web", protocol: "ICMP", port: 8, expect: "deny"}
`}
	fsys := fstest.MapFS{}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	_, err := load.LoadFS(fsys, []string{"cluster.cue", "tests.cue"})
	errs, ok := source.AsErrors(err)
	if !ok || len(errs) != 1 || errs[0].Pos.File != "tests.cue" || errs[0].Pos.Line != 3 || !strings.Contains(errs[0].Msg, "ICMP has no ports") {
		t.Errorf("got %v, want one error at tests.cue:3 saying ICMP has no ports", err)
	}
}

// TestAudit: an audited policy's default deny passes the packet and is
// reported as the decision, marked audit, so "deny" fails and says why.
func TestAudit(t *testing.T) {
	cfg, arts := compileFS(t, map[string]string{"c.cue": `package ebpfc

cluster: {name: "t", podCIDRs: ["10.0.0.0/16"], serviceCIDRs: ["10.96.0.0/12"]}
nodes: "node-a": {addresses: ["192.168.1.1"]}
endpoints: default: canary: {node: "node-a", interface: "lxc-canary", addresses: ["10.0.1.6"], labels: app: "canary"}
policies: default: "canary-audit": {
	endpointSelector: matchLabels: app: "canary"
	audit: true
	ingress: [{fromEntities: ["world"], toPorts: [{ports: [{port: 443}]}]}]
}
tests: "world-ssh": {from: "198.51.100.1", to: "default/canary", port: 22, expect: "deny"}
`})
	eachEngine(t, func(t *testing.T, e Engine) {
		rep := run(t, cfg, arts, Options{Engine: e})
		r := rep.Tests[0]
		if r.Status != Fail || r.Message != "want deny, but the forward packet passed every program" || len(r.Packets) != 1 || len(r.Packets[0].Steps) != 1 {
			t.Fatalf("%+v", r)
		}
		s := r.Packets[0].Steps[0]
		if s.Verdict != "pass" || s.Decision.String() != "default deny of default/canary (audit)" || s.Decision.Position != "c.cue:6:20" {
			t.Errorf("step %+v (%s), want the audited default deny of policy c.cue:6:20 passing", s, s.Decision)
		}
	})
}
