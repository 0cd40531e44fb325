package explain

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ebpfc/ebpfc/compiler"
	"github.com/ebpfc/ebpfc/compiler/load"
	"github.com/ebpfc/ebpfc/compiler/model"
)

// testConfigDir is a two-node configuration; see its files for the rules
// whose positions the tests expect.
const testConfigDir = "testdata/twonodes"

var (
	loadOnce  sync.Once
	loadedCfg *model.Config
	loadErr   error
)

func testConfig(t *testing.T) *model.Config {
	t.Helper()
	loadOnce.Do(func() { loadedCfg, loadErr = load.Load(testConfigDir) })
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return loadedCfg
}

func explainFlow(t *testing.T, text string, opts Options) *Report {
	t.Helper()
	f, err := ParseFlow(text)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Explain(testConfig(t), f, opts)
	if err != nil {
		t.Fatalf("Explain(%q): %v", text, err)
	}
	return r
}

// stageWant is what a test expects of one stage.
type stageWant struct {
	node, role, program string
	verdict             string
	rule                string // Rule.summary() and position, "" for none
	drop                string
}

func TestExplain(t *testing.T) {
	const pol = testConfigDir + "/policies.cue"
	tests := []struct {
		name, flow string
		opts       Options
		verdict    string
		stages     []stageWant
		notReached []Planned
	}{{
		name: "allowed by an endpoint rule, both ends on one node",
		flow: "tcp from default/client to default/web:80",
		stages: []stageWant{
			{"node-a", "egress policy of default/client", "from_default_client", "pass", "allow by default/client egress[0] at " + pol + ":18:4", ""},
			{"node-a", "ingress policy of default/web", "to_default_web", "pass", "allow by default/web ingress[0] at " + pol + ":7:4", ""},
		},
		verdict: "pass",
	}, {
		name: "from an address with no endpoint, allowed from the world",
		flow: "tcp 8.8.8.8:5000 -> 10.0.1.5:443",
		stages: []stageWant{
			{"node-a", "ingress policy of default/web", "to_default_web", "pass", "allow by default/web ingress[1] at " + pol + ":8:4", ""},
		},
		verdict: "pass",
	}, {
		name: "denied by a deny rule",
		flow: "tcp 203.0.113.9:5000 -> 10.0.1.5:443",
		stages: []stageWant{
			{"node-a", "ingress policy of default/web", "to_default_web", "drop", "deny by default/web ingressDeny[0] at " + pol + ":12:4", "policy denied"},
		},
		verdict: "drop",
	}, {
		name: "default deny on ingress",
		flow: "tcp 8.8.8.8:5000 -> 10.0.1.5:22",
		stages: []stageWant{
			{"node-a", "ingress policy of default/web", "to_default_web", "drop", "default-deny of default/web ingress at " + pol + ":4:2", "policy denied"},
		},
		verdict: "drop",
	}, {
		name: "ICMP type rule",
		flow: "icmp 8.8.8.8 -> default/web type 8",
		stages: []stageWant{
			{"node-a", "ingress policy of default/web", "to_default_web", "pass", "allow by default/web ingress[2] at " + pol + ":9:4", ""},
		},
		verdict: "pass",
	}, {
		name: "across nodes: open egress, XDP, then ingress",
		flow: "tcp from default/web to default/db:5432",
		stages: []stageWant{
			{"node-a", "egress policy of default/web", "from_default_web", "pass", "", ""},
			{"node-b", "XDP on eth0", "xdp_prefilter", "pass", "", ""},
			{"node-b", "ingress policy of default/db", "to_default_db", "pass", "allow by default/db ingress[0] at " + pol + ":24:4", ""},
		},
		verdict: "pass",
	}, {
		name: "across nodes, dropped by the source's default deny on egress",
		flow: "tcp from default/client to default/db:5432",
		stages: []stageWant{
			{"node-a", "egress policy of default/client", "from_default_client", "drop", "default-deny of default/client egress at " + pol + ":15:2", "policy denied"},
		},
		notReached: []Planned{{Node: "node-b", Role: "ingress policy of default/db"}},
		verdict:    "drop",
	}, {
		name: "one node of two with --node",
		flow: "tcp from default/web to default/db:5432",
		opts: Options{Node: "node-b"},
		stages: []stageWant{
			{"node-b", "XDP on eth0", "xdp_prefilter", "pass", "", ""},
			{"node-b", "ingress policy of default/db", "to_default_db", "pass", "allow by default/db ingress[0] at " + pol + ":24:4", ""},
		},
		verdict: "pass",
	}, {
		name: "audited default deny passes",
		flow: "tcp 8.8.8.8:5000 -> default/canary:22",
		stages: []stageWant{
			{"node-a", "ingress policy of default/canary", "to_default_canary", "pass", "default-deny of default/canary ingress, audit at " + pol + ":28:2", ""},
		},
		verdict: "pass",
	}, {
		name: "IPv6 is judged by the same policy",
		flow: "icmpv6 fd00::9 -> default/web",
		stages: []stageWant{
			{"node-a", "ingress policy of default/web", "to_default_web", "drop", "default-deny of default/web ingress at testdata/twonodes/policies.cue:4:2", "policy denied"},
		},
		verdict: "drop",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := explainFlow(t, tt.flow, tt.opts)
			if r.Verdict != tt.verdict {
				t.Errorf("verdict %s, want %s", r.Verdict, tt.verdict)
			}
			if len(r.Stages) != len(tt.stages) {
				t.Fatalf("%d stages, want %d:\n%s", len(r.Stages), len(tt.stages), text(t, r))
			}
			for i, want := range tt.stages {
				st := r.Stages[i]
				rule := ""
				if st.Rule != nil {
					rule = st.Rule.summary() + " at " + st.Rule.Position
				}
				got := stageWant{st.Node, st.Role, st.Attach.Program, st.Verdict, rule, st.Drop}
				if got != want {
					t.Errorf("stage %d:\n got %+v\nwant %+v", i, got, want)
				}
			}
			if len(r.NotReached) != len(tt.notReached) {
				t.Errorf("not reached %v, want %v", r.NotReached, tt.notReached)
			}
			for i := range min(len(r.NotReached), len(tt.notReached)) {
				if r.NotReached[i] != tt.notReached[i] {
					t.Errorf("not reached %v, want %v", r.NotReached, tt.notReached)
				}
			}
		})
	}
}

