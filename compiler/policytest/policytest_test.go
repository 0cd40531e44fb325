package policytest

import (
	"bytes"
	"encoding/json"
	"net/netip"
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

// small has one node, a dual-stack endpoint and one with only IPv6, and a
// policy that lets 192.0.2.0/24 and 2001:db8::/32 reach web on TCP 80, and
// 192.0.2.0/24 ping it (ICMP echo, IPv4 only). Its tests pass and fail in
// every way the runner distinguishes.
var small = map[string]string{
	"cluster.cue": `package ebpfc

cluster: {name: "t", podCIDRs: ["10.0.0.0/16", "fd00::/64"], serviceCIDRs: ["10.96.0.0/12"]}
nodes: "node-a": {addresses: ["192.168.1.1"]}
endpoints: default: {
	web: {node: "node-a", interface: "lxc-web", addresses: ["10.0.1.5", "fd00::7"], labels: app: "web"}
	v6: {node: "node-a", interface: "lxc-v6", addresses: ["fd00::5"], labels: app: "v6"}
}
policies: default: web: {
	endpointSelector: matchLabels: app: "web"
	ingress: [{fromCIDR: ["192.0.2.0/24", "2001:db8::/32"], toPorts: [{ports: [{port: 80}]}]}, {fromCIDR: ["192.0.2.0/24"], icmps: [{fields: [{type: 8}]}]}]
}
`,
	"tests.cue": `package ebpfc

tests: {
	ok: {from: "192.0.2.1", to: "default/web", port: 80, expect: "allow"}
	"wrong-port": {from: "192.0.2.1", to: "default/web", port: 81, expect: "allow"}
	"wrong-deny": {from: "192.0.2.1", to: "default/web", port: 80, expect: "deny"}
	"no-endpoint": {from: "192.0.2.1", to: "198.51.100.1", port: 80, expect: "allow"}
	"v6-ok": {from: "2001:db8::1", to: "default/web", port: 80, expect: "allow"}
	"v6-endpoint": {from: "default/v6", to: "default/web", port: 80, expect: "deny"}
	ping: {from: "192.0.2.1", to: "default/web", protocol: "ICMP", expect: "allow"}
	"ping-v6": {from: "2001:db8::1", to: "default/web", protocol: "ICMP", expect: "deny"}
	icmpv6: {from: "2001:db8::1", to: "default/web", protocol: "ICMPv6", expect: "deny"}
}
`,
}

// notRunnable are tests that compiler/load would refuse or that need what
// the compiler does not lower (services), built in Go to reach the runner;
// their names sort after small's, so that small's tests keep their source
// ports.
var notRunnable = []*model.Test{
	{Name: "x-family", From: "default/v6", To: "default/web", Protocol: model.ProtoTCP, Port: 80, Expect: "deny", Family: "IPv4"},
	{Name: "x-service", From: "192.0.2.1", To: "svc:default/web", Protocol: model.ProtoTCP, Port: 80, Expect: "allow"},
}

func TestRunOutcomes(t *testing.T) {
	cfg, arts := compileFS(t, small)
	cfg.Tests = append(cfg.Tests, notRunnable...)
	eachEngine(t, func(t *testing.T, e Engine) {
		rep := run(t, cfg, arts, Options{Engine: e})
		if rep.Engine != e {
			t.Errorf("engine %s, want %s", rep.Engine, e)
		}
		if rep.Passed != 6 || rep.Failed != 3 || rep.NotRun != 2 {
			t.Errorf("passed %d, failed %d, not run %d; want 6, 3, 2", rep.Passed, rep.Failed, rep.NotRun)
		}
		var names []string
		for _, r := range rep.Tests {
			names = append(names, r.Name)
		}
		if want := []string{"icmpv6", "no-endpoint", "ok", "ping", "ping-v6", "v6-endpoint", "v6-ok", "wrong-deny", "wrong-port", "x-family", "x-service"}; !cmp.Equal(names, want) {
			t.Errorf("tests in order %v, want %v (sorted by name)", names, want)
		}
		got := byName(rep)
		for _, c := range []struct {
			name    string
			status  Status
			family  string
			message string // a substring
		}{
			{"ok", Pass, "IPv4", ""},
			{"wrong-port", Fail, "IPv4", "want allow, but the forward packet was dropped by to_default_web on node-a (default deny of default/web)"},
			{"wrong-deny", Fail, "IPv4", "want deny, but the forward packet passed every program"},
			{"no-endpoint", Fail, "IPv4", "neither from nor to is an endpoint"},
			// An IPv6 address makes the test IPv6; web's IPv6 address
			// is the one the packets carry.
			{"v6-ok", Pass, "IPv6", ""},
			// default/v6 has only IPv6: the test is IPv6 without asking.
			{"v6-endpoint", Pass, "IPv6", ""},
			{"ping", Pass, "IPv4", ""},
			// The ICMP rule is for IPv4 echoes: an ICMPv6 echo meets
			// the default deny.
			{"ping-v6", Pass, "IPv6", ""},
			{"icmpv6", Pass, "IPv6", ""},
			{"x-family", NotRun, "IPv4", "from: endpoint default/v6 has no IPv4 address"},
			{"x-service", NotRun, "IPv4", "to: services are not supported yet"},
		} {
			r := got[c.name]
			if r.Status != c.status || r.Family != c.family || !strings.Contains(r.Message, c.message) || (c.message == "") != (r.Message == "") {
				t.Errorf("%s: %s %s %q, want %s %s %q", c.name, r.Status, r.Family, r.Message, c.status, c.family, c.message)
			}
			if c.status != NotRun && !strings.HasPrefix(r.Position, "tests.cue:") {
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

		// The IPv6 tests, packet by packet: program, verdict and what
		// decided, as the policy in small says.
		for _, c := range []struct {
			test    string
			packets []string
		}{
			// The same rule as for IPv4 (rule 0 has both CIDRs); the
			// SYN-ACK leaves through web's open egress.
			{"v6-ok", []string{
				"forward: TCP [2001:db8::1]:32774 > [fd00::7]:80 SYN",
				"to_default_web pass policy default/web ingress[rule 0] at cluster.cue:11:12",
				"reply: TCP [fd00::7]:80 > [2001:db8::1]:32774 SYN-ACK",
				"from_default_web pass open: egress of default/web is not enforced at cluster.cue:6:2",
			}},
			// From the IPv6-only endpoint's own address, through its open
			// egress, to web's IPv6 address; fd00::5 is in the pod CIDR,
			// not a CIDR peer.
			{"v6-endpoint", []string{
				"forward: TCP [fd00::5]:32773 > [fd00::7]:80 SYN",
				"from_default_v6 pass open: egress of default/v6 is not enforced at cluster.cue:7:2",
				"to_default_web drop default deny of default/web at cluster.cue:9:20",
			}},
			{"ping", []string{
				"forward: ICMP 192.0.2.1 > 10.0.1.5 echo request id 32771",
				"to_default_web pass policy default/web ingress[rule 1] at cluster.cue:11:93",
				"reply: ICMP 10.0.1.5 > 192.0.2.1 echo reply id 32771",
				"from_default_web pass open: egress of default/web is not enforced at cluster.cue:6:2",
			}},
			{"ping-v6", []string{
				"forward: ICMPv6 2001:db8::1 > fd00::7 echo request id 32772",
				"to_default_web drop default deny of default/web at cluster.cue:9:20",
			}},
			{"icmpv6", []string{
				"forward: ICMPv6 2001:db8::1 > fd00::7 echo request id 32768",
				"to_default_web drop default deny of default/web at cluster.cue:9:20",
			}},
		} {
			if d := cmp.Diff(c.packets, packetLines(got[c.test])); d != "" {
				t.Errorf("%s (-want +got):\n%s", c.test, d)
			}
		}
	})
}

// packetLines shows r's packets, each followed by its steps as "program
// verdict decision at position".
func packetLines(r Result) []string {
	var out []string
	for _, p := range r.Packets {
		out = append(out, p.Kind+": "+p.Summary)
		for _, s := range p.Steps {
			line := s.Program + " " + s.Verdict + " " + s.Decision.String()
			if s.Decision.Position != "" {
				line += " at " + s.Decision.Position
			}
			out = append(out, line)
		}
	}
	return out
}

// TestShop runs the shipped example with each engine: every test passes,
// the decisions are the ones its policies say (read from
// examples/shop/policies.cue, not from the output), and the verbose table
// is testdata/shop.golden in both engines.
func TestShop(t *testing.T) {
	cfg, arts := compileDir(t, filepath.Join("..", "..", "examples", "shop"))
	eachEngine(t, func(t *testing.T, e Engine) {
		rep := run(t, cfg, arts, Options{Engine: e})
		checkText(t, filepath.Join("testdata", "shop.golden"), e, rep)
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

// checkText holds the verbose table of rep, run with engine e, to golden
// (EBPFC_UPDATE=1 rewrites it from the interpreter's run; review the
// diff): both engines must print the same table below the header.
func checkText(t *testing.T, golden string, e Engine, rep *Report) {
	t.Helper()
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
}

// dualstackDir is a two-node dual-stack configuration: a public frontend
// and an API with IPv4 and IPv6 addresses, a database with IPv6 only.
var dualstackDir = filepath.Join("testdata", "dualstack")

// TestDualStack runs testdata/dualstack with each engine: every test
// passes in the family its ends give it, with the decisions its policies
// say (read from testdata/dualstack/policies.cue, not from the output); the
// table is testdata/dualstack.golden in both engines (EBPFC_UPDATE=1
// rewrites it; review the diff); the engines agree on every step; and a
// reply passes an enforced direction only through the conntrack entry
// that its own family's request left.
func TestDualStack(t *testing.T) {
	cfg, arts := compileDir(t, dualstackDir)
	pol := filepath.Join(dualstackDir, "policies.cue") + ":"
	clu := filepath.Join(dualstackDir, "cluster.cue") + ":"
	const conntrack = "conntrack: a reply to (or ICMP error about) a tracked connection"
	reports := map[Engine]*Report{}
	eachEngine(t, func(t *testing.T, e Engine) {
		eng, _, err := chooseEngine(e)
		if err != nil {
			t.Fatal(err)
		}
		r := newRunner(cfg, arts, eng)
		defer r.close()
		rep, err := r.run(nil, "")
		if err != nil {
			t.Fatal(err)
		}
		reports[e] = rep
		var b bytes.Buffer
		if err := WriteText(&b, rep, TextOptions{Verbose: true}); err != nil {
			t.Fatal(err)
		}
		if rep.Passed != 12 || rep.Failed != 0 || rep.NotRun != 0 {
			t.Fatalf("want 12 passes:\n%s", b.String())
		}
		got := byName(rep)
		families := map[string]string{}
		for _, r := range rep.Tests {
			families[r.Name] = r.Family
		}
		// IPv4 where both ends have it and nothing asks otherwise; IPv6
		// for an IPv6 address, family: "IPv6", ICMPv6 and the IPv6-only
		// database.
		wantFamilies := map[string]string{
			"internet-to-frontend": "IPv4", "frontend-to-api": "IPv4", "frontend-pings-api": "IPv4",
			"internet-v6-to-frontend": "IPv6", "blocked-v6-to-frontend": "IPv6", "frontend-to-api-address": "IPv6",
			"frontend-to-api-v6": "IPv6", "frontend-to-api-ssh-v6": "IPv6", "frontend-pings-api-v6": "IPv6",
			"api-to-db": "IPv6", "api-to-db-other-port": "IPv6", "frontend-to-db": "IPv6",
		}
		if d := cmp.Diff(wantFamilies, families); d != "" {
			t.Errorf("families (-want +got):\n%s", d)
		}
		for _, c := range []struct {
			test    string
			packets []string
		}{
			// family: "IPv6" between two dual-stack endpoints: their IPv6
			// addresses, the API's HTTP rule; the SYN-ACK leaves the API
			// (egress enforced: the database only) and enters the
			// frontend (ingress enforced: the internet on 80 and 443)
			// as the reply of a tracked connection.
			{"frontend-to-api-v6", []string{
				"forward: TCP [fd00:10::10]:32776 > [fd00:10::20]:8080 SYN",
				"from_shop_frontend_0 pass open: egress of shop/frontend-0 is not enforced at " + clu + "18:2",
				"to_shop_api_0 pass policy shop/api ingress[rule 0] at " + pol + "18:4",
				"reply: TCP [fd00:10::20]:8080 > [fd00:10::10]:32776 SYN-ACK",
				"from_shop_api_0 pass " + conntrack,
				"to_shop_frontend_0 pass " + conntrack,
			}},
			// An IPv6 deny, named: the database's ingressDeny refuses the
			// frontend.
			{"frontend-to-db", []string{
				"forward: TCP [fd00:10::10]:32777 > [fd00:10::30]:5432 SYN",
				"from_shop_frontend_0 pass open: egress of shop/frontend-0 is not enforced at " + clu + "18:2",
				"to_data_db_0 drop policy data/db ingressDeny[rule 0] at " + pol + "33:16",
			}},
			// The IPv6-only database, on the other node: allowed out of
			// the API and into the database by their rules; the reply
			// comes back into the API's enforced ingress by conntrack.
			{"api-to-db", []string{
				"forward: TCP [fd00:10::20]:32768 > [fd00:10::30]:5432 SYN",
				"from_shop_api_0 pass policy shop/api egress[rule 0] at " + pol + "21:12",
				"to_data_db_0 pass policy data/db ingress[rule 0] at " + pol + "32:12",
				"reply: TCP [fd00:10::30]:5432 > [fd00:10::20]:32768 SYN-ACK",
				"from_data_db_0 pass open: egress of data/db-0 is not enforced at " + clu + "32:18",
				"to_shop_api_0 pass " + conntrack,
			}},
			{"api-to-db-other-port", []string{
				"forward: TCP [fd00:10::20]:32769 > [fd00:10::30]:5433 SYN",
				"from_shop_api_0 drop default deny of shop/api-0 at " + pol + "15:2",
			}},
			// ICMPv6 echo request and reply (128, 129), by the API's
			// IPv6 ICMP rule.
			{"frontend-pings-api-v6", []string{
				"forward: ICMPv6 fd00:10::10 > fd00:10::20 echo request id 32772",
				"from_shop_frontend_0 pass open: egress of shop/frontend-0 is not enforced at " + clu + "18:2",
				"to_shop_api_0 pass policy shop/api ingress[rule 1] at " + pol + "19:4",
				"reply: ICMPv6 fd00:10::20 > fd00:10::10 echo reply id 32772",
				"from_shop_api_0 pass " + conntrack,
				"to_shop_frontend_0 pass " + conntrack,
			}},
			// The except of the IPv6 CIDR meets the default deny.
			{"blocked-v6-to-frontend", []string{
				"forward: TCP [2001:db8:bad::9]:32770 > [fd00:10::10]:443 SYN",
				"to_shop_frontend_0 drop default deny of shop/frontend-0 at " + pol + "6:2",
			}},
			{"internet-v6-to-frontend", []string{
				"forward: TCP [2001:db8:1::7]:32779 > [fd00:10::10]:443 SYN",
				"to_shop_frontend_0 pass policy shop/frontend-public ingress[rule 0] at " + pol + "8:13",
				"reply: TCP [fd00:10::10]:443 > [2001:db8:1::7]:32779 SYN-ACK",
				"from_shop_frontend_0 pass open: egress of shop/frontend-0 is not enforced at " + clu + "18:2",
			}},
		} {
			if d := cmp.Diff(c.packets, packetLines(got[c.test])); d != "" {
				t.Errorf("%s (-want +got):\n%s", c.test, d)
			}
		}

		// The replies above passed by conntrack, not by policy: with
		// the state the run left, a reply that no request of its family
		// opened meets the default deny.
		api, db, front := r.byID["shop/api-0"], r.byID["data/db-0"], r.byID["shop/frontend-0"]
		tcpReply := func(src, dst string) packet {
			return packet{proto: model.ProtoTCP, src: netip.MustParseAddrPort(src), dst: netip.MustParseAddrPort(dst), isReply: true}
		}
		for _, c := range []struct {
			what  string
			p     packet
			hops  []hop
			steps []string
		}{
			{"a reply to an IPv6 connection never opened", tcpReply("[fd00:10::30]:5432", "[fd00:10::20]:40000"),
				[]hop{{db, "egress"}, {api, "ingress"}}, []string{
					"from_data_db_0 pass open: egress of data/db-0 is not enforced at " + clu + "32:18",
					"to_shop_api_0 drop default deny of shop/api-0 at " + pol + "15:2",
				}},
			// frontend-to-api (IPv4, source port 32773) opened the IPv4
			// connection only.
			{"the IPv6 twin of an IPv4 connection's reply", tcpReply("[fd00:10::20]:8080", "[fd00:10::10]:32773"),
				[]hop{{api, "egress"}, {front, "ingress"}}, []string{
					"from_shop_api_0 drop default deny of shop/api-0 at " + pol + "15:2",
				}},
			{"the IPv4 connection's reply itself", tcpReply("10.0.1.20:8080", "10.0.1.10:32773"),
				[]hop{{api, "egress"}, {front, "ingress"}}, []string{
					"from_shop_api_0 pass " + conntrack,
					"to_shop_frontend_0 pass " + conntrack,
				}},
		} {
			out, err := r.carry("reply", c.p, c.hops)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(c.steps, packetLines(Result{Packets: []Packet{out}})[1:]); d != "" {
				t.Errorf("%s, %s (-want +got):\n%s", c.what, c.p, d)
			}
		}

		checkText(t, filepath.Join("testdata", "dualstack.golden"), e, rep)
	})
	if k, v := reports[EngineKernel], reports[EngineVM]; k != nil && v != nil {
		if d := cmp.Diff(k.Tests, v.Tests); d != "" {
			t.Errorf("the kernel and the interpreter disagree (-kernel +vm):\n%s", d)
		}
	}
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
	cfg.Tests = append(cfg.Tests, notRunnable...)
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
	for _, field := range []string{` > 10.0.1.5:80 SYN"`, `"engine": "vm"`, `"status": "fail"`, `"status": "not run"`, `"family": "IPv6"`, `"kind": "default-deny"`, `"rule": "ingress[rule 0]"`} {
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

// TestFamilyErrors: a test whose ends share no address family, or that
// names a family (or ICMPv6) an end does not have, is a configuration
// error at the test (or at its family field), found before any program
// runs.
func TestFamilyErrors(t *testing.T) {
	v4 := `package ebpfc

endpoints: default: v4: {node: "node-a", interface: "lxc-v4", addresses: ["10.0.1.6"], labels: app: "v4"}
`
	for _, c := range []struct {
		test  string // the test, written on line 3 of tests.cue
		field string // where the error is: the test, its family field or value
		msg   string
	}{
		{`t: {from: "default/v4", to: "default/web", port: 80, family: "IPv6", expect: "allow"}`, "family",
			"test t: family is IPv6, but from endpoint default/v4 has no IPv6 address; name an end that has one, or remove family"},
		{`t: {from: "default/web", to: "192.0.2.1", port: 80, family: "IPv6", expect: "allow"}`, "family",
			"test t: family is IPv6, but to 192.0.2.1 is not an IPv6 address; name an end that has one, or remove family"},
		{`t: {from: "default/web", to: "default/v6", protocol: "ICMPv6", family: "IPv4", expect: "allow"}`, "family",
			"test t: family IPv4 with protocol ICMPv6: ICMPv6 is carried over IPv6; remove family, or use protocol ICMP for an IPv4 echo"},
		{`t: {from: "default/v4", to: "default/web", protocol: "ICMPv6", expect: "allow"}`, "t: {",
			"test t: ICMPv6 needs IPv6, but from endpoint default/v4 has no IPv6 address; use protocol ICMP for an IPv4 echo"},
		{`t: {from: "default/v6", to: "default/v4", port: 80, expect: "deny"}`, "t: {",
			"test t: from endpoint default/v6 (IPv6) and to endpoint default/v4 (IPv4) share no address family, and a test's packets are IPv4 or IPv6 from end to end; name ends that share one"},
		{`t: {from: "192.0.2.1", to: "default/v6", port: 80, expect: "deny"}`, "t: {",
			"test t: from 192.0.2.1 (IPv4) and to endpoint default/v6 (IPv6) share no address family"},
		{`t: {from: "2001:db8::1", to: "10.0.1.6", port: 80, expect: "deny"}`, "t: {",
			"test t: from 2001:db8::1 (IPv6) and to 10.0.1.6 (IPv4) share no address family"},
		// The schema spells the families as ICMP rules do.
		{`t: {from: "default/web", to: "default/v6", port: 80, family: "ipv6", expect: "deny"}`, `"ipv6"`, `tests.t.family: invalid value "ipv6" (want one of "IPv4", "IPv6")`},
	} {
		line := "tests: " + c.test
		fsys := fstest.MapFS{
			"cluster.cue": {Data: []byte(small["cluster.cue"])},
			"v4.cue":      {Data: []byte(v4)},
			"tests.cue":   {Data: []byte("package ebpfc\n\n" + line + "\n")},
		}
		_, err := load.LoadFS(fsys, []string{"cluster.cue", "tests.cue", "v4.cue"})
		errs, ok := source.AsErrors(err)
		wantCol := strings.Index(line, c.field) + 1
		if !ok || len(errs) != 1 || errs[0].Pos.File != "tests.cue" || errs[0].Pos.Line != 3 || errs[0].Pos.Col != wantCol || !strings.Contains(errs[0].Msg, c.msg) {
			t.Errorf("%s:\ngot  %v\nwant one error at tests.cue:3:%d: %s", c.test, err, wantCol, c.msg)
		}
	}
}