// TestExplainLookups checks what the trace shows of one packet: the
// programs entered, the tail call, and the lookups decoded with the names
// of identities, protocols and rules.
func TestExplainLookups(t *testing.T) {
	r := explainFlow(t, "tcp from default/client to default/web:80", Options{Node: "node-a"})
	st := r.Stages[1]
	var names []string
	for _, p := range st.Programs {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, " "); got != "to_default_web to_default_web_ipv4" {
		t.Errorf("programs entered: %s, want to_default_web to_default_web_ipv4", got)
	}
	var tail *Event
	for i, e := range st.Programs[0].Events {
		if e.Kind == "tail-call" {
			tail = &st.Programs[0].Events[i]
		}
	}
	if tail == nil || tail.Target != "to_default_web_ipv4" || tail.Map != "progs" || st.Programs[1].TailCallSlot == nil || *tail.Slot != uint32(*st.Programs[1].TailCallSlot) {
		t.Errorf("tail call %+v does not lead to to_default_web_ipv4 at its slot", tail)
	}
	var lookups []string
	for _, e := range st.Programs[1].Events {
		if e.Kind == "lookup" {
			v := "miss"
			if e.Value != nil {
				v = e.Value.String()
			}
			lookups = append(lookups, e.Map+" "+e.Key.String()+" -> "+v)
		}
	}
	id := identityOf(t, r, "endpoint:default;app=client")
	want := []string{
		// A new connection: neither its tuple nor the reversed one is
		// tracked yet.
		"conntrack {saddr=::ffff:10.0.1.6 daddr=::ffff:10.0.1.5 sport=40000 dport=80 protocol=6 (tcp) egress=0 (ingress) pad=0} -> miss",
		"conntrack {saddr=::ffff:10.0.1.5 daddr=::ffff:10.0.1.6 sport=80 dport=40000 protocol=6 (tcp) egress=1 (egress) pad=0} -> miss",
		// An endpoint's address is in the ipcache hash.
		"ipcache {addr=::ffff:10.0.1.6} -> {identity=" + id + " (endpoint:default;app=client)}",
		// The peer's exact entry decides alone: no other policy lookup.
		"pol_default_web {prefixlen=64 identity=" + id + " (endpoint:default;app=client) egress=0 (ingress) protocol=6 (tcp) dport=80} -> {cookie=" + cookieOf(st) + " (allow by default/web ingress[0]) flags=0 (allow) lengths=0}",
		"rule_stats {index=" + cookieOf(st) + " (allow by default/web ingress[0])} -> {packets=0 bytes=0}",
	}
	for i, w := range want {
		if i >= len(lookups) || lookups[i] != w {
			t.Errorf("lookup %d:\n got %q\nwant %q\nall lookups:\n%s", i, at(lookups, i), w, strings.Join(lookups, "\n"))
		}
	}
	for _, p := range st.Programs {
		for _, b := range p.Path {
			if b.Position == "" || b.Position == "-" || !strings.HasPrefix(b.Position, testConfigDir+"/") {
				t.Errorf("%s block %s has no position in the configuration: %q", p.Name, b.Label, b.Position)
			}
		}
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "(none)"
}

// identityOf finds an identity's number through the ipcache lookups of
// the report, checked against the manifest's name by the decoder.
func identityOf(t *testing.T, r *Report, name string) string {
	t.Helper()
	for _, st := range r.Stages {
		for _, p := range st.Programs {
			for _, e := range p.Events {
				if e.Kind == "lookup" && (e.Map == "ipcache" || e.Map == "ipcache_cidr") && e.Value != nil {
					for _, f := range e.Value.Fields {
						if f.Name == "identity" && f.Note == name {
							return f.Value
						}
					}
				}
			}
		}
	}
	t.Fatalf("no ipcache lookup gave identity %s", name)
	return ""
}

func cookieOf(st *Stage) string {
	if st.Rule == nil {
		return "(no rule)"
	}
	return strconv.FormatUint(uint64(st.Rule.Cookie), 10)
}

func text(t *testing.T, r *Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestExplainText checks the text form's main lines and that the output,
// text and JSON, is the same from run to run.
func TestExplainText(t *testing.T) {
	flow := "tcp 203.0.113.9:5000 -> 10.0.1.5:443"
	out := text(t, explainFlow(t, flow, Options{}))
	for _, want := range []string{
		"flow: tcp 203.0.113.9:5000 -> 10.0.1.5:443 syn\n",
		"  source:      203.0.113.9:5000, no endpoint\n",
		"  destination: 10.0.1.5:443, endpoint default/web on node-a (" + testConfigDir + "/cluster.cue:11:2)\n",
		"node-a: ingress policy of default/web\n",
		"  to_default_web: tc egress on lxc-web (" + testConfigDir + "/cluster.cue:11:2)\n",
		"    tail call progs[",
		"    lookup ipcache {addr=::ffff:203.0.113.9} -> miss\n",
		"    lookup ipcache_cidr {prefixlen=128 addr=::ffff:203.0.113.9} -> {identity=",
		"  verdict: drop (TC_ACT_SHOT), ",
		"  drop reason: policy denied\n",
		"  decided by: cookie ",
		", deny by default/web ingressDeny[0] at " + testConfigDir + "/policies.cue:12:4\n",
		"\nverdict: drop\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	audited := text(t, explainFlow(t, "tcp 8.8.8.8:5000 -> default/canary:22", Options{}))
	if !strings.Contains(audited, "    audited: the default-deny is counted but not enforced\n") {
		t.Errorf("an audited default deny that passes does not say so:\n%s", audited)
	}
	if again := text(t, explainFlow(t, flow, Options{})); again != out {
		t.Errorf("two runs differ:\n%s\n---\n%s", out, again)
	}
	var j1, j2 bytes.Buffer
	if err := WriteJSON(&j1, explainFlow(t, flow, Options{Insns: true})); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&j2, explainFlow(t, flow, Options{Insns: true})); err != nil {
		t.Fatal(err)
	}
	if j1.String() != j2.String() {
		t.Error("two JSON runs differ")
	}
	var back Report
	if err := json.Unmarshal(j1.Bytes(), &back); err != nil {
		t.Fatalf("the JSON does not decode: %v", err)
	}
	if back.Verdict != "drop" || len(back.Stages) != 1 || back.Stages[0].Rule == nil || back.Stages[0].Rule.Kind != "deny" {
		t.Errorf("JSON round trip lost the verdict or rule: %+v", back)
	}
	if len(back.Stages[0].Programs[0].Insns) == 0 {
		t.Error("Insns asked for, none recorded")
	}
}

// TestExplainInsns checks that --insns lists the instructions as the
// listing numbers and prints them.
func TestExplainInsns(t *testing.T) {
	r := explainFlow(t, "tcp 8.8.8.8:5000 -> 10.0.1.5:443", Options{Insns: true})
	p := r.Stages[0].Programs[0]
	arts, err := compiler.Compile(testConfig(t), compiler.Options{Node: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	// The listing shows a program as "NAME:" then "     0: TEXT  ; POS".
	listing := string(arts[0].Files[compiler.ListingFile])
	_, after, ok := strings.Cut(listing, "\n"+p.Name+":\n")
	if !ok {
		t.Fatalf("no program %s in the listing", p.Name)
	}
	first, _, _ := strings.Cut(after, "\n")
	first, _, _ = strings.Cut(first, ";")
	want := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(first), "0:"))
	if len(p.Insns) == 0 || p.Insns[0].Index != 0 || p.Insns[0].Text != want {
		t.Fatalf("first instruction %+v, want 0: %s as datapath.s shows it", p.Insns[:min(1, len(p.Insns))], want)
	}
	total := 0
	for _, p := range r.Stages[0].Programs {
		total += len(p.Insns)
	}
	if total != r.Stages[0].Insns {
		t.Errorf("%d instructions listed, the run executed %d", total, r.Stages[0].Insns)
	}
}

func TestExplainErrors(t *testing.T) {
	tests := []struct {
		flow string
		opts Options
		col  int // for a FlowError; 0 for a UsageError
		msg  string
	}{
		{"tcp from default/nope to default/web:80", Options{}, 10, "no endpoint default/nope in the configuration; default has default/canary, default/client, default/db, default/web"},
		{"tcp from other/web to default/web:80", Options{}, 10, "no endpoint other/web in the configuration; namespaces with endpoints: default"},
		{"icmpv6 from default/client to default/web", Options{}, 13, "endpoint default/client has no IPv6 address"},
		{"tcp 8.8.8.8:1 -> 1.1.1.1:80", Options{}, 0, "neither 8.8.8.8 nor 1.1.1.1 is an endpoint's address"},
		{"tcp 8.8.8.8:1 -> 10.0.1.5:80", Options{Node: "node-b"}, 0, "the flow does not pass node node-b: the destination default/web is on node-a"},
		{"tcp 8.8.8.8:1 -> 10.0.1.5:80", Options{Node: "node-z"}, 0, `no node "node-z" in the configuration (nodes: node-a, node-b)`},
		{"tcp [fd00::5]:1 -> default/client:80", Options{}, 20, "endpoint default/client has no IPv6 address"},
	}
	for _, tt := range tests {
		t.Run(tt.flow, func(t *testing.T) {
			f, err := ParseFlow(tt.flow)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Explain(testConfig(t), f, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Explain: %v, want %q", err, tt.msg)
			}
			var fe *FlowError
			var ue *compiler.UsageError
			switch {
			case errors.As(err, &fe):
				if tt.col != 0 && fe.Col != tt.col {
					t.Errorf("column %d, want %d", fe.Col, tt.col)
				}
			case errors.As(err, &ue):
				if tt.col != 0 {
					t.Errorf("a usage error, want a flow error at column %d", tt.col)
				}
			default:
				t.Errorf("%T, want *FlowError or *compiler.UsageError", err)
			}
		})
	}
}
